package engine

import (
	"fmt"
	"math"
	"strings"
)

// Default tolerances; see Options.
const (
	DefaultGap           = 1e-9
	DefaultGapNonConcave = 1e-7
	DefaultMaxNodes      = 20000
)

// Solve answers a request against a model. The model is req.Model when m is nil. It
// never panics and never returns an error: malformed input is a result with status
// "invalid", impossible constraints one with status "infeasible". The caller fills in
// RequestID, ModelVersion, ModelHash and Engine.ElapsedMicros as it knows them.
func Solve(m *Model, req *Request) Result {
	if m == nil {
		m = req.Model
	}
	if m == nil {
		return invalid(Result{RequestID: req.RequestID, Engine: EngineInfo{Version: Version}},
			FieldErrors{{Field: "model_id", Message: "no model: give model_id or an inline model"}})
	}
	pm, err := Prepare(m)
	if err != nil {
		errs := err.(FieldErrors)
		for i := range errs {
			errs[i].Field = "model." + errs[i].Field
		}
		return invalid(Result{RequestID: req.RequestID, ModelID: m.ModelID, Engine: EngineInfo{Version: Version}}, errs)
	}
	return pm.Solve(req)
}

// Solve answers a request against the prepared model (see the package function Solve).
func (pm *Prepared) Solve(req *Request) (res Result) {
	res = Result{RequestID: req.RequestID, ModelID: pm.model.ModelID, ModelHash: pm.hash, Engine: EngineInfo{Version: Version}}
	defer func() {
		// A bug must not take a processor down with it: report it as a result.
		if v := recover(); v != nil {
			res = Result{RequestID: req.RequestID, Status: StatusInvalid, Engine: EngineInfo{Version: Version},
				Messages: []string{fmt.Sprintf("internal error while solving: %v", v)}}
		}
	}()
	ws := getScratch()
	defer putScratch(ws) // after the result is assembled: it keeps nothing of ws
	p, errs := compileWith(pm, req, ws)
	if len(errs) > 0 {
		return invalid(res, errs)
	}
	gap, gapNC, maxNodes := DefaultGap, DefaultGapNonConcave, DefaultMaxNodes
	if o := req.Options; o != nil {
		if o.Gap > 0 {
			gap = o.Gap
		}
		if o.GapNonConcave > 0 {
			gapNC = o.GapNonConcave
		}
		if o.MaxNodes > 0 {
			maxNodes = o.MaxNodes
		}
	}
	if !p.concave() {
		gap = gapNC
	}
	s := &session{p: p, gap: gap, maxNodes: maxNodes, origHi: ws.floats(len(p.hi))}
	copy(s.origHi, p.hi)
	objType := req.Objective.Type
	if objType == "" {
		objType = ObjMaxKPI
	}
	res.Objective = objType
	res.Current = p.totals(p.budget) // the current plan's totals are enough next to the new plan
	p.budgetKPI = p.lastTotals       // kept: the budget's objective is the same sum for max_kpi

	infeasible := func(msg string) Result {
		res.Status = StatusInfeasible
		res.Messages = append(res.Messages, msg)
		return res
	}
	// Whether the coupling rows (groups, ratios, shares) admit a plan in the boxes takes
	// a simplex to decide. For max_kpi and weighted it is decided after the solve, and
	// only when the solve's plan is no witness (feasibleWitness): the answer is the same
	// (the solve does not depend on it, and an infeasible request gets the same result as
	// before it), and a coupled solve is about a third cheaper.
	deferRows := (objType == ObjMaxKPI || objType == ObjWeighted) && len(p.rows) > 0
	if msg := s.infeasibleLinear(!deferRows); msg != "" {
		return infeasible(msg)
	}
	rowsInfeasible := func() string {
		copy(p.hi, s.origHi) // the boxes as the check before the solve saw them
		return s.infeasibleLinear(true)
	}
	var out solved
	switch objType {
	case ObjMinSpend:
		out = s.minSpend()
	case ObjTargetROI:
		out = s.targetROI(*req.Objective.ROI)
	default:
		if msg := p.capSpend(); msg != "" {
			if deferRows {
				if m := rowsInfeasible(); m != "" {
					return infeasible(m)
				}
			}
			return invalid(res, FieldErrors{{Field: "constraints.total", Message: msg}})
		}
		out = s.maximise(p)
		if deferRows && (out.x == nil || !p.feasibleWitness(out.x, p.lo, s.origHi)) {
			hi := append([]float64(nil), p.hi...)
			if m := rowsInfeasible(); m != "" {
				return infeasible(m)
			}
			copy(p.hi, hi)
		}
	}
	return s.finish(res, out)
}

