package engine

import (
	"math"
	"sort"
)

// relax is the concave relaxation of a problem on a box: every term replaced by its
// concave envelope on that box. Its optimum bounds the problem's optimum from above, and
// equals it when the problem is concave.
type relax struct {
	p      *problem
	lo, hi []float64
	env    [][]envelope // [channel][kpi]; t == nil where unused
	used   []bool       // KPI appears in the objective or a floor
	cs     []chanState  // per channel: the last answer, for warm starts and the price search
	// lamHint is a price to start the search from (a parent node's answer), and lam the
	// price this relaxation settled on.
	lamHint, lam float64
	// memo: each channel's last single-curve answer in full, so that asking again at the
	// same price (a child's first price is its parent's last) costs nothing
	memo []argmaxMemo
	root bool // the whole problem's box (not a node of the search)
	// cert holds the multipliers behind the bound solveRelax returned on a root (nil
	// after a price search, whose multiplier is lam, and on the nodes of a search)
	cert *dualCert
	// dual: where the dual active-set method ended on this relaxation (its parent's on
	// entry, for a warm start; nil for a root)
	dual *dualWarm
}

// child is the relaxation on a box that differs from r's in the channels listed: their
// envelopes are rebuilt, the others shared, and the search starts from r's price.
func (r *relax) child(lo, hi []float64, changed ...int) *relax {
	// The first children of a solve come from its memory (nothing of a relaxation
	// outlives the solve); a long search's come from the heap, so that the relaxations it
	// has closed are collected as it goes rather than held until it ends.
	ws := r.p.ws.forChild()
	c := ws.relax()
	*c = relax{p: r.p, lo: lo, hi: hi, used: r.used, lamHint: r.lam}
	c.env = ws.envRows(len(r.env))
	copy(c.env, r.env)
	c.cs = ws.chanStates(len(r.cs))
	copy(c.cs, r.cs)
	if r.memo != nil {
		c.memo = ws.memos(len(r.memo))
		copy(c.memo, r.memo)
	}
	for _, i := range changed {
		if c.memo != nil {
			c.memo[i] = argmaxMemo{} // a new box
		}
		c.cs[i].slopeOK = false
		row := ws.envelopes(len(r.env[i]))
		for k, t := range r.p.terms[i] {
			if t != nil && r.used[k] {
				row[k] = newEnvelope(t, lo[i], hi[i])
			}
		}
		c.env[i] = row
	}
	return c
}

func newRelax(p *problem, lo, hi []float64) *relax {
	r := p.ws.relax()
	*r = relax{p: p, lo: lo, hi: hi, used: p.ws.bools(len(p.kpiNames))}
	for k := range p.kpiNames {
		r.used[k] = p.w[k] != 0
	}
	for _, f := range p.floors {
		r.used[f.kpi] = true
	}
	r.env = p.ws.envRows(p.n())
	if !p.concave() {
		r.memo = p.ws.memos(p.n()) // for the children of a search
	}
	r.cs = p.ws.chanStates(p.n())
	nk := len(p.kpiNames)
	rows := p.ws.envelopes(p.n() * nk) // one allocation backs every channel's row
	for i := range r.env {
		r.env[i] = rows[i*nk : (i+1)*nk : (i+1)*nk]
		for k, t := range p.terms[i] {
			if t != nil && r.used[k] {
				r.env[i][k] = newEnvelope(t, lo[i], hi[i])
			}
		}
		r.cs[i].single = singleTerm(r.env[i], p.w)
	}
	return r
}

// chanState is what a relaxation keeps per channel between calls of chanArgmax.
type chanState struct {
	// the last single-curve maximiser and its price, to warm-start the next; G″ there (0:
	// not a smooth interior maximiser), G‴ and G⁗ (NaN: not known; G⁗ only where known
	// to full precision)
	x, lam, d2, d3, d4 float64
	// the curve's own stationary point at that price even where the box clamps it, and
	// G″, G‴ there (ud2 = 0: none), for the price search's models
	ux, ud2, ud3 float64
	// G_i at the single-curve maximiser vx, where the inverse slope gave it (vx NaN: not
	// known), for the weight vcf on KPI vk: settleAt's dual value reads it
	vx, v, vcf float64
	vk         int
	single     int // for the objective's weights p.w: see singleTerm
	// slopeLo: G_i' at the box's left end for p.w, once computed (slopeOK); see maxSlope
	slopeLo float64
	slopeOK bool
}

