package engine

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"sort"
	"testing"
)

// Engine 1.1.2 capped target_mroi spend where constraints may force it past the price
// points (capSpend/forcedCap) at a weak feasible plan's value: caps up to 10⁴ times the
// price points, over which the relaxation's bound stayed too loose to certify. Three
// requests from the fuzz generator's sweep (its seeds 53030, 69448 and 112594) went from
// "optimal" to "feasible" with it; the search in a box narrowed by duality (narrow,
// relax.tighten) certifies them again.
var regressionForcedCaps = map[string]string{
	"53030":  `{"model":{"model_id":"gen","baseline":2.524000286082635,"channels":{"digital":{"curve":{"type":"linear","beta":0.018874832917753104},"adstock":{"type":"geometric","decay":0.39743511100938433}},"ooh":{"curve":{"type":"saturation","beta":9096554.712591864,"kappa":49.742423396653386},"adstock":{"type":"geometric","decay":0.9877793545433737}},"radio":{"curve":{"type":"linear","beta":0.810923590061463},"adstock":{"type":"geometric","decay":0.41492835889219504}},"search":{"curve":{"type":"hill","beta":523.0549797009508,"alpha":5.347937616421138,"kappa":7.371170060119515}},"social":{"curve":{"type":"log","beta":729.029492858896,"kappa":359.1625661418609}},"tv":{"curve":{"type":"exponential","beta":66819.42340661211,"kappa":10.03907621717883},"adstock":{"type":"geometric","decay":0.9267493705653468}}},"kpis":{"awareness":{"baseline":153.46510926841935,"channels":{"digital":{"curve":{"type":"log","beta":2879.869804073749,"kappa":219.7784968490203}},"ooh":{"curve":{"type":"saturation","beta":5523302.446054326,"kappa":17.30951446225172},"adstock":{"type":"geometric","decay":0.4039157701991302}},"social":{"curve":{"type":"log","beta":4.609086537800422,"kappa":348852.09600465937}}}}}},"budget":{"ooh":266488,"radio":122536,"social":45208},"constraints":{"channels":{"digital":{"min":4342},"radio":{"max":172558},"social":{"min":51889,"max":56066}},"max_share":0.9386091401541161,"groups":[{"name":"g","channels":["tv","radio","social","ooh"],"min_share":0.7740108339055467}]},"objective":{"type":"target_mroi","floors":{"awareness":4733967.169687968},"mroi":0.4879041113799852},"options":{"max_nodes":200}}`,
	"69448":  `{"model":{"model_id":"gen","baseline":3351.612677596578,"channels":{"digital":{"curve":{"type":"linear","beta":53.01784419718361},"adstock":{"type":"geometric","decay":0.4055170519569695}},"radio":{"curve":{"type":"hill","beta":5622.178514174688,"alpha":0.12525767169606414,"kappa":2880173.374445585}},"search":{"curve":{"type":"hill","beta":5.3419861075430966,"alpha":2.949222893132028,"kappa":688620.116504406}},"social":{"curve":{"type":"log","beta":34754306.05861555,"kappa":2.444325277762895}},"tv":{"curve":{"type":"log","beta":0.08043968464981889,"kappa":25703.64173987029},"adstock":{"type":"geometric","decay":0.37531929503318834}}},"kpis":{"awareness":{"baseline":480.433214620987,"channels":{"social":{"curve":{"type":"linear","beta":1.575344163361077}},"tv":{"curve":{"type":"logistic","beta":893.8145602412067,"k":2.846971725740176e-7,"x0":-1921626.7837012769}}}}}},"budget":{"radio":3358,"search":4429},"constraints":{"channels":{"digital":{"fixed":true},"radio":{"fixed":true},"tv":{"min":3088,"max":33367}},"max_share":0.44465552758068205,"groups":[{"name":"g","channels":["tv","digital","search","social"],"min_share":0.24889295796139468}]},"objective":{"type":"target_mroi","floors":{"awareness":548.9140075044552},"mroi":0.0034766519197719685},"options":{"max_nodes":200}}`,
	"112594": `{"model":{"model_id":"gen","baseline":0.09027786200836796,"channels":{"digital":{"curve":{"type":"piecewise","points":[[3.7651643004001554,1.835813201543319],[1797.0559664949683,1346.5138009274879],[276674.68184788286,61198.82827289401],[276701.77837986953,151953.67769336747]]}},"ooh":{"curve":{"type":"power","beta":1.7205828637128853,"alpha":0.21155765503123272}},"radio":{"curve":{"type":"piecewise","points":[[789528.5130043088,0],[789539.9973243627,206621.3036188818],[789555.252903609,1138239.1766521246],[1152090.2736921166,1138239.6019438775]]}},"search":{"curve":{"type":"logistic","beta":27.765370395914125,"k":1.5937719698267742e-7,"x0":10123234.131307734}},"social":{"curve":{"type":"hill","beta":9578724.847759947,"alpha":1.2998377756685948,"kappa":793.3102135715185}},"tv":{"curve":{"type":"hill","beta":15.40856747263662,"alpha":0.5639953426835016,"kappa":40274.99333545171}}}},"budget":{"digital":17931,"ooh":27014,"social":69849,"tv":68668},"constraints":{"channels":{"digital":{"max":5188},"ooh":{"fixed":true},"radio":{"min":2439}},"groups":[{"name":"g","channels":["radio","social"],"min":22059},{"name":"g","channels":["tv","digital","radio","social"],"min_share":0.7245716029602502}]},"objective":{"type":"target_mroi","mroi":0.004565569164664588},"options":{"max_nodes":200}}`,
}

