package engine

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
)

// The engine against ground truth it does not share code with: an exact dynamic program
// on a fine grid (separable problems) and brute-force enumeration of a grid (small
// problems with coupling constraints). Grid points are feasible plans, so the engine must
// never be below the grid optimum, and its certificate must never be below its own value.

func checkCertificate(t *testing.T, name string, res Result, maxGap float64) {
	t.Helper()
	if res.Status != StatusOptimal {
		t.Fatalf("%s: status %s (%v)", name, res.Status, res.Messages)
	}
	c := res.Certificate
	if c == nil || c.UpperBound == nil {
		t.Fatalf("%s: no certificate", name)
	}
	if *c.UpperBound < c.Objective {
		t.Fatalf("%s: bound %v below objective %v", name, *c.UpperBound, c.Objective)
	}
	if c.Gap > maxGap {
		t.Fatalf("%s: gap %g above %g", name, c.Gap, maxGap)
	}
}

func TestGroundTruthSeparableDP(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	cases := 60
	if testing.Short() {
		cases = 15
	}
	for c := 0; c < cases; c++ {
		kind := []string{"hill", "concave", "mixed"}[c%3]
		n := 3 + rng.Intn(5)
		m := genModel(rng, n, kind)
		total := 2e4 + rng.Float64()*2e5
		req := genRequest(rng, m, total)
		// some bounds on the grid's step so that grid points stay feasible
		G := 1200
		step := total / float64(G)
		req.Constraints.Channels = map[string]ChannelBounds{}
		for name := range m.Channels {
			if rng.Intn(3) == 0 {
				lo := step * float64(rng.Intn(G/(4*n)))
				hi := step * float64(G/n+rng.Intn(G/2))
				req.Constraints.Channels[name] = ChannelBounds{Min: f64(lo), Max: f64(hi)}
			}
		}
		name := fmt.Sprintf("case %d (%s, %d channels, total %.0f)", c, kind, n, total)
		res := Solve(m, req)
		if res.Status == StatusInfeasible {
			continue
		}
		tol := DefaultGapNonConcave
		if kind == "concave" {
			tol = DefaultGap
		}
		checkCertificate(t, name, res, tol)
		pm, _ := Prepare(m)
		p, _ := compile(pm, req)
		p.capSpend()
		grid, slack := gridOptimum(p, G)
		got := res.Expected["revenue"] - m.Baseline
		if got < grid-1e-9*math.Abs(grid) {
			t.Fatalf("%s: engine %.9g below the grid optimum %.9g", name, got, grid)
		}
		if got > grid+slack*(1+1e-9) {
			t.Fatalf("%s: engine %.9g above the grid optimum %.9g plus its error bound %.3g", name, got, grid, slack)
		}
		if ub := *res.Certificate.UpperBound - m.Baseline; ub < grid-1e-9*math.Abs(grid) {
			t.Fatalf("%s: certified bound %.9g below a feasible grid plan %.9g", name, ub, grid)
		}
	}
}

// bruteForce enumerates every grid plan of a small problem (the last channel takes what
// the exact total leaves) and returns the best feasible objective.
func bruteForce(p *problem, G int) float64 {
	n := p.n()
	T := p.tlo
	h := T / float64(G)
	best := math.Inf(-1)
	x := make([]float64, n)
	var rec func(i int, left int)
	rec = func(i int, left int) {
		if i == n-1 {
			x[i] = float64(left) * h
			if p.feasible(x, 1e-12) {
				best = math.Max(best, p.objective(x))
			}
			return
		}
		for k := 0; k <= left; k++ {
			x[i] = float64(k) * h
			if x[i] < p.lo[i]-1e-9 || x[i] > p.hi[i]+1e-9 {
				continue
			}
			rec(i+1, left-k)
		}
	}
	rec(0, G)
	return best
}

