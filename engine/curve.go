package engine

import (
	"math"
	"sort"
)

type curveKind uint8

const (
	kindLinear curveKind = iota
	kindHill
	kindSaturation
	kindExponential
	kindPower
	kindLog
	kindLogistic
	kindPiecewise
)

// term is one response curve with its adstock folded in, as a function of spend x:
// val(x) = f(s·x) with s = 1/(1−decay). All methods are total: they return finite
// values for every x ≥ 0 except d1 at 0 for x^α-like curves with α < 1 (+Inf).
type term struct {
	kind  curveKind
	beta  float64
	alpha float64
	kappa float64
	k     float64
	x0    float64
	s     float64 // adstock multiplier

	// infl is the inflection point in spend units: the curve is convex on [0, infl]
	// and concave on [infl, ∞). 0 for concave curves, +Inf for convex ones.
	infl float64

	sig0 float64 // logistic: σ(−k·x0)

	// Hill with α > 1: the inflection in hillInvD1's variable u = ln(y/κ), and φ there
	// without its target term, so that the inflection test costs no exponential
	uInfl, phiInfl float64
	rInfl          float64 // e^((α−1)u/2)/(1 + e^(αu)) at uInfl

	// Hill with α > 1: the tangency point from the origin, z0 = κ(α−1)^(1/α)/s (where
	// f'(z0)·z0 = f(z0)), with f(z0) and f'(z0): every envelope of a box starting at 0
	// (the root's, and the left children's) has its bridge there, so newEnvelope reads
	// them instead of computing three powers per box. hasZ0 is false when z0 is not
	// finite.
	z0, fz0, d1z0, d2z0 float64
	hasZ0               bool
	// zt, fzt, d1zt, d2zt: the envelope's own tangency point from the origin, z0 or a
	// few ulps past it (where the tangent line no longer passes below the origin through
	// rounding), as newEnvelope steps to it from z0 on a box [0, b] with b > zt: the same
	// steps here, once, so the same bits.
	zt, fzt, d1zt, d2zt float64

	// piecewise: breakpoints in curve units including (0,0), slopes between them; the
	// slope after the last point is 0.
	px, py, ps []float64
	concavePW  bool
}

func newTerm(c *Curve, a *Adstock) *term {
	t := &term{s: 1}
	if a != nil && a.Decay != nil {
		t.s = 1 / (1 - *a.Decay)
	}
	get := func(p *float64) float64 {
		if p == nil {
			return 0
		}
		return *p
	}
	t.beta, t.alpha, t.kappa, t.k, t.x0 = get(c.Beta), get(c.Alpha), get(c.Kappa), get(c.K), get(c.X0)
	switch c.Type {
	case "linear":
		t.kind = kindLinear
	case "hill":
		t.kind = kindHill
		if t.alpha > 1 {
			t.infl = t.kappa * math.Pow((t.alpha-1)/(t.alpha+1), 1/t.alpha) / t.s
			// φ(u) + target at the inflection, with phi3's own expressions (v < 0 there)
			a := t.alpha
			t.uInfl = math.Log((a-1)/(a+1)) / a
			sp := math.Log1p(math.Exp(-math.Abs(a * t.uInfl)))
			t.phiInfl = (a-1)*t.uInfl - 2*sp
			// e^(φ/2 + target/2) at the inflection, for hillInvD1Exp's test
			t.rInfl = math.Exp((a-1)*t.uInfl/2) / (1 + math.Exp(a*t.uInfl))
			// the same expressions as newEnvelope's, so the same bits
			if z0 := t.kappa * math.Pow(t.alpha-1, 1/t.alpha) / t.s; z0 > 0 && !math.IsInf(z0, 1) {
				t.z0, t.hasZ0 = z0, true
				t.fz0, t.d1z0, t.d2z0 = t.vd12(z0)
				t.zt, t.fzt, t.d1zt, t.d2zt = tangentFrom0(t, z0, t.fz0, t.d1z0, t.d2z0)
			}
		}
	case "saturation":
		t.kind = kindSaturation
	case "exponential":
		t.kind = kindExponential
	case "power":
		t.kind = kindPower
		if t.alpha > 1 {
			t.infl = math.Inf(1)
		}
	case "log":
		t.kind = kindLog
	case "logistic":
		t.kind = kindLogistic
		t.sig0 = sigmoid(-t.k * t.x0)
		if t.x0 > 0 {
			t.infl = t.x0 / t.s
		}
	case "piecewise":
		t.kind = kindPiecewise
		t.px = append(t.px, 0)
		t.py = append(t.py, 0)
		for _, p := range c.Points {
			t.px = append(t.px, p[0])
			t.py = append(t.py, p[1])
		}
		t.concavePW = true
		for j := 0; j+1 < len(t.px); j++ {
			t.ps = append(t.ps, (t.py[j+1]-t.py[j])/(t.px[j+1]-t.px[j]))
			if j > 0 && t.ps[j] > t.ps[j-1] {
				t.concavePW = false
			}
		}
		t.ps = append(t.ps, 0)
	}
	return t
}