func invalid(res Result, errs FieldErrors) Result {
	res.Status = StatusInvalid
	res.Errors = errs
	for _, e := range errs {
		res.Messages = append(res.Messages, e.Error())
	}
	return res
}

// session carries one solve's settings and work counters.
type session struct {
	p        *problem
	gap      float64
	maxNodes int
	origHi   []float64
	iters    int
	nodes    int
	algo     string
	// narrow lets solveCore search a narrowed box when its first search leaves the gap
	// open. min_spend and target_roi go without: their bisections weigh one probe's
	// answer against another's, and a probe answered by a different search moves them.
	narrow bool
}

// solved is an objective-level answer.
type solved struct {
	x          []float64
	status     string
	objective  float64 // in the objective's own terms (baselines included)
	bound      float64
	lowerBound bool // bound is a lower bound (minimisation)
	messages   []string
	errors     FieldErrors // for status invalid
}

// exhausted reports whether the request's node budget is spent.
func (s *session) exhausted() bool { return s.nodes >= s.maxNodes }

// infeasibleLinear explains why no plan meets the linear constraints, or returns "";
// without rows, it leaves the coupling rows to the caller (only the boxes and the total
// are checked).
func (s *session) infeasibleLinear(rows bool) string {
	p := s.p
	sumLo, sumHi := 0.0, 0.0
	for i := range p.names {
		if p.lo[i] > p.hi[i] {
			return p.explainInfeasible()
		}
		sumLo += p.lo[i]
		sumHi += p.hi[i]
	}
	if sumLo > p.thi*(1+1e-12) || sumHi < p.tlo*(1-1e-12) {
		return p.explainInfeasible()
	}
	// The current plan, when it is a witness (feasibleWitness), spares the simplex.
	if rows && len(p.rows) > 0 && !p.feasibleWitness(p.budget, p.lo, p.hi) && !linearFeasible(p, p.lo, p.hi) {
		return p.explainInfeasible()
	}
	return ""
}

// core runs one certified solve. The node cap is a budget for the whole request: the
// objectives that solve many subproblems (min_spend, target_roi) share it, so that no
// request, however hard, keeps a processor busy for long. It is a count, never a timer,
// so an early stop is as deterministic as a full solve.
func (s *session) core(p *problem) outcome {
	budget := s.maxNodes - s.nodes
	if budget < 1 {
		budget = 1
	}
	out := solveCore(p, s.gap, budget, s.narrow)
	// Never answer worse than the plan already running, nor "infeasible" while it meets
	// every constraint: a search the node cap stopped before it found a plan, with a
	// finite bound from its open boxes, answers with the current plan.
	if (out.x != nil || !out.complete && finite(out.ub)) && p.feasible(p.budget, 1e-12) {
		if v := p.budgetObjective(); out.x == nil || v > out.value {
			out.x, out.value = append([]float64(nil), p.budget...), v
		}
	}
	s.iters += out.iters
	s.nodes += out.nodes
	s.algo = out.algorithm
	return out
}

// objConst is the objective's constant part: the weighted baselines.
func (p *problem) objConst() float64 {
	c := 0.0
	for k, w := range p.w {
		c += w * p.baseline[k]
	}
	return c
}

// boundSlack widens a computed bound by a few rounding errors of its own size, so that
// floating point can never make it unsound.
func boundSlack(ub, scale float64) float64 {
	return ub + 1e-13*max(math.Abs(ub), scale)
}