func TestGroundTruthCoupledBruteForce(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	cases := 30
	if testing.Short() {
		cases = 8
	}
	solved, honest := 0, 0
	for c := 0; c < cases; c++ {
		kind := []string{"hill", "mixed", "concave"}[c%3]
		m := genModel(rng, 4, kind)
		total := 4e4 + rng.Float64()*1.5e5
		req := genRequest(rng, m, total)
		switch c % 4 {
		case 0:
			req.Constraints.Groups = []Group{{Name: "g", Channels: []string{"ch00", "ch01"}, MinShare: f64(0.2 + 0.4*rng.Float64())}}
		case 1:
			req.Constraints.Ratios = []Ratio{{Numerator: "ch02", Denominator: "ch03", Min: f64(0.5), Max: f64(1.5)}}
		case 2:
			req.Constraints.Groups = []Group{{Name: "g", Channels: []string{"ch01", "ch02", "ch03"}, Max: f64(total * 0.6)}}
			req.Constraints.Ratios = []Ratio{{Numerator: "ch00", Denominator: "ch01", Min: f64(0.25)}}
		case 3:
			req.Constraints.MaxShare = f64(0.45)
			req.Constraints.Groups = []Group{{Name: "g", Channels: []string{"ch00", "ch03"}, MinShare: f64(0.3), MaxShare: f64(0.7)}}
		}
		name := fmt.Sprintf("case %d (%s, total %.0f)", c, kind, total)
		res := Solve(m, req)
		if res.Status == StatusInfeasible {
			continue
		}
		// Known limitation: on some degenerate, LP-like coupled problems the interior
		// point stalls near 1e-6; the engine then says "feasible" with its honest gap.
		if res.Status == StatusFeasible && res.Certificate.Gap <= 1e-4 {
			honest++
			t.Logf("%s: feasible with gap %.3g", name, res.Certificate.Gap)
		} else {
			tol := DefaultGapNonConcave
			if kind == "concave" {
				tol = DefaultGap
			}
			checkCertificate(t, name, res, tol)
		}
		if *res.Certificate.UpperBound < res.Certificate.Objective {
			t.Fatalf("%s: bound below objective", name)
		}
		pm, _ := Prepare(m)
		p, _ := compile(pm, req)
		p.capSpend()
		x := make([]float64, p.n())
		for i, nm := range p.names {
			x[i] = res.Allocation[nm]
		}
		if !p.feasible(x, 1e-9) {
			t.Fatalf("%s: engine plan violates a constraint: %v", name, res.Allocation)
		}
		grid := bruteForce(p, 120)
		got := res.Expected["revenue"] - m.Baseline
		if got < grid-1e-9*math.Abs(grid) {
			t.Fatalf("%s: engine %.9g below brute force %.9g", name, got, grid)
		}
		solved++
	}
	if honest > cases/5 {
		t.Fatalf("%d of %d cases stopped short of optimal", honest, cases)
	}
	if solved < cases/2 {
		t.Fatalf("only %d of %d cases were feasible: the generator is off", solved, cases)
	}
}

// KKT on concave problems with only the total: interior channels share one marginal
// return λ, channels at their minimum have mroi ≤ λ, at their maximum ≥ λ.
func TestKKTConcave(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for c := 0; c < 40; c++ {
		m := genModel(rng, 8, "concave")
		total := 5e4 + rng.Float64()*5e5
		req := genRequest(rng, m, total)
		req.Constraints.Channels = map[string]ChannelBounds{}
		for name := range m.Channels {
			if rng.Intn(3) == 0 {
				req.Constraints.Channels[name] = ChannelBounds{Min: f64(total * 0.05), Max: f64(total * 0.2)}
			}
		}
		res := Solve(m, req)
		if res.Status == StatusInfeasible {
			continue
		}
		checkCertificate(t, fmt.Sprint("case ", c), res, DefaultGap)
		lam := math.NaN()
		for _, ch := range res.Channels {
			if ch.AtBound == "" && ch.MROI != nil {
				if math.IsNaN(lam) {
					lam = *ch.MROI
				} else if math.Abs(*ch.MROI-lam) > 1e-6*lam {
					t.Fatalf("case %d: interior channels have different marginal returns %v and %v", c, lam, *ch.MROI)
				}
			}
		}
		if math.IsNaN(lam) {
			continue
		}
		for name, ch := range res.Channels {
			if ch.MROI == nil {
				continue
			}
			switch ch.AtBound {
			case "min":
				if *ch.MROI > lam*(1+1e-6) {
					t.Fatalf("case %d: %s at its minimum has mroi %v above λ %v", c, name, *ch.MROI, lam)
				}
			case "max":
				if *ch.MROI < lam*(1-1e-6) {
					t.Fatalf("case %d: %s at its maximum has mroi %v below λ %v", c, name, *ch.MROI, lam)
				}
			}
		}
	}
}