// concave reports whether the term is concave on [0, ∞).
func (t *term) concave() bool {
	if t.kind == kindPiecewise {
		return t.concavePW
	}
	return t.infl == 0
}

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// sigmoidSlope is σ(z)(1−σ(z)) computed without cancellation.
func sigmoidSlope(z float64) float64 {
	e := math.Exp(-math.Abs(z))
	return e / ((1 + e) * (1 + e))
}

// val is the response at spend x.
func (t *term) val(x float64) float64 {
	y := t.s * x
	switch t.kind {
	case kindLinear:
		return t.beta * y
	case kindHill:
		if y <= 0 {
			return 0
		}
		u := y / t.kappa
		if u <= 1 {
			r := pow(u, t.alpha)
			return t.beta * r / (1 + r)
		}
		q := pow(1/u, t.alpha)
		return t.beta / (1 + q)
	case kindSaturation:
		return t.beta * y / (y + t.kappa)
	case kindExponential:
		return -t.beta * math.Expm1(-y/t.kappa)
	case kindPower:
		return t.beta * pow(y, t.alpha)
	case kindLog:
		return t.beta * math.Log1p(y/t.kappa)
	case kindLogistic:
		return t.beta * (sigmoid(t.k*(y-t.x0)) - t.sig0)
	case kindPiecewise:
		j := t.segment(y)
		return t.py[j] + t.ps[j]*(y-t.px[j])
	}
	return 0
}

// segment returns j with px[j] <= y < px[j+1] (the last index past the last point).
func (t *term) segment(y float64) int {
	j := sort.SearchFloat64s(t.px, y)
	if j < len(t.px) && t.px[j] == y {
		return j
	}
	return j - 1
}

// d1 is the derivative at x (the right derivative at piecewise breakpoints).
func (t *term) d1(x float64) float64 {
	y := t.s * x
	var g float64
	switch t.kind {
	case kindLinear:
		g = t.beta
	case kindHill:
		if y <= 0 {
			switch {
			case t.alpha > 1:
				return 0
			case t.alpha == 1:
				return t.s * t.beta / t.kappa
			default:
				return math.Inf(1)
			}
		}
		u := y / t.kappa
		c := t.beta * t.alpha / t.kappa
		if u <= 1 {
			r := pow(u, t.alpha)
			g = c * (r / u) / ((1 + r) * (1 + r))
		} else {
			q := pow(1/u, t.alpha)
			g = c * (q / u) / ((1 + q) * (1 + q))
		}
	case kindSaturation:
		d := y + t.kappa
		g = t.beta * t.kappa / (d * d)
	case kindExponential:
		g = t.beta / t.kappa * math.Exp(-y/t.kappa)
	case kindPower:
		if y <= 0 {
			switch {
			case t.alpha > 1:
				return 0
			case t.alpha == 1:
				return t.s * t.beta
			default:
				return math.Inf(1)
			}
		}
		g = t.alpha * t.beta * pow(y, t.alpha-1)
	case kindLog:
		g = t.beta / (t.kappa + y)
	case kindLogistic:
		g = t.beta * t.k * sigmoidSlope(t.k*(y-t.x0))
	case kindPiecewise:
		g = t.ps[t.segment(y)]
	}
	return t.s * g
}