// singleTerm is the one KPI k whose curve enters a channel's row with coef[k] ≠ 0; −1
// when there is none, −2 when there are several.
func singleTerm(row []envelope, coef []float64) int {
	single := -1
	for k := range row {
		if row[k].t != nil && coef[k] != 0 {
			if single >= 0 {
				return -2
			}
			single = k
		}
	}
	return single
}

// single is singleTerm for channel i, read from the state where coef is p.w.
func (r *relax) single(i int, coef []float64) int {
	if &coef[0] == &r.p.w[0] {
		return r.cs[i].single
	}
	return singleTerm(r.env[i], coef)
}

// argmaxMemo is one channel's answer from chanArgmax's single-curve case: the price and
// weight asked, both maximisers, and what the call leaves for warm starts and the price
// model.
type argmaxMemo struct {
	ok              bool
	k               int
	lam, cf, xl, xh float64
	d2, d3, d4      float64
	xu, d2u, d3u    float64
	vx, v           float64 // chanState's
}

// memoAt is channel i's memo when it holds an answer (nil otherwise).
func (r *relax) memoAt(i int) *argmaxMemo {
	if r.memo == nil || !r.memo[i].ok {
		return nil
	}
	return &r.memo[i]
}

// chanVal is G_i(x) = Σ_k coef_k·env_ik(x).
func (r *relax) chanVal(i int, coef []float64, x float64) float64 {
	v := 0.0
	for k := range r.env[i] {
		if e := &r.env[i][k]; e.t != nil && coef[k] != 0 {
			v += coef[k] * e.val(x)
		}
	}
	return v
}

func (r *relax) chanD1(i int, coef []float64, x float64) float64 {
	v := 0.0
	for k := range r.env[i] {
		if e := &r.env[i][k]; e.t != nil && coef[k] != 0 {
			v += coef[k] * e.d1(x)
		}
	}
	return v
}

func (r *relax) chanD2(i int, coef []float64, x float64) float64 {
	v := 0.0
	for k := range r.env[i] {
		if e := &r.env[i][k]; e.t != nil && coef[k] != 0 {
			v += coef[k] * e.d2(x)
		}
	}
	return v
}

