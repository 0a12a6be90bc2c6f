package engine

import "math"

// chanModel predicts where one channel's maximiser of G_i(x) − λx lies at prices other
// than the one last evaluated, jumps included: the price search uses it to step across
// the prices at which envelopes have linear pieces (bridges, chords, linear curves,
// piecewise hulls) without evaluating each of them in turn. A model's error only costs
// evaluations, never exactness: every answer the search returns comes from evaluations.
type chanModel struct {
	kind uint8
	// cmSmooth, cmJump: P(λ) = x0·exp(−k·t + q·t²/2) with t = ln λ − l0, clamped to
	// [lo, hi]; cmJump spends a above the price m. cmStep spends a above m and hi below
	// it. cmFixed spends x0 at every price.
	lo, hi, a, m float64
	x0, l0, k, q float64
	e            *envelope // cmHull: the hull, with the KPI's weight cf
	cf           float64
	smooth       bool // (ms[0] only) every channel is cmFixed or cmSmooth
}

const (
	cmFixed = iota
	cmSmooth
	cmJump
	cmStep
	cmHull
)

// at is the model's spend at price lam (lnl = ln lam) and its derivative in ln λ; at a
// jump's price high chooses the spend just below it.
func (c *chanModel) at(lnl, lam float64, high bool) (x, dxdt float64) {
	switch c.kind {
	case cmFixed:
		return c.x0, 0
	case cmStep:
		if lam > c.m || (lam == c.m && !high) {
			return c.a, 0
		}
		return c.hi, 0
	case cmHull:
		l := lam / c.cf
		h := c.e.h
		for j := 0; j+1 < len(h.x); j++ {
			if h.s[j] < l || (h.s[j] == l && !high) {
				return h.x[j], 0
			}
		}
		return h.x[len(h.x)-1], 0
	case cmJump:
		if lam > c.m || (lam == c.m && !high) {
			return c.a, 0
		}
	}
	t := lnl - c.l0
	e, slope := -c.k*t, -c.k
	if qt := c.q * t; math.Abs(qt) <= 0.5*c.k {
		e += 0.5 * qt * t
		slope += qt
	}
	x = c.x0 * expModel(e)
	switch {
	case x <= c.lo:
		return c.lo, 0
	case x >= c.hi:
		return c.hi, 0
	}
	return x, x * slope
}

// expModel is e^v for the models, to a relative error below 1e-9 (far below any model's
// own; 4e-11 in the tests): 2^k·2^(j/64)·e^r with v = (64k + j)·ln2/64 + r, |r| ≤ ln2/128,
// 2^(j/64) from a table and e^r from its Taylor polynomial of degree 3. It is a small part
// of math.Exp's cost, and the models evaluate it for every channel at every trial price.
func expModel(v float64) float64 {
	if !(math.Abs(v) <= 700) {
		return math.Exp(v)
	}
	x := v * (64 * math.Log2E)
	var n int64 // x rounded to the nearest integer (a conversion, cheaper than math.Round)
	if x >= 0 {
		n = int64(x + 0.5)
	} else {
		n = int64(x - 0.5)
	}
	r := v - float64(n)*(math.Ln2/64)
	p := 1 + r*(1+r*(0.5+r*(1.0/6)))
	return p * exp2Sixty4ths[n&63] * math.Float64frombits(uint64((n>>6)+1023)<<52)
}

// exp2Sixty4ths[j] is 2^(j/64): expModel's table (read only).
var exp2Sixty4ths = func() (t [64]float64) {
	for j := range t {
		t[j] = math.Exp2(float64(j) / 64)
	}
	return
}()

// smoothModel fills c as cmSmooth (or cmJump, whose kind and a, m the caller sets) from a
// point x0 on the curve's concave part where the channel's slope is lam0, with G″ = d2
// and G‴ = d3 there (d3 = 0: not known): x(λ) ≈ x0·(λ/lam0)^(−k) with k = −lam0/(x0·G″),
// to second order in ln λ where G‴ is known.
func (c *chanModel) smoothModel(x0, lam0, lnLam0, d2, d3, lo, hi float64) bool {
	if !(d2 < 0) || !(x0 > 0) || !(lam0 > 0) {
		return false
	}
	c.kind, c.x0, c.l0, c.lo, c.hi = cmSmooth, x0, lnLam0, lo, hi
	c.k = -lam0 / (x0 * d2)
	c.q = 0
	if d3 != 0 {
		// d²ln x/dt² = −k − k² − λ²G‴/(x·G″³)
		c.q = -c.k - c.k*c.k - lam0*lam0*d3/(x0*d2*d2*d2)
	}
	return finite(c.k) && finite(c.q)
}