// d2 is the second derivative at x (0 on linear pieces).
func (t *term) d2(x float64) float64 {
	y := t.s * x
	var g float64
	switch t.kind {
	case kindHill:
		if y <= 0 {
			return 0
		}
		u := y / t.kappa
		c := t.beta * t.alpha / (t.kappa * t.kappa)
		a := t.alpha
		if u <= 1 {
			r := pow(u, a)
			g = c * ((a - 1) - (a+1)*r) * (r / (u * u)) / ((1 + r) * (1 + r) * (1 + r))
		} else {
			q := pow(1/u, a)
			g = c * ((a-1)*q - (a + 1)) * q / (u * u * (1 + q) * (1 + q) * (1 + q))
		}
	case kindSaturation:
		d := y + t.kappa
		g = -2 * t.beta * t.kappa / (d * d * d)
	case kindExponential:
		g = -t.beta / (t.kappa * t.kappa) * math.Exp(-y/t.kappa)
	case kindPower:
		if y <= 0 {
			return 0
		}
		g = t.alpha * (t.alpha - 1) * t.beta * pow(y, t.alpha-2)
	case kindLog:
		d := t.kappa + y
		g = -t.beta / (d * d)
	case kindLogistic:
		z := t.k * (y - t.x0)
		g = t.beta * t.k * t.k * sigmoidSlope(z) * (1 - 2*sigmoid(z))
	}
	return t.s * t.s * g
}

// sup is the curve's supremum as spend grows (+Inf for unbounded curves).
func (t *term) sup() float64 {
	switch t.kind {
	case kindHill, kindSaturation, kindExponential:
		return t.beta
	case kindLogistic:
		return t.beta * (1 - t.sig0)
	case kindPiecewise:
		return t.py[len(t.py)-1]
	case kindLinear, kindPower, kindLog:
		if t.beta == 0 {
			return 0
		}
	}
	return math.Inf(1)
}

// invD1 returns the spend x ≥ infl at which d1(x) = lam on the concave part of a smooth
// curve, +Inf when the slope never falls to lam, and infl when it is already below lam
// there. hint is a previous answer used to start the iteration (0 for none). Linear and
// piecewise curves are handled by their callers.
func (t *term) invD1(lam, hint float64) float64 {
	x, _, _ := t.invD1d2(lam, hint)
	return x
}

// invD1d2 is invD1 that also returns the second and third derivatives d2(x), d3(x) at
// the answer, from the slope lam it has there (0 when the answer is not an interior
// solution: +Inf, infl).
func (t *term) invD1d2(lam, hint float64) (float64, float64, float64) {
	x, d2, d3, _ := t.invD1d4(lam, hint)
	return x, d2, d3
}

// invD1d4 is invD1d2 that also returns the fourth derivative d4(x), NaN where it is not
// known to nearly full precision (or d2 not to ~1e-13, which a third-order step needs).
func (t *term) invD1d4(lam, hint float64) (float64, float64, float64, float64) {
	x, d2, d3, d4, _ := t.invD1v(lam, hint)
	return x, d2, d3, d4
}

// invD1v is invD1d4 that also returns the curve's value val(x) at an interior answer where
// the inverse gets it without another power (Hill curves), to within a few ulps; NaN
// elsewhere.
func (t *term) invD1v(lam, hint float64) (float64, float64, float64, float64, float64) {
	nan := math.NaN()
	if t.beta == 0 {
		return t.infl, 0, 0, nan, nan
	}
	if lam <= 0 {
		return math.Inf(1), 0, 0, nan, nan
	}
	fv := nan
	m := lam / t.s           // slope wanted in curve units
	var y, g, g3, g4 float64 // g, g3, g4: the second to fourth derivatives at y, in curve units
	switch t.kind {
	case kindSaturation:
		y = math.Sqrt(t.beta*t.kappa/m) - t.kappa
		g = -2 * m / (y + t.kappa)
		g3 = -3 * g / (y + t.kappa)
		g4 = -4 * g3 / (y + t.kappa)
	case kindExponential:
		y = t.kappa * math.Log(t.beta/(t.kappa*m))
		g = -m / t.kappa
		g3 = -g / t.kappa
		g4 = -g3 / t.kappa
	case kindLog:
		y = t.beta/m - t.kappa
		g = -m / (t.kappa + y)
		g3 = -2 * g / (t.kappa + y)
		g4 = -3 * g3 / (t.kappa + y)
	case kindPower: // α < 1 here: convex powers never get this far
		if t.alpha == 1 {
			if m < t.beta {
				return math.Inf(1), 0, 0, nan, nan
			}
			return 0, 0, 0, nan, nan
		}
		y = pow(m/(t.alpha*t.beta), 1/(t.alpha-1))
		g = (t.alpha - 1) * m / y
		g3 = (t.alpha - 2) * g / y
		g4 = (t.alpha - 3) * g3 / y
	case kindLogistic:
		c := m / (t.beta * t.k)
		if c >= 0.25 {
			return t.infl, 0, 0, nan, nan
		}
		sq := math.Sqrt(1 - 4*c)
		hi := (1 + sq) / 2     // σ on the concave branch
		lo := 2 * c / (1 + sq) // 1−σ, without cancellation
		y = t.x0 + (math.Log(hi)-math.Log(lo))/t.k
		g = m * t.k * (lo - hi)
		g3 = m * t.k * t.k * (1 - 6*hi*lo)
		g4 = m * t.k * t.k * t.k * (lo - hi) * (1 - 12*hi*lo)
	case kindHill:
		var d1, d2, d3 float64
		y, d1, d2, d3, fv = t.hillInvD1(m, hint*t.s)
		g = m * d1 / y
		g3 = m * (d1*d1 + d2 - d1) / (y * y)
		// NaN where hillInvD1 does not know φ‴ (nor φ′ to full precision)
		g4 = m * (d1*(d1*d1+3*d2-3*d1+2) + d3 - 3*d2) / (y * y * y)
	default:
		return t.infl, 0, 0, nan, nan
	}
	x := y / t.s
	if !(x > t.infl) { // also catches NaN
		return t.infl, 0, 0, nan, nan
	}
	if !(g < 0) || math.IsInf(x, 1) {
		return x, 0, 0, nan, nan
	}
	s2 := t.s * t.s
	return x, s2 * g, s2 * t.s * g3, s2 * s2 * g4, fv
}

