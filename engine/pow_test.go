package engine

import (
	"math"
	"math/rand"
	"testing"
)

// pow must return math.Pow's bits: results are reproducible to the bit across engine
// builds only if the curves evaluate the same.
func TestPowMatchesMathPow(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	check := func(x, y float64) {
		if a, b := pow(x, y), math.Pow(x, y); math.Float64bits(a) != math.Float64bits(b) {
			t.Fatalf("pow(%v, %v) = %v, math.Pow gives %v", x, y, a, b)
		}
	}
	special := []float64{0, 1, -1, 0.5, -0.5, 2, -2, 3, 1.5, -1.5, 0.25, math.Inf(1), math.Inf(-1), math.NaN(),
		math.SmallestNonzeroFloat64, math.MaxFloat64, 1e-300, 1e300, 1 << 52, 1 << 53, 1 << 63}
	for _, x := range special {
		for _, y := range special {
			if !math.IsNaN(x) && !math.IsNaN(y) {
				check(x, y)
			}
		}
	}
	for n := 0; n < 1_000_000; n++ {
		x := math.Exp(rng.NormFloat64() * 30)
		var y float64
		switch n % 4 {
		case 0:
			y = rng.Float64() // α < 1
		case 1:
			y = 1 + 3*rng.Float64() // S-curves
		case 2:
			y = -1 / (1 - rng.Float64()) // 1/(α−1)
		default:
			y = rng.NormFloat64() * 5
		}
		check(x, y)
	}
	// pow's short path (small integer parts, moderate exponents) at its edges
	for n := 0; n < 200_000; n++ {
		yi := 1 + rng.Intn(16)
		y := float64(yi) + rng.Float64() - 0.5
		e := 480/yi + rng.Intn(5) - 2
		if n%2 == 0 {
			e = -e
		}
		x := math.Ldexp(0.5+rng.Float64()/2, e)
		check(x, y)
		check(x, -y)
	}
}

// vd12 must give val, d1 and d2's own bits.
func TestVD12MatchesApart(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	for n := 0; n < 200_000; n++ {
		a := 0.3 + 2.7*rng.Float64()
		tm := &term{kind: kindHill, beta: math.Exp(rng.Float64() * 14), alpha: a, kappa: math.Exp(rng.Float64() * 12), s: 1 / (1 - 0.8*rng.Float64())}
		x := tm.kappa * math.Exp(rng.NormFloat64()*3)
		if n%100 == 0 {
			x = 0
		}
		v, g1, g2 := tm.vd12(x)
		if math.Float64bits(v) != math.Float64bits(tm.val(x)) || math.Float64bits(g1) != math.Float64bits(tm.d1(x)) ||
			math.Float64bits(g2) != math.Float64bits(tm.d2(x)) {
			t.Fatalf("vd12(%v) = %v %v %v, apart %v %v %v", x, v, g1, g2, tm.val(x), tm.d1(x), tm.d2(x))
		}
	}
}
