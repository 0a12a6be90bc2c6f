package engine

import (
	"fmt"
	"math"
	"sort"
)

// Limits on model size and parameters. They keep every evaluation finite: a Hill
// exponent of 10,000 or a curve scale of 1e300 is not a model anyone fitted.
const (
	MaxChannels = 10000
	MaxKPIs     = 32
	maxParam    = 1e15
	maxAlpha    = 100
	maxPoints   = 1000
	// A power curve with α above this overflows float64 at the largest spends allowed.
	maxPowerAlpha = 4
	minScale      = 1e-6
)

// PrimaryKPI is the model's primary KPI name ("revenue" when not given).
func (m *Model) PrimaryKPI() string {
	if m.KPI == "" {
		return "revenue"
	}
	return m.KPI
}

// ValidateModel checks a model and returns every problem found, each naming its field.
func ValidateModel(m *Model) FieldErrors {
	var errs FieldErrors
	add := func(field, format string, args ...any) { errs = append(errs, fieldErr(field, format, args...)) }
	if len(m.Channels) == 0 {
		add("channels", "a model needs at least one channel")
	}
	if len(m.Channels) > MaxChannels {
		add("channels", "%d channels exceed the limit of %d", len(m.Channels), MaxChannels)
	}
	if !finite(m.Baseline) || math.Abs(m.Baseline) > maxParam {
		add("baseline", "must be a finite number of magnitude at most %g", maxParam)
	}
	for _, name := range sortedKeys(m.Channels) {
		if name == "" {
			add("channels", "channel names must not be empty")
			continue
		}
		ch := m.Channels[name]
		errs = append(errs, validateChannel("channels.", name, &ch)...)
	}
	if len(m.KPIs) > MaxKPIs {
		add("kpis", "%d KPIs exceed the limit of %d", len(m.KPIs), MaxKPIs)
	}
	for _, kname := range sortedKeys(m.KPIs) {
		k := m.KPIs[kname]
		base := "kpis." + kname
		if kname == "" || kname == m.PrimaryKPI() {
			add(base, "a secondary KPI needs a name different from the primary KPI %q", m.PrimaryKPI())
		}
		if !finite(k.Baseline) || math.Abs(k.Baseline) > maxParam {
			add(base+".baseline", "must be a finite number of magnitude at most %g", maxParam)
		}
		for _, name := range sortedKeys(k.Channels) {
			if _, ok := m.Channels[name]; !ok {
				add(base+".channels."+name, "not a channel of the model (channels: %v)", sortedKeys(m.Channels))
				continue
			}
			ch := k.Channels[name]
			errs = append(errs, validateChannel(base+".channels.", name, &ch)...)
		}
	}
	return errs
}

// validateChannel checks the channel at field prefix+name (the path is only built for
// an error).
func validateChannel(prefix, name string, ch *Channel) FieldErrors {
	errs := validateCurve(prefix, name, &ch.Curve)
	if a := ch.Adstock; a != nil {
		path := func() string { return prefix + name }
		switch {
		case a.Type != "geometric":
			errs = append(errs, fieldErr(path()+".adstock.type", "unknown adstock type %q (known: geometric)", a.Type))
		case a.Decay == nil:
			errs = append(errs, fieldErr(path()+".adstock.decay", "missing"))
		case !(*a.Decay >= 0 && *a.Decay < 1):
			errs = append(errs, fieldErr(path()+".adstock.decay", "must be in [0, 1), got %g", *a.Decay))
		}
	}
	return errs
}

// curveParams lists which parameters each curve type takes.
var curveParams = map[string][]string{
	"linear":      {"beta"},
	"hill":        {"beta", "alpha", "kappa"},
	"saturation":  {"beta", "kappa"},
	"exponential": {"beta", "kappa"},
	"power":       {"beta", "alpha"},
	"log":         {"beta", "kappa"},
	"logistic":    {"beta", "k", "x0"},
	"piecewise":   {"points"},
}

// paramNames are the curve parameters' JSON names, sorted.
var paramNames = [...]string{"alpha", "beta", "k", "kappa", "points", "x0"}