// hillInvD1 solves f'(y) = m on the concave part of a Hill curve. With u = ln(y/κ) the
// equation is φ(u) = (α−1)u − 2·softplus(αu) − ln(mκ/(βα)) = 0, and φ is concave and
// decreasing past the inflection, so Halley's iteration (cubic convergence; φ's second
// derivative comes from the same exponential as φ) kept inside a shrinking bracket
// converges quickly and surely. It also returns φ′(u) = d ln f′/d ln y and φ″(u) at the
// answer, from which the caller gets the curve's second and
// third derivatives, m·φ′/y and m·(φ′² + φ″ − φ′)/y², without another power.
//
// v is f(y) where the iteration gets it without another power (NaN elsewhere).
func (t *term) hillInvD1(m, hintY float64) (y, d1, d2, d3, v float64) {
	a := t.alpha
	if a == 1 { // β·y/(y+κ): f'(y) = βκ/(y+κ)²
		y := math.Sqrt(t.beta*t.kappa/m) - t.kappa
		w := y / (y + t.kappa) // φ′ = −2w, φ″ = −2w(1−w), φ‴ = −2w(1−w)(1−2w)
		return y, -2 * w, -2 * w * t.kappa / (y + t.kappa), -2 * w * (1 - w) * (1 - 2*w), t.beta * w
	}
	if a >= hillExpMinAlpha && a <= hillExpMaxAlpha {
		if y, d1, d2, d3, v, ok := t.hillInvD1ExpV(m, hintY); ok {
			return y, d1, d2, d3, v
		}
	}
	y, d1, d2 = t.hillInvD1Log(m, hintY)
	return y, d1, d2, math.NaN(), math.NaN()
}

// The range of α over which hillInvD1Exp is used; hillInvD1Log takes the rest (and any
// case the faster iteration gives up on).
const (
	hillExpMinAlpha = 1.0 / 16
	hillExpMaxAlpha = 16
)

// hillInvD1Exp is hillInvD1 by an iteration that needs no logarithm: it solves
// Q(u) = e^(φ(u)/2) − 1 = 0, which has the same root and sign as φ, where
// e^(φ/2) = K·e^((α−1)u/2)/(1 + e^(αu)) with K = e^(−target/2) = √(βα/(mκ)). The two
// exponentials of each step are independent, so that the processor overlaps them, where
// φ's exponential and logarithm follow each other: a step costs about half as long. Q
// decreases wherever φ does (Q′ = (Q+1)·φ′/2), and Q's derivatives come from φ's. Halley's
// steps inside the bracket converge cubically; the iteration stops once the error its last
// step leaves, estimated from Halley's error constant at the iterate, is below rounding.
// ok is false where it gives up (an exponent out of range, no convergence), and the
// caller falls back on hillInvD1Log.
func (t *term) hillInvD1Exp(m, hintY float64) (y, d1, d2, d3 float64, ok bool) {
	y, d1, d2, d3, _, ok = t.hillInvD1ExpV(m, hintY)
	return
}

