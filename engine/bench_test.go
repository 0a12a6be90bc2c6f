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
// The generator is a copy of bench/compare/gen.go (a test package cannot import a main
// package); with the same seeds the pools are the first benchPool problems that
// `go run ./bench/compare` compares against SLSQP. Keep the two in step.

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"strconv"
	"testing"

	"github.com/atlas-mmm/atlas/engine"
)

const benchPool = 64

type benchCase struct {
	name    string
	seed    int64
	n       int    // channels
	curves  string // "concave" or "hill" (S-shaped, alpha 1.5–3)
	coupled bool   // two groups and a ratio on top of the bounds
}

var (
	benchConcave10        = benchCase{"concave10", 101, 10, "concave", false}
	benchHill10           = benchCase{"hill10", 102, 10, "hill", false}
	benchConcave1000      = benchCase{"concave1000", 105, 1000, "concave", false}
	benchSCurves20Coupled = benchCase{"scurves20coupled", 104, 20, "hill", true}
)

// benchRequests generates a case's pool and decodes it from JSON, as every entry point
// receives it.
func benchRequests(b *testing.B, c benchCase) []engine.Request {
	b.Helper()
	var out []engine.Request
	for _, q := range bgenerateCase(c, benchPool) {
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

func bfp(v float64) *float64 { return &v }

// sig rounds v to 4 significant digits, so that the generated JSON stays readable.
func bsig(v float64) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 4, 64), 64)
	return r
}

func buniform(rng *rand.Rand, a, b float64) float64 { return a + (b-a)*rng.Float64() }

// logUniform draws from [a, b] uniformly on a log scale.
func blogUniform(rng *rand.Rand, a, b float64) float64 {
	return a * math.Exp(rng.Float64()*math.Log(b/a))
}

// generate makes one deterministic problem of case c from rng: a request carrying its
// model inline. Betas are 1e5–1e6, kappas 1e4–1e5, and the total is 0.5–2 × the sum of
// the effective kappas (kappa·(1−decay) under adstock), so that with S-curves several
// channels sit in their convex region at the optimum.
func bgenerate(rng *rand.Rand, c benchCase, id string) *engine.Request {
	m := &engine.Model{ModelID: "bench-" + c.name, KPI: "revenue", Baseline: bsig(blogUniform(rng, 1e4, 1e6)),
		Channels: map[string]engine.Channel{}}
	names := make([]string, c.n)
	sumKappa := 0.0
	for i := range names {
		names[i] = fmt.Sprintf("ch%02d", i)
		beta := bsig(blogUniform(rng, 1e5, 1e6))
		kappa := bsig(blogUniform(rng, 1e4, 1e5))
		var cv engine.Curve
		if c.curves == "hill" {
			cv = engine.Curve{Type: "hill", Beta: bfp(beta), Alpha: bfp(bsig(buniform(rng, 1.5, 3))), Kappa: bfp(kappa)}
		} else {
			switch rng.Intn(5) {
			case 0:
				cv = engine.Curve{Type: "saturation", Beta: bfp(beta), Kappa: bfp(kappa)}
			case 1:
				cv = engine.Curve{Type: "exponential", Beta: bfp(beta), Kappa: bfp(kappa)}
			case 2:
				cv = engine.Curve{Type: "log", Beta: bfp(bsig(beta / 4)), Kappa: bfp(kappa)}
			case 3: // scaled so that f(kappa) = beta/2
				a := bsig(buniform(rng, 0.3, 0.9))
				cv = engine.Curve{Type: "power", Beta: bfp(bsig(beta / 2 / math.Pow(kappa, a))), Alpha: bfp(a)}
			default:
				cv = engine.Curve{Type: "hill", Beta: bfp(beta), Alpha: bfp(bsig(buniform(rng, 0.5, 1))), Kappa: bfp(kappa)}
			}
		}
		ch := engine.Channel{Curve: cv}
		eff := kappa
		if rng.Intn(3) == 0 {
			d := bsig(buniform(rng, 0.1, 0.7))
			ch.Adstock = &engine.Adstock{Type: "geometric", Decay: bfp(d)}
			eff *= 1 - d
		}
		sumKappa += eff
		m.Channels[names[i]] = ch
	}
	total := bsig(buniform(rng, 0.5, 2) * sumKappa)
	avg := total / float64(c.n)

	// The current plan: a random split of the total.
	budget := map[string]float64{}
	w := make([]float64, c.n)
	ws := 0.0
	for i := range w {
		w[i] = buniform(rng, 0.5, 1.5)
		ws += w[i]
	}
	for i, name := range names {
		budget[name] = bsig(total * w[i] / ws)
	}

	// Channel bounds: 30% get a min of 0.1–0.6 × the average spend, 40% a max of 1.2–3 ×
	// the average. Σ min ≤ 0.6·total, so the bounds alone are always feasible once the
	// maxima leave room for the total.
	lo := make([]float64, c.n)
	hi := make([]float64, c.n)
	for i := range names {
		hi[i] = math.Inf(1)
		if rng.Float64() < 0.3 {
			lo[i] = bsig(buniform(rng, 0.1, 0.6) * avg)
		}
		if rng.Float64() < 0.4 {
			hi[i] = bsig(buniform(rng, 1.2, 3) * avg)
		}
	}
	cons := engine.Constraints{Total: &engine.Total{Exact: bfp(total)}}
	if c.coupled {
		perm := rng.Perm(c.n)
		digital := perm[:6]   // min_share group
		offline := perm[6:11] // absolute max group
		num, den := perm[0], perm[11]
		lo[num], hi[num] = 0, math.Inf(1) // the ratio's channels have no bounds of their own
		lo[den], hi[den] = 0, math.Inf(1)
		minShare := bsig(buniform(rng, 0.25, 0.4))
		offMax := bsig(buniform(rng, 0.15, 0.3) * total)
		g1 := engine.Group{Name: "digital", MinShare: bfp(minShare)}
		for _, i := range digital {
			g1.Channels = append(g1.Channels, names[i])
		}
		g2 := engine.Group{Name: "offline", Max: bfp(offMax)}
		for _, i := range offline {
			g2.Channels = append(g2.Channels, names[i])
		}
		cons.Groups = []engine.Group{g1, g2}
		cons.Ratios = []engine.Ratio{{Numerator: names[num], Denominator: names[den],
			Min: bfp(bsig(buniform(rng, 0.5, 1))), Max: bfp(bsig(buniform(rng, 1.5, 3)))}}
	}
	// Leave room for the total: with every channel capped, lift the smallest cap.
	room := 0.0
	for i := range hi {
		room += math.Min(hi[i], total)
	}
	if room < 1.1*total {
		hi[0] = math.Inf(1)
	}
	for i, name := range names {
		var b engine.ChannelBounds
		if lo[i] > 0 {
			b.Min = bfp(lo[i])
		}
		if !math.IsInf(hi[i], 1) {
			b.Max = bfp(hi[i])
		}
		if b.Min != nil || b.Max != nil {
			if cons.Channels == nil {
				cons.Channels = map[string]engine.ChannelBounds{}
			}
			cons.Channels[name] = b
		}
	}
	return &engine.Request{RequestID: id, Model: m, Budget: budget, Constraints: cons,
		Objective: engine.Objective{Type: engine.ObjMaxKPI}}
}

// generateCase makes the first n problems of case c.
func bgenerateCase(c benchCase, n int) []*engine.Request {
	rng := rand.New(rand.NewSource(c.seed))
	out := make([]*engine.Request, n)
	for i := range out {
		out[i] = bgenerate(rng, c, fmt.Sprintf("%s-%03d", c.name, i))
	}
	return out
}