// chanArgmax returns the smallest and largest maximisers of G_i(x) − lam·x on the box.
// They differ only where G_i has a linear piece of slope lam.
func (r *relax) chanArgmax(i int, coef []float64, lam float64) (float64, float64) {
	cs := &r.cs[i]
	a, b := r.lo[i], r.hi[i]
	d3prev := cs.d3
	// unless the single-curve case below knows them
	cs.d3, cs.d4, cs.ud2, cs.ud3, cs.vx = math.NaN(), math.NaN(), 0, 0, math.NaN()
	if b <= a {
		return a, a
	}
	single := r.single(i, coef)
	switch {
	case single == -1: // no response at all: only the price matters
		switch {
		case lam > 0:
			return a, a
		case lam < 0:
			return b, b
		}
		return a, b
	case single >= 0:
		if mm := r.memoAt(i); mm != nil && mm.lam == lam && mm.cf == coef[single] && mm.k == single {
			cs.ux, cs.ud2, cs.ud3 = mm.xu, mm.d2u, mm.d3u
			cs.x, cs.lam, cs.d2, cs.d3, cs.d4 = mm.xl, lam, mm.d2, mm.d3, mm.d4
			cs.vx, cs.v, cs.vcf, cs.vk = mm.vx, mm.v, mm.cf, single
			return mm.xl, mm.xh
		}
		e := &r.env[i][single]
		l := lam / coef[single]
		if l <= 0 && e.h == nil && e.t.beta != 0 && e.t.kind != kindLinear && !(e.t.kind == kindPower && e.t.alpha == 1) &&
			(e.z <= e.a || e.m > l) {
			// at no price (the search's first, for max_kpi) a rising curve spends its
			// box's maximum: what the general path below finds, and leaves, without the
			// inverse slope's call chain
			cs.x, cs.lam, cs.d2, cs.ux = b, lam, 0, 0
			return b, b
		}
		// Warm start (for the curves whose inverse slope iterates: Hill with α ≠ 1): a
		// prediction from the last answer along the maximiser's path,
		// x + Δλ/G″ − Δλ²·G‴/(2·G″³) (to first order where G‴ is not known).
		hint := 0.0 // (0 also where the last answer was clamped to the box: it says little)
		if d2 := cs.d2; d2 < 0 && cs.x > 0 && e.t.kind == kindHill && e.t.alpha != 1 {
			hint = cs.x
			dl := lam - cs.lam
			step := dl / d2
			if d3 := d3prev; !math.IsNaN(d3) {
				if c := dl * dl * d3 / (2 * d2 * d2 * d2); math.Abs(c) <= 0.5*math.Abs(step) {
					step -= c
				}
			}
			if pred := hint + step; pred > 0 {
				hint = pred
			}
		}
		xl, d2, d3, d4, xu, d2u, d3u, v := e.argmaxD3(l, false, hint)
		cf := coef[single]
		if !math.IsNaN(v) {
			cs.vx, cs.v, cs.vcf, cs.vk = xl, cf*v, cf, single
		}
		cs.ux, cs.ud2, cs.ud3 = xu, cf*d2u, cf*d3u // the price search's model of the channel
		xh := xl
		// The maximisers form an interval only on a linear piece of slope l: for a bridge,
		// only at its slope (elsewhere argmax's two ends take the same path to the same bits).
		if e.h != nil || (e.z > e.a && l == e.m) || e.t.kind == kindLinear || e.t.kind == kindPower && e.t.alpha == 1 {
			xh = e.argmax(l, true, hint)
		}
		// d2 is known (non-zero) only where xl is a smooth interior maximiser
		cs.x, cs.lam, cs.d2 = xl, lam, cf*d2
		if d2 != 0 {
			cs.d3, cs.d4 = cf*d3, cf*d4
		}
		if r.memo != nil && lam > 0 { // (at a price of 0 or less the answer is immediate: keep the memo for the next price)
			r.memo[i] = argmaxMemo{ok: true, k: single, lam: lam, cf: cf, xl: xl, xh: xh, d2: cf * d2, d3: cs.d3, d4: cs.d4,
				xu: xu, d2u: cf * d2u, d3u: cf * d3u, vx: cs.vx, v: cs.v}
		}
		return xl, xh
	}
	// Several terms: G_i' is non-increasing, so bisect for where it crosses lam.
	cross := func(strict bool) float64 {
		lo, hi := a, b
		if d := r.chanD1(i, coef, a); d < lam || (!strict && d <= lam) {
			return a
		}
		for it := 0; it < 200 && hi-lo > 1e-15*max(1, hi); it++ {
			mid := lo + (hi-lo)/2
			if mid <= lo || mid >= hi {
				break
			}
			d := r.chanD1(i, coef, mid)
			if d > lam || (strict && d == lam) {
				lo = mid
			} else {
				hi = mid
			}
		}
		// G is concave: of the two ends, keep the better one
		if r.chanVal(i, coef, hi)-lam*hi >= r.chanVal(i, coef, lo)-lam*lo {
			return hi
		}
		return lo
	}
	return cross(false), cross(true)
}

// maxSlope is an upper bound on G_i' over the box (the slope at its left end). For the
// objective's weights it is kept in the channel's state, which a child shares for the
// channels whose box it keeps.
func (r *relax) maxSlope(i int, coef []float64) float64 {
	if &coef[0] != &r.p.w[0] {
		return r.chanD1(i, coef, r.lo[i])
	}
	cs := &r.cs[i]
	if !cs.slopeOK {
		cs.slopeLo, cs.slopeOK = r.chanD1(i, coef, r.lo[i]), true
	}
	return cs.slopeLo
}

