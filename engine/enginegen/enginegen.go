// Package enginegen builds well-formed optimisation requests from a stream of bytes: the
// bytes are read as choices (how many channels, which curve, which constraints, which
// objective), so every input gives a request that decodes and validates.
//
// Two users need the same requests from the same bytes: the engine's fuzz target
// FuzzSolveGenerated, whose corpus under engine/testdata/fuzz is stored as bytes, and the
// regression sweep (bench/sweep), which compares engine versions on a fixed set of
// draws. Any change here changes what both of them test, so the mapping from bytes to
// requests is pinned by this package's tests; change it only on purpose, and then
// regenerate the sweep's baseline.
package enginegen

import (
	"math"

	"github.com/atlas-mmm/atlas/engine"
)

// choiceStream reads the input one byte per choice.
type choiceStream struct {
	b []byte
	i int
}

func (s *choiceStream) u8() int {
	if s.i >= len(s.b) {
		s.i++
		return (s.i * 37) & 0xff // deterministic filler once the input runs out
	}
	v := s.b[s.i]
	s.i++
	return int(v)
}

func (s *choiceStream) intn(n int) int { return s.u8() % n }

func (s *choiceStream) frac() float64 { return float64(s.u8()<<8|s.u8()) / 65535 }

// logU is log-uniform in [lo, hi].
func (s *choiceStream) logU(lo, hi float64) float64 {
	return math.Exp(math.Log(lo) + s.frac()*(math.Log(hi)-math.Log(lo)))
}

func (s *choiceStream) curve() engine.Curve {
	beta := s.logU(1e-2, 1e8)
	kappa := s.logU(1, 1e7)
	switch s.intn(9) {
	case 0:
		return engine.Curve{Type: "linear", Beta: fp(s.logU(1e-3, 1e2))}
	case 1, 2:
		return engine.Curve{Type: "hill", Beta: fp(beta), Alpha: fp(s.logU(0.1, 8)), Kappa: fp(kappa)}
	case 3:
		return engine.Curve{Type: "saturation", Beta: fp(beta), Kappa: fp(kappa)}
	case 4:
		return engine.Curve{Type: "exponential", Beta: fp(beta), Kappa: fp(kappa)}
	case 5:
		return engine.Curve{Type: "power", Beta: fp(s.logU(1e-4, 1e3)), Alpha: fp(s.logU(0.1, 2.5))}
	case 6:
		return engine.Curve{Type: "log", Beta: fp(beta), Kappa: fp(kappa)}
	case 7:
		k := s.logU(1e-7, 1e-1)
		x0 := (s.frac()*1.2 - 0.2) * 5 / k // about −1/k … 5/k
		return engine.Curve{Type: "logistic", Beta: fp(beta), K: fp(k), X0: fp(x0)}
	}
	np := 1 + s.intn(5)
	pts := make([][]float64, np)
	x, y := 0.0, 0.0
	for j := range pts {
		x += s.logU(1, 1e6)
		if s.intn(4) != 0 {
			y += s.logU(1e-2, 1e6)
		}
		pts[j] = []float64{x, y}
	}
	return engine.Curve{Type: "piecewise", Points: pts}
}

func (s *choiceStream) channel() engine.Channel {
	ch := engine.Channel{Curve: s.curve()}
	if s.intn(3) == 0 {
		ch.Adstock = &engine.Adstock{Type: "geometric", Decay: fp(0.99 * s.frac())}
	}
	return ch
}

// channelNames are the channels of a generated model, in order: a model of n channels
// has the first n.
var channelNames = [...]string{"tv", "digital", "radio", "search", "social", "ooh", "print", "promo"}

