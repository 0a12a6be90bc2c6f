package engine_test

import (
	"strings"
	"testing"

	"github.com/atlas-mmm/atlas/engine"
)

// For max_kpi and weighted, whether the coupling rows admit a plan is decided after the
// solve (the solve's plan, when it is one, proves it). A request whose rows admit none
// must still get the result the check before the solve gives: infeasible, one message
// naming the conflicting constraints, the current plan's totals, and no solver work
// reported — also where the spend would otherwise be unbounded.
func TestRowsInfeasibleAsBeforeTheSolve(t *testing.T) {
	sat := &engine.Model{ModelID: "sat3", Baseline: 100, Channels: map[string]engine.Channel{
		"tv":      {Curve: engine.Curve{Type: "saturation", Beta: fp(5e5), Kappa: fp(1e5)}},
		"digital": {Curve: engine.Curve{Type: "saturation", Beta: fp(3e5), Kappa: fp(5e4)}},
		"radio":   {Curve: engine.Curve{Type: "hill", Beta: fp(2e5), Alpha: fp(2), Kappa: fp(4e4)}},
	}, KPIs: map[string]engine.KPIModel{"awareness": {Baseline: 10, Channels: map[string]engine.Channel{
		"tv": {Curve: engine.Curve{Type: "exponential", Beta: fp(1e6), Kappa: fp(1e5)}},
	}}}}
	budget := map[string]float64{"tv": 60000, "digital": 30000, "radio": 10000}
	group := func(min float64) []engine.Group {
		return []engine.Group{{Name: "online", Channels: []string{"digital", "radio"}, Min: fp(min)}}
	}
	cases := []struct {
		name  string
		req   engine.Request
		wants []string
	}{
		{"group minimum above the total", engine.Request{Budget: budget,
			Constraints: engine.Constraints{Total: exactTotal(100000), Groups: group(150000)}},
			[]string{"constraints.groups[0]"}},
		{"ratio against a group, weighted", engine.Request{Budget: budget,
			Constraints: engine.Constraints{Total: exactTotal(100000), Groups: group(80000),
				Ratios:   []engine.Ratio{{Numerator: "tv", Denominator: "digital", Min: fp(3)}},
				Channels: map[string]engine.ChannelBounds{"radio": {Max: fp(10000)}}},
			Objective: engine.Objective{Type: "weighted", Weights: map[string]float64{"revenue": 1, "awareness": 0.5}}},
			[]string{"constraints.ratios[0]", "constraints.groups[0]"}},
		{"unbounded spend and infeasible rows", engine.Request{Budget: budget,
			Constraints: engine.Constraints{Total: &engine.Total{Min: fp(100000)},
				Groups: []engine.Group{{Name: "online", Channels: []string{"digital", "radio"}, Max: fp(1000)},
					{Name: "both", Channels: []string{"digital", "radio"}, Min: fp(5000)}}}},
			[]string{"constraints.groups"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := solveOK(t, sat, &c.req)
			mustStatus(t, res, engine.StatusInfeasible)
			if len(res.Messages) != 1 {
				t.Fatalf("messages %q, want one", res.Messages)
			}
			for _, w := range c.wants {
				if !strings.Contains(res.Messages[0], w) {
					t.Errorf("message %q does not contain %q", res.Messages[0], w)
				}
			}
			if res.Current == nil || res.Allocation != nil || res.Certificate != nil {
				t.Errorf("current %v, allocation %v, certificate %v", res.Current, res.Allocation, res.Certificate)
			}
			if e := res.Engine; e.Iterations != 0 || e.Nodes != 0 || e.Algorithm != "" {
				t.Errorf("engine info %+v: no solver work is reported for rows no plan meets", e)
			}
		})
	}
}

// A coupled request whose current plan breaks a row is proven feasible by the solve's
// own plan: the answer is optimal and meets every row.
func TestRowsProvenBySolve(t *testing.T) {
	m := &engine.Model{ModelID: "c3", Baseline: 0, Channels: map[string]engine.Channel{
		"tv":      {Curve: engine.Curve{Type: "saturation", Beta: fp(5e5), Kappa: fp(1e5)}},
		"digital": {Curve: engine.Curve{Type: "saturation", Beta: fp(3e5), Kappa: fp(5e4)}},
		"radio":   {Curve: engine.Curve{Type: "log", Beta: fp(1e5), Kappa: fp(2e4)}},
	}}
	req := engine.Request{Budget: map[string]float64{"tv": 90000, "digital": 5000, "radio": 5000},
		Constraints: engine.Constraints{Total: exactTotal(100000),
			Groups: []engine.Group{{Name: "online", Channels: []string{"digital", "radio"}, Min: fp(40000)}},
			Ratios: []engine.Ratio{{Numerator: "digital", Denominator: "radio", Max: fp(1.5)}}}}
	res := solveOK(t, m, &req)
	mustStatus(t, res, engine.StatusOptimal)
	a := res.Allocation
	if on := a["digital"] + a["radio"]; on < 40000*(1-1e-9) {
		t.Errorf("group online spends %v < 40000", on)
	}
	if a["digital"] > 1.5*a["radio"]*(1+1e-9) {
		t.Errorf("ratio digital/radio = %v > 1.5", a["digital"]/a["radio"])
	}
}