// hillInvD1ExpV is hillInvD1Exp that also returns f(y), from the exponential of αu the
// last step has (NaN at the inflection).
func (t *term) hillInvD1ExpV(m, hintY float64) (y, d1, d2, d3, v float64, ok bool) {
	a := t.alpha
	K := math.Sqrt(t.beta * a / (m * t.kappa))
	if !(K > 1e-150 && K < 1e150) {
		return 0, 0, 0, 0, 0, false
	}
	lo, hi := math.Inf(-1), math.Inf(1)
	if a > 1 {
		// φ at the inflection is ≤ 0 where Q is: K·e^((α−1)u/2) ≤ 1 + e^(αu) there
		lo = t.uInfl
		if K*t.rInfl <= 1 {
			return t.infl * t.s, 0, 0, 0, math.NaN(), true
		}
	}
	if hintY > 0 && !math.IsInf(hintY, 1) && (a < 1 || hintY*(1-1e-2) > t.infl*t.s) {
		if y, d1, d2, d3, v, ok := t.hillPolish(K, hintY); ok {
			return y, d1, d2, d3, v, true
		}
	}
	c := (a - 1) / 2
	var u float64
	if hintY > 0 && !math.IsInf(hintY, 1) {
		u = math.Log(hintY / t.kappa)
	} else {
		// Near the knee φ(u) = φ(0) − u − α²u²/4 + O(α⁴u⁴/96) (φ‴(0) = 0), whose root
		// is within ~1e-3 of φ's for |u| ≤ 1/2; further out, the large-spend asymptote
		// f'(y) ≈ (βα/κ)·(y/κ)^(−α−1), or below the knee (α < 1) (y/κ)^(α−1).
		lnK := math.Log(K)
		phi0 := 2*lnK - 2*math.Ln2
		u = math.Inf(1)
		if d := 1 + a*a*phi0; d >= 0 {
			u = 2 * phi0 / (1 + math.Sqrt(d))
		}
		if !(math.Abs(u) <= 0.75) || u <= lo {
			u = 2 * lnK / (a + 1)
			if a < 1 && u > 0 {
				if w := -2 * lnK / (a - 1); w < 0 {
					u = w
				}
			}
		}
	}
	if u <= lo {
		u = lo + 1
	}
	for i := 0; ; i++ {
		if i == 60 || !(math.Abs(u) <= 600/max(a, 1)) {
			return 0, 0, 0, 0, 0, false
		}
		// R = e^(φ/2) and σ = σ(αu), scaled so that no exponential overflows; E is
		// e^(−αu) (u > 0) or e^(αu), for f at the answer
		var R, sg, E float64
		pos := u > 0
		if pos {
			E = math.Exp(-a * u)
			inv := 1 / (1 + E)
			R = K * math.Exp(-(a+1)*u/2) * inv
			sg = inv
		} else {
			E = math.Exp(a * u)
			inv := 1 / (1 + E)
			R = K * math.Exp(c*u) * inv
			sg = E * inv
		}
		// φ's derivatives, then Q's: Q = e^g − 1 with g = φ/2
		s1 := sg * (1 - sg)
		f1 := (a - 1) - 2*a*sg
		f2 := -2 * a * a * s1
		g1, g2 := f1/2, f2/2
		q := R - 1
		q1 := R * g1
		q2 := R * (g2 + g1*g1)
		if q > 0 {
			lo = u
		} else {
			hi = u
		}
		f3 := f2 * a * (1 - 2*sg)
		if q == 0 {
			return t.hillAt(u, 0, f1, f2, f3, 0, 0, E, pos)
		}
		next := u - q/q1
		if h := u - 2*q*q1/(2*q1*q1-q*q2); h > lo && h < hi {
			next = h
			if d := h - u; math.Abs(d*q2/q1) <= 1e-2 {
				// Near the root: Q's Taylor polynomial of degree 4 at u has its root within
				// Q⁽⁵⁾·d⁵/(120·Q′) of Q's. Where that is below rounding, the polynomial's
				// root, from Halley's step by Newton's method, is the answer without another
				// exponential.
				f4 := f2 * a * a * (1 - 6*s1)
				f5 := f3 * a * a * (1 - 12*s1)
				g3, g4, g5 := f3/2, f4/2, f5/2
				q5 := R * (g5 + 5*g1*g4 + 10*g2*g3 + g1*(10*g1*g3+15*g2*g2) + g1*g1*g1*(10*g2+g1*g1))
				ad := math.Abs(d)
				if 8*math.Abs(q5/q1)*ad*ad*ad*ad*ad/120 <= 1e-16*max(1, math.Abs(h)) {
					q3 := R * (g3 + g1*(3*g2+g1*g1))
					q4 := R * (g4 + 4*g1*g3 + 3*g2*g2 + g1*g1*(6*g2+g1*g1))
					for k := 0; k < 2; k++ {
						p := q + d*(q1+d*(q2/2+d*(q3/6+d*q4/24)))
						dp := q1 + d*(q2+d*(q3/2+d*q4/6))
						d -= p / dp
					}
					if u+d > lo && u+d < hi {
						return t.hillAt(u, d, f1, f2, f3, f4, f5, E, pos)
					}
				}
			}
		}
		if !(next > lo && next < hi) { // the step left the bracket: bisect instead
			switch {
			case math.IsInf(hi, 1):
				next = lo + max(1, math.Abs(lo))
			case math.IsInf(lo, -1):
				next = hi - max(1, math.Abs(hi))
			default:
				next = lo + (hi-lo)/2
			}
		}
		if math.Abs(next-u) <= 2e-16*max(1, math.Abs(u)) || next == lo || next == hi {
			return t.hillAt(u, next-u, f1, f2, f3, 0, 0, E, pos)
		}
		u = next
	}
}