// lambdaSolve solves the relaxation when the only coupling constraint is the total:
// maximise Σ G_i(x_i) − cost·Σx_i over the box with tlo ≤ Σx ≤ thi. At the optimum every
// channel maximises G_i(x) − λx for one price λ, so a one-dimensional search on λ solves
// it. It returns a feasible x, a proven upper bound on the relaxation (and so on the
// problem), and the number of price evaluations; ok is false when the box cannot meet the
// total.
func (r *relax) lambdaSolve(coef []float64) (x []float64, ub float64, evals int, ok bool) {
	p := r.p
	n := p.n()
	sumLo, sumHi := 0.0, 0.0
	for i := 0; i < n; i++ {
		sumLo += r.lo[i]
		sumHi += r.hi[i]
	}
	scale := max(1, sumHi)
	if sumLo > p.thi+1e-12*scale || sumHi < p.tlo-1e-12*scale {
		return nil, math.Inf(-1), 0, false
	}
	c := p.cost
	scratch := p.ws.priceWork(5 * n)
	xl, xh := scratch[:n:n], scratch[n:2*n:2*n]
	xa, xb := scratch[2*n:3*n:3*n], scratch[3*n:4*n:4*n]
	// xbl: the low maximisers at lb (xb holds the high ones); aEval, bEval: la, lb were
	// evaluated, so that xa, xbl are the maximisers settle would compute there.
	xbl := scratch[4*n : 5*n : 5*n]
	aEval, bEval := false, false

	// eval fills xl/xh at price lam and returns their sums, Σ(G_i − lam·x_i) at xl, and
	// dS/dλ (−Inf when a channel sits on a linear piece of slope lam).
	// The dual value at each trial price is not needed: D(λ) is convex and the bracket's
	// ends are where it is smallest, so it is computed there once at the end.
	// ddS is d²S/dλ² at the last evaluation, NaN where some channel's G‴ is not known.
	ddS := math.NaN()
	eval := func(lam float64) (sl, sh, val, dS float64) {
		evals++
		ddS = 0
		for i := 0; i < n; i++ {
			l, h := r.chanArgmax(i, coef, lam)
			xl[i], xh[i] = l, h
			sl += l
			sh += h
			if l != h {
				dS = math.Inf(-1)
			} else if l > r.lo[i] && l < r.hi[i] {
				cs := &r.cs[i]
				d2 := cs.d2 // set by chanArgmax where it knows it
				if d2 == 0 {
					d2 = r.chanD2(i, coef, l)
				}
				if d2 < 0 {
					dS += 1 / d2
					cs.d2 = d2
					ddS -= cs.d3 / (d2 * d2 * d2) // NaN where G‴ is not known
				} else {
					dS = math.Inf(-1)
				}
			}
		}
		return
	}

	sl, sh, _, dS := eval(c)
	ub = math.Inf(1)
	var target float64
	switch {
	case sl <= p.thi && sh >= p.tlo:
		// The price alone settles the spend: take the least spend that the total allows.
		target = max(sl, p.tlo)
		return r.blend(xl, xh, sl, sh, target), r.settleAt(coef, c, xl), evals, true
	case sl > p.thi:
		target = p.thi
	default:
		target = p.tlo
	}
	if target <= sumLo {
		return append([]float64(nil), r.lo...), r.settle(coef, r.maxPrice(coef)), evals, true
	}
	if target >= sumHi {
		return append([]float64(nil), r.hi...), r.settle(coef, min(0, c)-1), evals, true
	}

	// Bracket: at la the spend exceeds the target, at lb it falls short.
	var la, lb, sa, sb float64
	if sl > target {
		la, sa = c, sl
		copy(xa, xl)
		aEval = true
		mp, exact := r.maxPriceExact(coef)
		if exact {
			// Above every channel's largest slope each one sits at its minimum: no need to
			// evaluate there.
			lb = max(mp, c)*(1+1e-12) + 1e-300
			if lb <= c {
				lb = math.Nextafter(c, math.Inf(1))
			}
			sb = sumLo
			copy(xb, r.lo)
		} else {
			// A slope is infinite at a box's left end (x^α with α < 1): no finite price
			// puts every channel at its minimum, but the limit does.
			lb = math.Inf(1)
			sb = sumLo
			copy(xb, r.lo)
		}
	} else {
		lb, sb = c, sh
		copy(xb, xh)
		copy(xbl, xl)
		bEval = true
		la = min(0, c) - 1 // below zero every channel sits at its maximum
		sa = sumHi
		copy(xa, r.hi)
	}

	brk := r.breakpoints(coef)
	var ms []chanModel // the channels' price models, when jumps lie in the bracket
	lam, last := la, math.NaN()
	// Start Newton from the price at which an even split would be marginal: the mean of
	// the channels' slopes there. It is usually within a few steps of the answer.
	{
		guess := r.lamHint // a parent node's price, when branching
		if !(guess > la && guess < lb) {
			even := target / float64(n)
			guess = 0.0
			for i := 0; i < n; i++ {
				guess += r.chanD1(i, coef, clamp(even, r.lo[i], r.hi[i]))
			}
			guess /= float64(n)
		}
		if guess > la && guess < lb {
			lam = guess
			sl, sh, _, dS = eval(lam)
			last = lam
			if sl <= target && target <= sh {
				return r.blend(xl, xh, sl, sh, target), r.settleAt(coef, lam, xl), evals, true
			}
			if x, ok := r.tangentStep(xl, lam, sl, sh, target, dS, brk); ok {
				return x, r.settleAt(coef, lam, xl), evals, true
			}
			if sl > target {
				la, sa = lam, sl
				copy(xa, xl)
				aEval = true
			} else {
				lb, sb = lam, sh
				copy(xb, xh)
				copy(xbl, xl)
				bEval = true
			}
		}
	}
	// The last residuals |S(λ) − target|: Newton's method can oscillate across the
	// answer (a nearly linear channel next to a steep one) while barely shrinking the
	// bracket. When neither of the last two steps improved on the residual two steps
	// before it by a tenth, the next step is a bisection.
	res1, res2, res3, res4 := math.Inf(1), math.Inf(1), math.Inf(1), math.Inf(1)
	for it := 0; it < 300; it++ {
		// S(λ) jumps where a channel's envelope has a linear piece of slope λ. While such
		// prices lie inside the bracket, the channels' models (jumps included) say which
		// jump holds the answer, or between which two it lies and where; when they do not
		// help (no progress), the middle one is tried: it is either the answer or it halves
		// the search exactly. Between jumps S is smooth and Newton's method converges fast
		// (refined by the models far from the answer); bisection (geometric when the
		// bracket spans orders of magnitude) is the fallback.
		next := math.NaN()
		if j := sort.SearchFloat64s(brk, la); j < len(brk) && brk[j] == la {
			j++
			brk = brk[j:]
		} else {
			brk = brk[j:]
		}
		if len(brk) > 0 && brk[0] < lb {
			k := sort.SearchFloat64s(brk, lb)
			next = brk[k/2]
			if !math.IsNaN(last) && last > 0 && !(res1 > 0.9*res3 && res2 > 0.9*res4) {
				// The channels' models, jumps included, usually tell which jump holds the
				// answer or which stretch between two jumps: try that price first.
				if ms == nil {
					ms = p.ws.models(n)
				}
				r.priceModels(ms, coef, last, xl)
				if m := jumpPrice(ms, target, la, lb, last, math.Abs(sl-target)/target, math.NaN(), math.NaN(), brk[:k]); m > la && m < lb {
					next = m
				}
			}
		} else if !math.IsNaN(last) && dS < 0 && !math.IsInf(dS, -1) && !(res1 > 0.9*res3 && res2 > 0.9*res4) {
			if last > 0 && sl > 0 {
				// Newton on log S against log λ: power-law responses make S(λ) a
				// straight line there, and saturating ones nearly so.
				g := math.Log(sl / target)
				s1 := last * dS / sl
				dt := -g / s1
				if !math.IsNaN(ddS) {
					// second order: ln S is ½·s2·Δt² + s1·Δt + g near ln λ (Halley's step)
					s2 := (last*dS+last*last*ddS)/sl - s1*s1
					if c := s1 + 0.5*s2*dt; c < 0 && c >= 2*s1 && c <= 0.5*s1 {
						dt = -g / c
					}
				}
				next = last * math.Exp(dt)
				if math.Abs(sl-target) > 0.15*target {
					// far from the answer, channels entering or leaving their boxes
					// matter: let the channels' own model refine the step (nearer, the
					// step above does as well for less)
					if ms == nil {
						ms = p.ws.models(n)
					}
					r.priceModels(ms, coef, last, xl)
					if m := jumpPrice(ms, target, la, lb, last, math.Abs(sl-target)/target, sl, last*dS, nil); m > la && m < lb {
						next = m
					}
				}
			} else {
				next = last - (sl-target)/dS
			}
		}
		if !(next > la && next < lb) {
			if math.IsInf(lb, 1) {
				next = max(4*la, la+1)
			} else if la > 0 && lb > 4*la {
				next = math.Sqrt(la) * math.Sqrt(lb)
			} else {
				next = la + (lb-la)/2
			}
		}
		if !(next > la && next < lb) {
			break // the bracket is down to adjacent floats
		}
		lam = next
		sl, sh, _, dS = eval(lam)
		last = lam
		res4, res3, res2, res1 = res3, res2, res1, math.Abs(sl-target)
		if sl <= target && target <= sh {
			return r.blend(xl, xh, sl, sh, target), r.settleAt(coef, lam, xl), evals, true
		}
		if x, ok := r.tangentStep(xl, lam, sl, sh, target, dS, brk); ok {
			return x, r.settleAt(coef, lam, xl), evals, true
		}
		if sl > target {
			la, sa = lam, sl
			copy(xa, xl)
			aEval = true
		} else {
			lb, sb = lam, sh
			copy(xb, xh)
			copy(xbl, xl)
			bEval = true
		}
		if min(sa-target, target-sb) <= 1e-15*target || (!math.IsInf(lb, 1) && lb-la <= 1e-15*math.Abs(lb)) {
			break
		}
	}
	// D(λ) is convex with its minimum between la and lb; the end whose spend is nearer
	// the target is nearer that minimum.
	lam = la
	if target-sb < sa-target && !math.IsInf(lb, 1) {
		lam = lb
	}
	x = r.blend(xb, xa, sb, sa, target)
	switch {
	case lam == la && aEval:
		ub = r.settleAt(coef, lam, xa)
	case lam == lb && bEval:
		ub = r.settleAt(coef, lam, xbl)
	default:
		ub = r.settle(coef, lam)
	}
	return x, ub, evals, true
}