func (s *session) maximise(p *problem) solved {
	s.narrow = true
	out := s.core(p)
	if out.x == nil {
		return solved{status: StatusInfeasible, messages: []string{s.floorMessage(p)}}
	}
	scale := p.gapScale(out.x, out.value)
	c := p.objConst()
	if scale <= 1e-9*math.Abs(c) {
		// No response to speak of (the best plan spends nothing, say): a gap relative to
		// it would never close. Relative to the objective with its baselines, the one the
		// certificate reports, it does.
		scale = math.Abs(c)
	}
	ub := boundSlack(max(out.ub, out.value), scale)
	if p.point() {
		ub = out.value // the only plan there is: its value is the bound
	}
	status := StatusFeasible
	if out.complete && ub-out.value <= s.gap*scale {
		status = StatusOptimal
	}
	var msgs []string
	if status == StatusFeasible {
		msgs = append(msgs, fmt.Sprintf("search stopped after %d nodes with a relative gap of %.3g on the response (baselines excluded); raise options.max_nodes to close it", s.nodes, (ub-out.value)/scale))
	}
	return solved{x: out.x, status: status, objective: out.value + c, bound: ub + c, messages: msgs}
}

// floorMessage explains why no plan meets the KPI floors.
func (s *session) floorMessage(p *problem) string {
	if len(p.floors) == 0 {
		return "no plan satisfies the constraints"
	}
	var parts []string
	for _, f := range p.floors {
		q := *p
		q.floors = nil
		q.cost = 0
		q.w = make([]float64, len(p.w))
		q.w[f.kpi] = 1
		out := solveCore(&q, s.gap, s.maxNodes, false)
		best := out.ub + p.baseline[f.kpi]
		if out.ub < f.rhs {
			parts = append(parts, fmt.Sprintf("%s = %s is out of reach: at most %s under the other constraints",
				f.label, num(f.rhs+p.baseline[f.kpi]), num(best)))
		}
	}
	if len(parts) == 0 {
		return "no plan found that meets every KPI floor together"
	}
	return strings.Join(parts, "; ")
}

// minSpend finds the least total spend at which the first target can be reached (with
// the other targets and floors as constraints) by bisection on the spend: the best
// attainable KPI never decreases with more budget. Every step is a certified solve, so
// spends proven too small give a proven lower bound.
func (s *session) minSpend() solved {
	p := s.p
	var main floorCon
	var rest []floorCon
	found := false
	for _, f := range p.floors {
		if !found && strings.HasPrefix(f.label, "objective.target.") {
			main, found = f, true
			continue
		}
		rest = append(rest, f)
	}
	sub := func(S float64) *problem {
		q := *p
		q.floors = rest
		q.w = make([]float64, len(p.w))
		q.w[main.kpi] = 1
		q.cost = 0
		q.thi = min(S, p.thi)
		q.hi = append([]float64(nil), s.origHi...)
		return &q
	}
	type probe struct {
		x     []float64
		reach bool    // a plan at this spend reaches the target
		never bool    // proven: no plan at this spend reaches it
		ub    float64 // proven bound on the target KPI at this spend (baseline excluded)
	}
	try := func(S float64) probe {
		q := sub(S)
		if msg := q.capSpend(); msg != "" {
			return probe{}
		}
		if q.tlo > q.thi {
			return probe{never: true}
		}
		out := s.core(q)
		pr := probe{ub: out.ub}
		if out.x != nil && q.kpiValue(main.kpi, out.x) >= main.rhs {
			pr.x, pr.reach = out.x, true
		}
		if out.complete && boundSlack(out.ub, math.Abs(main.rhs)) < main.rhs {
			pr.never = true
		}
		return pr
	}
	sumLo := 0.0
	for _, v := range p.lo {
		sumLo += v
	}
	lo := max(p.tlo, sumLo)
	proven := 0.0 // largest spend proven insufficient
	// unproven answers a search that ends with neither a plan nor a proof that none
	// exists: the current plan, when it meets every constraint and reaches every target,
	// is a feasible answer (with the spend proven insufficient as its bound), never
	// "infeasible".
	unproven := func(msg string) solved {
		if !p.feasible(p.budget, 1e-12) {
			return solved{status: StatusInfeasible, messages: []string{msg}}
		}
		out := s.minSpendResult(append([]float64(nil), p.budget...), proven)
		if out.status != StatusOptimal {
			out.messages = append(out.messages, msg+"; the current plan reaches it and is kept")
		}
		return out
	}
	if pr := try(lo); pr.reach {
		return s.minSpendResult(pr.x, lo)
	} else if pr.never {
		proven = lo
	}
	hi := p.thi
	if math.IsInf(hi, 1) {
		hi = max(2*lo, 1)
	}
	var best probe
	for {
		best = try(hi)
		if best.reach {
			break
		}
		if s.exhausted() {
			return unproven(fmt.Sprintf(
				"no plan reaching %s found before the node budget (options.max_nodes = %d) ran out; infeasibility is not proven", main.label, s.maxNodes))
		}
		if best.never {
			proven = hi
		}
		if !math.IsInf(p.thi, 1) || hi >= maxParam {
			if best.never || hi >= maxParam {
				return solved{status: StatusInfeasible, messages: []string{fmt.Sprintf(
					"%s = %s is out of reach: the most any plan with spend up to %s gives is %s",
					main.label, num(main.rhs+p.baseline[main.kpi]), num(hi), num(best.ub+p.baseline[main.kpi]))}}
			}
			return unproven(fmt.Sprintf("no plan found reaching %s within spend %s", main.label, num(hi)))
		}
		lo, hi = hi, hi*4
	}
	for it := 0; it < 200 && hi-lo > s.gap*hi && !s.exhausted(); it++ {
		mid := lo + (hi-lo)/2
		pr := try(mid)
		if pr.reach {
			hi, best = mid, pr
		} else {
			lo = mid
			if pr.never {
				proven = mid
			}
		}
	}
	out := s.minSpendResult(best.x, proven)
	spend := sum(best.x)
	if out.status == StatusFeasible && spend-proven <= s.gap*spend*1.0000001 {
		out.status = StatusOptimal
	}
	return out
}