// hillPolish is hillInvD1Exp's answer when the hint is already within about 1e-3 of it:
// one step of the iteration at u = ln(y/κ), with e^(αu) from one power of y (and
// e^((α−1)u/2) from its square root), and the root of Q's Taylor polynomial there. ok is
// false when the step is not small enough for that polynomial to be exact to rounding, or
// would leave the concave part (the caller then iterates from the hint).
func (t *term) hillPolish(K, y float64) (float64, float64, float64, float64, float64, bool) {
	a := t.alpha
	w := y / t.kappa
	var E, sg float64
	if w > 1 {
		E = pow(1/w, a) // e^(−αu)
	} else {
		E = pow(w, a) // e^(αu)
	}
	inv := 1 / (1 + E)
	R := K * math.Sqrt(E/w) * inv
	if w > 1 {
		sg = inv
	} else {
		sg = E * inv
	}
	s1 := sg * (1 - sg)
	f1 := (a - 1) - 2*a*sg
	f2 := -2 * a * a * s1
	g1, g2 := f1/2, f2/2
	q := R - 1
	q1 := R * g1
	q2 := R * (g2 + g1*g1)
	den := 2*q1*q1 - q*q2
	if !(q1 < 0) || !(den > 0) {
		return 0, 0, 0, 0, 0, false
	}
	d := -2 * q * q1 / den
	ad := math.Abs(d)
	if !(ad <= 1e-3) || math.Abs(d*q2/q1) > 1e-2 {
		return 0, 0, 0, 0, 0, false
	}
	f3 := f2 * a * (1 - 2*sg)
	f4 := f2 * a * a * (1 - 6*s1)
	f5 := f3 * a * a * (1 - 12*s1)
	g3, g4, g5 := f3/2, f4/2, f5/2
	q5 := R * (g5 + 5*g1*g4 + 10*g2*g3 + g1*(10*g1*g3+15*g2*g2) + g1*g1*g1*(10*g2+g1*g1))
	// u's own size (|ln w|, for the tolerance) need not be exact: 1 + |w − 1/w| bounds it
	if 8*math.Abs(q5/q1)*ad*ad*ad*ad*ad/120 > 1e-16 {
		return 0, 0, 0, 0, 0, false
	}
	q3 := R * (g3 + g1*(3*g2+g1*g1))
	q4 := R * (g4 + 4*g1*g3 + 3*g2*g2 + g1*g1*(6*g2+g1*g1))
	for k := 0; k < 2; k++ {
		p := q + d*(q1+d*(q2/2+d*(q3/6+d*q4/24)))
		dp := q1 + d*(q2+d*(q3/2+d*q4/6))
		d -= p / dp
	}
	if !(math.Abs(d) <= 1e-3) {
		return 0, 0, 0, 0, 0, false
	}
	y *= 1 + d*(1+d*(0.5+d*(1.0/6+d*(1.0/24+d/120))))
	if t.alpha > 1 && !(y > t.infl*t.s) {
		return 0, 0, 0, 0, 0, false
	}
	return y, f1 + d*(f2+d*(f3/2+d*(f4/6+d*f5/24))), f2 + d*(f3+d*(f4/2+d*f5/6)), f3 + d*(f4+d*f5/2),
		t.hillVal(E, w > 1, d), true
}