// tangentStep finishes the price search without another evaluation once the spend sl at
// lam is close to the target. Newton's next price lam + dl moves each channel strictly
// inside its box along its maximiser's path, x_i(λ) ≈ x_i + dl/G″_i − dl²·G‴_i/(2·G″_i³)
// + dl³·(3·G‴_i² − G″_i·G⁗_i)/(6·G″_i⁵) (third order where G⁗ is known to full precision,
// second where G‴ is, first otherwise), which meets the target to that order. Every move
// must be small next to the channel's own spend — within 1e-8 (first order), 4e-6 (second
// order), or (third order) small enough that the next term, estimated from the ratio of
// the last ones, is below 2e-17 of it — so that the error left is below rounding. It
// declines (false) otherwise, and where S(λ) is not smooth near lam: a channel on a linear
// piece, a breakpoint of some envelope between the two prices, or a channel that would
// leave its box. The dual bound stays the one at lam, where the maximisers are exact; so
// that it stays within ~1e-11 of the optimum, sl must be within 4e-6 of the target.
func (r *relax) tangentStep(xl []float64, lam, sl, sh, target, dS float64, brk []float64) ([]float64, bool) {
	// The dual bound is the one at lam: it exceeds the optimum by about
	// ½·(target − sl)²/|dS|, which at 4e-6 of the target is ~1e-11 of the objective.
	if sl != sh || !(dS < 0) || math.IsInf(dS, -1) || !(math.Abs(sl-target) <= 4e-6*target) {
		return nil, false
	}
	// Σ_i dx_i = dS·dl + B·dl² + C·dl³ with B = −Σ G‴_i/(2·G″_i³) and
	// C = Σ (3·G‴_i² − G″_i·G⁗_i)/(6·G″_i⁵), over the terms known
	B, C := 0.0, 0.0
	for i, v := range xl {
		if v > r.lo[i] && v < r.hi[i] {
			d2, d3, d4 := r.cs[i].d2, r.cs[i].d3, r.cs[i].d4
			switch {
			case math.IsNaN(d3):
			case math.IsNaN(d4):
				B -= d3 / (2 * d2 * d2 * d2)
			default:
				d22 := d2 * d2
				B -= d3 / (2 * d22 * d2)
				C += (3*d3*d3 - d2*d4) / (6 * d22 * d22 * d2)
			}
		}
	}
	dl := (target - sl) / dS
	if B != 0 || C != 0 {
		for k := 0; k < 3; k++ {
			f := dl*(dS+dl*(B+dl*C)) - (target - sl)
			dl -= f / (dS + dl*(2*B+3*C*dl))
		}
	}
	lo, hi := lam, lam+dl
	if hi < lo {
		lo, hi = hi, lo
	}
	if j := sort.SearchFloat64s(brk, lo); j < len(brk) && brk[j] <= hi {
		return nil, false
	}
	x := r.p.ws.floats(len(xl)) // (the solve's memory: no plan outlives it)
	s := 0.0
	flat, flatD2 := -1, 0.0 // the interior channel with the least curvature
	for i, v := range xl {
		if v > r.lo[i] && v < r.hi[i] {
			cs := &r.cs[i]
			d2 := cs.d2 // what eval used in dS
			t1 := dl / d2
			dx := t1
			switch d3, d4 := cs.d3, cs.d4; {
			case math.IsNaN(d3):
				if !(math.Abs(t1) <= 1e-8*v) {
					return nil, false
				}
			case math.IsNaN(d4):
				if !(math.Abs(t1) <= 4e-6*v) {
					return nil, false
				}
				dx -= dl * dl * d3 / (2 * d2 * d2 * d2)
			default:
				d22 := d2 * d2
				t2 := -dl * dl * d3 / (2 * d22 * d2)
				t3 := dl * dl * dl * (3*d3*d3 - d2*d4) / (6 * d22 * d22 * d2)
				// the next term, from the ratio of the last two (each at least 1e-4)
				rho := max(1e-4, max(math.Abs(t2/t1), math.Abs(t3/t2)))
				if !(math.Abs(t1) <= 1e-4*v) || !(math.Abs(t3)*rho <= 2e-17*v) {
					return nil, false
				}
				dx += t2 + t3
			}
			v += dx
			if !(v > r.lo[i] && v < r.hi[i]) {
				return nil, false
			}
			if flat < 0 || d2 > flatD2 {
				flat, flatD2 = i, d2
			}
		}
		x[i] = v
		s += v
	}
	// The rounding residual goes where it moves the marginal return least: onto the
	// flattest interior channel (not the one with the most room, which may be a channel
	// spending next to nothing, whose slope a few ulps of the total would change).
	if resid := target - s; resid != 0 {
		if flat >= 0 && x[flat]+resid > r.lo[flat] && x[flat]+resid < r.hi[flat] {
			x[flat] += resid
		} else {
			fixTotal(x, r.lo, r.hi, resid)
		}
	}
	return x, true
}