func (s *session) minSpendResult(x []float64, proven float64) solved {
	spend := sum(x)
	st := StatusFeasible
	if spend-proven <= s.gap*max(spend, 1e-300) {
		st = StatusOptimal
	}
	return solved{x: x, status: st, objective: spend, bound: min(proven, spend), lowerBound: true}
}

// targetROI finds the largest spend at which the optimally allocated incremental KPI per
// unit of spend is still at least roi, and allocates it optimally.
func (s *session) targetROI(roi float64) solved {
	p := s.p
	k := 0
	for kk, w := range p.w {
		if w != 0 {
			k = kk
		}
	}
	sumLo, sumHi, sup := 0.0, 0.0, 0.0
	for i := range p.names {
		sumLo += p.lo[i]
		sumHi += p.hi[i]
		if t := p.terms[i][k]; t != nil {
			sup += t.sup()
		}
	}
	top := min(min(p.thi, sumHi), sup/roi)
	for _, f := range []float64{0.5, 0.9, 0.99} {
		top = min(top, p.roiCap(k, f*roi, roi))
	}
	if math.IsInf(top, 1) {
		return solved{status: StatusInvalid, errors: FieldErrors{{Field: "constraints.total",
			Message: fmt.Sprintf("spend is unbounded: some channel returns at least %g per unit however much is spent; give constraints.total a max", roi)}}}
	}
	bot := max(p.tlo, sumLo)
	if top < bot {
		top = bot
	}
	at := func(S float64) (outcome, *problem, bool) {
		q := *p
		q.tlo, q.thi = S, S
		q.hi = append([]float64(nil), s.origHi...)
		if q.capSpend() != "" || (len(q.rows) > 0 && !linearFeasible(&q, q.lo, q.hi)) {
			return outcome{}, &q, false
		}
		out := s.core(&q)
		return out, &q, out.x != nil && out.value >= roi*sum(out.x)*(1-1e-12)
	}
	bestOut, bestQ, ok := at(top)
	if !ok {
		// scan down for a spend that meets the ROI, then bisect the crossing
		const steps = 32
		found := false
		prev := top
		for j := 1; j <= steps && !s.exhausted(); j++ {
			S := top - (top-bot)*float64(j)/steps
			out, q, ok := at(S)
			if ok {
				lo, hi := S, prev
				bestOut, bestQ, found = out, q, true
				for it := 0; it < 200 && hi-lo > s.gap*hi && !s.exhausted(); it++ {
					mid := lo + (hi-lo)/2
					if o, qq, ok := at(mid); ok {
						lo, bestOut, bestQ = mid, o, qq
					} else {
						hi = mid
					}
				}
				break
			}
			prev = S
		}
		if !found {
			return solved{status: StatusInfeasible, messages: []string{fmt.Sprintf("no spend between %s and %s reaches an ROI of %g", num(bot), num(top), roi)}}
		}
	}
	scale := bestQ.gapScale(bestOut.x, bestOut.value)
	ub := boundSlack(max(bestOut.ub, bestOut.value), scale)
	if bestQ.point() {
		ub = bestOut.value
	}
	st := StatusFeasible
	if bestOut.complete && ub-bestOut.value <= s.gap*scale {
		st = StatusOptimal
	}
	c := p.objConst()
	return solved{x: bestOut.x, status: st, objective: bestOut.value + c, bound: ub + c}
}

