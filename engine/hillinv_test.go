package engine

import (
	"math"
	"math/rand"
	"testing"
)

// The exponential-only iteration of hillInvD1 must find the same root as the iteration on
// φ itself, to within rounding, with and without a hint, on both sides of the knee.
func TestHillInvD1ExpMatchesLog(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	worst, n, fellBack := 0.0, 0, 0
	for k := 0; k < 200000; k++ {
		a := math.Exp(rng.Float64()*math.Log(hillExpMaxAlpha*hillExpMaxAlpha)) / hillExpMaxAlpha
		if k%5 == 0 {
			a = 1.5 + 1.5*rng.Float64()
		}
		if a == 1 {
			continue
		}
		tm := newTerm(&Curve{Type: "hill", Beta: ptr(math.Exp(rng.Float64() * 14)), Alpha: ptr(a), Kappa: ptr(math.Exp(rng.Float64() * 12))},
			&Adstock{Type: "geometric", Decay: ptr(0.8 * rng.Float64())})
		// a slope between the largest one and one far out on the tail
		y0 := tm.kappa * math.Exp(rng.NormFloat64()*3)
		m := tm.d1(y0/tm.s) / tm.s
		if !(m > 0) || math.IsInf(m, 0) {
			continue
		}
		hint := 0.0
		if k%2 == 0 {
			hint = y0 * math.Exp(rng.NormFloat64()*0.01)
		}
		ye, d1e, d2e, _, ok := tm.hillInvD1Exp(m, hint)
		if !ok {
			fellBack++
			continue
		}
		yl, d1l, d2l := tm.hillInvD1Log(m, hint)
		n++
		if ye == tm.infl*tm.s || yl == tm.infl*tm.s {
			if ye != yl {
				t.Fatalf("α=%v m=%v: inflection answers differ: exp %v, log %v", a, m, ye, yl)
			}
			continue
		}
		rel := math.Abs(ye-yl) / yl
		// the root's conditioning: |δy/y| ≈ ε·(α|u| + |target|)/|φ′|
		u := math.Log(yl / tm.kappa)
		tol := 8e-16 * (4 + a*math.Abs(u) + math.Abs(math.Log(m*tm.kappa/(tm.beta*a)))) / math.Max(math.Abs(d1l), 1e-14)
		if rel > tol {
			t.Fatalf("α=%v β=%v κ=%v m=%v hint=%v: exp gives y=%v, log %v (rel %.3g > %.3g)", a, tm.beta, tm.kappa, m, hint, ye, yl, rel, tol)
		}
		worst = math.Max(worst, rel/tol)
		// φ′ is exact to second order in the last step, φ″ to first order
		if math.Abs(d1e-d1l) > 1e-9*math.Max(1, math.Abs(d1l)) || math.Abs(d2e-d2l) > 1e-4*math.Max(1, math.Abs(d2l)) {
			t.Fatalf("α=%v m=%v: derivatives differ: exp %v %v, log %v %v", a, m, d1e, d2e, d1l, d2l)
		}
	}
	if fellBack > n/100 {
		t.Fatalf("the exponential iteration gave up on %d of %d cases", fellBack, n+fellBack)
	}
	t.Logf("%d cases, worst error %.3g of the tolerance, %d fell back", n, worst, fellBack)
}

func ptr(v float64) *float64 { return &v }

func TestExpModel(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for k := 0; k < 1_000_000; k++ {
		v := rng.NormFloat64() * 20
		if k%10 == 0 {
			v = rng.Float64()*1400 - 700
		}
		if got, want := expModel(v), math.Exp(v); math.Abs(got-want) > 1e-9*want {
			t.Fatalf("expModel(%v) = %v, math.Exp gives %v", v, got, want)
		}
	}
}

// The value the inverse slope returns with its answer (invD1v) must be the curve's value
// there to within a few ulps: the dual bound adds it up in place of val.
func TestInvD1ValueMatchesVal(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	worst, n := 0.0, 0
	for k := 0; k < 100000; k++ {
		a := math.Exp(rng.Float64()*math.Log(hillExpMaxAlpha*hillExpMaxAlpha)) / hillExpMaxAlpha
		if k%3 == 0 {
			a = 1.5 + 1.5*rng.Float64()
		}
		if k%17 == 0 {
			a = 1
		}
		tm := newTerm(&Curve{Type: "hill", Beta: ptr(math.Exp(rng.Float64() * 14)), Alpha: ptr(a), Kappa: ptr(math.Exp(rng.Float64() * 12))},
			&Adstock{Type: "geometric", Decay: ptr(0.8 * rng.Float64())})
		x0 := tm.kappa * math.Exp(rng.NormFloat64()*3) / tm.s
		lam := tm.d1(x0)
		if !(lam > 0) || math.IsInf(lam, 0) {
			continue
		}
		hint := 0.0
		if k%2 == 0 {
			hint = x0 * math.Exp(rng.NormFloat64()*1e-3)
		}
		x, d2, _, _, v := tm.invD1v(lam, hint)
		if math.IsNaN(v) {
			continue
		}
		if !(d2 < 0) {
			t.Fatalf("α=%v λ=%v: a value (%v) without an interior answer (x=%v)", a, lam, v, x)
		}
		want := tm.val(x)
		// f(y) against f(s·(y/s)): a rounding of the spend apart, besides both values' own
		rel := math.Abs(v-want) / want
		tol := 8e-16 * (4 + a)
		if rel > tol {
			t.Fatalf("α=%v β=%v κ=%v λ=%v hint=%v: x=%v, v=%v, val=%v (rel %.3g > %.3g)", a, tm.beta, tm.kappa, lam, hint, x, v, want, rel, tol)
		}
		worst = math.Max(worst, rel/tol)
		n++
	}
	if n < 50000 {
		t.Fatalf("only %d cases had a value", n)
	}
	t.Logf("%d cases, worst error %.3g of the tolerance", n, worst)
}