// blend returns the point on the segment from lo (sum slo) to hi (sum shi) whose sum is
// target, with the last rounding error absorbed by one channel that has room.
func (r *relax) blend(lo, hi []float64, slo, shi, target float64) []float64 {
	x := r.p.ws.floats(len(lo))
	theta := 0.0
	if shi > slo {
		theta = (target - slo) / (shi - slo)
	}
	theta = clamp(theta, 0, 1)
	sum := 0.0
	for i := range x {
		x[i] = clamp(lo[i]+theta*(hi[i]-lo[i]), r.lo[i], r.hi[i])
		sum += x[i]
	}
	fixTotal(x, r.lo, r.hi, target-sum)
	return x
}

// fixTotal moves a rounding residual onto the channel with the most room for it.
func fixTotal(x, lo, hi []float64, resid float64) {
	if resid == 0 {
		return
	}
	best, room := -1, 0.0
	for i := range x {
		var rm float64
		if resid > 0 {
			rm = hi[i] - x[i]
		} else {
			rm = x[i] - lo[i]
		}
		if rm > room {
			best, room = i, rm
		}
	}
	if best >= 0 && room >= math.Abs(resid) {
		x[best] += resid
	}
}

// maxPriceExact is the largest slope any channel has on its box, and whether it is
// exact (false, with +Inf, where a slope is infinite at the box's left end).
func (r *relax) maxPriceExact(coef []float64) (float64, bool) {
	m := 0.0
	for i := range r.env {
		s := r.maxSlope(i, coef)
		if math.IsInf(s, 1) || math.IsNaN(s) {
			return math.Inf(1), false
		}
		m = max(m, s)
	}
	return m, true
}