// point reports whether the box holds a single plan (every channel pinned, as when
// max_share·channels < 1 leaves only spending nothing).
func (p *problem) point() bool {
	for i := range p.lo {
		if p.lo[i] != p.hi[i] {
			return false
		}
	}
	return true
}

// finish assembles the result from an objective-level answer.
func (s *session) finish(res Result, out solved) Result {
	p := s.p
	if out.status == StatusInvalid {
		return invalid(res, out.errors)
	}
	res.Status = out.status
	res.Messages = append(res.Messages, out.messages...)
	res.Engine.Iterations = s.iters
	res.Engine.Nodes = s.nodes
	res.Engine.Algorithm = s.algo
	if out.x == nil {
		return res
	}
	// Spends go out inside their boxes: a plan assembled from differences (the snapping
	// onto coupling rows) can land an ulp or so outside one, a spend of −1e-18 where the
	// minimum is 0, which no reader of an allocation should have to allow for.
	for i := range out.x {
		out.x[i] = min(max(out.x[i], p.lo[i]), s.origHi[i])
	}
	ev := p.evaluate(out.x, s) // (a value: only its maps are kept)
	res.Allocation = make(map[string]float64, p.n())
	for i, name := range p.names {
		res.Allocation[name] = out.x[i]
	}
	res.TotalSpend = ev.TotalSpend
	res.Expected = ev.Expected
	res.Channels = ev.Channels
	// the certificate and its bound in one allocation
	blk := &struct {
		cert Certificate
		b    float64
	}{cert: Certificate{Objective: out.objective}, b: out.bound}
	cert, b := &blk.cert, &blk.b
	if out.lowerBound {
		cert.LowerBound = b
		cert.Gap = (out.objective - *b) / max(math.Abs(out.objective), 1e-300)
	} else {
		cert.UpperBound = b
		cert.Gap = (*b - out.objective) / max(math.Abs(out.objective), 1e-300)
	}
	cert.Gap = max(cert.Gap, 0)
	res.Certificate = cert
	return res
}

func (s *session) atBound(i int, x float64) string {
	p := s.p
	lo, hi := p.lo[i], s.origHi[i]
	tol := 1e-9 * max(1, max(math.Abs(lo), math.Abs(x)))
	switch {
	case hi-lo <= tol:
		return "fixed"
	case x <= lo+tol:
		return "min"
	case !math.IsInf(hi, 1) && x >= hi-tol:
		return "max"
	}
	return ""
}

// totals computes a plan's spend and KPIs, without the per-channel detail. The KPI
// values (baselines excluded) are left in p.lastTotals.
func (p *problem) totals(x []float64) *Evaluation {
	ev := &Evaluation{Expected: make(map[string]float64, len(p.kpiNames))}
	p.lastTotals = p.ws.floats(len(p.kpiNames)) // read only during the solve
	for k, name := range p.kpiNames {
		p.lastTotals[k] = p.kpiValue(k, x)
		ev.Expected[name] = p.baseline[k] + p.lastTotals[k]
	}
	ev.TotalSpend = sum(x)
	return ev
}