func decodeInternal(t *testing.T, js string) *Request {
	t.Helper()
	req, err := DecodeRequest([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return &req
}

// compiledFor is the request compiled as Solve compiles it, spend caps included.
func compiledFor(t *testing.T, req *Request) *problem {
	t.Helper()
	pm, err := Prepare(req.Model)
	if err != nil {
		t.Fatal(err)
	}
	p, errs := compile(pm, req)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if msg := p.capSpend(); msg != "" {
		t.Fatal(msg)
	}
	return p
}

func TestRegressionForcedCapsCertified(t *testing.T) {
	for _, seed := range []string{"53030", "69448", "112594"} {
		t.Run(seed, func(t *testing.T) {
			req := decodeInternal(t, regressionForcedCaps[seed])
			res := Solve(nil, req)
			checkCertificate(t, seed, res, DefaultGapNonConcave)
			p := compiledFor(t, req)
			x := make([]float64, p.n())
			for i, name := range p.names {
				x[i] = res.Allocation[name]
			}
			if !p.feasible(x, 1e-9) {
				t.Fatalf("plan %v breaks a constraint", res.Allocation)
			}
			value := p.objective(x)
			best, bx := coordinateSearch(p)
			if free := freeChannels(p); len(free) <= 3 {
				for k, filler := range free { // each in turn takes the best spend the others leave
					grid := append(append([]int(nil), free[:k]...), free[k+1:]...)
					if v, y := zoomSearch(p, grid, filler, 16, 14); v > best {
						best, bx = v, y
					}
				}
			}
			if math.IsInf(best, -1) {
				t.Fatal("the independent search found no feasible plan")
			}
			ub := *res.Certificate.UpperBound - p.objConst()
			t.Logf("engine %.12g, bound %.12g; independent search %.12g at %v", value, ub, best, bx)
			if ub < best-1e-12*math.Abs(best) {
				t.Errorf("bound %.17g below a feasible plan's %.17g", ub, best)
			}
			if value < best-DefaultGapNonConcave*p.gapScale(bx, best) {
				t.Errorf("plan %.17g worse than a feasible plan's %.17g", value, best)
			}
		})
	}
}

// Shares of the total force spend as minimums do: digital, worth most, may take at most
// 76 % of the total and tv with radio at most 42 %, so spending on digital makes tv and
// radio spend past their price points. Engines up to 1.2.1 capped tv and radio there and
// answered "optimal" at a twentieth of the best plan (a generated request).
func TestRegressionSharesForceSpend(t *testing.T) {
	req := decodeInternal(t, `{"model":{"model_id":"gen","baseline":308408.64178155694,"channels":{"digital":{"curve":{"type":"logistic","beta":26698.672125989942,"k":0.000003929376503370992,"x0":-65880.50451652374}},"radio":{"curve":{"type":"logistic","beta":126.89840646847225,"k":0.0012488148502151062,"x0":-117.63041076440875}},"tv":{"curve":{"type":"hill","beta":23.349441307938495,"alpha":0.3289073885019104,"kappa":1.9156103025853783}}}},"budget":{"tv":378},"constraints":{"max_share":0.7612787060349432,"groups":[{"name":"g","channels":["tv","radio"],"max_share":0.4217074845502404}]},"objective":{"type":"target_mroi","mroi":0.008362412345595018},"options":{"max_nodes":200}}`)
	res := Solve(nil, req)
	checkCertificate(t, "shares", res, DefaultGap)
	p := compiledFor(t, req)
	x := make([]float64, p.n())
	for i, name := range p.names {
		x[i] = res.Allocation[name]
	}
	if !p.feasible(x, 1e-9) {
		t.Fatalf("plan %v breaks a constraint", res.Allocation)
	}
	// The search goes by the request's own constraints, not the engine's spend caps:
	// every channel in [0, 1e7], past any price point here.
	q := compiledFor(t, req)
	pm, _ := Prepare(req.Model)
	open, _ := compile(pm, req)
	for i := range q.hi {
		q.hi[i] = min(open.hi[i], 1e7)
	}
	best, bx := math.Inf(-1), []float64(nil)
	free := freeChannels(q)
	for k, filler := range free {
		grid := append(append([]int(nil), free[:k]...), free[k+1:]...)
		if v, y := zoomSearch(q, grid, filler, 16, 14); v > best {
			best, bx = v, y
		}
	}
	value, ub := p.objective(x), *res.Certificate.UpperBound-p.objConst()
	t.Logf("engine %.12g, bound %.12g; independent search %.12g at %v", value, ub, best, bx)
	if ub < best-1e-12*math.Abs(best) {
		t.Errorf("bound %.17g below a feasible plan's %.17g", ub, best)
	}
	if value < best-DefaultGap*p.gapScale(bx, best) {
		t.Errorf("plan %.17g worse than a feasible plan's %.17g", value, best)
	}
}

// coordinateSearch is ground truth that shares no code with the solvers: from a
// feasible plan, each channel in turn moves to the best spend the others leave it
// (its box and the linear constraints as the others fix them, KPI floors checked at
// every point), chosen on log and linear grids with breakpoints and refined by golden
// sections, sweep after sweep until nothing moves. Every plan it scores meets every
// constraint (to 1e-12), so its value is a lower bound on the optimum. It starts from
// each channel's own best spend where that plan is feasible (nothing else binds), from
// a vertex of the linear constraints otherwise.
func coordinateSearch(p *problem) (float64, []float64) {
	n := p.n()
	x := make([]float64, n)
	for i := range x {
		x[i], _ = bestSpend(p, i, p.lo[i], p.hi[i], 2000, nil)
	}
	if !p.feasible(x, 1e-12) {
		v, ok := linearFeasiblePoint(p, p.lo, p.hi)
		if !ok {
			return math.Inf(-1), nil
		}
		x = v
	}
	if !p.feasible(x, 1e-12) {
		return math.Inf(-1), nil
	}
	best := p.objective(x)
	for sweep := 0; sweep < 200; sweep++ {
		before := best
		for i := 0; i < n; i++ {
			a, b := spendRange(p, x, i)
			if b < a {
				continue
			}
			y := append([]float64(nil), x...)
			ok := func(v float64) bool {
				y[i] = v
				return p.feasible(y, 1e-12)
			}
			if v, _ := bestSpend(p, i, a, b, 2000, ok); ok(v) {
				if val := p.objective(y); val > best {
					best, x = val, y
				}
			}
		}
		if best <= before+1e-15*math.Abs(best) {
			break
		}
	}
	return best, x
}

// freeChannels lists the channels whose box is more than a point.
func freeChannels(p *problem) []int {
	var free []int
	for i := range p.lo {
		if p.hi[i] > p.lo[i] {
			free = append(free, i)
		}
	}
	return free
}

// zoomSearch is ground truth for problems with a few free channels, where the best plan
// moves several of them at once (a share constraint binding on two channels, say): a
// grid over the boxes of the channels in grid (log-spaced where a box spans orders of
// magnitude), the filler channel taking the best spend the others leave it, then finer
// grids around the best plan so far, level after level. Only plans that meet every
// constraint (to 1e-12) are scored, so the value is a lower bound on the optimum.
func zoomSearch(p *problem, grid []int, filler, G, levels int) (float64, []float64) {
	x := append([]float64(nil), p.lo...)
	grids := make([][]float64, len(grid))
	for k, i := range grid {
		a, b := p.lo[i], p.hi[i]
		for j := 0; j <= G; j++ {
			grids[k] = append(grids[k], a+(b-a)*float64(j)/float64(G))
		}
		if lo := math.Max(a, 1e-9*b); b > 100*lo {
			for j := 0; j <= G; j++ {
				grids[k] = append(grids[k], lo*math.Pow(b/lo, float64(j)/float64(G)))
			}
		}
		sort.Float64s(grids[k])
	}
	best, bx := math.Inf(-1), []float64(nil)
	at := make([]int, len(grid))
	ok := func(v float64) bool {
		x[filler] = v
		return p.feasible(x, 1e-12)
	}
	for level := 0; level < levels; level++ {
		var rec func(k int)
		rec = func(k int) {
			if k == len(grid) {
				a, b := spendRange(p, x, filler)
				if b < a {
					return
				}
				if v, _ := bestSpend(p, filler, a, b, 64, ok); ok(v) {
					if val := p.objective(x); val > best {
						best, bx = val, append([]float64(nil), x...)
					}
				}
				return
			}
			for _, v := range grids[k] {
				x[grid[k]] = v
				rec(k + 1)
			}
		}
		rec(0)
		if bx == nil {
			return best, nil
		}
		for k, i := range grid { // the best plan's place on this level's grid
			at[k] = min(sort.SearchFloat64s(grids[k], bx[i]), len(grids[k])-1)
		}
		for k := range grid {
			g := grids[k]
			a, b := g[max(at[k]-1, 0)], g[min(at[k]+1, len(g)-1)]
			grids[k] = grids[k][:0:0]
			for j := 0; j <= G; j++ {
				grids[k] = append(grids[k], a+(b-a)*float64(j)/float64(G))
			}
		}
	}
	return best, bx
}

// spendRange is the interval of channel i's spend that keeps the box, the total and the
// linear rows with the other channels as in x.
func spendRange(p *problem, x []float64, i int) (float64, float64) {
	a, b := p.lo[i], p.hi[i]
	limit := func(coef, rest, lo, hi float64) {
		if coef == 0 {
			return
		}
		l, h := (lo-rest)/coef, (hi-rest)/coef
		if coef < 0 {
			l, h = h, l
		}
		a, b = math.Max(a, l), math.Min(b, h)
	}
	rest := 0.0
	for j, v := range x {
		if j != i {
			rest += v
		}
	}
	limit(1, rest, p.tlo, p.thi)
	for _, r := range p.rows {
		coef, rest := 0.0, 0.0
		for k, j := range r.idx {
			if j == i {
				coef = r.coef[k]
			} else {
				rest += r.coef[k] * x[j]
			}
		}
		limit(coef, rest, r.lo, r.hi)
	}
	return a, b
}

// bestSpend maximises channel i's own objective term over [a, b] (on points ok accepts,
// when given): grids of m steps, the curves' breakpoints, then golden sections around
// the best.
func bestSpend(p *problem, i int, a, b float64, m int, ok func(float64) bool) (float64, float64) {
	f := func(x float64) float64 { return p.objective1(i, x) }
	if math.IsInf(b, 1) {
		b = math.Max(a, 1) * 1e12
	}
	var pts []float64
	for k := 0; k <= m; k++ {
		pts = append(pts, a+(b-a)*float64(k)/float64(m))
	}
	if lo := math.Max(a, 1e-9*math.Max(1, b)); b > lo {
		for k := 0; k <= m; k++ {
			pts = append(pts, lo*math.Pow(b/lo, float64(k)/float64(m)))
		}
	}
	for _, t := range p.terms[i] {
		if t != nil && t.kind == kindPiecewise {
			for _, bx := range t.px {
				if x := bx / t.s; x >= a && x <= b {
					pts = append(pts, x)
				}
			}
		}
	}
	sort.Float64s(pts)
	bi, bv := -1, math.Inf(-1)
	for k, x := range pts {
		if ok != nil && !ok(x) {
			continue
		}
		if v := f(x); v > bv {
			bi, bv = k, v
		}
	}
	if bi < 0 {
		return a, math.Inf(-1)
	}
	bx := pts[bi]
	lo, hi := pts[max(bi-1, 0)], pts[min(bi+1, len(pts)-1)]
	const g = 0.6180339887498949
	for it := 0; it < 100 && hi-lo > 1e-13*math.Max(1, math.Abs(hi)); it++ {
		c, d := hi-g*(hi-lo), lo+g*(hi-lo)
		fc, fd := math.Inf(-1), math.Inf(-1)
		if ok == nil || ok(c) {
			fc = f(c)
		}
		if ok == nil || ok(d) {
			fd = f(d)
		}
		if fc >= fd {
			hi = d
		} else {
			lo = c
		}
		if fc > bv {
			bx, bv = c, fc
		}
		if fd > bv {
			bx, bv = d, fd
		}
	}
	return bx, bv
}

// Six other requests of the same sweep went from a wrong "optimal" (engine 1.1.1, which
// capped every channel at its price point) to better plans in 1.1.2. The best plans known
// for them (from 1.1.2 or 1.2.2, whichever is better) are checked here as plans, not
// taken on trust: a bound is never below them, and the engine's plan never well below.
var regressionWrongOptimal = []struct{ seed, req, best string }{
	{"97889", `{"model":{"model_id":"gen","baseline":0.4394796811947348,"channels":{"digital":{"curve":{"type":"log","beta":13753.059712674178,"kappa":6.858674254732858},"adstock":{"type":"geometric","decay":0.8132849622339208}},"ooh":{"curve":{"type":"power","beta":0.18473953813473307,"alpha":0.30715236419036596}},"radio":{"curve":{"type":"exponential","beta":330977.583577573,"kappa":37382.73669352024}},"search":{"curve":{"type":"log","beta":80878950.61337431,"kappa":1.69395000107692},"adstock":{"type":"geometric","decay":0.5139056992446784}},"social":{"curve":{"type":"log","beta":6950128.403701057,"kappa":799100.9799213501},"adstock":{"type":"geometric","decay":0.7439313344014649}},"tv":{"curve":{"type":"saturation","beta":0.11977193816991419,"kappa":3547230.190678475}}}},"budget":{"digital":8503,"social":30791,"tv":33675},"constraints":{"total":{"min":11021},"channels":{"ooh":{"min":1977},"radio":{"min":5548,"max":6300},"search":{"max":26459}},"max_share":0.31011749446860454,"groups":[{"name":"g","channels":["tv","digital","radio","search"],"min":6584},{"name":"g","channels":["radio","search"],"min":8240}]},"objective":{"type":"target_mroi","mroi":0.08052451727457084},"options":{"max_nodes":200}}`,
		`{"digital":26615252.35002352,"ooh":26615252.35002352,"radio":6300,"search":26459,"social":26615252.35002352,"tv":5944608.490612133}`},
	{"116755", `{"model":{"model_id":"gen","baseline":0.5059068997402241,"channels":{"digital":{"curve":{"type":"hill","beta":182.87317125775277,"alpha":0.3476772242113772,"kappa":1.738264931308077}},"ooh":{"curve":{"type":"hill","beta":10259.80451386668,"alpha":1.17171009961334,"kappa":804.3120630431505}},"print":{"curve":{"type":"power","beta":2.5184258451793555,"alpha":0.18535536530400007}},"radio":{"curve":{"type":"log","beta":47.263411161795354,"kappa":57887.51123740332}},"search":{"curve":{"type":"saturation","beta":0.10290491134649213,"kappa":53611.65010137905}},"social":{"curve":{"type":"hill","beta":13913.449172490817,"alpha":0.14668818733511416,"kappa":78.38346542081527}},"tv":{"curve":{"type":"piecewise","points":[[192613.87636339618,4.412591002815901]]}}},"kpis":{"awareness":{"baseline":615.9709900853259,"channels":{"digital":{"curve":{"type":"log","beta":4.062889152630206,"kappa":163150.60668073304}},"ooh":{"curve":{"type":"exponential","beta":0.014189917095138848,"kappa":680873.2945303997},"adstock":{"type":"geometric","decay":0.34589196612497136}},"print":{"curve":{"type":"logistic","beta":268.3032448699697,"k":0.0066188537924801475,"x0":84.96505129659629},"adstock":{"type":"geometric","decay":0.8062302586404211}},"radio":{"curve":{"type":"linear","beta":0.04601804943499726},"adstock":{"type":"geometric","decay":0.407390249485008}},"search":{"curve":{"type":"hill","beta":31321454.138742033,"alpha":0.10234735753001416,"kappa":56.59835974786089}},"tv":{"curve":{"type":"saturation","beta":0.3728435763718296,"kappa":1859050.6333402277},"adstock":{"type":"geometric","decay":0.59779171435111}}}}}},"budget":{"ooh":53398,"print":13623,"search":107880,"social":122339,"tv":87586},"constraints":{"total":{"min":15526},"channels":{"ooh":{"fixed":true},"print":{"min":3595},"radio":{"max":86956},"search":{"max":14834},"social":{"fixed":true},"tv":{"min":10024}},"max_share":0.4785908293278401,"groups":[{"name":"g","channels":["tv","radio","search","social"],"min_share":0.41438620584420544},{"name":"g","channels":["social"],"max_share":0.9181261921110857}]},"objective":{"type":"target_mroi","mroi":3.855662673253316},"options":{"max_nodes":200}}`,
		`{"digital":7540.6032007719305,"ooh":53398,"print":5605.793297498549,"radio":56715.97215636877,"search":0,"social":122339,"tv":10024}`},
	{"118651", `{"model":{"model_id":"gen","baseline":217.4236252175666,"channels":{"digital":{"curve":{"type":"saturation","beta":19460.700322065262,"kappa":300.3571006383448}},"ooh":{"curve":{"type":"hill","beta":7.429934238102086,"alpha":4.012939149951093,"kappa":6719.3754488953155}},"print":{"curve":{"type":"logistic","beta":326.0719919872482,"k":0.006243416293433886,"x0":-98.22752804343659}},"promo":{"curve":{"type":"linear","beta":0.2682561145739679}},"radio":{"curve":{"type":"exponential","beta":154573.6906531111,"kappa":37.10271249830834}},"search":{"curve":{"type":"logistic","beta":10.399532330630743,"k":0.01762557452560206,"x0":194.07544580877007},"adstock":{"type":"geometric","decay":0.02139070725566491}},"social":{"curve":{"type":"piecewise","points":[[32.96545333152,0],[404.27948362508494,13319.352127354747]]}},"tv":{"curve":{"type":"piecewise","points":[[18193.748165329624,14.894366950266525],[18230.719446448184,14.924975817470045],[18381.088076901335,15.283760005644181]]}}}},"budget":{"digital":1632,"print":102115,"radio":24296,"search":164047,"tv":80929},"constraints":{"channels":{"digital":{"min":17654,"max":128046},"print":{"min":19673},"search":{"fixed":true},"social":{"min":6389}},"max_share":0.7131952391851683,"groups":[{"name":"g","channels":["tv","radio","search","ooh"],"min":60629},{"name":"g","channels":["digital","radio","search","print"],"min":8465}]},"objective":{"type":"target_mroi","mroi":11.168365640768577},"options":{"max_nodes":200}}`,
		`{"digital":17654,"ooh":0,"print":19673,"promo":21895.89731873061,"radio":358.06155416528514,"search":164047,"social":6389,"tv":0}`},
	{"144337", `{"model":{"model_id":"gen","baseline":487098.0737466034,"channels":{"digital":{"curve":{"type":"linear","beta":0.0368480824857842}},"ooh":{"curve":{"type":"hill","beta":2557.3923409541353,"alpha":7.085714871929614,"kappa":1.0810848208038755}},"print":{"curve":{"type":"piecewise","points":[[41.8414546794818,660421.9047745701]]}},"promo":{"curve":{"type":"exponential","beta":34263.262812958594,"kappa":20393.110952811843}},"radio":{"curve":{"type":"hill","beta":9501630.184944944,"alpha":2.4945557242242384,"kappa":204426.1053126117}},"search":{"curve":{"type":"piecewise","points":[[14.00122938339365,72417.89283665332],[150.70320053057023,72433.82215894095],[106555.86383594041,684245.6064366826],[127673.77457490902,684865.6633087618]]}},"social":{"curve":{"type":"linear","beta":0.023202237584522712}},"tv":{"curve":{"type":"hill","beta":0.20662130361888192,"alpha":2.212420536258783,"kappa":1079.642387098565}}}},"budget":{"ooh":219275,"print":427839,"promo":408312,"radio":195031,"search":214508,"tv":271733},"constraints":{"total":{"min":153024},"channels":{"digital":{"max":197741},"radio":{"max":353776},"social":{"min":53011,"max":464168}},"max_share":0.28472037842374304,"groups":[{"name":"g","channels":["tv","digital","search","social","ooh","print","promo"],"min":123589}]},"objective":{"type":"target_mroi","mroi":2.435923329902988},"options":{"max_nodes":200}}`,
		`{"digital":197741,"ooh":12312.189879827378,"print":41.8414546794818,"promo":184896.6789317396,"radio":353776,"search":127673.7273839446,"social":353776,"tv":12320.950218495283}`},
	{"144586", `{"model":{"model_id":"gen","baseline":386039.70210716396,"channels":{"digital":{"curve":{"type":"logistic","beta":132992.44264545865,"k":0.0020194889166592635,"x0":50.390183471473954}},"radio":{"curve":{"type":"saturation","beta":226863.22184945561,"kappa":5723.830075360094},"adstock":{"type":"geometric","decay":0.8977601281757839}},"tv":{"curve":{"type":"hill","beta":38917297.27999324,"alpha":2.3069930050019773,"kappa":2.640573917202597},"adstock":{"type":"geometric","decay":0.7727997253376059}}}},"budget":{"radio":715294,"tv":229858},"constraints":{"total":{"min":1019361},"channels":{"digital":{"min":589663,"max":2669571},"tv":{"min":10173}},"groups":[{"name":"g","channels":["radio"],"min":327439},{"name":"g","channels":["tv"],"max":1947924}],"ratios":[{"numerator":"radio","denominator":"tv","min":0.9394078826110408}]},"objective":{"type":"target_mroi","mroi":74.06476648213805},"options":{"max_nodes":200}}`,
		`{"digital":618292.5743447338,"radio":382951.9399943548,"tv":18116.784393065187}`},
	{"147435", `{"model":{"model_id":"gen","baseline":16.46284102751563,"channels":{"digital":{"curve":{"type":"log","beta":0.011853692748028574,"kappa":7.491798689569511}},"radio":{"curve":{"type":"saturation","beta":41.633219278172625,"kappa":8266594.206762948},"adstock":{"type":"geometric","decay":0.2814479285877775}},"search":{"curve":{"type":"hill","beta":23.830147263846598,"alpha":0.8931422800575556,"kappa":252391.79188926736}},"social":{"curve":{"type":"hill","beta":0.28277314547551397,"alpha":3.246444774250219,"kappa":28.21082639381526}},"tv":{"curve":{"type":"power","beta":12.353300805421975,"alpha":0.8759869114292256},"adstock":{"type":"geometric","decay":0.9273687342641337}}}},"budget":{"digital":89474,"search":289261,"tv":356433},"constraints":{"total":{"min":145269},"channels":{"search":{"min":94323},"social":{"max":239268}},"groups":[{"name":"g","channels":["search"],"min":88661},{"name":"g","channels":["tv","digital","social"],"max_share":0.5827573052567331}]},"objective":{"type":"target_mroi","mroi":0.5738933057874335},"options":{"max_nodes":200}}`,
		`{"digital":0,"radio":9823839583145524,"search":9823839583244028,"social":15.647252788095226,"tv":27441651369352810}`},
}

func TestRegressionWrongOptimalStaysCorrect(t *testing.T) {
	for _, c := range regressionWrongOptimal {
		t.Run(c.seed, func(t *testing.T) {
			req := decodeInternal(t, c.req)
			res := Solve(nil, req)
			if res.Status != StatusOptimal && res.Status != StatusFeasible {
				t.Fatalf("status %s: %v", res.Status, res.Messages)
			}
			p := compiledFor(t, req)
			var best map[string]float64
			if err := json.Unmarshal([]byte(c.best), &best); err != nil {
				t.Fatal(err)
			}
			bx, x := make([]float64, p.n()), make([]float64, p.n())
			for i, name := range p.names {
				bx[i], x[i] = best[name], res.Allocation[name]
			}
			if !p.feasible(bx, 1e-9) {
				t.Fatalf("the best known plan %v breaks a constraint", best)
			}
			if !p.feasible(x, 1e-9) {
				t.Fatalf("plan %v breaks a constraint", res.Allocation)
			}
			bv, v := p.objective(bx), p.objective(x)
			ub := *res.Certificate.UpperBound - p.objConst()
			t.Logf("%s: engine %.12g, bound %.12g; best known %.12g", res.Status, v, ub, bv)
			if ub < bv-1e-12*math.Abs(bv) {
				t.Errorf("bound %.17g below the best known plan's %.17g", ub, bv)
			}
			// "optimal" within the gap of the best plan known, never below it by more
			if res.Status == StatusOptimal && v < bv-DefaultGapNonConcave*p.gapScale(bx, bv) {
				t.Errorf("optimal at %.17g, below the best known plan's %.17g", v, bv)
			}
			if v < bv-1e-6*p.gapScale(bx, bv) {
				t.Errorf("plan %.17g well below the best known plan's %.17g", v, bv)
			}
		})
	}
}

// TestNarrowKeepsBetterPlans: on small problems whose every grid plan can be scored,
// the caps tighten lowers, from any multipliers and any feasible plan's value f0, keep
// every grid plan worth at least f0, and the relaxation on the narrowed box bounds them.
func TestNarrowKeepsBetterPlans(t *testing.T) {
	rng := rand.New(rand.NewSource(17))
	cases := 24
	if testing.Short() {
		cases = 8
	}
	checked := 0
	for c := 0; c < cases; c++ {
		kind := []string{"hill", "mixed", "concave"}[c%3]
		m := genModel(rng, 4, kind)
		total := 4e4 + rng.Float64()*1.5e5
		req := genRequest(rng, m, total)
		req.Objective = Objective{Type: ObjTargetMROI, MROI: f64(0.2 + 2*rng.Float64())}
		switch c % 3 {
		case 0:
			req.Constraints.Groups = []Group{{Name: "g", Channels: []string{"ch00", "ch01"}, MinShare: f64(0.2 + 0.4*rng.Float64())}}
		case 1:
			req.Constraints.Ratios = []Ratio{{Numerator: "ch02", Denominator: "ch03", Min: f64(0.5), Max: f64(1.5)}}
		}
		pm, _ := Prepare(m)
		p, errs := compile(pm, req)
		if len(errs) > 0 || p.capSpend() != "" {
			t.Fatalf("case %d: %v", c, errs)
		}
		const G = 60
		var plans [][]float64
		var values []float64
		gridPlans(p, G, func(x []float64) {
			plans = append(plans, append([]float64(nil), x...))
			values = append(values, p.objective(x))
		})
		if len(plans) < 10 {
			continue
		}
		sorted := append([]float64(nil), values...)
		sort.Float64s(sorted)
		r, _, ub, _, ok := relaxSolve(p, p.lo, p.hi)
		if !ok {
			t.Fatalf("case %d: root relaxation failed with %d feasible grid plans", c, len(plans))
		}
		certs := map[string]*dualCert{"relaxation": r.certificate(ub), "price": r.priceCert()}
		for k := 0; k < 3; k++ { // any price on the total is a Lagrangian too
			q := *r
			q.cert, q.lam = nil, r.lam*(0.2+1.6*rng.Float64())
			certs[fmt.Sprint("random ", k)] = q.certificate(0)
		}
		for _, frac := range []float64{0.5, 0.9, 0.99} {
			f0 := sorted[int(frac*float64(len(sorted)-1))]
			for name, cert := range certs {
				lo, hi, _, _, shrunk := r.tighten(cert, f0, p.lo, p.hi)
				if !shrunk {
					continue
				}
				checked++
				for j, x := range plans {
					if values[j] < f0 {
						continue
					}
					for i := range x {
						if x[i] < lo[i] || x[i] > hi[i] {
							t.Fatalf("case %d, %s multipliers, f0 %.9g: grid plan %v (value %.9g) outside the narrowed box %v..%v",
								c, name, f0, x, values[j], lo, hi)
						}
					}
				}
				if _, _, nub, _, ok := relaxSolve(p, lo, hi); !ok || nub < sorted[len(sorted)-1]-1e-9*math.Abs(nub) {
					t.Fatalf("case %d, %s multipliers: bound %.9g on the narrowed box below the best grid plan %.9g", c, name, nub, sorted[len(sorted)-1])
				}
			}
		}
	}
	if checked < cases {
		t.Fatalf("only %d narrowings to check in %d cases: the test is off", checked, cases)
	}
}

// gridPlans calls f with every plan on the grid of step T/G (T the exact total) that
// meets every constraint exactly (to rounding).
func gridPlans(p *problem, G int, f func(x []float64)) {
	n := p.n()
	h := p.tlo / float64(G)
	x := make([]float64, n)
	var rec func(i, left int)
	rec = func(i, left int) {
		if i == n-1 {
			x[i] = float64(left) * h
			if p.feasible(x, 1e-12) {
				f(x)
			}
			return
		}
		for k := 0; k <= left; k++ {
			x[i] = float64(k) * h
			if x[i] < p.lo[i] || x[i] > p.hi[i] {
				continue
			}
			rec(i+1, left-k)
		}
	}
	rec(0, G)
}