// maxPrice is a price above which every channel stays at its minimum.
func (r *relax) maxPrice(coef []float64) float64 {
	m := 0.0
	for i := range r.env {
		s := r.maxSlope(i, coef)
		if math.IsInf(s, 1) || math.IsNaN(s) {
			// x^α with α < 1 at 0: use the slope a hair to the right instead; the
			// bracket search grows the price from there as needed.
			s = r.chanD1(i, coef, r.lo[i]+1e-9*max(1, r.hi[i]-r.lo[i]))
		}
		m = max(m, s)
	}
	if math.IsInf(m, 1) || math.IsNaN(m) {
		m = maxParam
	}
	return m
}

// settle records lam as the relaxation's price and returns the Lagrangian dual bound
// there.
func (r *relax) settle(coef []float64, lam float64) float64 {
	r.lam = lam
	v := 0.0
	for i := range r.env {
		l, _ := r.chanArgmax(i, coef, lam)
		v += r.chanVal(i, coef, l) - lam*l
	}
	return dualTotal(v, lam, r.p.cost, r.p.tlo, r.p.thi)
}

// settleAt is settle when the smallest maximisers at lam are known already (xs, from the
// price search's last evaluation there).
func (r *relax) settleAt(coef []float64, lam float64, xs []float64) float64 {
	r.lam = lam
	v := 0.0
	for i := range r.env {
		// G_i(x) as chanArgmax left it where it is for this x and weight (the inverse
		// slope's, within a few ulps of chanVal's: far below the bound's slack)
		if cs := &r.cs[i]; cs.vx == xs[i] && r.single(i, coef) == cs.vk && coef[cs.vk] == cs.vcf {
			v += cs.v - lam*xs[i]
			continue
		}
		v += r.chanVal(i, coef, xs[i]) - lam*xs[i]
	}
	return dualTotal(v, lam, r.p.cost, r.p.tlo, r.p.thi)
}