// budgetObjective is p.objective(p.budget). When the objective is one KPI's response
// with no price on spend, that is the KPI's value computed for the current plan's totals
// (the same terms summed in the same order: the same bits).
func (p *problem) budgetObjective() float64 {
	if p.budgetKPI != nil && p.cost == 0 {
		unit := -1
		for k, w := range p.w {
			switch {
			case w == 1 && unit == -1:
				unit = k
			case w != 0:
				unit = -2
			}
		}
		if unit >= 0 {
			return p.budgetKPI[unit]
		}
	}
	return p.objective(p.budget)
}

// evaluate computes a plan's spend and KPIs, and each channel's response, ROI and
// marginal ROI; with a session, also which bound each channel is at.
func (p *problem) evaluate(x []float64, s *session) Evaluation {
	ev := Evaluation{Expected: make(map[string]float64, len(p.kpiNames)), Channels: make(map[string]ChannelResult, p.n())}
	// one allocation backs every ROI and MROI, and the primary KPI's responses
	ratios := make([]float64, 4*len(x))
	resp, d1s := ratios[2*len(x):3*len(x)], ratios[3*len(x):]
	known := p.respAt(x) // the responses, where the objective was just computed at x
	for i := range x {
		if t := p.terms[i][0]; t != nil {
			if known != nil && t.kind != kindHill {
				resp[i], d1s[i] = known[i], t.d1(x[i])
			} else {
				resp[i], d1s[i] = t.vd1(x[i]) // one power for Hill curves
			}
		}
	}
	for k, name := range p.kpiNames {
		if k == 0 {
			// kpiValue's sum, in the same order: the same bits
			v := 0.0
			for i := range x {
				if p.terms[i][0] != nil {
					v += resp[i]
				}
			}
			ev.Expected[name] = p.baseline[0] + v
			continue
		}
		ev.Expected[name] = p.baseline[k] + p.kpiValue(k, x)
	}
	ev.TotalSpend = sum(x)
	for i, name := range p.names {
		c := ChannelResult{Spend: x[i], Response: resp[i]}
		if x[i] > 0 {
			ratios[2*i] = resp[i] / x[i]
			c.ROI = &ratios[2*i]
		}
		if d := d1s[i]; finite(d) {
			ratios[2*i+1] = d
			c.MROI = &ratios[2*i+1]
		}
		if s != nil {
			c.AtBound = s.atBound(i, x[i])
		}
		ev.Channels[name] = c
	}
	return ev
}

// roiCap bounds the spend at which the optimally allocated KPI k can still return roi
// per unit: for any price lam < roi the best plan at spend S earns at most
// lam·S + C(lam) with C(lam) = Σ_i max_x (f_ik(x) − lam·x), so ROI ≥ roi needs
// S ≤ C(lam)/(roi − lam). It is +Inf when some channel's return never falls below lam.
func (p *problem) roiCap(k int, lam, roi float64) float64 {
	c := 0.0
	for i := range p.names {
		t := p.terms[i][k]
		lo, hi := p.lo[i], p.hi[i]
		if t == nil {
			c -= lam * lo
			continue
		}
		best := t.val(lo) - lam*lo
		try := func(x float64) {
			if x >= lo && x <= hi && finite(x) {
				best = max(best, t.val(x)-lam*x)
			}
		}
		switch {
		case t.kind == kindLinear || (t.kind == kindPower && t.alpha >= 1):
			if t.d1(max(lo, 1)) > lam || t.kind == kindPower && t.alpha > 1 {
				if math.IsInf(hi, 1) {
					return math.Inf(1)
				}
			}
			try(hi)
		case t.kind == kindPiecewise:
			for _, bx := range t.px {
				try(bx / t.s)
			}
			try(hi)
		default:
			x := t.invD1(lam, 0)
			if math.IsInf(x, 1) {
				if math.IsInf(hi, 1) {
					return math.Inf(1)
				}
				x = hi
			}
			try(min(x, hi))
		}
		c += best
	}
	return c / (roi - lam)
}
