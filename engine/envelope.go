package engine

import "math"

// envelope is the concave envelope (the smallest concave majorant) of a term on a box
// [a, b]. For smooth curves it is a straight "bridge" from (a, f(a)) with slope m up to
// the tangency point z, then the curve itself on [z, b]; z = a when the curve is already
// concave there and z = b for a chord. For piecewise-linear curves it is the upper hull
// of the breakpoints inside the box.
//
// Replacing every term by its envelope turns the problem into a concave one whose optimum
// bounds the true optimum from above; branch and bound narrows boxes until the two meet.
type envelope struct {
	t        *term
	a, b     float64
	z, fa, m float64
	d2z      float64 // the curve's second derivative at z, where the envelope has a bridge
	h        *hull   // upper hull for piecewise terms (nil for smooth ones)
}

// hull is the upper hull of a piecewise-linear curve's breakpoints in a box: points
// (x, y), slopes s between them (and a last 0).
type hull struct{ x, y, s []float64 }

func newEnvelope(t *term, a, b float64) envelope {
	e := envelope{t: t, a: a, b: b, z: a}
	if t.kind == kindPiecewise {
		e.buildHull()
		return e
	}
	if b <= a || t.infl <= a {
		// a point, or concave on the whole box: the envelope is the curve (fa, the
		// bridge's start, is never read since no x lies below z = a)
		return e
	}
	e.fa = t.val(a)
	fb, d1b := t.vd1(b) // one power for Hill curves, the same bits as val and d1
	chord := (fb - e.fa) / (b - a)
	if t.infl >= b || d1b >= chord {
		// convex on the box, or the tangent from a would touch beyond b: a chord.
		e.z, e.m = b, chord
		return e
	}
	// Tangency: ψ(z) = f'(z)(z−a) − (f(z)−f(a)) is positive at the inflection, negative
	// at b here, and decreasing in between (ψ' = f''(z)(z−a) < 0 on the concave part).
	lo, hi := max(t.infl, a), b
	z := min(b, lo+(lo-a)) // a usual neighbourhood of the tangency for S-curves
	iterate := true
	if t.kind == kindHill {
		// From the origin the tangency has a closed form: f'(y)·y = f(y) at r = α−1,
		// y = κ(α−1)^(1/α). From a > 0 (still in the convex part) the tangency lies left
		// of it, since the origin's tangent line is above f(a): a better start.
		if z0 := t.z0; t.hasZ0 && z0 > lo && z0 < b {
			z, iterate = z0, a > 0
		}
	}
	for i := 0; iterate && i < 100; i++ {
		fz, d1z, d2z := t.vd12(z)    // one power for Hill curves
		v := d1z*(z-a) - (fz - e.fa) // ψ(z)
		if v > 0 {
			lo = z
		} else {
			hi = z
		}
		next := z - v/(d2z*(z-a))
		if !(next > lo && next < hi) {
			next = lo + (hi-lo)/2
		}
		if math.Abs(next-z) <= 1e-13*z || hi-lo <= 1e-13*hi {
			break
		}
		z = next
	}
	// Use a point at or just past the tangency (ψ ≤ 0) and the curve's own tangent line
	// there. That line lies above the curve on [a, z] (it is above f(a) at a because
	// ψ(z) ≤ 0, and above the concave part by concavity) and joins the curve with the same
	// slope, so the envelope is a true concave majorant however the iteration ended.
	var fz, d1z, d2z float64
	if !iterate && t.hasZ0 && z == t.z0 {
		if a == 0 && t.zt < b {
			// the point and values below, from the same steps at the term's compilation
			e.z, e.m, e.d2z = t.zt, t.d1zt, t.d2zt
			e.fa = t.fzt - e.m*(t.zt-a)
			return e
		}
		fz, d1z, d2z = t.fz0, t.d1z0, t.d2z0 // computed with the term
	} else {
		fz, d1z, d2z = t.vd12(z)
	}
	psi := d1z*(z-a) - (fz - e.fa)
	if psi > 0 && iterate && hi-lo <= 1e-13*hi {
		z = hi
		fz, d1z, d2z = t.vd12(z)
		psi = d1z*(z-a) - (fz - e.fa)
	}
	for step := 1e-13 * z; psi > 0 && z < b; step *= 4 {
		z = min(b, z+step)
		fz, d1z, d2z = t.vd12(z)
		psi = d1z*(z-a) - (fz - e.fa)
	}
	e.z = z
	e.m = d1z
	e.d2z = d2z
	e.fa = fz - e.m*(z-a)
	return e
}

// tangentFrom0 is newEnvelope's last steps on a box [0, b) with b beyond the answer,
// from z = z0 with f, f', f” there: from z on, the first point past the tangency from the
// origin (ψ ≤ 0), and f, f', f” there.
func tangentFrom0(t *term, z, fz, d1z, d2z float64) (float64, float64, float64, float64) {
	fa := t.val(0)
	psi := d1z*z - (fz - fa)
	for step := 1e-13 * z; psi > 0; step *= 4 {
		z = z + step
		fz, d1z, d2z = t.vd12(z)
		psi = d1z*z - (fz - fa)
	}
	return z, fz, d1z, d2z
}

