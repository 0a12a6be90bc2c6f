package engine

import (
	"math/rand"
	"testing"
)

func TestScratch(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for trial := 0; trial < 20; trial++ {
		m := genModel(rng, 6, "hill")
		req := genRequest(rng, m, 3e5)
		res := Solve(m, req)
		p, _ := compile(m, req)
		p.capSpend()
		g, slack := gridOptimum(p, 600)
		got := res.Expected["revenue"] - m.Baseline
		t.Logf("%s got %.6f grid %.6f (+%.3f) gap %.2e nodes %d iters %d ub-got %.3g", res.Status, got, g, slack, res.Certificate.Gap, res.Engine.Nodes, res.Engine.Iterations, *res.Certificate.UpperBound-res.Certificate.Objective)
	}
}
