package engine

import (
	"math"
	"math/rand"
	"testing"
)

// The envelope must majorise the curve on its box and be concave: both are what makes
// the relaxation's optimum a proven upper bound.
func TestEnvelopeIsConcaveMajorant(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	for c := 0; c < 300; c++ {
		var cv Curve
		switch c % 4 {
		case 0:
			cv = Curve{Type: "hill", Beta: f64(1e5 + rng.Float64()*1e6), Alpha: f64(1.05 + rng.Float64()*4), Kappa: f64(1e3 + rng.Float64()*1e5)}
		case 1:
			cv = Curve{Type: "logistic", Beta: f64(1e5), K: f64(1e-5 + rng.Float64()*1e-3), X0: f64(rng.Float64() * 1e5)}
		case 2:
			cv = Curve{Type: "power", Beta: f64(1e-3), Alpha: f64(1 + rng.Float64()*2)}
		default:
			cv = Curve{Type: "piecewise", Points: [][]float64{{1e4, 1e3}, {3e4, 5e4}, {5e4, 6e4}, {9e4, 6.5e4}}}
		}
		var ad *Adstock
		if rng.Intn(2) == 0 {
			ad = &Adstock{Type: "geometric", Decay: f64(rng.Float64() * 0.7)}
		}
		tm := newTerm(&cv, ad)
		a := rng.Float64() * 5e4
		if rng.Intn(3) == 0 {
			a = 0
		}
		b := a + rng.Float64()*3e5
		e := newEnvelope(tm, a, b)
		prevSlope := math.Inf(1)
		const N = 2000
		for k := 0; k <= N; k++ {
			x := a + (b-a)*float64(k)/N
			if ev, fv := e.val(x), tm.val(x); ev < fv-1e-9*math.Max(1, math.Abs(fv)) {
				t.Fatalf("case %d (%+v on [%g, %g]): envelope %v below curve %v at %g", c, cv, a, b, ev, fv, x)
			}
			if k > 0 {
				x0 := a + (b-a)*float64(k-1)/N
				slope := (e.val(x) - e.val(x0)) / (x - x0)
				if slope > prevSlope*(1+1e-7)+1e-9 {
					t.Fatalf("case %d (%+v on [%g, %g]): envelope not concave near %g (slope %v after %v)", c, cv, a, b, x, slope, prevSlope)
				}
				prevSlope = slope
			}
		}
	}
}