// priceModels builds every channel's model after an evaluation at lam (spends xl), from
// what chanArgmax left in each channel's state.
func (r *relax) priceModels(ms []chanModel, coef []float64, lam float64, xl []float64) {
	lnLam := math.Log(lam)
	for i := range ms {
		c := &ms[i]
		*c = chanModel{kind: cmFixed, x0: xl[i]}
		a, b := r.lo[i], r.hi[i]
		if b <= a {
			continue
		}
		single := r.single(i, coef)
		if single < 0 {
			continue
		}
		e := &r.env[i][single]
		cf := coef[single]
		switch {
		case e.h != nil:
			c.kind, c.e, c.cf = cmHull, e, cf
		case e.z > e.a && e.z >= e.b: // a chord
			c.kind, c.a, c.m, c.hi = cmStep, a, e.m*cf, b
		case e.z > e.a: // a bridge to the curve at z
			cs := &r.cs[i]
			ok := cs.ud2 < 0 && c.smoothModel(cs.ux, lam, lnLam, cs.ud2, cs.ud3, e.z, b)
			if !ok && e.m*cf > 0 {
				ok = c.smoothModel(e.z, e.m*cf, math.Log(e.m*cf), e.d2z*cf, 0, e.z, b)
			}
			if ok {
				c.kind, c.a, c.m = cmJump, a, e.m*cf
			} else {
				*c = chanModel{kind: cmStep, a: a, m: e.m * cf, hi: e.z}
			}
		case e.t.kind == kindLinear || (e.t.kind == kindPower && e.t.alpha == 1):
			c.kind, c.a, c.m, c.hi = cmStep, a, e.t.d1(e.a)*cf, b
		case r.cs[i].ud2 < 0:
			cs := &r.cs[i]
			if !c.smoothModel(cs.ux, lam, lnLam, cs.ud2, cs.ud3, a, b) {
				*c = chanModel{kind: cmFixed, x0: xl[i]}
			}
		}
	}
	smooth := true
	for i := range ms {
		smooth = smooth && (ms[i].kind == cmFixed || ms[i].kind == cmSmooth)
	}
	ms[0].smooth = smooth
}

// jumpPrice is the price at which the channels' models spend target, between la and lb,
// where cands are the jump prices strictly inside (la, lb), in increasing order. It is a
// jump's own price where the target falls inside that jump, and otherwise the root of the
// models' total between two jumps, by Newton's method on ln λ. last is the price last
// evaluated (where the models are most accurate) and r0 the relative miss there: the
// models' own error grows about as its cube, and the root is not sought much closer than
// that. It returns NaN when it finds nothing.
//
// s0 and ds0 are the spend at last and its derivative in ln λ, as evaluated (NaN: not
// known), which spare the models' first evaluation when the search starts there.
func jumpPrice(ms []chanModel, target, la, lb, last, r0, s0, ds0 float64, cands []float64) float64 {
	tol := target * max(1e-12, min(1e-4, 0.1*r0*r0*r0))
	total := func(lam float64) (sHigh, sLow float64) {
		lnl := math.Log(lam)
		for i := range ms {
			xh, _ := ms[i].at(lnl, lam, true)
			xl := xh
			if c := &ms[i]; (c.kind == cmJump || c.kind == cmStep) && c.m == lam || c.kind == cmHull {
				xl, _ = c.at(lnl, lam, false) // only a jump at lam tells the two apart
			}
			sHigh += xh
			sLow += xl
		}
		return
	}
	// the first jump whose spend from the left is below the target: the answer lies left
	// of it, and at or right of the one before
	lo, hi := 0, len(cands)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if sh, _ := total(cands[mid]); sh < target {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	left, right := la, lb
	if lo > 0 {
		left = cands[lo-1]
		if _, sl := total(left); sl <= target {
			return left // inside that jump
		}
	}
	if lo < len(cands) {
		right = cands[lo]
	}
	// Newton on ln λ over the smooth stretch (left, right)
	tl, tr := math.Inf(-1), math.Inf(1)
	if left > 0 {
		tl = math.Log(left)
	}
	if !math.IsInf(right, 1) {
		tr = math.Log(right)
	}
	t := math.Log(last)
	known := len(cands) == 0 && !math.IsNaN(s0) && !math.IsNaN(ds0)
	if !(t >= tl && t <= tr) {
		known = false
		switch {
		case !math.IsInf(tl, -1) && !math.IsInf(tr, 1):
			t = tl + (tr-tl)/2
		case !math.IsInf(tl, -1):
			t = tl + 1
		case !math.IsInf(tr, 1):
			t = tr - 1
		default:
			return math.NaN()
		}
	}
	// the price itself (not its logarithm) matters only to channels with jumps
	smooth := ms[0].smooth
	for it := 0; it < 30; it++ {
		lam := math.NaN()
		if !smooth {
			lam = math.Exp(t)
		}
		s, ds := s0, ds0
		if !known {
			s, ds = 0, 0
			for i := range ms {
				x, dx := ms[i].at(t, lam, false)
				s += x
				ds += dx
			}
		}
		known = false
		if s > target {
			tl = t
		} else {
			tr = t
		}
		if math.Abs(s-target) <= tol {
			return math.Exp(t)
		}
		// Newton on ln S: power-law spends make it nearly straight in ln λ
		next := math.NaN()
		if ds < 0 && s > 0 {
			next = t - math.Log(s/target)*s/ds
		}
		if !(next > tl && next < tr) {
			switch {
			case !math.IsInf(tl, -1) && !math.IsInf(tr, 1):
				next = tl + (tr-tl)/2
			case !math.IsInf(tl, -1):
				next = tl + 1
			default:
				next = tr - 1
			}
		}
		if math.Abs(next-t) <= 1e-14*max(1, math.Abs(t)) {
			return math.Exp(next)
		}
		t = next
	}
	return math.Exp(t)
}