// hillAt finishes hillInvD1Exp at u + d, from φ′…φ⁽⁵⁾ at u (those not known 0): y =
// κ·e^(u+d), from e^u with e^d in series where d is small, and φ′, φ″, φ‴ at u + d in
// series. d is either tiny or, from the polish, small enough for the series to be exact
// to rounding.
func (t *term) hillAt(u, d, f1, f2, f3, f4, f5, E float64, pos bool) (y, d1, d2, d3, v float64, ok bool) {
	if ad := math.Abs(d); ad <= 1e-3 {
		y = t.kappa * (math.Exp(u) * (1 + d*(1+d*(0.5+d*(1.0/6+d*(1.0/24+d/120))))))
	} else {
		y = t.kappa * math.Exp(u+d)
	}
	return y, f1 + d*(f2+d*(f3/2+d*(f4/6+d*f5/24))), f2 + d*(f3+d*(f4/2+d*f5/6)), f3 + d*(f4+d*f5/2), t.hillVal(E, pos, d), true
}

// hillVal is f at u + d from E = e^(−αu) (pos) or e^(αu) at u: β/(1 + E·e^(−αd)) or
// β·E′/(1 + E′) with E′ = E·e^(αd), e^(±αd) from its Taylor polynomial of degree 7 where
// |αd| ≤ 0.02 (to below 1e-19).
func (t *term) hillVal(E float64, pos bool, d float64) float64 {
	w := t.alpha * d
	if pos {
		w = -w
	}
	var ex float64
	if math.Abs(w) <= 0.02 {
		ex = 1 + w*(1+w/2*(1+w/3*(1+w/4*(1+w/5*(1+w/6*(1+w/7))))))
	} else {
		ex = math.Exp(w)
	}
	E *= ex
	if pos {
		return t.beta / (1 + E)
	}
	return t.beta * (E / (1 + E))
}

// hillInvD1Log is hillInvD1 by Halley's iteration on φ itself (each step an exponential
// and then a logarithm), for every α.
func (t *term) hillInvD1Log(m, hintY float64) (float64, float64, float64) {
	a := t.alpha
	target := math.Log(m * t.kappa / (t.beta * a))
	phi3 := func(u float64) (float64, float64, float64) {
		// softplus(v), σ(v) and σ'(v) = σ(1−σ) share one exponential
		v := a * u
		e := math.Exp(-math.Abs(v))
		sp, sg := math.Log1p(e), 1/(1+e)
		slope := e * sg * sg
		if v > 0 {
			sp += v
		} else {
			sg = e * sg
		}
		return (a-1)*u - 2*sp - target, (a - 1) - 2*a*sg, -2 * a * a * slope
	}
	lo := math.Inf(-1)
	if a > 1 {
		lo = t.uInfl
		if t.phiInfl-target <= 0 { // φ at the inflection, as phi3 would give it
			return t.infl * t.s, 0, 0
		}
	}
	hi := math.Inf(1)
	// Start from the hint or the large-spend asymptote f'(y) ≈ (βα/κ)·(y/κ)^(−α−1).
	u := -target / (a + 1)
	if hintY > 0 && !math.IsInf(hintY, 1) {
		u = math.Log(hintY / t.kappa)
	}
	if a < 1 && u > 0 {
		// below the knee the asymptote is (y/κ)^(α−1)
		if w := target / (a - 1); w < 0 {
			u = w
		}
	}
	if u <= lo {
		u = lo + 1
	}
	// Stopping: |φ''| ≤ α²/2 and |φ'''| ≤ 2α³·max σ(1−σ)(1−2σ) = α³·√3/9, so once a
	// Halley step δ is small next to |φ'|/α², the error it leaves is at most about
	// ((α²/(4|φ'|))² + α³·√3/(54|φ'|))·|δ|³. When that is below rounding, the step is
	// taken and the iteration stops.
	const tol = 1e-16
	k3 := a * a * a * (math.Sqrt(3) / 54)
	df, ddf, du := 0.0, 0.0, 0.0 // φ′, φ″ at the last iterate, and the step taken from it
	for i := 0; i < 100; i++ {
		f, d1, d2f := phi3(u)
		df, ddf, du = d1, d2f, 0
		if f > 0 {
			lo = u
		} else {
			hi = u
		}
		if f == 0 {
			break
		}
		next := u - f/df
		halley := false
		if h := u - 2*f*df/(2*df*df-f*d2f); h > lo && h < hi {
			next, halley = h, true
		}
		if !(next > lo && next < hi) { // the step left the bracket: bisect instead
			switch {
			case math.IsInf(hi, 1):
				next = lo + max(1, math.Abs(lo))
			case math.IsInf(lo, -1):
				next = hi - max(1, math.Abs(hi))
			default:
				next = lo + (hi-lo)/2
			}
		}
		d, ad := math.Abs(next-u), math.Abs(df)
		k := a * a / (4 * ad)
		du = next - u
		if (halley && k*d <= 1e-3 && (k*k+k3/ad)*d*d*d <= tol*max(1, math.Abs(next))) ||
			d <= 2e-16*max(1, math.Abs(u)) || next == lo || next == hi {
			u = next
			break
		}
		u = next
	}
	// φ′ carried over the last step to first order (its error, ~φ‴·du²/2, is far below
	// what its callers need); φ″ is kept from the last iterate.
	return t.kappa * math.Exp(u), df + ddf*du, ddf
}

