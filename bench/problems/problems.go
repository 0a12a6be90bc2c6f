// Package problems generates the benchmark problems shared by the engine's Go
// benchmarks and the comparison with SLSQP (bench/compare), so that both solve the same
// problems: with the same seed, the first problems of a case are identical.
package problems

import (
	"fmt"
	"math"
	"math/rand"
	"strconv"

	"github.com/atlas-mmm/atlas/engine"
)

// Case describes one family of generated problems.
type Case struct {
	Name    string
	Seed    int64
	N       int    // channels
	Curves  string // "concave" or "hill" (S-shaped, alpha 1.5–3)
	Coupled bool   // two groups and a ratio on top of the bounds
	About   string // one line for the report
}

// Cases are the comparison's problem families.
var Cases = []Case{
	{"concave10", 101, 10, "concave", false,
		"10 channels, concave curves (saturation, exponential, log, power α<1, hill α≤1; 1/3 with geometric adstock), exact total, channel min/max"},
	{"hill10", 102, 10, "hill", false,
		"10 channels, S-shaped Hill α 1.5–3 (1/3 with adstock), exact total, channel min/max"},
	{"hill8", 103, 8, "hill", false,
		"8 channels, S-shaped Hill α 1.5–3 (the field notes' case), exact total, channel min/max"},
	{"scurves20coupled", 104, 20, "hill", true,
		"20 channels, S-shaped Hill α 1.5–3, exact total, channel min/max, a group with min_share, a group with absolute max, one ratio with min and max"},
}

func fp(v float64) *float64 { return &v }

// sig rounds v to 4 significant digits, so that the generated JSON stays readable.
func sig(v float64) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 4, 64), 64)
	return r
}

func uniform(rng *rand.Rand, a, b float64) float64 { return a + (b-a)*rng.Float64() }

// logUniform draws from [a, b] uniformly on a log scale.
func logUniform(rng *rand.Rand, a, b float64) float64 {
	return a * math.Exp(rng.Float64()*math.Log(b/a))
}

// generate makes one deterministic problem of case c from rng: a request carrying its
// model inline. Betas are 1e5–1e6, kappas 1e4–1e5, and the total is 0.5–2 × the sum of
// the effective kappas (kappa·(1−decay) under adstock), so that with S-curves several
// channels sit in their convex region at the optimum.
func generate(rng *rand.Rand, c Case, id string) *engine.Request {
	m := &engine.Model{ModelID: "bench-" + c.Name, KPI: "revenue", Baseline: sig(logUniform(rng, 1e4, 1e6)),
		Channels: map[string]engine.Channel{}}
	names := make([]string, c.N)
	sumKappa := 0.0
	for i := range names {
		names[i] = fmt.Sprintf("ch%02d", i)
		beta := sig(logUniform(rng, 1e5, 1e6))
		kappa := sig(logUniform(rng, 1e4, 1e5))
		var cv engine.Curve
		if c.Curves == "hill" {
			cv = engine.Curve{Type: "hill", Beta: fp(beta), Alpha: fp(sig(uniform(rng, 1.5, 3))), Kappa: fp(kappa)}
		} else {
			switch rng.Intn(5) {
			case 0:
				cv = engine.Curve{Type: "saturation", Beta: fp(beta), Kappa: fp(kappa)}
			case 1:
				cv = engine.Curve{Type: "exponential", Beta: fp(beta), Kappa: fp(kappa)}
			case 2:
				cv = engine.Curve{Type: "log", Beta: fp(sig(beta / 4)), Kappa: fp(kappa)}
			case 3: // scaled so that f(kappa) = beta/2
				a := sig(uniform(rng, 0.3, 0.9))
				cv = engine.Curve{Type: "power", Beta: fp(sig(beta / 2 / math.Pow(kappa, a))), Alpha: fp(a)}
			default:
				cv = engine.Curve{Type: "hill", Beta: fp(beta), Alpha: fp(sig(uniform(rng, 0.5, 1))), Kappa: fp(kappa)}
			}
		}
		ch := engine.Channel{Curve: cv}
		eff := kappa
		if rng.Intn(3) == 0 {
			d := sig(uniform(rng, 0.1, 0.7))
			ch.Adstock = &engine.Adstock{Type: "geometric", Decay: fp(d)}
			eff *= 1 - d
		}
		sumKappa += eff
		m.Channels[names[i]] = ch
	}
	total := sig(uniform(rng, 0.5, 2) * sumKappa)
	avg := total / float64(c.N)

	// The current plan: a random split of the total.
	budget := map[string]float64{}
	w := make([]float64, c.N)
	ws := 0.0
	for i := range w {
		w[i] = uniform(rng, 0.5, 1.5)
		ws += w[i]
	}
	for i, name := range names {
		budget[name] = sig(total * w[i] / ws)
	}

	// Channel bounds: 30% get a min of 0.1–0.6 × the average spend, 40% a max of 1.2–3 ×
	// the average. Σ min ≤ 0.6·total, so the bounds alone are always feasible once the
	// maxima leave room for the total.
	lo := make([]float64, c.N)
	hi := make([]float64, c.N)
	for i := range names {
		hi[i] = math.Inf(1)
		if rng.Float64() < 0.3 {
			lo[i] = sig(uniform(rng, 0.1, 0.6) * avg)
		}
		if rng.Float64() < 0.4 {
			hi[i] = sig(uniform(rng, 1.2, 3) * avg)
		}
	}
	cons := engine.Constraints{Total: &engine.Total{Exact: fp(total)}}
	if c.Coupled {
		perm := rng.Perm(c.N)
		digital := perm[:6]   // min_share group
		offline := perm[6:11] // absolute max group
		num, den := perm[0], perm[11]
		lo[num], hi[num] = 0, math.Inf(1) // the ratio's channels have no bounds of their own
		lo[den], hi[den] = 0, math.Inf(1)
		minShare := sig(uniform(rng, 0.25, 0.4))
		offMax := sig(uniform(rng, 0.15, 0.3) * total)
		g1 := engine.Group{Name: "digital", MinShare: fp(minShare)}
		for _, i := range digital {
			g1.Channels = append(g1.Channels, names[i])
		}
		g2 := engine.Group{Name: "offline", Max: fp(offMax)}
		for _, i := range offline {
			g2.Channels = append(g2.Channels, names[i])
		}
		cons.Groups = []engine.Group{g1, g2}
		cons.Ratios = []engine.Ratio{{Numerator: names[num], Denominator: names[den],
			Min: fp(sig(uniform(rng, 0.5, 1))), Max: fp(sig(uniform(rng, 1.5, 3)))}}
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
			b.Min = fp(lo[i])
		}
		if !math.IsInf(hi[i], 1) {
			b.Max = fp(hi[i])
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
// Generate returns the first n problems of a case.
func Generate(c Case, n int) []*engine.Request {
	rng := rand.New(rand.NewSource(c.Seed))
	out := make([]*engine.Request, n)
	for i := range out {
		out[i] = generate(rng, c, fmt.Sprintf("%s-%03d", c.Name, i))
	}
	return out
}
