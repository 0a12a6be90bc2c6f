package engine

import "math"

// dualCert is the Lagrangian behind a relaxation's bound. For every plan x in the
// relaxation's box that meets the problem's constraints,
//
//	objective(x) ≤ konst + Σ_i φ_i(x_i),   φ_i(x) = Σ_k coef_k·env_ik(x) − lam_i·x,
//
// because the envelopes majorise the curves and each multiplier has the sign that makes
// its constraint's term non-negative; bound is konst + Σ_i max φ_i over the box.
type dualCert struct {
	lam   []float64 // each channel's price of spend
	coef  []float64 // each KPI's weight: the objective's plus the floors' multipliers
	konst float64
	bound float64
	// anyBox: the multipliers price every channel and konst holds only the constraints'
	// right-hand sides, so the Lagrangian is one over any box (not where a channel fixed
	// by its box was folded into konst)
	anyBox bool
}

// certificate returns the multipliers behind the bound of the last solveRelax on r, a
// root relaxation (nil where they were not kept).
func (r *relax) certificate(bound float64) *dualCert {
	p := r.p
	if r.cert != nil || len(p.rows) > 0 || len(p.floors) > 0 {
		return r.cert // the interior-point method's, kept on roots only
	}
	lam := make([]float64, p.n())
	for i := range lam {
		lam[i] = r.lam
	}
	return &dualCert{lam: lam, coef: p.w, konst: dualTotal(0, r.lam, p.cost, p.tlo, p.thi), bound: bound, anyBox: true}
}

// tighten lowers the caps hi (of a box lo..hi inside r's) to what a plan worth f0, the
// value of a feasible plan, can spend. By the certificate c, a feasible x in r's box has
//
//	objective(x) ≤ konst + Σ_{j≠i} M_j + φ_i(x_i),   M_j = max φ_j over r's box,
//
// so objective(x) ≥ f0 needs φ_i(x_i) ≥ f0 − konst − Σ_{j≠i} M_j. Each φ_i is concave
// (envelopes with non-negative weights, less a linear term), so past its maximiser it
// stays below that threshold once it falls below it, and every plan at least as good as
// f0 — an optimal one among them — keeps within the lowered caps. This holds for any
// multipliers with the right signs, converged or not; a better f0 lowers them further.
// Low caps matter where the box is far wider than the plans worth having (target_mroi
// spend caps that constraints widen): the interior-point method's scaling and the
// envelopes of S-curves both follow the box. (Minimums could rise the same way; a box
// squeezed onto its optimum is hard on the interior-point method, so they stay.)
//
// A cap comes down only where that leaves out at least half of the box: less is not
// worth another relaxation. shrunk reports whether one did; xs are the maximisers of
// the φ_i on r's box, a plan worth trying: where the constraints hold there and the
// multipliers are right, it is the optimum; bound is the Lagrangian's bound over r's box
// (+Inf where none was computed), which is how multipliers found on another box bound
// this one.
func (r *relax) tighten(c *dualCert, f0 float64, lo, hi []float64) (nlo, nhi, xs []float64, bound float64, shrunk bool) {
	n := r.p.n()
	// On a copy with its own warm starts (and no memo): searches that go on from r keep
	// theirs.
	rc := *r
	rc.cs = append([]chanState(nil), r.cs...)
	rc.memo = nil
	r = &rc
	if c == nil || len(c.lam) != n || !finite(c.konst) || !finite(f0) {
		return lo, hi, nil, math.Inf(1), false
	}
	for _, w := range c.coef {
		if w < 0 || !finite(w) {
			return lo, hi, nil, math.Inf(1), false
		}
	}
	xs = make([]float64, 2*n)
	ms := xs[n:]
	xs = xs[:n:n]
	sumM, scale := 0.0, math.Abs(f0)+math.Abs(c.konst)
	for i := 0; i < n; i++ {
		if !finite(c.lam[i]) {
			return lo, hi, nil, math.Inf(1), false
		}
		xs[i], _ = r.chanArgmax(i, c.coef, c.lam[i])
		ms[i] = r.chanVal(i, c.coef, xs[i]) - c.lam[i]*xs[i]
		sumM += ms[i]
		scale += math.Abs(ms[i])
	}
	// The maximisers and the sums carry rounding errors (M_j a hair low makes the
	// threshold a hair high): a margin far above them keeps every side sound.
	tol := 1e-11*scale + 1e-300
	bound = c.konst + sumM
	slack := bound - f0 // the bound's excess over f0
	if !finite(slack) || slack < -tol {
		return lo, hi, xs, math.Inf(1), false // a bound below a feasible plan: rounding at its limit
	}
	bound += tol // what the caps rest on, sound to rounding
	for i := 0; i < n; i++ {
		a, b := lo[i], hi[i]
		if b <= a {
			continue
		}
		thr := ms[i] - slack - tol
		phi := func(x float64) float64 { return r.chanVal(i, c.coef, x) - c.lam[i]*x }
		xm := clamp(xs[i], a, b) // φ's best point in lo..hi (φ is concave)
		if phi(xm) < thr {
			continue // cannot happen with slack ≥ −tol; keep the box rather than guess
		}
		// edge returns a point between in and out with φ < thr there, so that every
		// point beyond it (φ being concave) is out too: the new end of the box.
		edge := func(in, out float64) float64 {
			for it := 0; it < 100 && math.Abs(out-in) > 1e-3*math.Abs(out-xm); it++ {
				mid := in + (out-in)/2
				if l, h := math.Min(in, out), math.Max(in, out); l > 0 && h > 8*l {
					mid = math.Sqrt(l) * math.Sqrt(h) // spans orders of magnitude
				}
				if mid == in || mid == out {
					break
				}
				if phi(mid) >= thr {
					in = mid
				} else {
					out = mid
				}
			}
			return out
		}
		if mid := a + (b-a)/2; mid > xm && phi(mid) < thr {
			b = edge(xm, mid)
		}
		if b == hi[i] {
			continue
		}
		if !shrunk {
			hi = append([]float64(nil), hi...)
			shrunk = true
		}
		hi[i] = b
	}
	return lo, hi, xs, bound, shrunk
}

// priceCert is the Lagrangian with every constraint's multiplier at zero: each channel
// on its own, its spend priced at the objective's price (target_mroi). It is what the
// spend caps of capSpend rest on; with a good plan's value it caps each channel near its
// price point unless the constraints really force more spend.
func (r *relax) priceCert() *dualCert {
	p := r.p
	lam := make([]float64, p.n())
	for i := range lam {
		lam[i] = p.cost
	}
	return &dualCert{lam: lam, coef: p.w, anyBox: true}
}
