package enginegen

import (
	"math"
	"sort"

	"github.com/atlas-mmm/atlas/engine"
)

// The generator evaluates the current budget to set floors and targets it meets. It does
// so with its own copy of the contract's curves (§1), written from the table (CurveValue, which
// the engine's tests also use as their reference), and not with engine.Evaluate: the requests must not move when the engine's arithmetic does, or a
// sweep comparing two engine versions would compare them on different requests, and the
// fuzz corpus would change meaning with every engine change.

// Sigmoid is the logistic function, computed without overflow for either sign of z.
func Sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// CurveValue is curve c's response at spend x (adstock aside), written from the
// contract's table (§1) and not from the engine's code: the reference the engine's tests
// check the engine against, and what the generator evaluates with.
func CurveValue(c engine.Curve, x float64) float64 {
	g := func(p *float64) float64 { return *p }
	switch c.Type {
	case "linear":
		return g(c.Beta) * x
	case "hill":
		if x <= 0 {
			return 0
		}
		if x > g(c.Kappa) { // β/(1 + (κ/x)^α): no overflow for large x^α
			return g(c.Beta) / (1 + math.Pow(g(c.Kappa)/x, g(c.Alpha)))
		}
		u := math.Pow(x/g(c.Kappa), g(c.Alpha))
		return g(c.Beta) * u / (1 + u)
	case "saturation":
		return g(c.Beta) * x / (x + g(c.Kappa))
	case "exponential":
		return -g(c.Beta) * math.Expm1(-x/g(c.Kappa))
	case "power":
		return g(c.Beta) * math.Pow(x, g(c.Alpha))
	case "log":
		return g(c.Beta) * math.Log1p(x/g(c.Kappa))
	case "logistic":
		k, x0 := g(c.K), g(c.X0)
		return g(c.Beta) * (Sigmoid(k*(x-x0)) - Sigmoid(-k*x0))
	case "piecewise":
		px, py := 0.0, 0.0
		for _, p := range c.Points {
			if x <= p[0] {
				return py + (p[1]-py)*(x-px)/(p[0]-px)
			}
			px, py = p[0], p[1]
		}
		return py
	}
	// The generator only builds the types above.
	panic("enginegen: unknown curve type " + c.Type)
}

// ChannelValue is a channel's response at spend x: its curve at x scaled by its
// geometric adstock's long-run multiplier 1/(1−decay) (contract §1).
func ChannelValue(ch engine.Channel, x float64) float64 {
	scale := 1.0
	if ch.Adstock != nil && ch.Adstock.Decay != nil {
		scale = 1 / (1 - *ch.Adstock.Decay)
	}
	return CurveValue(ch.Curve, x*scale)
}

// KPIValues evaluates every KPI (baselines included) of an allocation, summing channels
// in name order so that the sums, and so the requests, are the same on every run.
func KPIValues(m *engine.Model, alloc map[string]float64) map[string]float64 {
	out := map[string]float64{}
	primary := m.KPI
	if primary == "" {
		primary = "revenue"
	}
	v := m.Baseline
	for _, name := range sortedKeys(m.Channels) {
		v += ChannelValue(m.Channels[name], alloc[name])
	}
	out[primary] = v
	for _, k := range sortedKeys(m.KPIs) {
		km := m.KPIs[k]
		v := km.Baseline
		for _, name := range sortedKeys(km.Channels) {
			v += ChannelValue(km.Channels[name], alloc[name])
		}
		out[k] = v
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