// dualTotal adds the total constraint's part of the Lagrangian dual at price lam to the
// channels' part v: the multiplier of Σx ≤ thi is lam−cost when lam > cost, that of
// Σx ≥ tlo is cost−lam when lam < cost. At lam = cost neither binds (and an infinite thi
// must not turn 0·∞ into NaN).
func dualTotal(v, lam, cost, tlo, thi float64) float64 {
	switch {
	case lam > cost:
		return v + (lam-cost)*thi
	case lam < cost:
		return v + (lam-cost)*tlo
	}
	return v
}

// breakpoints lists the prices at which some channel's maximiser jumps: the slopes of
// linear pieces of the envelopes, in increasing order.
func (r *relax) breakpoints(coef []float64) []float64 {
	b := r.p.ws.breaks()
	for i := range r.env {
		single := r.single(i, coef)
		if single < 0 || r.hi[i] <= r.lo[i] {
			continue
		}
		e := &r.env[i][single]
		switch {
		case e.h != nil:
			for _, s := range e.h.s[:len(e.h.s)-1] {
				b = append(b, s*coef[single])
			}
		case e.z > e.a:
			b = append(b, e.m*coef[single])
		case e.t.kind == kindLinear || e.t.kind == kindPower && e.t.alpha == 1:
			b = append(b, e.t.d1(e.a)*coef[single])
		}
	}
	sort.Float64s(b)
	r.p.ws.keepBreaks(b)
	return b
}
