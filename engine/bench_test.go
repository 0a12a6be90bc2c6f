package engine_test

// Benchmarks of engine.Solve on generated problems (go test -run '^$' -bench . ./engine/).
//
// Every case solves a pool of benchPool deterministic problems (math/rand, fixed seeds),
// built and decoded outside the timed loop, cycling through them. A result that is not
// "optimal" fails the benchmark, so that a regression in quality is caught along with one
// in speed. BenchmarkBaselineEvaluate10 times one evaluation of a 10-channel model
// (engine.Evaluate with one allocation) in the same run, so that solve times can be
// quoted as "N × one evaluation".
//
// The problems come from bench/problems, the generator `go run ./bench/compare` uses:
// with the same seeds the pools are the first benchPool problems it compares with SLSQP.

import (
	"encoding/json"
	"testing"

	"github.com/atlas-mmm/atlas/bench/problems"
	"github.com/atlas-mmm/atlas/engine"
)

const benchPool = 64

type benchCase = problems.Case

// The cases share bench/compare's generator: with the same seed, the pools are the first
// problems of the comparison's cases.
var (
	benchConcave10        = benchCase{Name: "concave10", Seed: 101, N: 10, Curves: "concave"}
	benchHill10           = benchCase{Name: "hill10", Seed: 102, N: 10, Curves: "hill"}
	benchConcave1000      = benchCase{Name: "concave1000", Seed: 105, N: 1000, Curves: "concave"}
	benchSCurves20Coupled = benchCase{Name: "scurves20coupled", Seed: 104, N: 20, Curves: "hill", Coupled: true}
)

// benchRequests generates a case's pool and decodes it from JSON, as every entry point
// receives it.
func benchRequests(b *testing.B, c benchCase) []engine.Request {
	b.Helper()
	var out []engine.Request
	for _, q := range problems.Generate(c, benchPool) {
		data, err := json.Marshal(q)
		if err != nil {
			b.Fatal(err)
		}
		r, err := engine.DecodeRequest(data)
		if err != nil {
			b.Fatalf("%s: %v", q.RequestID, err)
		}
		out = append(out, r)
	}
	return out
}

// benchSolve times Prepared.Solve: a processor prepares each model version once (at
// publication) and answers every request against it, so model validation and curve
// compilation are not part of a solve.
func benchSolve(b *testing.B, c benchCase) {
	reqs := benchRequests(b, c)
	prepared := make([]*engine.Prepared, len(reqs))
	for k := range reqs {
		pm, err := engine.Prepare(reqs[k].Model)
		if err != nil {
			b.Fatal(err)
		}
		prepared[k] = pm
	}
	nodes, iters := 0, 0
	i := 0
	for b.Loop() {
		k := i % len(reqs)
		req := &reqs[k]
		res := prepared[k].Solve(req)
		if res.Status != engine.StatusOptimal {
			data, _ := json.Marshal(req)
			b.Fatalf("%s: status %q, messages %q\nrequest: %s", req.RequestID, res.Status, res.Messages, data)
		}
		nodes += res.Engine.Nodes
		iters += res.Engine.Iterations
		i++
	}
	b.ReportMetric(float64(nodes)/float64(i), "nodes/op")
	b.ReportMetric(float64(iters)/float64(i), "iters/op")
}

// BenchmarkBaselineEvaluate10 is the unit the solve benchmarks are quoted in: one
// what-if evaluation of a prepared 10-channel concave model at one allocation (KPIs, ROI
// and marginal ROI per channel, as the API serves it).
func BenchmarkBaselineEvaluate10(b *testing.B) {
	reqs := benchRequests(b, benchConcave10)
	allocs := make([][]map[string]float64, len(reqs))
	prepared := make([]*engine.Prepared, len(reqs))
	for k := range reqs {
		allocs[k] = []map[string]float64{reqs[k].Budget}
		pm, err := engine.Prepare(reqs[k].Model)
		if err != nil {
			b.Fatal(err)
		}
		prepared[k] = pm
	}
	i := 0
	for b.Loop() {
		k := i % len(reqs)
		ev, err := prepared[k].Evaluate(allocs[k])
		if err != nil || len(ev) != 1 {
			b.Fatalf("%s: %v", reqs[k].RequestID, err)
		}
		i++
	}
}

// BenchmarkConcave10: 10 channels with concave curves (saturation, exponential, log,
// power α<1, hill α≤1; a third with geometric adstock), exact total, channel min/max.
func BenchmarkConcave10(b *testing.B) { benchSolve(b, benchConcave10) }

// BenchmarkHill10: 10 channels with S-shaped Hill curves (α 1.5–3), exact total,
// channel min/max; the total is 0.5–2 × the sum of the effective kappas.
func BenchmarkHill10(b *testing.B) { benchSolve(b, benchHill10) }

// BenchmarkConcave1000: 1000 concave channels, exact total, channel min/max.
func BenchmarkConcave1000(b *testing.B) { benchSolve(b, benchConcave1000) }

// BenchmarkSCurves20Coupled: 20 S-shaped Hill channels (α 1.5–3), exact total, channel
// min/max, a 6-channel group with a min_share, a 5-channel group with an absolute max and
// one ratio with min and max; default gap (1e-7 for non-concave problems).
func BenchmarkSCurves20Coupled(b *testing.B) { benchSolve(b, benchSCurves20Coupled) }

// ---- generator: a copy of bench/compare/gen.go ----