func paramIndex(name string) int {
	for j, p := range paramNames {
		if p == name {
			return j
		}
	}
	panic("engine: unknown curve parameter " + name)
}

// validateCurve checks the curve of the channel at field prefix+name.
func validateCurve(prefix, name string, c *Curve) FieldErrors {
	var errs FieldErrors
	add := func(field, format string, args ...any) {
		errs = append(errs, fieldErr(prefix+name+".curve."+field, format, args...))
	}
	want, ok := curveParams[c.Type]
	if !ok {
		types := sortedKeys(curveParams)
		if c.Type == "" {
			add("type", "missing (one of %v)", types)
		} else {
			add("type", "unknown curve type %q (one of %v)", c.Type, types)
		}
		return errs
	}
	// Indexed by paramNames (in name order, the order extra parameters are reported in).
	given := [len(paramNames)]bool{c.Alpha != nil, c.Beta != nil, c.K != nil, c.Kappa != nil, c.Points != nil, c.X0 != nil}
	var wanted [len(paramNames)]bool
	for _, p := range want {
		j := paramIndex(p)
		wanted[j] = true
		if !given[j] {
			add(p, "missing (a %s curve takes %v)", c.Type, want)
		}
	}
	for j, p := range paramNames {
		if given[j] && !wanted[j] {
			add(p, "not a parameter of a %s curve (it takes %v)", c.Type, want)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	positive := func(name string, v *float64, allowZero bool, max float64) {
		x := *v
		switch {
		case !finite(x):
			add(name, "must be finite")
		case allowZero && x < 0:
			add(name, "must be non-negative, got %g", x)
		case !allowZero && x <= 0:
			add(name, "must be positive, got %g", x)
		case x > max:
			add(name, "must be at most %g, got %g", max, x)
		}
	}
	if c.Beta != nil {
		positive("beta", c.Beta, true, maxParam)
	}
	if c.Kappa != nil {
		positive("kappa", c.Kappa, false, maxParam)
		if *c.Kappa > 0 && *c.Kappa < minScale {
			add("kappa", "must be at least %g (a scale in currency units), got %g", minScale, *c.Kappa)
		}
	}
	if c.Alpha != nil {
		max := float64(maxAlpha)
		if c.Type == "power" {
			// β·x^α must stay finite for every spend up to the largest total
			max = maxPowerAlpha
		}
		positive("alpha", c.Alpha, false, max)
	}
	if c.K != nil {
		positive("k", c.K, false, 1/minScale)
	}
	if c.X0 != nil && (!finite(*c.X0) || math.Abs(*c.X0) > maxParam) {
		add("x0", "must be a finite number of magnitude at most %g", maxParam)
	}
	if c.Type == "logistic" && len(errs) == 0 && math.Abs(*c.K**c.X0) > 700 {
		// σ(−k·x0) underflows past this point and the curve is numerically zero.
		add("x0", "k·x0 = %g is too large: the curve is zero for all practical spend", *c.K**c.X0)
	}
	if c.Type == "piecewise" {
		if len(c.Points) == 0 {
			add("points", "needs at least one point")
		}
		if len(c.Points) > maxPoints {
			add("points", "%d points exceed the limit of %d", len(c.Points), maxPoints)
		}
		prevX, prevY := 0.0, 0.0
		for i, p := range c.Points {
			f := fmt.Sprintf("points[%d]", i)
			if len(p) != 2 {
				add(f, "a point is [x, y], got %d numbers", len(p))
				continue
			}
			switch {
			case !finite(p[0]) || !finite(p[1]) || p[0] > maxParam || p[1] > maxParam:
				add(f, "must be finite and at most %g", maxParam)
			case p[0] <= prevX:
				add(f, "x must be increasing and positive (%g after %g)", p[0], prevX)
			case p[1] < prevY:
				add(f, "y must not decrease: response curves are non-decreasing (%g after %g)", p[1], prevY)
			}
			prevX, prevY = p[0], p[1]
		}
	}
	return errs
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