// Request builds the request that data encodes: a model carried inline (every curve
// type, adstock, sometimes a secondary KPI "awareness"), a current budget, constraints of
// every kind (coupling ones included) and any objective. Input past its end reads as a
// fixed filler, so every input, the empty one too, gives a request; the same bytes always
// give the same request. The result is well-formed but may be contradictory (min above
// max and the like), which the engine must answer as such.
func Request(data []byte) *engine.Request {
	s := &choiceStream{b: data}
	n := 1 + s.intn(len(channelNames))
	names := channelNames[:n]
	m := &engine.Model{ModelID: "gen", Baseline: s.logU(1, 1e6) - 1, Channels: map[string]engine.Channel{}}
	for _, name := range names {
		m.Channels[name] = s.channel()
	}
	if s.intn(3) == 0 {
		km := engine.KPIModel{Baseline: s.logU(1, 1e5) - 1, Channels: map[string]engine.Channel{}}
		for _, name := range names {
			if s.intn(2) == 0 {
				km.Channels[name] = s.channel()
			}
		}
		m.KPIs = map[string]engine.KPIModel{"awareness": km}
	}
	scale := s.logU(1e2, 1e8)
	req := &engine.Request{Model: m, Budget: map[string]float64{}, Options: &engine.Options{MaxNodes: 200}}
	for _, name := range names {
		if s.intn(3) != 0 {
			req.Budget[name] = math.Round(scale * s.frac())
		}
	}
	c := &req.Constraints
	switch s.intn(6) {
	case 0: // none: the budget's sum, or anything for the other objectives
	case 1, 2:
		c.Total = &engine.Total{Exact: fp(math.Round(scale * (0.5 + s.frac())))}
	case 3:
		lo := math.Round(scale * s.frac() * 0.5)
		hi := math.Round(scale * (0.5 + s.frac()))
		c.Total = &engine.Total{Min: fp(lo), Max: fp(hi)}
	case 4:
		c.Total = &engine.Total{Max: fp(math.Round(scale * (0.5 + s.frac())))}
	case 5:
		c.Total = &engine.Total{Min: fp(math.Round(scale * s.frac() * 0.5))}
	}
	for _, name := range names {
		switch s.intn(8) {
		case 0:
			c.Channels = mapSet(c.Channels, name, engine.ChannelBounds{Min: fp(math.Round(scale * s.frac() / float64(n)))})
		case 1:
			c.Channels = mapSet(c.Channels, name, engine.ChannelBounds{Max: fp(math.Round(scale * s.frac()))})
		case 2:
			lo := math.Round(scale * s.frac() / float64(n))
			c.Channels = mapSet(c.Channels, name, engine.ChannelBounds{Min: fp(lo), Max: fp(lo + math.Round(scale*s.frac()))})
		case 3:
			c.Channels = mapSet(c.Channels, name, engine.ChannelBounds{Fixed: true})
		}
	}
	if s.intn(5) == 0 {
		c.MaxChange = fp(s.frac() * 2)
	}
	if s.intn(4) == 0 {
		c.MaxShare = fp(0.05 + 0.95*s.frac())
	}
	for g := s.intn(3); g > 0 && n > 1; g-- {
		var members []string
		for _, name := range names {
			if s.intn(2) == 0 {
				members = append(members, name)
			}
		}
		if len(members) == 0 {
			members = names[:1]
		}
		grp := engine.Group{Name: "g", Channels: members}
		switch s.intn(4) {
		case 0:
			grp.MinShare = fp(s.frac() * 0.8)
		case 1:
			grp.MaxShare = fp(0.2 + 0.8*s.frac())
		case 2:
			grp.Min = fp(math.Round(scale * s.frac() * 0.5))
		default:
			grp.Max = fp(math.Round(scale * s.frac()))
		}
		c.Groups = append(c.Groups, grp)
	}
	if n > 1 && s.intn(3) == 0 {
		i, j := s.intn(n), s.intn(n)
		if i == j {
			j = (i + 1) % n
		}
		r := engine.Ratio{Numerator: names[i], Denominator: names[j]}
		lo := s.logU(1e-2, 10)
		switch s.intn(3) {
		case 0:
			r.Min = fp(lo)
		case 1:
			r.Max = fp(lo)
		default:
			r.Min, r.Max = fp(lo), fp(lo*(1+5*s.frac()))
		}
		c.Ratios = append(c.Ratios, r)
	}
	o := &req.Objective
	kpis := []string{"revenue"}
	if m.KPIs != nil {
		kpis = append(kpis, "awareness")
	}
	switch s.intn(7) {
	case 0, 1:
		o.Type = engine.ObjMaxKPI
		if s.intn(4) == 0 {
			o.KPI = kpis[s.intn(len(kpis))]
		}
	case 2:
		o.Type = engine.ObjWeighted
		o.Weights = map[string]float64{}
		for _, k := range kpis {
			o.Weights[k] = s.frac() + 0.01
		}
	case 3:
		o.Type = engine.ObjMinSpend
		o.Target = map[string]float64{kpis[s.intn(len(kpis))]: m.Baseline + s.logU(1, 1e7)}
	case 4:
		o.Type = engine.ObjTargetROI
		o.ROI = fp(s.logU(1e-2, 1e2))
	case 5:
		o.Type = engine.ObjTargetMROI
		o.MROI = fp(s.logU(1e-3, 1e2))
	default: // the default objective, left empty
	}
	if o.Type != engine.ObjMinSpend && m.KPIs != nil && s.intn(4) == 0 {
		o.Floors = map[string]float64{"awareness": m.KPIs["awareness"].Baseline + s.logU(1, 1e6)}
	}
	// Sometimes set floors and targets the current budget meets, so that an
	// "infeasible" answer can be checked against it.
	if s.intn(2) == 0 {
		e := KPIValues(m, req.Budget)
		if o.Floors != nil {
			o.Floors["awareness"] = e["awareness"] - math.Abs(e["awareness"])*0.5*s.frac()
		}
		if o.Type == engine.ObjMinSpend {
			for k := range o.Target {
				o.Target[k] = e[k] - math.Abs(e[k])*0.5*s.frac()
			}
		}
	}
	return req
}

// Coupled reports whether a request has constraints that tie channels together (groups,
// ratios, a maximum share): the engine solves those with its interior-point method
// rather than channel by channel.
func Coupled(req *engine.Request) bool {
	c := req.Constraints
	return len(c.Groups) > 0 || len(c.Ratios) > 0 || c.MaxShare != nil
}

func fp(v float64) *float64 { return &v }

func mapSet(m map[string]engine.ChannelBounds, k string, v engine.ChannelBounds) map[string]engine.ChannelBounds {
	if m == nil {
		m = map[string]engine.ChannelBounds{}
	}
	m[k] = v
	return m
}