func (e *envelope) buildHull() {
	t := e.t
	// candidate points: a, the breakpoints strictly inside (a, b), b — in spend units.
	xs := []float64{e.a}
	for _, p := range t.px {
		if x := p / t.s; x > e.a && x < e.b {
			xs = append(xs, x)
		}
	}
	if e.b > e.a {
		xs = append(xs, e.b)
	}
	hx := make([]float64, 0, len(xs))
	hy := make([]float64, 0, len(xs))
	for _, x := range xs {
		y := t.val(x)
		// pop points that fall below the chord to the new point (monotone chain)
		for len(hx) >= 2 {
			x1, y1 := hx[len(hx)-2], hy[len(hy)-2]
			x2, y2 := hx[len(hx)-1], hy[len(hy)-1]
			if (y2-y1)*(x-x1) <= (y-y1)*(x2-x1) {
				hx, hy = hx[:len(hx)-1], hy[:len(hy)-1]
				continue
			}
			break
		}
		hx, hy = append(hx, x), append(hy, y)
	}
	hs := make([]float64, len(hx))
	for j := 0; j+1 < len(hx); j++ {
		hs[j] = (hy[j+1] - hy[j]) / (hx[j+1] - hx[j])
	}
	e.h = &hull{hx, hy, hs}
}

func (e *envelope) hullSegment(x float64) int {
	j := 0
	for j+1 < len(e.h.x)-1 && x >= e.h.x[j+1] {
		j++
	}
	return j
}

func (e *envelope) val(x float64) float64 {
	if e.h != nil {
		j := e.hullSegment(x)
		return e.h.y[j] + e.h.s[j]*(x-e.h.x[j])
	}
	if x < e.z {
		return e.fa + e.m*(x-e.a)
	}
	return e.t.val(x)
}

func (e *envelope) d1(x float64) float64 {
	if e.h != nil {
		return e.h.s[e.hullSegment(x)]
	}
	if x < e.z {
		return e.m
	}
	return e.t.d1(x)
}

func (e *envelope) d2(x float64) float64 {
	if e.h != nil || x < e.z {
		return 0
	}
	return e.t.d2(x)
}

// tight reports whether the envelope equals the curve at x (up to rounding).
func (e *envelope) gap(x float64) float64 {
	if e.h == nil && x >= e.z {
		return 0 // on the curve itself: val(x) − val(x)
	}
	return e.val(x) - e.t.val(x)
}

// argmax returns a maximiser of val(x) − lam·x over [a, b]. Where the maximisers form an
// interval (lam equal to a linear piece's slope) high chooses its right end, otherwise
// its left end. hint is a previous answer for the same term (0 for none).
func (e *envelope) argmax(lam float64, high bool, hint float64) float64 {
	x, _, _, _, _ := e.argmaxD2(lam, high, hint)
	return x
}

// argmaxD2 is argmax that also returns d2 and d3 at the maximiser when it lies strictly
// inside the box on the curve's smooth concave part, and 0 otherwise; and, where the maximiser
// is the curve's own stationary point clamped to the box, that point unclamped and d2
// there (xu, d2u; d2u = 0 where there is none).
func (e *envelope) argmaxD2(lam float64, high bool, hint float64) (x, d2, d3, xu, d2u float64) {
	x, d2, d3, _, xu, d2u, _, _ = e.argmaxD3(lam, high, hint)
	return
}

// argmaxD3 is argmaxD2 that also returns d4 at the maximiser (NaN where not known, like
// every d4 of invD1d4), d3 at the unclamped stationary point (d3u), and the envelope's
// value v at the maximiser where the inverse slope gave it (invD1v; NaN elsewhere).
func (e *envelope) argmaxD3(lam float64, high bool, hint float64) (x, d2, d3, d4, xu, d2u, d3u, v float64) {
	nan := math.NaN()
	if e.b <= e.a {
		return e.a, 0, 0, nan, 0, 0, 0, nan
	}
	if e.h != nil {
		for j := 0; j+1 < len(e.h.x); j++ {
			if e.h.s[j] < lam || (e.h.s[j] == lam && !high) {
				return e.h.x[j], 0, 0, nan, 0, 0, 0, nan
			}
		}
		return e.h.x[len(e.h.x)-1], 0, 0, nan, 0, 0, 0, nan
	}
	if e.z > e.a {
		if lam > e.m || (lam == e.m && !high) {
			return e.a, 0, 0, nan, 0, 0, 0, nan
		}
		if e.z >= e.b {
			return e.b, 0, 0, nan, 0, 0, 0, nan
		}
	}
	if e.t.kind == kindLinear || (e.t.kind == kindPower && e.t.alpha == 1) {
		slope := e.t.d1(e.a)
		if lam < slope || (lam == slope && high) {
			return e.b, 0, 0, nan, 0, 0, 0, nan
		}
		return e.a, 0, 0, nan, 0, 0, 0, nan
	}
	x, d2, d3, d4, v = e.t.invD1v(lam, hint)
	if d2 < 0 && x > e.z {
		xu, d2u, d3u = x, d2, d3
	}
	if x > e.z && x < e.b {
		return x, d2, d3, d4, xu, d2u, d3u, v // on the curve: the envelope's value is f's
	}
	return clamp(x, e.z, e.b), 0, 0, nan, xu, d2u, d3u, nan
}

func clamp(x, lo, hi float64) float64 {
	if x < lo {
		return lo
	}
	if x > hi {
		return hi
	}
	return x
}