func softplus(v float64) float64 {
	if v > 0 {
		return v + math.Log1p(math.Exp(-v))
	}
	return math.Log1p(math.Exp(v))
}

// pow is math.Pow(x, y) for the arguments the curves use (x > 0 finite, y finite) by
// math.Pow's own steps without its special-case tests and calls, so it returns the same
// bits (checked against math.Pow in the tests); any other argument goes to math.Pow.
func pow(x, y float64) float64 {
	ay := math.Abs(y)
	if !(x > 0) || x == 1 || x > math.MaxFloat64 || y == 0 || y == 1 || ay == 0.5 || !(ay < 1<<52) {
		return math.Pow(x, y)
	}
	yi := math.Trunc(ay)
	yf := ay - yi
	a1 := 1.0
	if yf != 0 {
		if yf > 0.5 {
			yf--
			yi++
		}
		a1 = math.Exp(yf * math.Log(x))
	}
	ae := 0
	if yi != 0 && yi <= 16 {
		// x^yi by the same squarings and products as below, on x itself rather than its
		// mantissa: they differ from those only by exact powers of two, so the bits are the
		// same, as long as every intermediate stays a normal number — which x's binary
		// exponent bounds (|e|·2·yi ≤ 960).
		e := int(math.Float64bits(x)>>52&0x7ff) - 1023
		if e != -1023 && (e < 0 && -e*int(yi) <= 480 || e >= 0 && e*int(yi) <= 480) {
			p := x
			for i := int64(yi); i != 0; i >>= 1 {
				if i&1 == 1 {
					a1 *= p
				}
				p *= p
			}
			if y < 0 {
				a1 = 1 / a1
			}
			return a1
		}
	}
	if yi != 0 {
		x1, xe := math.Frexp(x)
		for i := int64(yi); i != 0; i >>= 1 {
			if xe < -1<<12 || 1<<12 < xe {
				ae += xe
				break
			}
			if i&1 == 1 {
				a1 *= x1
				ae += xe
			}
			x1 *= x1
			xe <<= 1
			if x1 < .5 {
				x1 += x1
				xe--
			}
		}
	}
	if y < 0 {
		a1 = 1 / a1
		ae = -ae
	}
	if ae == 0 {
		return a1
	}
	return math.Ldexp(a1, ae)
}

// vd1 returns val(x) and d1(x), sharing a Hill curve's power like vd12.
func (t *term) vd1(x float64) (v, g1 float64) {
	if t.kind != kindHill || !(t.s*x > 0) {
		return t.val(x), t.d1(x)
	}
	v, g1, _ = t.vd12(x)
	return v, g1
}

// vd12 returns val(x), d1(x) and d2(x). For Hill curves the three share one power, with
// the same expressions and so the same bits as val, d1 and d2 called apart.
func (t *term) vd12(x float64) (v, g1, g2 float64) {
	y := t.s * x
	if t.kind != kindHill || !(y > 0) {
		return t.val(x), t.d1(x), t.d2(x)
	}
	u := y / t.kappa
	a := t.alpha
	c1 := t.beta * t.alpha / t.kappa
	c2 := t.beta * t.alpha / (t.kappa * t.kappa)
	if u <= 1 {
		r := pow(u, a)
		v = t.beta * r / (1 + r)
		g1 = c1 * (r / u) / ((1 + r) * (1 + r))
		g2 = c2 * ((a - 1) - (a+1)*r) * (r / (u * u)) / ((1 + r) * (1 + r) * (1 + r))
	} else {
		q := pow(1/u, a)
		v = t.beta / (1 + q)
		g1 = c1 * (q / u) / ((1 + q) * (1 + q))
		g2 = c2 * ((a-1)*q - (a + 1)) * q / (u * u * (1 + q) * (1 + q) * (1 + q))
	}
	return v, t.s * g1, t.s * t.s * g2
}
