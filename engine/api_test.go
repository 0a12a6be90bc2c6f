package engine_test

// Black-box tests of the engine's public behaviour (contract §1–§3): input validation,
// infeasibility diagnosis, every objective on small hand-checkable models, randomised
// properties checked against an independent reference implementation of the curves,
// determinism and the quickstart example.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atlas-mmm/atlas/engine"
	"github.com/atlas-mmm/atlas/engine/enginegen"
)

// ---------------------------------------------------------------------------------------
// Small helpers

func fp(v float64) *float64 { return &v }

func exactTotal(t float64) *engine.Total      { return &engine.Total{Exact: fp(t)} }
func rangeTotal(lo, hi float64) *engine.Total { return &engine.Total{Min: fp(lo), Max: fp(hi)} }

func bounds(lo, hi float64) engine.ChannelBounds {
	return engine.ChannelBounds{Min: fp(lo), Max: fp(hi)}
}

// relDiff is |a−b| / max(|a|, |b|, 1e-300).
func relDiff(a, b float64) float64 {
	d := math.Abs(a - b)
	if d == 0 {
		return 0
	}
	return d / math.Max(math.Max(math.Abs(a), math.Abs(b)), 1e-300)
}

func sortedNames[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sumAlloc(a map[string]float64) float64 {
	s := 0.0
	for _, k := range sortedNames(a) {
		s += a[k]
	}
	return s
}

// solveOK runs Solve and checks what must hold for every result: no internal error (a
// recovered panic), JSON-marshalable (no NaN/Inf), a known status.
func solveOK(t testing.TB, m *engine.Model, req *engine.Request) engine.Result {
	t.Helper()
	res := engine.Solve(m, req)
	checkResultShape(t, res)
	return res
}

func checkResultShape(t testing.TB, res engine.Result) {
	t.Helper()
	for _, msg := range res.Messages {
		if strings.Contains(msg, "internal error") {
			t.Fatalf("engine panicked (recovered): %s", msg)
		}
	}
	if _, err := json.Marshal(res); err != nil {
		t.Fatalf("result does not marshal to JSON: %v (%+v)", err, res)
	}
	switch res.Status {
	case engine.StatusOptimal, engine.StatusFeasible, engine.StatusInfeasible, engine.StatusInvalid:
	default:
		t.Fatalf("unknown status %q", res.Status)
	}
	if res.Status == engine.StatusInvalid && len(res.Errors) == 0 && len(res.Messages) == 0 {
		t.Fatalf("invalid result without errors or messages")
	}
	if res.Status == engine.StatusInfeasible && len(res.Messages) == 0 {
		t.Fatalf("infeasible result without a message naming the conflict")
	}
	if c := res.Certificate; c != nil {
		if c.Gap < 0 || math.IsNaN(c.Gap) {
			t.Fatalf("certificate gap %v", c.Gap)
		}
		if c.UpperBound != nil && *c.UpperBound < c.Objective {
			t.Fatalf("certificate upper bound %.17g below the objective %.17g", *c.UpperBound, c.Objective)
		}
		if c.LowerBound != nil && *c.LowerBound > c.Objective {
			t.Fatalf("certificate lower bound %.17g above the objective %.17g", *c.LowerBound, c.Objective)
		}
	}
}

func mustStatus(t testing.TB, res engine.Result, want string) {
	t.Helper()
	if res.Status != want {
		t.Fatalf("status %q, want %q; messages %q errors %+v", res.Status, want, res.Messages, res.Errors)
	}
}

func decodeReq(t testing.TB, s string) engine.Request {
	t.Helper()
	req, err := engine.DecodeRequest([]byte(s))
	if err != nil {
		t.Fatalf("DecodeRequest: %v\ninput: %s", err, s)
	}
	return req
}

// ---------------------------------------------------------------------------------------
// Reference implementation of the contract's curves (§1), written from the table, not
// from the engine's code.

// The reference evaluation is enginegen's, which the request generator shares: the
// curves (refCurve), a channel with its adstock (refChannel) and every KPI of an
// allocation, baselines included (refKPIs).
var (
	refCurve   = enginegen.CurveValue
	refSigmoid = enginegen.Sigmoid
	refChannel = enginegen.ChannelValue
	refKPIs    = enginegen.KPIValues
)

// refCurveD1 is the derivative of a smooth curve.
func refCurveD1(c engine.Curve, x float64) float64 {
	g := func(p *float64) float64 { return *p }
	switch c.Type {
	case "linear":
		return g(c.Beta)
	case "hill":
		b, a, k := g(c.Beta), g(c.Alpha), g(c.Kappa)
		if x <= 0 {
			switch {
			case a > 1:
				return 0
			case a == 1:
				return b / k
			}
			return math.Inf(1)
		}
		u := math.Pow(x/k, a)
		return b * a * u / (x * (1 + u) * (1 + u))
	case "saturation":
		b, k := g(c.Beta), g(c.Kappa)
		return b * k / ((x + k) * (x + k))
	case "exponential":
		b, k := g(c.Beta), g(c.Kappa)
		return b / k * math.Exp(-x/k)
	case "power":
		b, a := g(c.Beta), g(c.Alpha)
		if x <= 0 {
			if a < 1 {
				return math.Inf(1)
			}
			if a == 1 {
				return b
			}
			return 0
		}
		return a * b * math.Pow(x, a-1)
	case "log":
		return g(c.Beta) / (g(c.Kappa) + x)
	case "logistic":
		k, x0 := g(c.K), g(c.X0)
		s := refSigmoid(k * (x - x0))
		return g(c.Beta) * k * s * (1 - s)
	}
	panic("refCurveD1: not smooth: " + c.Type)
}

func adstockScale(ch engine.Channel) float64 {
	if ch.Adstock != nil && ch.Adstock.Decay != nil {
		return 1 / (1 - *ch.Adstock.Decay)
	}
	return 1
}

func refChannelD1(ch engine.Channel, x float64) float64 {
	s := adstockScale(ch)
	return s * refCurveD1(ch.Curve, x*s)
}

// checkExpected compares the result's KPIs, spend and per-channel figures with the
// reference evaluation of its allocation.
func checkExpected(t testing.TB, m *engine.Model, res engine.Result) {
	t.Helper()
	want := refKPIs(m, res.Allocation)
	for k, v := range want {
		got, ok := res.Expected[k]
		if !ok {
			t.Errorf("expected is missing KPI %q (has %v)", k, res.Expected)
			continue
		}
		if relDiff(got, v) > 1e-9 && math.Abs(got-v) > 1e-6 {
			t.Errorf("expected[%s] = %.17g, reference evaluation %.17g", k, got, v)
		}
	}
	if len(res.Expected) != len(want) {
		t.Errorf("expected has KPIs %v, want %v", sortedNames(res.Expected), sortedNames(want))
	}
	if s := sumAlloc(res.Allocation); relDiff(s, res.TotalSpend) > 1e-12 {
		t.Errorf("total_spend %.17g but the allocation sums to %.17g", res.TotalSpend, s)
	}
	for _, name := range sortedNames(m.Channels) {
		if _, ok := res.Allocation[name]; !ok {
			t.Errorf("allocation is missing channel %s", name)
		}
		ch, ok := res.Channels[name]
		if !ok {
			t.Errorf("channels is missing %s", name)
			continue
		}
		x := res.Allocation[name]
		if ch.Spend != x {
			t.Errorf("channels.%s.spend %v != allocation %v", name, ch.Spend, x)
		}
		r := refChannel(m.Channels[name], x)
		if relDiff(ch.Response, r) > 1e-9 && math.Abs(ch.Response-r) > 1e-6 {
			t.Errorf("channels.%s.response %.17g, reference %.17g", name, ch.Response, r)
		}
		if x > 0 {
			if ch.ROI == nil || relDiff(*ch.ROI, r/x) > 1e-9 {
				t.Errorf("channels.%s.roi = %v, want %v", name, ch.ROI, r/x)
			}
		}
		if m.Channels[name].Curve.Type != "piecewise" && ch.MROI != nil {
			d := refChannelD1(m.Channels[name], x)
			if relDiff(*ch.MROI, d) > 1e-7 && math.Abs(*ch.MROI-d) > 1e-9 {
				t.Errorf("channels.%s.mroi = %.17g, reference %.17g", name, *ch.MROI, d)
			}
		}
	}
}

// ---------------------------------------------------------------------------------------
// An independent check of a plan against every constraint of the request (§2).

// planViolations lists the constraints of req that the result's allocation breaks by
// more than tol (relative to the size of the quantity or the total spend, at least 1).
func planViolations(m *engine.Model, req *engine.Request, res *engine.Result, tol float64) []string {
	var v []string
	bad := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	x := res.Allocation
	for _, name := range sortedNames(x) {
		if _, ok := m.Channels[name]; !ok {
			bad("allocation names %q, which is not a model channel", name)
		}
		if math.IsNaN(x[name]) || math.IsInf(x[name], 0) || x[name] < 0 {
			bad("allocation[%s] = %v", name, x[name])
		}
	}
	S := sumAlloc(x)
	sc := math.Max(1, S)
	le := func(a, b, scale float64) bool { return a <= b+tol*math.Max(1, scale) }
	c := req.Constraints
	budgetSum := sumAlloc(req.Budget)
	obj := req.Objective.Type
	switch {
	case c.Total == nil:
		if obj == "" || obj == engine.ObjMaxKPI || obj == engine.ObjWeighted {
			if math.Abs(S-budgetSum) > tol*math.Max(1, budgetSum) {
				bad("total spend %.17g, but no total is given so it must be the budget's sum %.17g", S, budgetSum)
			}
		}
	case c.Total.Exact != nil:
		if T := *c.Total.Exact; math.Abs(S-T) > tol*math.Max(1, T) {
			bad("total spend %.17g != constraints.total %.17g", S, T)
		}
	default:
		if c.Total.Min != nil && !le(*c.Total.Min, S, *c.Total.Min) {
			bad("total spend %.17g below constraints.total.min %.17g", S, *c.Total.Min)
		}
		if c.Total.Max != nil && !le(S, *c.Total.Max, *c.Total.Max) {
			bad("total spend %.17g above constraints.total.max %.17g", S, *c.Total.Max)
		}
	}
	for _, name := range sortedNames(c.Channels) {
		b := c.Channels[name]
		if b.Min != nil && !le(*b.Min, x[name], *b.Min) {
			bad("channel %s spend %.17g below min %.17g", name, x[name], *b.Min)
		}
		if b.Max != nil && !le(x[name], *b.Max, *b.Max) {
			bad("channel %s spend %.17g above max %.17g", name, x[name], *b.Max)
		}
		if b.Fixed && math.Abs(x[name]-req.Budget[name]) > tol*math.Max(1, req.Budget[name]) {
			bad("fixed channel %s spend %.17g != budget %.17g", name, x[name], req.Budget[name])
		}
	}
	if c.MaxChange != nil {
		d := *c.MaxChange
		for _, name := range sortedNames(m.Channels) {
			b := req.Budget[name]
			if math.Abs(x[name]-b) > d*b+tol*math.Max(1, b) {
				bad("channel %s spend %.17g moves more than max_change %g from budget %.17g", name, x[name], d, b)
			}
		}
	}
	if c.MaxShare != nil {
		for _, name := range sortedNames(x) {
			if !le(x[name], *c.MaxShare*S, sc) {
				bad("channel %s spend %.17g above max_share %g of %.17g", name, x[name], *c.MaxShare, S)
			}
		}
	}
	for g, grp := range c.Groups {
		gs := 0.0
		for _, name := range grp.Channels {
			gs += x[name]
		}
		if grp.Min != nil && !le(*grp.Min, gs, sc) {
			bad("groups[%d] spend %.17g below min %.17g", g, gs, *grp.Min)
		}
		if grp.Max != nil && !le(gs, *grp.Max, sc) {
			bad("groups[%d] spend %.17g above max %.17g", g, gs, *grp.Max)
		}
		if grp.MinShare != nil && !le(*grp.MinShare*S, gs, sc) {
			bad("groups[%d] spend %.17g below min_share %g of %.17g", g, gs, *grp.MinShare, S)
		}
		if grp.MaxShare != nil && !le(gs, *grp.MaxShare*S, sc) {
			bad("groups[%d] spend %.17g above max_share %g of %.17g", g, gs, *grp.MaxShare, S)
		}
	}
	for r, rt := range c.Ratios {
		xn, xd := x[rt.Numerator], x[rt.Denominator]
		if rt.Min != nil && !le(*rt.Min*xd, xn, sc) {
			bad("ratios[%d]: %s=%.17g < %g × %s=%.17g", r, rt.Numerator, xn, *rt.Min, rt.Denominator, xd)
		}
		if rt.Max != nil && !le(xn, *rt.Max*xd, sc) {
			bad("ratios[%d]: %s=%.17g > %g × %s=%.17g", r, rt.Numerator, xn, *rt.Max, rt.Denominator, xd)
		}
	}
	// KPI floors and targets are checked against the KPIs the result reports (checkExpected
	// compares those with the reference evaluation).
	kpis := res.Expected
	if kpis == nil {
		kpis = refKPIs(m, x)
	}
	for _, k := range sortedNames(req.Objective.Floors) {
		f := req.Objective.Floors[k]
		if kpis[k] < f-tol*math.Max(1, math.Abs(f)) {
			bad("objective.floors.%s = %.17g not met: %.17g", k, f, kpis[k])
		}
	}
	if obj == engine.ObjMinSpend {
		for _, k := range sortedNames(req.Objective.Target) {
			f := req.Objective.Target[k]
			if kpis[k] < f-tol*math.Max(1, math.Abs(f)) {
				bad("objective.target.%s = %.17g not met: %.17g", k, f, kpis[k])
			}
		}
	}
	return v
}

func mustHoldPlan(t testing.TB, m *engine.Model, req *engine.Request, res engine.Result, tol float64) {
	t.Helper()
	for _, s := range planViolations(m, req, &res, tol) {
		t.Errorf("constraint violated: %s", s)
	}
}

// ---------------------------------------------------------------------------------------
// 1. Invalid input

const baseRequestJSON = `{
 "request_id": "r1",
 "model": {"model_id": "m", "kpi": "revenue", "baseline": 1000,
   "channels": {
     "tv":      {"curve": {"type": "hill", "beta": 900000, "alpha": 2.2, "kappa": 250000},
                 "adstock": {"type": "geometric", "decay": 0.4}},
     "digital": {"curve": {"type": "saturation", "beta": 400000, "kappa": 80000}},
     "radio":   {"curve": {"type": "piecewise", "points": [[10000, 30000], [50000, 60000]]}}},
   "kpis": {"awareness": {"baseline": 0, "channels": {"tv": {"curve": {"type": "log", "beta": 3e6, "kappa": 1e5}}}}}},
 "budget": {"tv": 100000, "digital": 150000, "radio": 50000},
 "constraints": {"total": 300000,
   "channels": {"tv": {"min": 50000, "max": 200000}},
   "groups": [{"name": "dig", "channels": ["digital", "radio"], "min_share": 0.2}],
   "ratios": [{"numerator": "tv", "denominator": "digital", "min": 0.2, "max": 5}]},
 "objective": {"type": "max_kpi"}
}`

// jsonEdit applies edits to a generic JSON document. Paths are dot-separated; numeric
// segments index arrays.
type jsonEdit struct {
	path  string
	value any  // the new value
	del   bool // delete instead
}

func editJSON(t testing.TB, doc string, edits ...jsonEdit) []byte {
	t.Helper()
	var root any
	if err := json.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatal(err)
	}
	for _, e := range edits {
		segs := strings.Split(e.path, ".")
		cur := root
		for i, s := range segs {
			last := i == len(segs)-1
			switch node := cur.(type) {
			case map[string]any:
				if last {
					if e.del {
						delete(node, s)
					} else {
						node[s] = e.value
					}
					break
				}
				next, ok := node[s]
				if !ok {
					next = map[string]any{}
					node[s] = next
				}
				cur = next
			case []any:
				j, err := strconv.Atoi(s)
				if err != nil || j >= len(node) {
					t.Fatalf("bad edit path %q", e.path)
				}
				if last {
					node[j] = e.value
					break
				}
				cur = node[j]
			default:
				t.Fatalf("bad edit path %q", e.path)
			}
		}
	}
	b, err := json.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fieldsOf(errs []engine.FieldError) []string {
	var fs []string
	for _, e := range errs {
		fs = append(fs, e.Field)
	}
	return fs
}

func hasField(errs []engine.FieldError, field string) bool {
	for _, e := range errs {
		if e.Field == field {
			return true
		}
	}
	return false
}

// rejectField decodes and, when decoding succeeds, solves data, and requires that some
// stage rejects it with an error whose Field is exactly want.
func rejectField(t *testing.T, data []byte, want string) {
	t.Helper()
	var req engine.Request
	var err error
	func() {
		defer func() {
			if v := recover(); v != nil {
				t.Fatalf("DecodeRequest panicked: %v", v)
			}
		}()
		req, err = engine.DecodeRequest(data)
	}()
	if err != nil {
		var fes engine.FieldErrors
		if !errors.As(err, &fes) {
			t.Fatalf("DecodeRequest error is %T, want engine.FieldErrors: %v", err, err)
		}
		if _, ok := err.(engine.FieldErrors); !ok {
			t.Errorf("DecodeRequest error is %T, not engine.FieldErrors itself", err)
		}
		if len(fes) == 0 {
			t.Fatalf("DecodeRequest returned an empty FieldErrors")
		}
		if !hasField(fes, want) {
			t.Errorf("DecodeRequest rejected it with fields %q, want field %q (%v)", fieldsOf(fes), want, err)
		}
		return
	}
	res := solveOK(t, nil, &req)
	if res.Status != engine.StatusInvalid {
		t.Fatalf("accepted: status %q, want invalid with field %q; messages %q", res.Status, want, res.Messages)
	}
	if !hasField(res.Errors, want) {
		t.Errorf("Solve rejected it with fields %q, want field %q; messages %q", fieldsOf(res.Errors), want, res.Messages)
	}
	if len(res.Messages) == 0 {
		t.Errorf("invalid result without messages")
	}
	if res.Allocation != nil {
		t.Errorf("invalid result carries an allocation")
	}
}

func TestBaseRequestIsValid(t *testing.T) {
	req := decodeReq(t, baseRequestJSON)
	res := solveOK(t, nil, &req)
	mustStatus(t, res, engine.StatusOptimal)
	mustHoldPlan(t, req.Model, &req, res, 1e-9)
	checkExpected(t, req.Model, res)
}

func TestInvalidSemantics(t *testing.T) {
	type C struct {
		name  string
		edits []jsonEdit
		field string
	}
	set := func(p string, v any) jsonEdit { return jsonEdit{path: p, value: v} }
	del := func(p string) jsonEdit { return jsonEdit{path: p, del: true} }
	cases := []C{
		{"negative beta", []jsonEdit{set("model.channels.digital.curve.beta", -5)}, "model.channels.digital.curve.beta"},
		{"hill without kappa", []jsonEdit{del("model.channels.tv.curve.kappa")}, "model.channels.tv.curve.kappa"},
		{"hill alpha zero", []jsonEdit{set("model.channels.tv.curve.alpha", 0)}, "model.channels.tv.curve.alpha"},
		{"saturation kappa zero", []jsonEdit{set("model.channels.digital.curve.kappa", 0)}, "model.channels.digital.curve.kappa"},
		{"unknown curve type", []jsonEdit{set("model.channels.digital.curve.type", "sigmoid")}, "model.channels.digital.curve.type"},
		{"missing curve type", []jsonEdit{del("model.channels.digital.curve.type")}, "model.channels.digital.curve.type"},
		{"alpha on saturation", []jsonEdit{set("model.channels.digital.curve.alpha", 2)}, "model.channels.digital.curve.alpha"},
		{"kappa on piecewise", []jsonEdit{set("model.channels.radio.curve.kappa", 2)}, "model.channels.radio.curve.kappa"},
		{"piecewise y decreasing", []jsonEdit{set("model.channels.radio.curve.points", [][]float64{{10, 30}, {20, 10}})}, "model.channels.radio.curve.points[1]"},
		{"piecewise x not increasing", []jsonEdit{set("model.channels.radio.curve.points", [][]float64{{10, 30}, {10, 40}})}, "model.channels.radio.curve.points[1]"},
		{"secondary KPI beta negative", []jsonEdit{set("model.kpis.awareness.channels.tv.curve.beta", -1)}, "model.kpis.awareness.channels.tv.curve.beta"},
		{"secondary KPI unknown channel", []jsonEdit{set("model.kpis.awareness.channels.print", map[string]any{"curve": map[string]any{"type": "linear", "beta": 1}})}, "model.kpis.awareness.channels.print"},
		{"adstock decay 1", []jsonEdit{set("model.channels.tv.adstock.decay", 1)}, "model.channels.tv.adstock.decay"},
		{"adstock decay 1.5", []jsonEdit{set("model.channels.tv.adstock.decay", 1.5)}, "model.channels.tv.adstock.decay"},
		{"adstock decay negative", []jsonEdit{set("model.channels.tv.adstock.decay", -0.1)}, "model.channels.tv.adstock.decay"},
		{"adstock unknown type", []jsonEdit{set("model.channels.tv.adstock.type", "weibull")}, "model.channels.tv.adstock.type"},
		{"model without channels", []jsonEdit{set("model.channels", map[string]any{}), del("model.kpis"), del("budget"), del("constraints")}, "model.channels"},
		{"no model at all", []jsonEdit{del("model")}, "model_id"},
		{"unknown channel in budget", []jsonEdit{set("budget.print", 1000)}, "budget.print"},
		{"negative budget", []jsonEdit{set("budget.digital", -1)}, "budget.digital"},
		{"unknown channel in constraints.channels", []jsonEdit{set("constraints.channels.print", map[string]any{"max": 5})}, "constraints.channels.print"},
		{"unknown channel in group", []jsonEdit{set("constraints.groups.0.channels", []string{"digital", "print"})}, "constraints.groups[0].channels[1]"},
		{"channel twice in group", []jsonEdit{set("constraints.groups.0.channels", []string{"digital", "digital"})}, "constraints.groups[0].channels[1]"},
		{"unknown ratio numerator", []jsonEdit{set("constraints.ratios.0.numerator", "print")}, "constraints.ratios[0].numerator"},
		{"unknown ratio denominator", []jsonEdit{set("constraints.ratios.0.denominator", "print")}, "constraints.ratios[0].denominator"},
		{"ratio of a channel to itself", []jsonEdit{set("constraints.ratios.0.denominator", "tv")}, "constraints.ratios[0]"},
		{"channel min above max", []jsonEdit{set("constraints.channels.tv", map[string]any{"min": 300, "max": 200})}, "constraints.channels.tv"},
		{"channel min negative", []jsonEdit{set("constraints.channels.tv", map[string]any{"min": -3})}, "constraints.channels.tv.min"},
		{"group min_share above max_share", []jsonEdit{set("constraints.groups.0", map[string]any{"channels": []string{"digital", "radio"}, "min_share": 0.6, "max_share": 0.4})}, "constraints.groups[0]"},
		{"group min_share above 1", []jsonEdit{set("constraints.groups.0.min_share", 1.2)}, "constraints.groups[0].min_share"},
		{"group without channels", []jsonEdit{set("constraints.groups.0.channels", []string{})}, "constraints.groups[0].channels"},
		{"max_share zero", []jsonEdit{set("constraints.max_share", 0)}, "constraints.max_share"},
		{"max_share above 1", []jsonEdit{set("constraints.max_share", 1.5)}, "constraints.max_share"},
		{"max_change negative", []jsonEdit{set("constraints.max_change", -0.1)}, "constraints.max_change"},
		{"negative total", []jsonEdit{set("constraints.total", -5)}, "constraints.total"},
		{"total range min above max", []jsonEdit{set("constraints.total", map[string]any{"min": 5, "max": 4})}, "constraints.total"},
		{"no total and empty budget", []jsonEdit{del("constraints.total"), del("budget"), del("constraints.channels"), del("constraints.groups"), del("constraints.ratios")}, "constraints.total"},
		{"objective type unknown", []jsonEdit{set("objective.type", "max_profit")}, "objective.type"},
		{"objective kpi unknown", []jsonEdit{set("objective.kpi", "reach")}, "objective.kpi"},
		{"weighted with unknown KPI", []jsonEdit{set("objective", map[string]any{"type": "weighted", "weights": map[string]any{"revenue": 1, "reach": 2}})}, "objective.weights.reach"},
		{"weighted without weights", []jsonEdit{set("objective", map[string]any{"type": "weighted"})}, "objective.weights"},
		{"floor on unknown KPI", []jsonEdit{set("objective.floors", map[string]any{"reach": 5})}, "objective.floors.reach"},
		{"min_spend without target", []jsonEdit{set("objective", map[string]any{"type": "min_spend"})}, "objective.target"},
		{"min_spend target unknown KPI", []jsonEdit{set("objective", map[string]any{"type": "min_spend", "target": map[string]any{"reach": 5}})}, "objective.target.reach"},
		{"target_roi without roi", []jsonEdit{set("objective", map[string]any{"type": "target_roi"})}, "objective.roi"},
		{"target_roi with negative roi", []jsonEdit{set("objective", map[string]any{"type": "target_roi", "roi": -1})}, "objective.roi"},
		{"target_mroi without mroi", []jsonEdit{set("objective", map[string]any{"type": "target_mroi"})}, "objective.mroi"},
		{"roi on max_kpi", []jsonEdit{set("objective.roi", 2)}, "objective.roi"},
		{"options.gap out of range", []jsonEdit{set("options", map[string]any{"gap": 2})}, "options.gap"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rejectField(t, editJSON(t, baseRequestJSON, c.edits...), c.field)
		})
	}
}

// TestInvalidStructModel passes an invalid model struct straight to Solve (no decoding).
func TestInvalidStructModel(t *testing.T) {
	m := &engine.Model{ModelID: "m", Channels: map[string]engine.Channel{
		"tv":      {Curve: engine.Curve{Type: "saturation", Beta: fp(-1), Kappa: fp(5)}},
		"digital": {Curve: engine.Curve{Type: "linear", Beta: fp(1)}},
	}}
	req := &engine.Request{Budget: map[string]float64{"tv": 1, "digital": 1}}
	res := solveOK(t, m, req)
	mustStatus(t, res, engine.StatusInvalid)
	if !hasField(res.Errors, "model.channels.tv.curve.beta") {
		t.Errorf("fields %q, want model.channels.tv.curve.beta", fieldsOf(res.Errors))
	}
	// The explicit model wins over an inline one.
	good := &engine.Model{ModelID: "good", Channels: map[string]engine.Channel{
		"tv": {Curve: engine.Curve{Type: "linear", Beta: fp(2)}}, "digital": {Curve: engine.Curve{Type: "linear", Beta: fp(1)}},
	}}
	req.Model = m
	res = solveOK(t, good, req)
	mustStatus(t, res, engine.StatusOptimal)
	if res.ModelID != "good" {
		t.Errorf("model_id %q, want the explicit model's", res.ModelID)
	}
}

// TestDecodeModelErrors: DecodeModel names fields without the "model." prefix.
func TestDecodeModelErrors(t *testing.T) {
	base := `{"model_id":"m","baseline":0,"channels":{
	  "tv":{"curve":{"type":"hill","beta":1e6,"alpha":2,"kappa":1e5},"adstock":{"type":"geometric","decay":0.3}},
	  "digital":{"curve":{"type":"saturation","beta":4e5,"kappa":8e4}}}}`
	if _, err := engine.DecodeModel([]byte(base)); err != nil {
		t.Fatalf("base model rejected: %v", err)
	}
	cases := []struct {
		name, field string
		edit        jsonEdit
	}{
		{"negative beta", "channels.digital.curve.beta", jsonEdit{path: "channels.digital.curve.beta", value: -1}},
		{"missing kappa", "channels.tv.curve.kappa", jsonEdit{path: "channels.tv.curve.kappa", del: true}},
		{"unknown type", "channels.tv.curve.type", jsonEdit{path: "channels.tv.curve.type", value: "nope"}},
		{"alpha on saturation", "channels.digital.curve.alpha", jsonEdit{path: "channels.digital.curve.alpha", value: 1}},
		{"decay 1", "channels.tv.adstock.decay", jsonEdit{path: "channels.tv.adstock.decay", value: 1}},
		{"decay negative", "channels.tv.adstock.decay", jsonEdit{path: "channels.tv.adstock.decay", value: -0.5}},
		{"unknown field", "channels.tv.curve.kapa", jsonEdit{path: "channels.tv.curve.kapa", value: 1}},
		{"unknown top field", "version", jsonEdit{path: "version", value: 1}},
		{"wrong type", "baseline", jsonEdit{path: "baseline", value: "x"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := engine.DecodeModel(editJSON(t, base, c.edit))
			fes, ok := err.(engine.FieldErrors)
			if !ok {
				t.Fatalf("error %T %v, want engine.FieldErrors", err, err)
			}
			if !hasField(fes, c.field) {
				t.Errorf("fields %q, want %q", fieldsOf(fes), c.field)
			}
		})
	}
}

// TestDecodeErrors covers JSON-level problems: unknown fields, wrong types, broken JSON.
// Each must come back from DecodeRequest as engine.FieldErrors naming the exact field.
func TestDecodeErrors(t *testing.T) {
	type C struct {
		name  string
		data  []byte
		field string // "" means: no particular field, but an error
	}
	set := func(p string, v any) []byte { return editJSON(t, baseRequestJSON, jsonEdit{path: p, value: v}) }
	cases := []C{
		// unknown fields anywhere
		{"unknown top-level field", set("foo", 1), "foo"},
		{"unknown group field", set("constraints.groups.0.mins", 3), "constraints.groups[0].mins"},
		{"unknown ratio field", set("constraints.ratios.0.numer", "tv"), "constraints.ratios[0].numer"},
		{"unknown channel-bound field", set("constraints.channels.tv.maximum", 3), "constraints.channels.tv.maximum"},
		{"unknown constraints field", set("constraints.budget_cap", 3), "constraints.budget_cap"},
		{"unknown objective field", set("objective.wieghts", map[string]any{"revenue": 1}), "objective.wieghts"},
		{"unknown options field", set("options", map[string]any{"gapp": 1}), "options.gapp"},
		{"unknown curve parameter", set("model.channels.tv.curve.kapa", 3), "model.channels.tv.curve.kapa"},
		{"unknown adstock field", set("model.channels.tv.adstock.dcay", 0.3), "model.channels.tv.adstock.dcay"},
		{"unknown channel field", set("model.channels.tv.lag", 2), "model.channels.tv.lag"},
		{"unknown model field", set("model.version", 2), "model.version"},
		{"unknown secondary-KPI curve field", set("model.kpis.awareness.channels.tv.curve.bta", 2), "model.kpis.awareness.channels.tv.curve.bta"},
		{"unknown field in total range", set("constraints.total", map[string]any{"min": 1, "mx": 2}), "constraints.total.mx"},
		// wrong JSON types
		{"total is a string", set("constraints.total", "abc"), "constraints.total"},
		{"total is true", set("constraints.total", true), "constraints.total"},
		{"total min is a string", set("constraints.total", map[string]any{"min": "x"}), "constraints.total.min"},
		{"budget value is a string", set("budget.tv", "x"), "budget.tv"},
		{"budget is an array", set("budget", []int{1}), "budget"},
		{"group channels is a string", set("constraints.groups.0.channels", "digital"), "constraints.groups[0].channels"},
		{"channel bound is a string", set("constraints.channels.tv.min", "3"), "constraints.channels.tv.min"},
		{"max_change is a bool", set("constraints.max_change", true), "constraints.max_change"},
		{"roi is a string", set("objective.roi", "2"), "objective.roi"},
		{"model baseline is a string", set("model.baseline", "x"), "model.baseline"},
		{"curve beta is a string", set("model.channels.digital.curve.beta", "x"), "model.channels.digital.curve.beta"},
		{"fixed is a number", set("constraints.channels.tv.fixed", 1), "constraints.channels.tv.fixed"},
		{"piecewise point with 3 numbers", set("model.channels.radio.curve.points", [][]float64{{10000, 30000, 5}}), "model.channels.radio.curve.points[0]"},
		{"piecewise point with 1 number", set("model.channels.radio.curve.points", [][]float64{{10000}}), "model.channels.radio.curve.points[0]"},
		{"number out of range", []byte(strings.Replace(baseRequestJSON, `"tv": 100000,`, `"tv": 1e999,`, 1)), "budget.tv"},
		// broken JSON
		{"truncated", []byte(baseRequestJSON[:len(baseRequestJSON)/2]), ""},
		{"truncated after key", []byte(`{"budget": {"tv": 1`), ""},
		{"empty", []byte(""), ""},
		{"whitespace", []byte("  \n "), ""},
		{"trailing garbage", append([]byte(baseRequestJSON), []byte(" xyz")...), ""},
		{"trailing second object", append([]byte(baseRequestJSON), []byte(" {}")...), ""},
		{"trailing bracket", append([]byte(baseRequestJSON), []byte("]")...), ""},
		{"array instead of object", []byte(`[1,2]`), ""},
		{"bare string", []byte(`"hello"`), ""},
		{"binary junk", []byte{0xff, 0xfe, 0x00, '{'}, ""},
		{"nested too deep", []byte(strings.Repeat("[", 20000) + strings.Repeat("]", 20000)), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if v := recover(); v != nil {
						t.Fatalf("DecodeRequest panicked: %v", v)
					}
				}()
				_, err = engine.DecodeRequest(c.data)
			}()
			if err == nil {
				t.Fatalf("accepted, want an error naming %q", c.field)
			}
			fes, ok := err.(engine.FieldErrors)
			if !ok {
				t.Fatalf("error is %T (%v), want engine.FieldErrors", err, err)
			}
			if len(fes) == 0 || fes.Error() == "" {
				t.Fatalf("empty FieldErrors")
			}
			if c.field != "" && !hasField(fes, c.field) {
				t.Errorf("fields %q, want %q (%v)", fieldsOf(fes), c.field, err)
			}
		})
	}
}

// TestDecodeKeysAreCaseSensitive: the contract's names are lower case; encoding/json
// matches struct fields case-insensitively unless told otherwise, which would let a
// miscased key through as if it were the real one (and a duplicate in another case
// silently override it).
func TestDecodeKeysAreCaseSensitive(t *testing.T) {
	for _, c := range []struct{ data, field string }{
		{`{"model":{"channels":{"tv":{"curve":{"type":"linear","Beta":1}}}},"budget":{"tv":1}}`, "model.channels.tv.curve.Beta"},
		{`{"BUDGET":{"tv":1}}`, "BUDGET"},
	} {
		_, err := engine.DecodeRequest([]byte(c.data))
		if err == nil {
			t.Errorf("%s: accepted a miscased key, want an unknown-field error naming %q", c.data, c.field)
			continue
		}
		if fes, ok := err.(engine.FieldErrors); !ok || !hasField(fes, c.field) {
			t.Errorf("%s: error %v, want field %q", c.data, err, c.field)
		}
	}
}

// ---------------------------------------------------------------------------------------
// 2. Infeasible requests

func linearModel(betas map[string]float64) *engine.Model {
	m := &engine.Model{ModelID: "lin", Channels: map[string]engine.Channel{}}
	for name, b := range betas {
		m.Channels[name] = engine.Channel{Curve: engine.Curve{Type: "linear", Beta: fp(b)}}
	}
	return m
}

func TestInfeasible(t *testing.T) {
	lin := linearModel(map[string]float64{"tv": 1.5, "digital": 2, "radio": 1.2})
	sat := &engine.Model{ModelID: "sat", Baseline: 100, Channels: map[string]engine.Channel{
		"tv":      {Curve: engine.Curve{Type: "saturation", Beta: fp(5e5), Kappa: fp(1e5)}},
		"digital": {Curve: engine.Curve{Type: "saturation", Beta: fp(3e5), Kappa: fp(5e4)}},
	}, KPIs: map[string]engine.KPIModel{"awareness": {Baseline: 10, Channels: map[string]engine.Channel{
		"tv": {Curve: engine.Curve{Type: "exponential", Beta: fp(1e6), Kappa: fp(1e5)}},
	}}}}
	cases := []struct {
		name  string
		m     *engine.Model
		req   engine.Request
		wants []string
	}{
		{
			name: "sum of channel minimums above total",
			m:    lin,
			req: engine.Request{Constraints: engine.Constraints{Total: exactTotal(300000), Channels: map[string]engine.ChannelBounds{
				"tv": {Min: fp(150000)}, "digital": {Min: fp(200000)}, "radio": {Min: fp(100000)},
			}}},
			wants: []string{"sum of channel minimums 450000 exceeds total 300000"},
		},
		{
			name: "sum of channel maximums below total",
			m:    lin,
			req: engine.Request{Constraints: engine.Constraints{Total: exactTotal(300000), Channels: map[string]engine.ChannelBounds{
				"tv": {Max: fp(50000)}, "digital": {Max: fp(100000)}, "radio": {Max: fp(100000)},
			}}},
			wants: []string{"250000", "300000"},
		},
		{
			name: "group minimum beyond its members' maxima",
			m:    lin,
			req: engine.Request{Constraints: engine.Constraints{Total: exactTotal(1e6),
				Channels: map[string]engine.ChannelBounds{"tv": {Max: fp(200000)}, "radio": {Max: fp(100000)}},
				Groups:   []engine.Group{{Name: "offline", Channels: []string{"tv", "radio"}, Min: fp(500000)}},
			}},
			wants: []string{"constraints.groups[0]", "constraints.channels.tv.max", "constraints.channels.radio.max"},
		},
		{
			name: "group min_share beyond its members' maxima",
			m:    lin,
			req: engine.Request{Constraints: engine.Constraints{Total: exactTotal(1e6),
				Channels: map[string]engine.ChannelBounds{"tv": {Max: fp(200000)}, "radio": {Max: fp(100000)}},
				Groups:   []engine.Group{{Name: "offline", Channels: []string{"tv", "radio"}, MinShare: fp(0.5)}},
			}},
			wants: []string{"constraints.groups[0]", "constraints.channels.tv.max", "constraints.channels.radio.max"},
		},
		{
			name: "ratio against bounds",
			m:    lin,
			req: engine.Request{Constraints: engine.Constraints{Total: exactTotal(1e6),
				Channels: map[string]engine.ChannelBounds{"tv": {Max: fp(100000)}, "digital": {Min: fp(50000)}},
				Ratios:   []engine.Ratio{{Numerator: "tv", Denominator: "digital", Min: fp(3)}},
			}},
			wants: []string{"constraints.ratios[0]", "constraints.channels.tv.max", "constraints.channels.digital.min"},
		},
		{
			name: "ratio against bounds, range total",
			m:    lin,
			req: engine.Request{Constraints: engine.Constraints{Total: rangeTotal(0, 1e6),
				Channels: map[string]engine.ChannelBounds{"tv": {Max: fp(100000)}, "digital": {Min: fp(50000)}},
				Ratios:   []engine.Ratio{{Numerator: "tv", Denominator: "digital", Min: fp(3)}},
			}},
			wants: []string{"constraints.ratios[0]", "constraints.channels.tv.max", "constraints.channels.digital.min"},
		},
		{
			name: "KPI floor out of reach",
			m:    sat,
			req: engine.Request{Constraints: engine.Constraints{Total: exactTotal(200000)},
				Objective: engine.Objective{Type: "max_kpi", Floors: map[string]float64{"awareness": 2e6}}},
			wants: []string{"objective.floors.awareness"},
		},
		{
			name: "weighted floor out of reach",
			m:    sat,
			req: engine.Request{Constraints: engine.Constraints{Total: exactTotal(200000)},
				Objective: engine.Objective{Type: "weighted", Weights: map[string]float64{"revenue": 1, "awareness": 1}, Floors: map[string]float64{"awareness": 2e6}}},
			wants: []string{"objective.floors.awareness"},
		},
		{
			name: "min_spend target above what any spend reaches",
			m:    sat,
			req: engine.Request{Constraints: engine.Constraints{Total: rangeTotal(0, 1e7)},
				Objective: engine.Objective{Type: "min_spend", Target: map[string]float64{"revenue": 9e5}}},
			wants: []string{"objective.target.revenue"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := solveOK(t, c.m, &c.req)
			mustStatus(t, res, engine.StatusInfeasible)
			msg := strings.Join(res.Messages, "\n")
			for _, w := range c.wants {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not contain %q", msg, w)
				}
			}
			if res.Allocation != nil {
				t.Errorf("infeasible result carries an allocation %v", res.Allocation)
			}
		})
	}
}

// ---------------------------------------------------------------------------------------
// 3. Objectives on small concave models with hand-checkable answers

// logModel: three log curves b·ln(1+x/k). With only a total T and every channel interior,
// equal marginal returns b_i/(k_i+x_i) = λ give λ = B/(T+K) and x_i = b_i/λ − k_i.
func logModel() *engine.Model {
	return &engine.Model{ModelID: "log3", Baseline: 5000, Channels: map[string]engine.Channel{
		"a": {Curve: engine.Curve{Type: "log", Beta: fp(1e6), Kappa: fp(5e4)}},
		"b": {Curve: engine.Curve{Type: "log", Beta: fp(5e5), Kappa: fp(2e4)}},
		"c": {Curve: engine.Curve{Type: "log", Beta: fp(2e5), Kappa: fp(1e4)}},
	}}
}

// logClosedForm is the optimal allocation of logModel-like models at total T when every
// channel is interior.
func logClosedForm(m *engine.Model, names []string, T float64) map[string]float64 {
	B, K := 0.0, 0.0
	for _, n := range names {
		B += *m.Channels[n].Curve.Beta
		K += *m.Channels[n].Curve.Kappa
	}
	lam := B / (T + K)
	out := map[string]float64{}
	for _, n := range names {
		out[n] = *m.Channels[n].Curve.Beta/lam - *m.Channels[n].Curve.Kappa
	}
	return out
}

func mustAlloc(t testing.TB, res engine.Result, want map[string]float64, tol float64) {
	t.Helper()
	for _, n := range sortedNames(want) {
		got := res.Allocation[n]
		if relDiff(got, want[n]) > tol && math.Abs(got-want[n]) > tol {
			t.Errorf("allocation[%s] = %.10g, want %.10g (rel diff %.2g)", n, got, want[n], relDiff(got, want[n]))
		}
	}
}

// checkKKT checks the equal-marginal conditions of max Σf_i subject to a total and boxes:
// interior channels share one mroi λ (within tol relative), channels at their minimum
// have mroi ≤ λ and channels at their maximum mroi ≥ λ. lo/hi are the effective boxes.
// It returns λ (NaN when no channel is interior).
func checkKKT(t testing.TB, m *engine.Model, res engine.Result, lo, hi map[string]float64, tol float64) float64 {
	t.Helper()
	type cl struct {
		name string
		mroi float64
	}
	var interior, atLo, atHi []cl
	for _, n := range sortedNames(m.Channels) {
		x := res.Allocation[n]
		d := refChannelD1(m.Channels[n], x)
		if c := res.Channels[n]; c.MROI != nil && relDiff(*c.MROI, d) > 1e-9 {
			t.Errorf("channels.%s.mroi %.17g, reference %.17g", n, *c.MROI, d)
		}
		l, h := lo[n], math.Inf(1)
		if v, ok := hi[n]; ok {
			h = v
		}
		eps := 1e-9 * math.Max(1, math.Abs(x))
		switch {
		case x <= l+eps:
			atLo = append(atLo, cl{n, d})
			if got := res.Channels[n].AtBound; got != "min" && got != "fixed" {
				t.Errorf("channel %s at its minimum %g but at_bound = %q", n, l, got)
			}
		case x >= h-eps:
			atHi = append(atHi, cl{n, d})
			if got := res.Channels[n].AtBound; got != "max" && got != "fixed" {
				t.Errorf("channel %s at its maximum %g but at_bound = %q", n, h, got)
			}
		default:
			interior = append(interior, cl{n, d})
			if got := res.Channels[n].AtBound; got != "" {
				t.Errorf("channel %s is interior (%g in (%g, %g)) but at_bound = %q", n, x, l, h, got)
			}
		}
	}
	lam := math.NaN()
	if len(interior) > 0 {
		lam = interior[0].mroi
		for _, c := range interior[1:] {
			if relDiff(c.mroi, lam) > tol {
				t.Errorf("interior channels %s and %s have mroi %.12g and %.12g (rel diff %.2g > %g)",
					interior[0].name, c.name, lam, c.mroi, relDiff(c.mroi, lam), tol)
			}
		}
	}
	maxLo, minHi := math.Inf(-1), math.Inf(1)
	for _, c := range atLo {
		maxLo = math.Max(maxLo, c.mroi)
	}
	for _, c := range atHi {
		minHi = math.Min(minHi, c.mroi)
	}
	ref := lam
	if math.IsNaN(ref) {
		if maxLo > minHi*(1+tol) {
			t.Errorf("a channel at its minimum has mroi %.12g above one at its maximum %.12g", maxLo, minHi)
		}
		return lam
	}
	for _, c := range atLo {
		if c.mroi > ref*(1+tol) {
			t.Errorf("channel %s at its minimum has mroi %.12g > λ = %.12g: moving spend to it would pay", c.name, c.mroi, ref)
		}
	}
	for _, c := range atHi {
		if c.mroi < ref*(1-tol) {
			t.Errorf("channel %s at its maximum has mroi %.12g < λ = %.12g: moving spend away would pay", c.name, c.mroi, ref)
		}
	}
	return lam
}

func checkMaxCert(t testing.TB, res engine.Result, objective float64, gapTol float64) {
	t.Helper()
	c := res.Certificate
	if c == nil || c.UpperBound == nil {
		t.Fatalf("no certificate upper bound: %+v", c)
	}
	if relDiff(c.Objective, objective) > 1e-12 {
		t.Errorf("certificate objective %.17g, want %.17g", c.Objective, objective)
	}
	if *c.UpperBound < c.Objective {
		t.Errorf("upper bound %.17g below objective %.17g", *c.UpperBound, c.Objective)
	}
	if res.Status == engine.StatusOptimal && c.Gap > gapTol {
		t.Errorf("status optimal with gap %.3g > %g", c.Gap, gapTol)
	}
	if g := (*c.UpperBound - c.Objective) / math.Abs(c.Objective); relDiff(g, c.Gap) > 1e-6 && math.Abs(g-c.Gap) > 1e-15 {
		t.Errorf("gap %.6g does not match (ub − obj)/|obj| = %.6g", c.Gap, g)
	}
}

func TestMaxKPIClosedForm(t *testing.T) {
	m := logModel()
	T := 300000.0
	req := &engine.Request{Budget: map[string]float64{"a": 1e5, "b": 1e5, "c": 1e5}, Constraints: engine.Constraints{Total: exactTotal(T)}}
	res := solveOK(t, m, req)
	mustStatus(t, res, engine.StatusOptimal)
	want := logClosedForm(m, []string{"a", "b", "c"}, T)
	mustAlloc(t, res, want, 1e-7)
	lam := checkKKT(t, m, res, nil, nil, 1e-6)
	if wl := (1e6 + 5e5 + 2e5) / (T + 8e4); relDiff(lam, wl) > 1e-6 {
		t.Errorf("λ = %.12g, want B/(T+K) = %.12g", lam, wl)
	}
	checkExpected(t, m, res)
	checkMaxCert(t, res, res.Expected["revenue"], 1e-9)
	if res.Objective != engine.ObjMaxKPI {
		t.Errorf("result objective %q", res.Objective)
	}
	if res.TotalSpend != T {
		t.Errorf("total spend %.17g, want exactly %g", res.TotalSpend, T)
	}
	// current: the budget evaluated
	if res.Current == nil {
		t.Fatal("no current block")
	}
	if res.Current.TotalSpend != 3e5 {
		t.Errorf("current.total_spend %v", res.Current.TotalSpend)
	}
	if cur := refKPIs(m, req.Budget)["revenue"]; relDiff(res.Current.Expected["revenue"], cur) > 1e-12 {
		t.Errorf("current.expected.revenue %.17g, want %.17g", res.Current.Expected["revenue"], cur)
	}
	if res.Expected["revenue"] < res.Current.Expected["revenue"] {
		t.Errorf("optimum below the current plan")
	}
}

func TestMaxKPIWithBindingBounds(t *testing.T) {
	// Unconstrained: a≈173529, b≈91765, c≈34706. With a ≤ 150000 and c ≥ 50000 the answer is
	// a=150000 (mroi 5), c=50000 (mroi 3.33), b=100000 (λ = 5e5/1.2e5 ≈ 4.17).
	m := logModel()
	req := &engine.Request{Constraints: engine.Constraints{Total: exactTotal(300000),
		Channels: map[string]engine.ChannelBounds{"a": {Max: fp(150000)}, "c": {Min: fp(50000)}}}}
	res := solveOK(t, m, req)
	mustStatus(t, res, engine.StatusOptimal)
	mustAlloc(t, res, map[string]float64{"a": 150000, "b": 100000, "c": 50000}, 1e-9)
	checkKKT(t, m, res, map[string]float64{"c": 50000}, map[string]float64{"a": 150000}, 1e-6)
	checkExpected(t, m, res)
	checkMaxCert(t, res, res.Expected["revenue"], 1e-9)
	mustHoldPlan(t, m, req, res, 1e-9)
}

// mixedConcave has every concave curve type, some with adstock.
func mixedConcave() *engine.Model {
	return &engine.Model{ModelID: "mix", Baseline: 12345, Channels: map[string]engine.Channel{
		"sat":  {Curve: engine.Curve{Type: "saturation", Beta: fp(4e5), Kappa: fp(8e4)}, Adstock: &engine.Adstock{Type: "geometric", Decay: fp(0.3)}},
		"exp":  {Curve: engine.Curve{Type: "exponential", Beta: fp(3e5), Kappa: fp(6e4)}},
		"log":  {Curve: engine.Curve{Type: "log", Beta: fp(1e5), Kappa: fp(2e4)}},
		"pow":  {Curve: engine.Curve{Type: "power", Beta: fp(300), Alpha: fp(0.5)}},
		"hill": {Curve: engine.Curve{Type: "hill", Beta: fp(5e5), Alpha: fp(0.8), Kappa: fp(1e5)}, Adstock: &engine.Adstock{Type: "geometric", Decay: fp(0.5)}},
		"lin":  {Curve: engine.Curve{Type: "linear", Beta: fp(0.9)}},
	}}
}

func TestMaxKPIMixedConcaveKKT(t *testing.T) {
	m := mixedConcave()
	for _, T := range []float64{1e4, 1e5, 4e5, 2e6} {
		t.Run(fmt.Sprint(T), func(t *testing.T) {
			lo := map[string]float64{"log": 5000}
			hi := map[string]float64{"exp": 100000, "hill": 200000}
			req := &engine.Request{Constraints: engine.Constraints{Total: exactTotal(T), Channels: map[string]engine.ChannelBounds{
				"log": {Min: fp(5000)}, "exp": {Max: fp(100000)}, "hill": {Max: fp(200000)},
			}}}
			res := solveOK(t, m, req)
			mustStatus(t, res, engine.StatusOptimal)
			checkKKT(t, m, res, lo, hi, 1e-6)
			checkExpected(t, m, res)
			checkMaxCert(t, res, res.Expected["revenue"], 1e-9)
			mustHoldPlan(t, m, req, res, 1e-9)
			if math.Abs(res.TotalSpend-T) > 1e-9*T {
				t.Errorf("total spend %.17g, want %g", res.TotalSpend, T)
			}
			// An independent optimum must not beat the engine.
			names := sortedNames(m.Channels)
			los, his := boxes(names, lo, hi)
			_, ref := refConcaveOpt(m, names, los, his, T)
			got := res.Expected["revenue"] - m.Baseline
			if got < ref-1e-9*math.Abs(ref) {
				t.Errorf("engine %.15g below the reference optimum %.15g", got, ref)
			}
			if ub := *res.Certificate.UpperBound - m.Baseline; ub < ref*(1-1e-12) {
				t.Errorf("upper bound %.15g below a feasible plan's %.15g: the certificate is unsound", ub, ref)
			}
		})
	}
}

// twoKPIModel: revenue from a and b; awareness from b only.
func twoKPIModel() *engine.Model {
	return &engine.Model{ModelID: "two", Baseline: 1000, Channels: map[string]engine.Channel{
		"a": {Curve: engine.Curve{Type: "saturation", Beta: fp(6e5), Kappa: fp(1e5)}},
		"b": {Curve: engine.Curve{Type: "saturation", Beta: fp(6e5), Kappa: fp(1e5)}},
	}, KPIs: map[string]engine.KPIModel{"awareness": {Baseline: 500, Channels: map[string]engine.Channel{
		"b": {Curve: engine.Curve{Type: "log", Beta: fp(1e6), Kappa: fp(5e4)}},
	}}}}
}

func TestWeightedWithFloor(t *testing.T) {
	m := twoKPIModel()
	T := 200000.0
	w := map[string]float64{"revenue": 1, "awareness": 0.01}
	weighted := func(e map[string]float64) float64 { return e["revenue"] + 0.01*e["awareness"] }

	// Without a floor: the weighted optimum leans to b a little.
	req0 := &engine.Request{Constraints: engine.Constraints{Total: exactTotal(T)}, Objective: engine.Objective{Type: "weighted", Weights: w}}
	res0 := solveOK(t, m, req0)
	mustStatus(t, res0, engine.StatusOptimal)
	checkExpected(t, m, res0)
	checkMaxCert(t, res0, weighted(res0.Expected), 1e-9)
	if b := res0.Allocation["b"]; !(b > 100000 && b < 160000) {
		t.Fatalf("unconstrained weighted optimum b = %g, expected in (100000, 160000)", b)
	}
	// Weighted first-order condition: 6e10/(a+1e5)² = 6e10/(b+1e5)² + 0.01·1e6/(5e4+b).
	a, b := res0.Allocation["a"], res0.Allocation["b"]
	ga := 6e10 / ((a + 1e5) * (a + 1e5))
	gb := 6e10/((b+1e5)*(b+1e5)) + 1e4/(5e4+b)
	if relDiff(ga, gb) > 1e-6 {
		t.Errorf("weighted marginal returns differ: a %.12g, b %.12g", ga, gb)
	}

	// A floor of 1e6·ln(1+160000/5e4) + 500 on awareness needs b ≥ 160000: it binds.
	floor := 500 + 1e6*math.Log1p(160000.0/5e4)
	req := &engine.Request{Constraints: engine.Constraints{Total: exactTotal(T)},
		Objective: engine.Objective{Type: "weighted", Weights: w, Floors: map[string]float64{"awareness": floor}}}
	res := solveOK(t, m, req)
	mustStatus(t, res, engine.StatusOptimal)
	checkExpected(t, m, res)
	if aw := res.Expected["awareness"]; aw < floor*(1-1e-9) {
		t.Errorf("awareness %.17g below the floor %.17g", aw, floor)
	}
	mustHoldPlan(t, m, req, res, 1e-9)
	mustAlloc(t, res, map[string]float64{"a": 40000, "b": 160000}, 1e-6)
	checkMaxCert(t, res, weighted(res.Expected), 1e-9)
	if weighted(res.Expected) > weighted(res0.Expected)*(1+1e-12) {
		t.Errorf("a floor raised the weighted optimum")
	}
	// No feasible plan on a fine grid beats it.
	best := math.Inf(-1)
	for bb := 160000.0; bb <= T; bb += 250 {
		e := refKPIs(m, map[string]float64{"a": T - bb, "b": bb})
		best = math.Max(best, weighted(e))
	}
	if weighted(res.Expected) < best*(1-1e-9) {
		t.Errorf("weighted objective %.15g below a grid plan's %.15g", weighted(res.Expected), best)
	}
	// A floor on max_kpi is allowed too.
	req2 := &engine.Request{Constraints: engine.Constraints{Total: exactTotal(T)},
		Objective: engine.Objective{Type: "max_kpi", Floors: map[string]float64{"awareness": floor}}}
	res2 := solveOK(t, m, req2)
	mustStatus(t, res2, engine.StatusOptimal)
	mustAlloc(t, res2, map[string]float64{"a": 40000, "b": 160000}, 1e-6)
	if aw := res2.Expected["awareness"]; aw < floor*(1-1e-9) {
		t.Errorf("max_kpi with floor: awareness %.17g below the floor %.17g", aw, floor)
	}
	// Maximising the secondary KPI puts everything into b.
	req3 := &engine.Request{Constraints: engine.Constraints{Total: exactTotal(T)}, Objective: engine.Objective{Type: "max_kpi", KPI: "awareness"}}
	res3 := solveOK(t, m, req3)
	mustStatus(t, res3, engine.StatusOptimal)
	mustAlloc(t, res3, map[string]float64{"a": 0, "b": T}, 1e-9)
	checkMaxCert(t, res3, res3.Expected["awareness"], 1e-9)
}

func TestMinSpend(t *testing.T) {
	m := logModel()
	names := []string{"a", "b", "c"}
	// With every channel interior the best revenue at spend S is
	// base + Σ b_i ln(b_i (S+K)/(B k_i)), so S* = 250000 needs this target:
	B, K := 1.7e6, 8e4
	Sstar := 250000.0
	target := m.Baseline
	for _, n := range names {
		bi, ki := *m.Channels[n].Curve.Beta, *m.Channels[n].Curve.Kappa
		target += bi * math.Log(bi*(Sstar+K)/(B*ki))
	}
	for _, total := range []*engine.Total{nil, rangeTotal(0, 1e6), {Min: fp(1000)}} {
		name := "no total"
		if total != nil {
			b, _ := json.Marshal(total)
			name = string(b)
		}
		t.Run(name, func(t *testing.T) {
			req := &engine.Request{Constraints: engine.Constraints{Total: total},
				Objective: engine.Objective{Type: "min_spend", Target: map[string]float64{"revenue": target}}}
			res := solveOK(t, m, req)
			mustStatus(t, res, engine.StatusOptimal)
			checkExpected(t, m, res)
			mustHoldPlan(t, m, req, res, 1e-9)
			if res.Expected["revenue"] < target*(1-1e-12) {
				t.Errorf("revenue %.17g below the target %.17g", res.Expected["revenue"], target)
			}
			S := res.TotalSpend
			if relDiff(S, Sstar) > 1e-6 {
				t.Errorf("spend %.10g, want the closed form %.10g", S, Sstar)
			}
			mustAlloc(t, res, logClosedForm(m, names, Sstar), 1e-5)
			c := res.Certificate
			if c == nil || c.LowerBound == nil {
				t.Fatalf("min_spend certificate without a lower bound: %+v", c)
			}
			if *c.LowerBound > S || relDiff(c.Objective, S) > 1e-12 {
				t.Errorf("certificate %+v inconsistent with spend %.17g", c, S)
			}
			if c.Gap > 1e-9 {
				t.Errorf("optimal min_spend with gap %g", c.Gap)
			}
			// 0.1% less spend, allocated as well as possible, cannot reach the target.
			less := &engine.Request{Constraints: engine.Constraints{Total: exactTotal(S * 0.999)}}
			r2 := solveOK(t, m, less)
			mustStatus(t, r2, engine.StatusOptimal)
			if r2.Expected["revenue"] >= target {
				t.Errorf("spend %.10g (0.1%% less) reaches %.17g ≥ target %.17g: min_spend did not find the least spend", S*0.999, r2.Expected["revenue"], target)
			}
			if *r2.Certificate.UpperBound >= target {
				t.Errorf("0.1%% less spend is not proven insufficient: bound %.17g ≥ target", *r2.Certificate.UpperBound)
			}
		})
	}
}

func TestMinSpendWithBoundsAndSecondaryTarget(t *testing.T) {
	m := twoKPIModel()
	// Target on awareness: only b produces it; b must reach 1e6·ln(1+b/5e4) = 1e6 → b = 5e4(e−1).
	target := 500 + 1e6
	req := &engine.Request{Constraints: engine.Constraints{Channels: map[string]engine.ChannelBounds{"a": {Min: fp(10000)}}},
		Objective: engine.Objective{Type: "min_spend", Target: map[string]float64{"awareness": target}}}
	res := solveOK(t, m, req)
	mustStatus(t, res, engine.StatusOptimal)
	mustHoldPlan(t, m, req, res, 1e-9)
	wantB := 5e4 * (math.E - 1)
	mustAlloc(t, res, map[string]float64{"a": 10000, "b": wantB}, 1e-6)
	if res.Expected["awareness"] < target*(1-1e-12) {
		t.Errorf("awareness %.17g below target %.17g", res.Expected["awareness"], target)
	}
}

func TestTargetROI(t *testing.T) {
	// Saturating curves: the ROI of the best plan falls as spend grows.
	m := &engine.Model{ModelID: "roi", Baseline: 7777, Channels: map[string]engine.Channel{
		"a": {Curve: engine.Curve{Type: "saturation", Beta: fp(8e5), Kappa: fp(1e5)}},
		"b": {Curve: engine.Curve{Type: "exponential", Beta: fp(5e5), Kappa: fp(8e4)}},
		"c": {Curve: engine.Curve{Type: "hill", Beta: fp(3e5), Alpha: fp(0.9), Kappa: fp(5e4)}},
	}}
	for _, roi := range []float64{1.5, 2.5, 4} {
		for _, total := range []*engine.Total{nil, rangeTotal(0, 5e6)} {
			t.Run(fmt.Sprintf("roi=%g/total=%v", roi, total != nil), func(t *testing.T) {
				req := &engine.Request{Constraints: engine.Constraints{Total: total},
					Objective: engine.Objective{Type: "target_roi", ROI: fp(roi)}}
				res := solveOK(t, m, req)
				mustStatus(t, res, engine.StatusOptimal)
				checkExpected(t, m, res)
				mustHoldPlan(t, m, req, res, 1e-9)
				S := res.TotalSpend
				inc := res.Expected["revenue"] - m.Baseline
				if inc/S < roi*(1-1e-9) {
					t.Errorf("ROI at the result %.12g < target %g", inc/S, roi)
				}
				// optimally allocated: equal mroi
				checkKKT(t, m, res, nil, nil, 1e-6)
				// 1% more spend, allocated optimally, has a lower ROI than the target.
				more := &engine.Request{Constraints: engine.Constraints{Total: exactTotal(S * 1.01)}}
				r2 := solveOK(t, m, more)
				mustStatus(t, r2, engine.StatusOptimal)
				if roi2 := (*r2.Certificate.UpperBound - m.Baseline) / (S * 1.01); roi2 >= roi {
					t.Errorf("1%% more spend (%.10g) still reaches ROI %.12g ≥ %g: target_roi stopped too early", S*1.01, roi2, roi)
				}
				checkMaxCert(t, res, res.Expected["revenue"], 1e-9)
			})
		}
	}
}

// TestTargetROIRangeCap: when even the top of the total's range meets the ROI, the
// answer is the top.
func TestTargetROIRangeCap(t *testing.T) {
	m := logModel()
	req := &engine.Request{Constraints: engine.Constraints{Total: rangeTotal(1000, 100000)},
		Objective: engine.Objective{Type: "target_roi", ROI: fp(1)}}
	res := solveOK(t, m, req)
	mustStatus(t, res, engine.StatusOptimal)
	if math.Abs(res.TotalSpend-100000) > 1e-9*100000 {
		t.Errorf("spend %.17g, want the range's max 100000 (ROI there is far above 1)", res.TotalSpend)
	}
	mustAlloc(t, res, logClosedForm(m, []string{"a", "b", "c"}, 100000), 1e-7)
}

// TestTargetROIUnboundedCurvesWithoutTotal: log curves grow without bound, but their ROI
// falls to 0, so the largest spend with ROI ≥ roi is finite and well defined even with
// no total.
func TestTargetROIUnboundedCurvesWithoutTotal(t *testing.T) {
	m := &engine.Model{ModelID: "log1", Channels: map[string]engine.Channel{
		"a": {Curve: engine.Curve{Type: "log", Beta: fp(1e5), Kappa: fp(1e4)}},
	}}
	req := &engine.Request{Objective: engine.Objective{Type: "target_roi", ROI: fp(2)}}
	res := solveOK(t, m, req)
	mustStatus(t, res, engine.StatusOptimal)
	// 1e5·ln(1+x/1e4) = 2x
	x := res.Allocation["a"]
	if r := 1e5 * math.Log1p(x/1e4) / x; relDiff(r, 2) > 1e-6 {
		t.Errorf("ROI at x=%g is %.10g, want 2", x, r)
	}
}

// TestTargetROITrulyUnbounded: a linear curve whose ROI is above the target never stops;
// that is an invalid request, and the error must name the field to fix.
func TestTargetROITrulyUnbounded(t *testing.T) {
	m := linearModel(map[string]float64{"a": 2, "b": 1})
	req := &engine.Request{Objective: engine.Objective{Type: "target_roi", ROI: fp(1.5)}}
	res := solveOK(t, m, req)
	mustStatus(t, res, engine.StatusInvalid)
	if !hasField(res.Errors, "constraints.total") {
		t.Errorf("errors %+v (messages %q): want a FieldError with field constraints.total", res.Errors, res.Messages)
	}
}

func TestTargetMROI(t *testing.T) {
	// log curves with no total: x_i = b_i/m − k_i when positive.
	m := logModel()
	m.Channels["d"] = engine.Channel{Curve: engine.Curve{Type: "log", Beta: fp(1e4), Kappa: fp(1e4)}} // mroi(0)=1 < 4
	mroi := 4.0
	req := &engine.Request{Objective: engine.Objective{Type: "target_mroi", MROI: fp(mroi)}}
	res := solveOK(t, m, req)
	mustStatus(t, res, engine.StatusOptimal)
	checkExpected(t, m, res)
	mustAlloc(t, res, map[string]float64{"a": 200000, "b": 105000, "c": 40000, "d": 0}, 1e-7)
	for _, n := range []string{"a", "b", "c"} {
		if mr := *res.Channels[n].MROI; relDiff(mr, mroi) > 1e-6 {
			t.Errorf("channel %s mroi %.12g, want %g", n, mr, mroi)
		}
	}
	if mr := *res.Channels["d"].MROI; mr > mroi {
		t.Errorf("channel d at 0 has mroi %g > target", mr)
	}
	if res.Channels["d"].AtBound != "min" {
		t.Errorf("channel d at_bound %q, want min", res.Channels["d"].AtBound)
	}
	// objective: revenue − mroi·spend
	if c := res.Certificate; c == nil || relDiff(c.Objective, res.Expected["revenue"]-mroi*res.TotalSpend) > 1e-9 {
		t.Errorf("certificate %+v, want objective revenue − mroi·spend = %.17g", c, res.Expected["revenue"]-mroi*res.TotalSpend)
	}

	// With a cap on c the others are unchanged and c sits at its max with mroi ≥ target.
	req2 := &engine.Request{Constraints: engine.Constraints{Channels: map[string]engine.ChannelBounds{"c": {Max: fp(30000)}}},
		Objective: engine.Objective{Type: "target_mroi", MROI: fp(mroi)}}
	res2 := solveOK(t, m, req2)
	mustStatus(t, res2, engine.StatusOptimal)
	mustAlloc(t, res2, map[string]float64{"a": 200000, "b": 105000, "c": 30000, "d": 0}, 1e-7)
	if mr := *res2.Channels["c"].MROI; mr < mroi {
		t.Errorf("c at max with mroi %g < target", mr)
	}
	if res2.Channels["c"].AtBound != "max" {
		t.Errorf("c at_bound %q, want max", res2.Channels["c"].AtBound)
	}

	// Mixed concave model with adstock: every channel not at a bound has mroi = target.
	mm := mixedConcave()
	delete(mm.Channels, "lin") // a linear channel with beta above the price has no finite answer
	req3 := &engine.Request{Constraints: engine.Constraints{Channels: map[string]engine.ChannelBounds{"exp": {Max: fp(20000)}, "log": {Min: fp(100000)}}},
		Objective: engine.Objective{Type: "target_mroi", MROI: fp(1.3)}}
	res3 := solveOK(t, mm, req3)
	mustStatus(t, res3, engine.StatusOptimal)
	checkExpected(t, mm, res3)
	mustHoldPlan(t, mm, req3, res3, 1e-9)
	for _, n := range sortedNames(mm.Channels) {
		c := res3.Channels[n]
		d := refChannelD1(mm.Channels[n], c.Spend)
		switch c.AtBound {
		case "":
			if relDiff(d, 1.3) > 1e-6 {
				t.Errorf("channel %s (not at a bound, spend %g) has mroi %.12g, want 1.3", n, c.Spend, d)
			}
		case "min":
			if d > 1.3*(1+1e-9) {
				t.Errorf("channel %s at min with mroi %g > 1.3", n, d)
			}
		case "max":
			if d < 1.3*(1-1e-9) {
				t.Errorf("channel %s at max with mroi %g < 1.3", n, d)
			}
		}
	}
	if res3.Channels["exp"].AtBound != "max" || res3.Channels["log"].AtBound != "min" {
		t.Errorf("at_bound exp=%q log=%q, want max and min", res3.Channels["exp"].AtBound, res3.Channels["log"].AtBound)
	}
}

func TestTotalRange(t *testing.T) {
	m := logModel()
	// Increasing curves: the most the range allows is spent.
	req := &engine.Request{Constraints: engine.Constraints{Total: rangeTotal(100000, 200000)}}
	res := solveOK(t, m, req)
	mustStatus(t, res, engine.StatusOptimal)
	mustHoldPlan(t, m, req, res, 1e-9)
	if math.Abs(res.TotalSpend-200000) > 1e-9*200000 {
		t.Errorf("spend %.17g, want the range's max 200000", res.TotalSpend)
	}
	mustAlloc(t, res, logClosedForm(m, []string{"a", "b", "c"}, 200000), 1e-7)
	checkMaxCert(t, res, res.Expected["revenue"], 1e-9)

	// Only a max.
	req = &engine.Request{Constraints: engine.Constraints{Total: &engine.Total{Max: fp(150000)}}}
	res = solveOK(t, m, req)
	mustStatus(t, res, engine.StatusOptimal)
	mustAlloc(t, res, logClosedForm(m, []string{"a", "b", "c"}, 150000), 1e-7)

	// Curves that go flat: piecewise responses saturate at 3000 + 5000 spend.
	pw := &engine.Model{ModelID: "pw", Channels: map[string]engine.Channel{
		"a": {Curve: engine.Curve{Type: "piecewise", Points: [][]float64{{1000, 5000}}}},
		"b": {Curve: engine.Curve{Type: "piecewise", Points: [][]float64{{1000, 1500}, {2000, 3000}}}},
	}}
	req = &engine.Request{Constraints: engine.Constraints{Total: rangeTotal(500, 10000)}}
	res = solveOK(t, pw, req)
	mustStatus(t, res, engine.StatusOptimal)
	mustHoldPlan(t, pw, req, res, 1e-9)
	if relDiff(res.Expected["revenue"], 8000) > 1e-12 {
		t.Errorf("revenue %.17g, want the saturation level 8000", res.Expected["revenue"])
	}
	// A range whose max cannot reach the saturation: the min binds nothing, the max binds.
	req = &engine.Request{Constraints: engine.Constraints{Total: rangeTotal(500, 2000)}}
	res = solveOK(t, pw, req)
	mustStatus(t, res, engine.StatusOptimal)
	mustAlloc(t, res, map[string]float64{"a": 1000, "b": 1000}, 1e-9)
	if relDiff(res.Expected["revenue"], 6500) > 1e-12 {
		t.Errorf("revenue %.17g, want 6500", res.Expected["revenue"])
	}
}

// TestTotalWithoutMax: a total with only a minimum leaves the spend to the channel
// bounds; with increasing curves every channel goes to its max.
func TestTotalWithoutMax(t *testing.T) {
	m := logModel()
	req := &engine.Request{Constraints: engine.Constraints{Total: &engine.Total{Min: fp(1000)},
		Channels: map[string]engine.ChannelBounds{"a": {Max: fp(1e5)}, "b": {Max: fp(5e4)}, "c": {Max: fp(2e4)}}}}
	res := solveOK(t, m, req)
	mustStatus(t, res, engine.StatusOptimal)
	mustHoldPlan(t, m, req, res, 1e-9)
	mustAlloc(t, res, map[string]float64{"a": 1e5, "b": 5e4, "c": 2e4}, 1e-12)
	checkMaxCert(t, res, res.Expected["revenue"], 1e-9)
}

func TestMaxChange(t *testing.T) {
	// Budget 1e5 each, ±20%: a is capped at 120000, c floored at 80000, b takes 100000.
	m := logModel()
	req := &engine.Request{Budget: map[string]float64{"a": 1e5, "b": 1e5, "c": 1e5},
		Constraints: engine.Constraints{MaxChange: fp(0.2)}}
	res := solveOK(t, m, req)
	mustStatus(t, res, engine.StatusOptimal)
	mustHoldPlan(t, m, req, res, 1e-9)
	mustAlloc(t, res, map[string]float64{"a": 120000, "b": 100000, "c": 80000}, 1e-9)
	checkKKT(t, m, res, map[string]float64{"a": 8e4, "b": 8e4, "c": 8e4}, map[string]float64{"a": 12e4, "b": 12e4, "c": 12e4}, 1e-6)
	if res.Channels["a"].AtBound != "max" || res.Channels["c"].AtBound != "min" || res.Channels["b"].AtBound != "" {
		t.Errorf("at_bound a=%q b=%q c=%q, want max, \"\", min", res.Channels["a"].AtBound, res.Channels["b"].AtBound, res.Channels["c"].AtBound)
	}
	// max_change 0 freezes the plan.
	req = &engine.Request{Budget: map[string]float64{"a": 1e5, "b": 2e5, "c": 3e5}, Constraints: engine.Constraints{MaxChange: fp(0)}}
	res = solveOK(t, m, req)
	mustStatus(t, res, engine.StatusOptimal)
	for n, v := range req.Budget {
		if res.Allocation[n] != v {
			t.Errorf("max_change 0: %s = %.17g, want %g", n, res.Allocation[n], v)
		}
	}
}

func TestMaxShare(t *testing.T) {
	m := logModel()
	// a is capped at half the total; b and c split the other half with equal mroi:
	// λ = 7e5/(150000+3e4), b = 5e5/λ − 2e4, c = 2e5/λ − 1e4.
	lam := 7e5 / 180000
	want := map[string]float64{"a": 150000, "b": 5e5/lam - 2e4, "c": 2e5/lam - 1e4}
	for _, total := range []*engine.Total{exactTotal(300000), {Max: fp(300000)}, rangeTotal(250000, 300000)} {
		b, _ := json.Marshal(total)
		t.Run(string(b), func(t *testing.T) {
			req := &engine.Request{Constraints: engine.Constraints{Total: total, MaxShare: fp(0.5)}}
			res := solveOK(t, m, req)
			mustStatus(t, res, engine.StatusOptimal)
			mustHoldPlan(t, m, req, res, 1e-9)
			mustAlloc(t, res, want, 1e-6)
			checkMaxCert(t, res, res.Expected["revenue"], 1e-9)
		})
	}
}

func TestFixedChannel(t *testing.T) {
	m := logModel()
	v := 123456.789
	req := &engine.Request{Budget: map[string]float64{"a": 1000, "b": v, "c": 1},
		Constraints: engine.Constraints{Total: exactTotal(300000), Channels: map[string]engine.ChannelBounds{"b": {Fixed: true}}}}
	res := solveOK(t, m, req)
	mustStatus(t, res, engine.StatusOptimal)
	if res.Allocation["b"] != v {
		t.Errorf("fixed channel b = %.17g, want exactly %.17g", res.Allocation["b"], v)
	}
	if res.Channels["b"].AtBound != "fixed" {
		t.Errorf("fixed channel at_bound %q, want fixed", res.Channels["b"].AtBound)
	}
	mustAlloc(t, res, logClosedForm(m, []string{"a", "c"}, 300000-v), 1e-7)
	mustHoldPlan(t, m, req, res, 0)
	// A fixed channel missing from the budget stays at 0.
	req = &engine.Request{Budget: map[string]float64{"a": 1000, "c": 1},
		Constraints: engine.Constraints{Total: exactTotal(300000), Channels: map[string]engine.ChannelBounds{"b": {Fixed: true}}}}
	res = solveOK(t, m, req)
	mustStatus(t, res, engine.StatusOptimal)
	if res.Allocation["b"] != 0 {
		t.Errorf("fixed channel absent from budget = %v, want 0", res.Allocation["b"])
	}
}

func TestPiecewise(t *testing.T) {
	// Concave: a has slope 3 up to 100 then 1 up to 200, then flat; b is linear 2.
	m := &engine.Model{ModelID: "pw", Channels: map[string]engine.Channel{
		"a": {Curve: engine.Curve{Type: "piecewise", Points: [][]float64{{100, 300}, {200, 400}}}},
		"b": {Curve: engine.Curve{Type: "linear", Beta: fp(2)}},
	}}
	req := &engine.Request{Constraints: engine.Constraints{Total: exactTotal(250)}}
	res := solveOK(t, m, req)
	mustStatus(t, res, engine.StatusOptimal)
	mustAlloc(t, res, map[string]float64{"a": 100, "b": 150}, 1e-12)
	if res.Expected["revenue"] != 600 {
		t.Errorf("revenue %.17g, want 600", res.Expected["revenue"])
	}
	checkMaxCert(t, res, 600, 1e-9)

	// Non-concave: a has slope 0.5 up to 100 then 4 up to 200. At 250 the best is
	// a=200 (450) plus b=50 (100) = 550, against e.g. all-b 500.
	m.Channels["a"] = engine.Channel{Curve: engine.Curve{Type: "piecewise", Points: [][]float64{{100, 50}, {200, 450}}}}
	res = solveOK(t, m, req)
	mustStatus(t, res, engine.StatusOptimal)
	mustAlloc(t, res, map[string]float64{"a": 200, "b": 50}, 1e-9)
	if relDiff(res.Expected["revenue"], 550) > 1e-12 {
		t.Errorf("revenue %.17g, want 550", res.Expected["revenue"])
	}
	checkMaxCert(t, res, res.Expected["revenue"], 1e-7)
	// At 150 it is all-b (300) rather than a=100 + b=50 (150) or a=150 (250).
	req.Constraints.Total = exactTotal(150)
	res = solveOK(t, m, req)
	mustStatus(t, res, engine.StatusOptimal)
	mustAlloc(t, res, map[string]float64{"a": 0, "b": 150}, 1e-9)
	// Points evaluated between and beyond breakpoints, with adstock.
	m2 := &engine.Model{ModelID: "pw2", Channels: map[string]engine.Channel{
		"a": {Curve: engine.Curve{Type: "piecewise", Points: [][]float64{{100, 300}, {200, 400}}}, Adstock: &engine.Adstock{Type: "geometric", Decay: fp(0.5)}},
	}}
	ev, err := engine.Evaluate(m2, []map[string]float64{{"a": 25}, {"a": 75}, {"a": 1000}})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float64{150, 350, 400} {
		if relDiff(ev[i].Expected["revenue"], want) > 1e-12 {
			t.Errorf("piecewise with adstock, allocation %d: %.17g, want %g", i, ev[i].Expected["revenue"], want)
		}
	}
}

// TestPiecewiseWithLinearConstraints: a concave piecewise curve next to a coupling row
// (ratio, group, share of a range total) that does not bind must give the same answer as
// without the row: radio takes its whole useful range (50000, slope 0.75 > digital's
// 0.29 there), digital the rest; revenue 400000·250000/330000 + 60000.
func TestPiecewiseWithLinearConstraints(t *testing.T) {
	m := &engine.Model{ModelID: "pwrow", Channels: map[string]engine.Channel{
		"digital": {Curve: engine.Curve{Type: "saturation", Beta: fp(4e5), Kappa: fp(8e4)}},
		"radio":   {Curve: engine.Curve{Type: "piecewise", Points: [][]float64{{10000, 30000}, {50000, 60000}}}},
	}}
	want := map[string]float64{"digital": 250000, "radio": 50000}
	wantRev := 400000*250000/330000.0 + 60000
	cases := map[string]engine.Constraints{
		"no row":         {Total: exactTotal(300000)},
		"ratio":          {Total: exactTotal(300000), Ratios: []engine.Ratio{{Numerator: "digital", Denominator: "radio", Min: fp(0.01)}}},
		"group min":      {Total: exactTotal(300000), Groups: []engine.Group{{Channels: []string{"digital", "radio"}, Min: fp(1000)}}},
		"range+maxshare": {Total: &engine.Total{Max: fp(300000)}, MaxShare: fp(0.9)},
	}
	for _, name := range sortedNames(cases) {
		t.Run(name, func(t *testing.T) {
			req := &engine.Request{Constraints: cases[name]}
			res := solveOK(t, m, req)
			mustStatus(t, res, engine.StatusOptimal)
			mustHoldPlan(t, m, req, res, 1e-9)
			mustAlloc(t, res, want, 1e-7)
			if relDiff(res.Expected["revenue"], wantRev) > 1e-9 {
				t.Errorf("revenue %.12g, want %.12g", res.Expected["revenue"], wantRev)
			}
		})
	}
}

// best1D maximises g on [0, T] by a dense grid and golden-section refinement around the
// best grid points.
func best1D(g func(float64) float64, T float64) (float64, float64) {
	const N = 20000
	bx, bv := 0.0, g(0)
	for i := 1; i <= N; i++ {
		x := T * float64(i) / N
		if v := g(x); v > bv {
			bx, bv = x, v
		}
	}
	lo, hi := math.Max(0, bx-T/N), math.Min(T, bx+T/N)
	for it := 0; it < 200; it++ {
		m1, m2 := lo+(hi-lo)*0.381966, hi-(hi-lo)*0.381966
		if g(m1) < g(m2) {
			lo = m1
		} else {
			hi = m2
		}
	}
	if v := g((lo + hi) / 2); v > bv {
		bx, bv = (lo+hi)/2, v
	}
	return bx, bv
}

func TestLogistic(t *testing.T) {
	lg := engine.Curve{Type: "logistic", Beta: fp(1e5), K: fp(1e-4), X0: fp(50000)}
	m := &engine.Model{ModelID: "lg", Channels: map[string]engine.Channel{
		"a": {Curve: lg},
		"b": {Curve: lg},
		"c": {Curve: engine.Curve{Type: "saturation", Beta: fp(2e4), Kappa: fp(5e4)}},
	}}
	for _, T := range []float64{20000, 60000, 100000, 150000, 300000} {
		t.Run(fmt.Sprint(T), func(t *testing.T) {
			req := &engine.Request{Constraints: engine.Constraints{Total: exactTotal(T)}}
			res := solveOK(t, m, req)
			mustStatus(t, res, engine.StatusOptimal)
			checkExpected(t, m, res)
			checkMaxCert(t, res, res.Expected["revenue"], 1e-7)
			mustHoldPlan(t, m, req, res, 1e-9)
			// Reference: brute force over (a, b) with c taking the rest.
			best := math.Inf(-1)
			const G = 300
			for i := 0; i <= G; i++ {
				xa := T * float64(i) / G
				_, v := best1D(func(xb float64) float64 {
					return refCurve(lg, xa) + refCurve(lg, xb) + refCurve(m.Channels["c"].Curve, T-xa-xb)
				}, T-xa)
				best = math.Max(best, v)
			}
			got := res.Expected["revenue"]
			if got < best*(1-1e-7) {
				t.Errorf("engine %.12g below brute force %.12g", got, best)
			}
			if ub := *res.Certificate.UpperBound; ub < best*(1-1e-12) {
				t.Errorf("upper bound %.12g below a feasible plan's %.12g", ub, best)
			}
		})
	}
	// logistic with x0 ≤ 0 is concave on spend ≥ 0: the answer satisfies KKT.
	m2 := &engine.Model{ModelID: "lg2", Channels: map[string]engine.Channel{
		"a": {Curve: engine.Curve{Type: "logistic", Beta: fp(1e5), K: fp(2e-5), X0: fp(0)}},
		"b": {Curve: engine.Curve{Type: "logistic", Beta: fp(6e4), K: fp(5e-5), X0: fp(-1e4)}},
	}}
	req := &engine.Request{Constraints: engine.Constraints{Total: exactTotal(80000)}}
	res := solveOK(t, m2, req)
	mustStatus(t, res, engine.StatusOptimal)
	checkKKT(t, m2, res, nil, nil, 1e-6)
	checkMaxCert(t, res, res.Expected["revenue"], 1e-9)
}

func TestSecondaryKPIs(t *testing.T) {
	m := &engine.Model{ModelID: "kpis", KPI: "sales", Baseline: 100, Channels: map[string]engine.Channel{
		"tv":      {Curve: engine.Curve{Type: "hill", Beta: fp(9e5), Alpha: fp(2.2), Kappa: fp(2.5e5)}, Adstock: &engine.Adstock{Type: "geometric", Decay: fp(0.4)}},
		"digital": {Curve: engine.Curve{Type: "saturation", Beta: fp(4e5), Kappa: fp(8e4)}},
		"radio":   {Curve: engine.Curve{Type: "linear", Beta: fp(1.2)}},
	}, KPIs: map[string]engine.KPIModel{
		"awareness": {Baseline: 7, Channels: map[string]engine.Channel{"tv": {Curve: engine.Curve{Type: "log", Beta: fp(3e6), Kappa: fp(1e5)}}}},
		"visits": {Baseline: 0, Channels: map[string]engine.Channel{
			"digital": {Curve: engine.Curve{Type: "power", Beta: fp(10), Alpha: fp(0.7)}, Adstock: &engine.Adstock{Type: "geometric", Decay: fp(0.2)}},
			"radio":   {Curve: engine.Curve{Type: "exponential", Beta: fp(5e4), Kappa: fp(3e4)}},
		}},
	}}
	req := &engine.Request{Budget: map[string]float64{"tv": 150000, "digital": 100000, "radio": 50000}}
	res := solveOK(t, m, req)
	mustStatus(t, res, engine.StatusOptimal)
	checkExpected(t, m, res)
	for _, k := range []string{"sales", "awareness", "visits"} {
		if _, ok := res.Expected[k]; !ok {
			t.Errorf("expected lacks %s: %v", k, res.Expected)
		}
	}
	if _, ok := res.Expected["revenue"]; ok {
		t.Errorf("expected has revenue although the primary KPI is sales")
	}
	// awareness = 7 + 3e6·ln(1 + tv/1e5): adstock belongs to the primary KPI's channel
	// entry, not to awareness's.
	aw := 7 + 3e6*math.Log1p(res.Allocation["tv"]/1e5)
	if relDiff(res.Expected["awareness"], aw) > 1e-12 {
		t.Errorf("awareness %.17g, want %.17g", res.Expected["awareness"], aw)
	}
	// The no-total default: spend the budget's sum.
	if math.Abs(res.TotalSpend-300000) > 1e-9*300000 {
		t.Errorf("no total: spend %.17g, want the budget's sum 300000", res.TotalSpend)
	}
	// Evaluate agrees with the result bit for bit.
	ev, err := engine.Evaluate(m, []map[string]float64{res.Allocation, req.Budget})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range res.Expected {
		if ev[0].Expected[k] != v {
			t.Errorf("Evaluate(%s) = %.17g, result %.17g", k, ev[0].Expected[k], v)
		}
		if ev[1].Expected[k] != res.Current.Expected[k] {
			t.Errorf("Evaluate(budget)(%s) = %.17g, current %.17g", k, ev[1].Expected[k], res.Current.Expected[k])
		}
	}
}

func TestEvaluate(t *testing.T) {
	m := mixedConcave()
	allocs := []map[string]float64{{}, {"sat": 1000, "pow": 4e4}, {"hill": 1e6, "lin": 3}}
	ev, err := engine.Evaluate(m, allocs)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev) != len(allocs) {
		t.Fatalf("%d evaluations for %d allocations", len(ev), len(allocs))
	}
	for i, a := range allocs {
		want := refKPIs(m, a)["revenue"]
		if relDiff(ev[i].Expected["revenue"], want) > 1e-12 {
			t.Errorf("allocation %d: revenue %.17g, want %.17g", i, ev[i].Expected["revenue"], want)
		}
		if ev[i].TotalSpend != sumAlloc(a) {
			t.Errorf("allocation %d: total %.17g", i, ev[i].TotalSpend)
		}
		if _, err := json.Marshal(ev[i]); err != nil {
			t.Errorf("allocation %d does not marshal: %v", i, err)
		}
	}
	// zero spend: roi null, power α<1 has an infinite slope at 0 so mroi null
	if c := ev[0].Channels["pow"]; c.ROI != nil || c.MROI != nil {
		t.Errorf("power at 0: roi %v mroi %v, want null, null", c.ROI, c.MROI)
	}
	_, err = engine.Evaluate(m, []map[string]float64{{"sat": 1}, {"print": 5}})
	fes, ok := err.(engine.FieldErrors)
	if !ok || !hasField(fes, "allocations[1].print") {
		t.Errorf("unknown channel: error %v, want field allocations[1].print", err)
	}
	_, err = engine.Evaluate(m, []map[string]float64{{"sat": -1}})
	fes, ok = err.(engine.FieldErrors)
	if !ok || !hasField(fes, "allocations[0].sat") {
		t.Errorf("negative spend: error %v, want field allocations[0].sat", err)
	}
	bad := mixedConcave()
	bad.Channels["sat"] = engine.Channel{Curve: engine.Curve{Type: "saturation", Beta: fp(1)}}
	_, err = engine.Evaluate(bad, allocs)
	fes, ok = err.(engine.FieldErrors)
	if !ok || !hasField(fes, "model.channels.sat.curve.kappa") {
		t.Errorf("invalid model: error %v, want field model.channels.sat.curve.kappa", err)
	}
}

// ---------------------------------------------------------------------------------------
// 4. Randomised properties

type randCase struct {
	m      *engine.Model
	names  []string
	lo, hi map[string]float64 // explicit bounds (hi absent = none)
	T      float64
	budget map[string]float64
	sShape bool
}

func randCurve(r *rand.Rand, kind string) engine.Curve {
	beta := 1e5 * (0.5 + 2*r.Float64())
	kappa := 2e4 * (0.3 + 2*r.Float64())
	switch kind {
	case "s":
		return engine.Curve{Type: "hill", Beta: fp(beta), Alpha: fp(1.5 + 1.5*r.Float64()), Kappa: fp(kappa)}
	case "linear":
		return engine.Curve{Type: "linear", Beta: fp(0.2 + r.Float64())}
	}
	switch r.Intn(5) {
	case 0:
		return engine.Curve{Type: "saturation", Beta: fp(beta), Kappa: fp(kappa)}
	case 1:
		return engine.Curve{Type: "exponential", Beta: fp(beta), Kappa: fp(kappa)}
	case 2:
		return engine.Curve{Type: "log", Beta: fp(beta / 5), Kappa: fp(kappa)}
	case 3:
		return engine.Curve{Type: "power", Beta: fp(beta / 300), Alpha: fp(0.3 + 0.6*r.Float64())}
	}
	return engine.Curve{Type: "hill", Beta: fp(beta), Alpha: fp(0.4 + 0.6*r.Float64()), Kappa: fp(kappa)}
}

// genCase makes a random model and a box-and-total request whose total T and 1.5·T are
// both feasible.
func genCase(r *rand.Rand, sShape bool) randCase {
	n := 2 + r.Intn(4)
	c := randCase{m: &engine.Model{ModelID: "rand", Baseline: 1000 * r.Float64(), Channels: map[string]engine.Channel{}},
		lo: map[string]float64{}, hi: map[string]float64{}, budget: map[string]float64{}, sShape: sShape}
	c.T = 5e4 + 1.5e5*r.Float64()
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("ch%d", i)
		c.names = append(c.names, name)
		kind := "concave"
		if sShape {
			kind = []string{"s", "s", "concave", "linear"}[r.Intn(4)]
			if i == 0 {
				kind = "s"
			}
		}
		ch := engine.Channel{Curve: randCurve(r, kind)}
		if r.Intn(3) == 0 {
			ch.Adstock = &engine.Adstock{Type: "geometric", Decay: fp(0.6 * r.Float64())}
		}
		c.m.Channels[name] = ch
		if r.Intn(2) == 0 {
			c.lo[name] = math.Round(r.Float64() * c.T / float64(2*n))
		}
		if r.Intn(2) == 0 {
			c.hi[name] = math.Round(math.Max(c.lo[name], c.T*(0.2+0.8*r.Float64())))
		}
	}
	sumHi := 0.0
	for _, name := range c.names {
		if h, ok := c.hi[name]; ok {
			sumHi += h
		} else {
			sumHi = math.Inf(1)
		}
	}
	if sumHi < 1.6*c.T { // keep 1.5·T feasible: free the last channel
		delete(c.hi, c.names[n-1])
	}
	// a budget: the minimums plus a random share of the rest
	sumLo := 0.0
	for _, name := range c.names {
		sumLo += c.lo[name]
	}
	w := make([]float64, n)
	ws := 0.0
	for i := range w {
		w[i] = r.Float64() + 0.05
		ws += w[i]
	}
	for i, name := range c.names {
		c.budget[name] = c.lo[name] + (c.T-sumLo)*w[i]/ws
	}
	// move any excess over a channel's max onto channels with room
	for it := 0; it < len(c.names); it++ {
		excess, room := 0.0, 0.0
		for _, name := range c.names {
			if h, ok := c.hi[name]; ok && c.budget[name] > h {
				excess += c.budget[name] - h
				c.budget[name] = h
			}
		}
		if excess == 0 {
			break
		}
		for _, name := range c.names {
			if h, ok := c.hi[name]; !ok {
				room += excess // unbounded: room enough
			} else {
				room += h - c.budget[name]
			}
		}
		for _, name := range c.names {
			r := excess
			if h, ok := c.hi[name]; ok {
				r = h - c.budget[name]
			}
			c.budget[name] += excess * r / room
		}
	}
	return c
}

func (c randCase) request(T float64) *engine.Request {
	req := &engine.Request{Budget: c.budget, Constraints: engine.Constraints{Total: exactTotal(T), Channels: map[string]engine.ChannelBounds{}}}
	for _, name := range c.names {
		var b engine.ChannelBounds
		if v, ok := c.lo[name]; ok {
			b.Min = fp(v)
		}
		if v, ok := c.hi[name]; ok {
			b.Max = fp(v)
		}
		if b.Min != nil || b.Max != nil {
			req.Constraints.Channels[name] = b
		}
	}
	return req
}

func boxes(names []string, lo, hi map[string]float64) ([]float64, []float64) {
	l := make([]float64, len(names))
	h := make([]float64, len(names))
	for i, n := range names {
		l[i] = lo[n]
		h[i] = math.Inf(1)
		if v, ok := hi[n]; ok {
			h[i] = v
		}
	}
	return l, h
}

// refConcaveOpt maximises Σ f_i(x_i) with Σ x_i = T over boxes, for concave curves, by
// bisection on the common marginal return λ: the independent reference optimum. It
// returns a feasible plan and its value (without baseline).
func refConcaveOpt(m *engine.Model, names []string, lo, hi []float64, T float64) ([]float64, float64) {
	n := len(names)
	sumLo := 0.0
	for _, v := range lo {
		sumLo += v
	}
	h := make([]float64, n)
	for i := range h {
		h[i] = math.Min(hi[i], lo[i]+(T-sumLo))
	}
	at := func(lam float64) []float64 {
		x := make([]float64, n)
		for i, name := range names {
			ch := m.Channels[name]
			d := func(v float64) float64 { return refChannelD1(ch, v) }
			switch {
			case d(lo[i]) <= lam:
				x[i] = lo[i]
			case d(h[i]) >= lam:
				x[i] = h[i]
			default:
				a, b := lo[i], h[i]
				for it := 0; it < 200 && b-a > 0; it++ {
					mid := a + (b-a)/2
					if mid == a || mid == b {
						break
					}
					if d(mid) > lam {
						a = mid
					} else {
						b = mid
					}
				}
				x[i] = a + (b-a)/2
			}
		}
		return x
	}
	sum := func(x []float64) float64 {
		s := 0.0
		for _, v := range x {
			s += v
		}
		return s
	}
	la, lb := 1e-15, 1e15 // spend(la) ≥ T ≥ spend(lb)
	for it := 0; it < 400; it++ {
		mid := math.Sqrt(la * lb)
		if mid <= la || mid >= lb {
			break
		}
		if sum(at(mid)) >= T {
			la = mid
		} else {
			lb = mid
		}
	}
	xa, xb := at(la), at(lb)
	sa, sb := sum(xa), sum(xb)
	x := make([]float64, n)
	th := 0.0
	if sa > sb {
		th = (T - sb) / (sa - sb)
	}
	for i := range x {
		x[i] = xb[i] + th*(xa[i]-xb[i])
	}
	// push the rounding residual onto a channel with room
	resid := T - sum(x)
	for i := range x {
		if v := x[i] + resid; v >= lo[i] && v <= hi[i] {
			x[i] = v
			break
		}
	}
	v := 0.0
	for i, name := range names {
		v += refChannel(m.Channels[name], x[i])
	}
	return x, v
}

// refGridOpt maximises Σ f_i(x_i), Σx = T, over boxes for any curves by dynamic
// programming on the grid x_i = lo_i + k·h, then improves the grid plan by pairwise
// transfers. The result is a feasible plan: its value is a lower bound on the optimum.
func refGridOpt(m *engine.Model, names []string, lo, hi []float64, T float64, G int) float64 {
	n := len(names)
	sumLo := 0.0
	for _, v := range lo {
		sumLo += v
	}
	R := T - sumLo
	h := R / float64(G)
	f := func(i int, x float64) float64 { return refChannel(m.Channels[names[i]], x) }
	neg := math.Inf(-1)
	V := make([]float64, G+1)
	choice := make([][]int, n)
	for s := range V {
		V[s] = neg
	}
	V[0] = 0
	for i := 0; i < n; i++ {
		vals := make([]float64, G+1)
		for k := range vals {
			x := lo[i] + float64(k)*h
			if x > hi[i]*(1+1e-12) {
				vals[k] = neg
			} else {
				vals[k] = f(i, x)
			}
		}
		NV := make([]float64, G+1)
		ch := make([]int, G+1)
		for s := range NV {
			NV[s] = neg
			for k := 0; k <= s; k++ {
				if V[s-k] == neg || vals[k] == neg {
					continue
				}
				if v := V[s-k] + vals[k]; v > NV[s] {
					NV[s], ch[s] = v, k
				}
			}
		}
		V, choice[i] = NV, ch
	}
	if V[G] == neg {
		return neg
	}
	x := make([]float64, n)
	s := G
	for i := n - 1; i >= 0; i-- {
		k := choice[i][s]
		x[i] = lo[i] + float64(k)*h
		s -= k
	}
	val := func() float64 {
		v := 0.0
		for i := range x {
			v += f(i, x[i])
		}
		return v
	}
	best := val()
	// pairwise refinement with a shrinking step
	step := h
	for round := 0; round < 30 && step > 1e-9*T; round++ {
		improved := false
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				if i == j {
					continue
				}
				d := math.Min(step, math.Min(hi[i]-x[i], x[j]-lo[j]))
				if d <= 0 {
					continue
				}
				old := f(i, x[i]) + f(j, x[j])
				if nv := f(i, x[i]+d) + f(j, x[j]-d); nv > old {
					x[i] += d
					x[j] -= d
					best += nv - old
					improved = true
				}
			}
		}
		if !improved {
			step /= 2
		}
	}
	return val()
}

func checkBoxResult(t testing.TB, c randCase, req *engine.Request, res engine.Result, gapTol float64) {
	t.Helper()
	mustStatus(t, res, engine.StatusOptimal)
	checkMaxCert(t, res, res.Expected["revenue"], gapTol)
	mustHoldPlan(t, c.m, req, res, 1e-9)
	checkExpected(t, c.m, res)
	T := *req.Constraints.Total.Exact
	if math.Abs(res.TotalSpend-T) > 1e-9*T {
		t.Errorf("exact total %.17g not spent in full: %.17g", T, res.TotalSpend)
	}
}

func TestPropertiesRandom(t *testing.T) {
	nCases := 50
	if testing.Short() {
		nCases = 12
	}
	for _, sShape := range []bool{false, true} {
		kind := "concave"
		gapTol := 1e-9
		if sShape {
			kind, gapTol = "s-shaped", 1e-7
		}
		r := rand.New(rand.NewSource(20240601))
		if sShape {
			r = rand.New(rand.NewSource(777))
		}
		for k := 0; k < nCases; k++ {
			c := genCase(r, sShape)
			t.Run(fmt.Sprintf("%s/%d", kind, k), func(t *testing.T) {
				req := c.request(c.T)
				res := solveOK(t, c.m, req)
				if res.Status != engine.StatusOptimal {
					b, _ := json.Marshal(req)
					mb, _ := json.Marshal(c.m)
					t.Fatalf("status %q %q\nmodel %s\nrequest %s", res.Status, res.Messages, mb, b)
				}
				checkBoxResult(t, c, req, res, gapTol)
				obj := res.Expected["revenue"]
				ub := *res.Certificate.UpperBound

				// An independent optimum never beats the engine by more than the gap,
				// and never exceeds its certified upper bound.
				lo, hi := boxes(c.names, c.lo, c.hi)
				var ref float64
				if sShape {
					ref = refGridOpt(c.m, c.names, lo, hi, c.T, 300) + c.m.Baseline
				} else {
					_, ref = refConcaveOpt(c.m, c.names, lo, hi, c.T)
					ref += c.m.Baseline
				}
				if obj < ref-gapTol*math.Abs(ref) {
					t.Errorf("engine objective %.15g below the reference %.15g (rel %.2g)", obj, ref, (ref-obj)/ref)
				}
				if ub < ref-1e-12*math.Abs(ref) {
					t.Errorf("certified upper bound %.15g below a feasible plan's %.15g", ub, ref)
				}

				// Never worse than the current budget when it satisfies the constraints.
				cur := engine.Result{Allocation: c.budget}
				if len(planViolations(c.m, req, &cur, 0)) == 0 {
					if obj < res.Current.Expected["revenue"] {
						t.Errorf("optimum %.17g below the current plan's %.17g", obj, res.Current.Expected["revenue"])
					}
					if ub < res.Current.Expected["revenue"] {
						t.Errorf("upper bound %.17g below the current plan's %.17g", ub, res.Current.Expected["revenue"])
					}
				}

				// More budget never lowers the optimum.
				T2 := c.T * (1.05 + 0.45*r2(k))
				req2 := c.request(T2)
				res2 := solveOK(t, c.m, req2)
				checkBoxResult(t, c, req2, res2, gapTol)
				if obj2 := res2.Expected["revenue"]; obj2 < obj-gapTol*math.Abs(obj) {
					t.Errorf("objective at total %.10g is %.15g < %.15g at total %.10g", T2, obj2, obj, c.T)
				}
				if *res2.Certificate.UpperBound < obj {
					t.Errorf("upper bound at the larger total %.15g below the objective at the smaller %.15g", *res2.Certificate.UpperBound, obj)
				}

				// Fixing a channel at its optimal value keeps the objective.
				j := c.names[k%len(c.names)]
				v := res.Allocation[j]
				req3 := c.request(c.T)
				req3.Constraints.Channels[j] = engine.ChannelBounds{Min: fp(v), Max: fp(v)}
				res3 := solveOK(t, c.m, req3)
				mustStatus(t, res3, engine.StatusOptimal)
				mustHoldPlan(t, c.m, req3, res3, 1e-9)
				obj3 := res3.Expected["revenue"]
				if obj3 < obj-gapTol*math.Abs(obj) || obj3 > ub*(1+1e-12) {
					t.Errorf("fixing %s at its optimal %.17g: objective %.15g, was %.15g (upper bound %.15g)", j, v, obj3, obj, ub)
				}
			})
		}
	}
}

// r2 is a deterministic pseudo-random fraction per case index.
func r2(k int) float64 { return math.Mod(float64(k)*0.618033988749895, 1) }

// TestPropertiesLinearConstraints: random groups, shares and ratios built around a
// feasible budget. The plan honours every constraint, is no worse than the budget, and
// no better than the certified bound of the problem without the coupling constraints.
func TestPropertiesLinearConstraints(t *testing.T) {
	nCases := 40
	if testing.Short() {
		nCases = 10
	}
	r := rand.New(rand.NewSource(99))
	for k := 0; k < nCases; k++ {
		sShape := k%3 == 2
		c := genCase(r, sShape)
		gapTol := 1e-9
		if sShape {
			gapTol = 1e-7
		}
		req := c.request(c.T)
		n := len(c.names)
		share := func(names ...string) float64 {
			s := 0.0
			for _, nm := range names {
				s += c.budget[nm]
			}
			return s / c.T
		}
		// a group of the first channels, a ratio between the last two, and a share cap
		g := c.names[:1+r.Intn(n-1)]
		switch r.Intn(3) {
		case 0:
			req.Constraints.Groups = append(req.Constraints.Groups, engine.Group{Name: "g", Channels: g, MinShare: fp(share(g...) * 0.9)})
		case 1:
			req.Constraints.Groups = append(req.Constraints.Groups, engine.Group{Name: "g", Channels: g, MaxShare: fp(math.Min(1, share(g...)*1.1))})
		default:
			s := share(g...) * c.T
			req.Constraints.Groups = append(req.Constraints.Groups, engine.Group{Name: "g", Channels: g, Min: fp(s * 0.8), Max: fp(s * 1.2)})
		}
		num, den := c.names[n-1], c.names[n-2]
		ratio := c.budget[num] / c.budget[den]
		req.Constraints.Ratios = []engine.Ratio{{Numerator: num, Denominator: den, Min: fp(ratio * 0.7), Max: fp(ratio * 1.4)}}
		maxS := 0.0
		for _, nm := range c.names {
			maxS = math.Max(maxS, share(nm))
		}
		if r.Intn(2) == 0 {
			req.Constraints.MaxShare = fp(math.Min(1, maxS*1.05))
		}
		if r.Intn(2) == 0 {
			req.Constraints.Total = rangeTotal(c.T*0.9, c.T)
		}
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			cur := engine.Result{Allocation: c.budget}
			if v := planViolations(c.m, req, &cur, 1e-12); len(v) > 0 {
				t.Skipf("generated budget infeasible: %v", v) // a generator problem, not the engine's
			}
			res := solveOK(t, c.m, req)
			if res.Status != engine.StatusOptimal {
				b, _ := json.Marshal(req)
				mb, _ := json.Marshal(c.m)
				t.Fatalf("status %q %q\nmodel %s\nrequest %s", res.Status, res.Messages, mb, b)
			}
			checkMaxCert(t, res, res.Expected["revenue"], gapTol)
			mustHoldPlan(t, c.m, req, res, 1e-9)
			checkExpected(t, c.m, res)
			obj := res.Expected["revenue"]
			if curV := res.Current.Expected["revenue"]; obj < curV || *res.Certificate.UpperBound < curV {
				t.Errorf("optimum %.17g (bound %.17g) below the feasible current plan's %.17g", obj, *res.Certificate.UpperBound, curV)
			}
			// dropping the coupling constraints can only help
			loose := c.request(c.T)
			if req.Constraints.Total.Exact == nil {
				loose.Constraints.Total = req.Constraints.Total
			}
			rl := solveOK(t, c.m, loose)
			mustStatus(t, rl, engine.StatusOptimal)
			if obj > *rl.Certificate.UpperBound*(1+1e-12) {
				t.Errorf("constrained optimum %.17g above the unconstrained bound %.17g", obj, *rl.Certificate.UpperBound)
			}
		})
	}
}

// ---------------------------------------------------------------------------------------
// 5. Determinism

func marshalResult(t testing.TB, res engine.Result) []byte {
	t.Helper()
	res.Engine.ElapsedMicros = 0
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDeterminism(t *testing.T) {
	var reqs []engine.Request
	reqs = append(reqs, decodeReq(t, baseRequestJSON))
	qs, err := os.ReadFile("../examples/quickstart.json")
	if err != nil {
		t.Fatal(err)
	}
	reqs = append(reqs, decodeReq(t, string(qs)))
	r := rand.New(rand.NewSource(5))
	for k := 0; k < 6; k++ {
		c := genCase(r, k%2 == 1)
		req := c.request(c.T)
		req.Model = c.m
		req.RequestID = fmt.Sprint("rand-", k)
		req.Constraints.Groups = []engine.Group{{Channels: c.names[:2], MinShare: fp(0.3)}}
		reqs = append(reqs, *req)
	}
	w := decodeReq(t, baseRequestJSON)
	w.Objective = engine.Objective{Type: "weighted", Weights: map[string]float64{"revenue": 1, "awareness": 0.05}}
	reqs = append(reqs, w)
	ms := decodeReq(t, baseRequestJSON)
	ms.Constraints.Total = nil
	ms.Objective = engine.Objective{Type: "min_spend", Target: map[string]float64{"revenue": 4e5}}
	reqs = append(reqs, ms)
	for i := range reqs {
		req := reqs[i]
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			first := marshalResult(t, solveOK(t, nil, &req))
			for rep := 0; rep < 3; rep++ {
				if again := marshalResult(t, solveOK(t, nil, &req)); !bytes.Equal(first, again) {
					t.Fatalf("two solves differ:\n%s\n%s", first, again)
				}
			}
			// a JSON round trip of the request, compact and indented
			enc, err := json.Marshal(&req)
			if err != nil {
				t.Fatal(err)
			}
			var ind bytes.Buffer
			if err := json.Indent(&ind, enc, " ", "\t"); err != nil {
				t.Fatal(err)
			}
			for _, data := range [][]byte{enc, ind.Bytes()} {
				rt, err := engine.DecodeRequest(data)
				if err != nil {
					t.Fatalf("round-tripped request rejected: %v\n%s", err, data)
				}
				if again := marshalResult(t, solveOK(t, nil, &rt)); !bytes.Equal(first, again) {
					t.Fatalf("round-tripped request gives a different result:\n%s\n%s", first, again)
				}
			}
		})
	}
}

func TestModelHash(t *testing.T) {
	a := `{"model_id":"acme","kpi":"revenue","baseline":50000,"channels":{
	  "tv":{"curve":{"type":"hill","beta":900000,"alpha":2.2,"kappa":250000},"adstock":{"type":"geometric","decay":0.4}},
	  "digital":{"curve":{"type":"saturation","beta":400000,"kappa":80000}},
	  "radio":{"curve":{"type":"linear","beta":1.2}}},
	  "kpis":{"awareness":{"baseline":0,"channels":{"tv":{"curve":{"type":"log","beta":3e6,"kappa":1e5}}}}}}`
	// the same model: other key order, whitespace, number spellings
	b := `{
	  "kpis": {"awareness": {"channels": {"tv": {"curve": {"kappa": 100000, "beta": 3000000, "type": "log"}}}, "baseline": 0.0}},
	  "channels": {
	    "radio":   {"curve": {"beta": 1.20, "type": "linear"}},
	    "digital": {"curve": {"kappa": 8e4, "type": "saturation", "beta": 4.0e5}},
	    "tv":      {"adstock": {"decay": 0.40, "type": "geometric"}, "curve": {"kappa": 2.5e5, "alpha": 2.2, "type": "hill", "beta": 9e5}}
	  },
	  "baseline": 5e4, "kpi": "revenue",
	  "model_id": "acme"
	}`
	ma, err := engine.DecodeModel([]byte(a))
	if err != nil {
		t.Fatal(err)
	}
	mb, err := engine.DecodeModel([]byte(b))
	if err != nil {
		t.Fatal(err)
	}
	ha, hb := engine.ModelHash(&ma), engine.ModelHash(&mb)
	if ha != hb {
		t.Errorf("same model, different hashes: %s vs %s", ha, hb)
	}
	if !strings.HasPrefix(ha, "sha256:") || len(ha) != len("sha256:")+64 {
		t.Errorf("hash %q is not sha256:<64 hex>", ha)
	}
	if again := engine.ModelHash(&ma); again != ha {
		t.Errorf("hash not stable across calls")
	}
	// a struct built in Go hashes the same as its JSON
	built := &engine.Model{ModelID: "acme", KPI: "revenue", Baseline: 50000, Channels: map[string]engine.Channel{
		"tv":      {Curve: engine.Curve{Type: "hill", Beta: fp(900000), Alpha: fp(2.2), Kappa: fp(250000)}, Adstock: &engine.Adstock{Type: "geometric", Decay: fp(0.4)}},
		"digital": {Curve: engine.Curve{Type: "saturation", Beta: fp(400000), Kappa: fp(80000)}},
		"radio":   {Curve: engine.Curve{Type: "linear", Beta: fp(1.2)}},
	}, KPIs: map[string]engine.KPIModel{"awareness": {Channels: map[string]engine.Channel{"tv": {Curve: engine.Curve{Type: "log", Beta: fp(3e6), Kappa: fp(1e5)}}}}}}
	if h := engine.ModelHash(built); h != ha {
		t.Errorf("Go-built model hashes %s, decoded one %s", h, ha)
	}
	// any parameter change changes the hash
	changes := []jsonEdit{
		{path: "channels.tv.curve.alpha", value: 2.2000000000000001 + 1e-15},
		{path: "channels.radio.curve.beta", value: 1.21},
		{path: "channels.tv.adstock.decay", value: 0.41},
		{path: "baseline", value: 50001},
		{path: "model_id", value: "acme2"},
		{path: "kpis.awareness.channels.tv.curve.kappa", value: 100001},
		{path: "kpis.awareness.baseline", value: 1},
		{path: "channels.tv.adstock", del: true},
		{path: "channels.print", value: map[string]any{"curve": map[string]any{"type": "linear", "beta": 1}}},
	}
	seen := map[string]string{ha: "original"}
	for _, e := range changes {
		m, err := engine.DecodeModel(editJSON(t, a, e))
		if err != nil {
			t.Fatalf("%s: %v", e.path, err)
		}
		h := engine.ModelHash(&m)
		if prev, ok := seen[h]; ok {
			t.Errorf("changing %s gives the same hash as %s", e.path, prev)
		}
		seen[h] = e.path
	}
}

// ---------------------------------------------------------------------------------------
// 6. Quickstart

func TestQuickstartExact(t *testing.T) {
	data, err := os.ReadFile("../examples/quickstart.json")
	if err != nil {
		t.Fatal(err)
	}
	req := decodeReq(t, string(data))
	res := solveOK(t, nil, &req)
	mustStatus(t, res, engine.StatusOptimal)
	mustAlloc(t, res, map[string]float64{"tv": 350000, "digital": 600000, "radio": 50000}, 1e-12)
	if relDiff(res.Expected["revenue"], 1785000) > 1e-12 {
		t.Errorf("revenue %.17g, want 1785000", res.Expected["revenue"])
	}
	if res.RequestID != "quickstart" || res.ModelID != "quickstart" {
		t.Errorf("request_id %q model_id %q", res.RequestID, res.ModelID)
	}
	mustHoldPlan(t, req.Model, &req, res, 1e-12)
	checkMaxCert(t, res, 1785000, 1e-9)
	want := map[string]string{"tv": "", "digital": "max", "radio": "min"}
	for n, w := range want {
		if got := res.Channels[n].AtBound; got != w {
			t.Errorf("at_bound %s = %q, want %q", n, got, w)
		}
	}
}

func Example_quickstart() {
	data, err := os.ReadFile("../examples/quickstart.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	req, err := engine.DecodeRequest(data)
	if err != nil {
		fmt.Println(err)
		return
	}
	res := engine.Solve(nil, &req)
	fmt.Println("status", res.Status)
	names := make([]string, 0, len(res.Allocation))
	for name := range res.Allocation {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Printf("%s %.0f\n", name, res.Allocation[name])
	}
	fmt.Printf("revenue %.0f\n", res.Expected["revenue"])
	// Output:
	// status optimal
	// digital 600000
	// radio 50000
	// tv 350000
	// revenue 1785000
}

// ---------------------------------------------------------------------------------------
// 4b. Randomised properties of the other objectives

// addAwareness gives a random case a secondary KPI fed by a random subset of channels
// (always the first) through concave curves.
func addAwareness(r *rand.Rand, c randCase) {
	km := engine.KPIModel{Baseline: 100 * r.Float64(), Channels: map[string]engine.Channel{}}
	for i, name := range c.names {
		if i == 0 || r.Intn(2) == 0 {
			km.Channels[name] = engine.Channel{Curve: randCurve(r, "concave")}
		}
	}
	c.m.KPIs = map[string]engine.KPIModel{"awareness": km}
}

func TestPropertiesObjectives(t *testing.T) {
	nCases := 30
	if testing.Short() {
		nCases = 8
	}
	r := rand.New(rand.NewSource(4242))
	for k := 0; k < nCases; k++ {
		sShape := k%2 == 1
		c := genCase(r, sShape)
		addAwareness(r, c)
		gapTol := 1e-9
		if sShape {
			gapTol = 1e-7
		}
		dump := func(req *engine.Request) string {
			b, _ := json.Marshal(req)
			mb, _ := json.Marshal(c.m)
			return fmt.Sprintf("\nmodel %s\nrequest %s", mb, b)
		}
		base := c.request(c.T)
		r0 := solveOK(t, c.m, base)
		if r0.Status != engine.StatusOptimal {
			t.Fatalf("case %d: max_kpi status %q %q%s", k, r0.Status, r0.Messages, dump(base))
		}
		obj0 := r0.Expected["revenue"]
		inc0 := obj0 - c.m.Baseline

		t.Run(fmt.Sprintf("%d/min_spend", k), func(t *testing.T) {
			target := c.m.Baseline + 0.8*inc0
			req := c.request(c.T)
			req.Constraints.Total = nil
			req.Objective = engine.Objective{Type: "min_spend", Target: map[string]float64{"revenue": target}}
			res := solveOK(t, c.m, req)
			if res.Status != engine.StatusOptimal {
				t.Fatalf("status %q %q%s", res.Status, res.Messages, dump(req))
			}
			mustHoldPlan(t, c.m, req, res, 1e-9)
			checkExpected(t, c.m, res)
			S := res.TotalSpend
			if res.Expected["revenue"] < target-1e-9*math.Abs(target) {
				t.Errorf("revenue %.17g below target %.17g", res.Expected["revenue"], target)
			}
			if S > c.T*(1+1e-9) {
				t.Errorf("min spend %.10g above %.10g, where the target is already reached%s", S, c.T, dump(req))
			}
			sumLo := 0.0
			for _, v := range c.lo {
				sumLo += v
			}
			if S*0.999 >= sumLo {
				less := c.request(S * 0.999)
				r2 := solveOK(t, c.m, less)
				mustStatus(t, r2, engine.StatusOptimal)
				if r2.Expected["revenue"] >= target {
					t.Errorf("0.1%% less spend (%.10g) reaches %.17g ≥ target %.17g%s", S*0.999, r2.Expected["revenue"], target, dump(req))
				}
			}
		})

		t.Run(fmt.Sprintf("%d/target_roi", k), func(t *testing.T) {
			roi := 0.9 * inc0 / c.T
			top := 3 * c.T
			req := c.request(c.T)
			req.Constraints.Total = &engine.Total{Max: fp(top)}
			req.Objective = engine.Objective{Type: "target_roi", ROI: fp(roi)}
			res := solveOK(t, c.m, req)
			if res.Status != engine.StatusOptimal {
				t.Fatalf("status %q %q%s", res.Status, res.Messages, dump(req))
			}
			mustHoldPlan(t, c.m, req, res, 1e-9)
			S := res.TotalSpend
			got := (res.Expected["revenue"] - c.m.Baseline) / S
			if got < roi*(1-1e-9) {
				t.Errorf("ROI %.12g below the target %.12g at spend %.10g", got, roi, S)
			}
			if S < c.T*(1-1e-9) {
				t.Errorf("spend %.10g below %.10g, where the ROI is already %.12g ≥ %.12g%s", S, c.T, inc0/c.T, roi, dump(req))
			}
			// allocated optimally for its spend
			at := c.request(S)
			ra := solveOK(t, c.m, at)
			if ra.Status == engine.StatusOptimal && res.Expected["revenue"] < ra.Expected["revenue"]-gapTol*math.Abs(ra.Expected["revenue"]) {
				t.Errorf("target_roi plan %.15g below the best plan %.15g at the same spend", res.Expected["revenue"], ra.Expected["revenue"])
			}
			if S < top*(1-1e-6) {
				more := c.request(math.Min(S*1.01, top))
				r2 := solveOK(t, c.m, more)
				mustStatus(t, r2, engine.StatusOptimal)
				if roi2 := (r2.Expected["revenue"] - c.m.Baseline) / r2.TotalSpend; roi2 >= roi {
					t.Errorf("spend %.10g (1%% more) still has ROI %.12g ≥ %.12g: not the largest spend%s", r2.TotalSpend, roi2, roi, dump(req))
				}
			}
		})

		t.Run(fmt.Sprintf("%d/target_mroi", k), func(t *testing.T) {
			// the price: the marginal return shared at the max_kpi optimum, a little lower
			lam := math.NaN()
			for _, n := range c.names {
				if ch := r0.Channels[n]; ch.AtBound == "" && ch.MROI != nil {
					lam = *ch.MROI
					break
				}
			}
			if math.IsNaN(lam) || lam <= 0 {
				t.Skip("no interior channel at the max_kpi optimum")
			}
			mroi := 0.8 * lam
			req := c.request(c.T)
			req.Constraints.Total = &engine.Total{Max: fp(10 * c.T)}
			req.Objective = engine.Objective{Type: "target_mroi", MROI: fp(mroi)}
			res := solveOK(t, c.m, req)
			if res.Status != engine.StatusOptimal {
				t.Fatalf("status %q %q%s", res.Status, res.Messages, dump(req))
			}
			mustHoldPlan(t, c.m, req, res, 1e-9)
			if cc := res.Certificate; relDiff(cc.Objective, res.Expected["revenue"]-mroi*res.TotalSpend) > 1e-9 {
				t.Errorf("objective %.17g, want revenue − mroi·spend = %.17g", cc.Objective, res.Expected["revenue"]-mroi*res.TotalSpend)
			}
			if res.TotalSpend >= 10*c.T*(1-1e-9) {
				t.Skip("the total's max binds")
			}
			// the priced objective is at least that of the max_kpi plan
			if v0 := obj0 - mroi*c.T; res.Certificate.Objective < v0-gapTol*math.Abs(v0) {
				t.Errorf("priced objective %.15g below the max_kpi plan's %.15g%s", res.Certificate.Objective, v0, dump(req))
			}
			if sShape {
				return
			}
			for _, n := range c.names {
				ch := res.Channels[n]
				d := refChannelD1(c.m.Channels[n], ch.Spend)
				switch ch.AtBound {
				case "":
					if relDiff(d, mroi) > 1e-6 {
						t.Errorf("channel %s not at a bound has mroi %.12g, want %.12g%s", n, d, mroi, dump(req))
					}
				case "min":
					if d > mroi*(1+1e-9) {
						t.Errorf("channel %s at its min has mroi %.12g > %.12g", n, d, mroi)
					}
				case "max":
					if d < mroi*(1-1e-9) {
						t.Errorf("channel %s at its max has mroi %.12g < %.12g", n, d, mroi)
					}
				}
			}
		})

		t.Run(fmt.Sprintf("%d/weighted_floor", k), func(t *testing.T) {
			w := map[string]float64{"revenue": 0.5 + r2(k), "awareness": 0.5 + r2(k+7)}
			weighted := func(e map[string]float64) float64 {
				return w["revenue"]*e["revenue"] + w["awareness"]*e["awareness"]
			}
			free := c.request(c.T)
			free.Objective = engine.Objective{Type: "weighted", Weights: w}
			rf := solveOK(t, c.m, free)
			mustStatus(t, rf, engine.StatusOptimal)
			checkMaxCert(t, rf, weighted(rf.Expected), gapTol)
			aw := c.request(c.T)
			aw.Objective = engine.Objective{Type: "max_kpi", KPI: "awareness"}
			ra := solveOK(t, c.m, aw)
			mustStatus(t, ra, engine.StatusOptimal)
			aMax, a0 := ra.Expected["awareness"], rf.Expected["awareness"]
			if aMax < a0-1e-9*math.Abs(aMax) {
				t.Errorf("max awareness %.15g below the weighted plan's %.15g", aMax, a0)
			}
			if aMax-a0 < 1e-6*math.Abs(aMax) {
				t.Skip("the weighted optimum already maximises awareness")
			}
			floor := a0 + 0.5*(aMax-a0)
			req := c.request(c.T)
			req.Objective = engine.Objective{Type: "weighted", Weights: w, Floors: map[string]float64{"awareness": floor}}
			res := solveOK(t, c.m, req)
			if res.Status != engine.StatusOptimal {
				t.Fatalf("status %q %q%s", res.Status, res.Messages, dump(req))
			}
			mustHoldPlan(t, c.m, req, res, 1e-9)
			checkExpected(t, c.m, res)
			checkMaxCert(t, res, weighted(res.Expected), gapTol)
			if got := res.Expected["awareness"]; got < floor-1e-9*math.Abs(floor) {
				t.Errorf("awareness %.17g below the floor %.17g", got, floor)
			}
			v := weighted(res.Expected)
			if v > *rf.Certificate.UpperBound*(1+1e-12) {
				t.Errorf("a floor raised the weighted objective above the unconstrained bound")
			}
			// the awareness-maximising plan meets the floor, so it is a candidate
			if va := weighted(ra.Expected); v < va-gapTol*math.Abs(va) {
				t.Errorf("weighted objective %.15g below the awareness-maximising plan's %.15g%s", v, va, dump(req))
			}
		})
	}
}

// TestFloorBindingSweep: a two-channel concave model and a binding floor on a secondary
// KPI. Every floor between the unconstrained plan's awareness (≈120258) and the most
// awareness the total can buy (≈127459) is reachable, so each solve must be optimal,
// meet the floor and match a brute-force search along the budget line.
func TestFloorBindingSweep(t *testing.T) {
	m := &engine.Model{ModelID: "floor2", Channels: map[string]engine.Channel{
		"a": {Curve: engine.Curve{Type: "saturation", Beta: fp(100000), Kappa: fp(13000)}},
		"b": {Curve: engine.Curve{Type: "log", Beta: fp(30000), Kappa: fp(15000)}},
	}, KPIs: map[string]engine.KPIModel{"awareness": {Channels: map[string]engine.Channel{
		"a": {Curve: engine.Curve{Type: "log", Beta: fp(45000), Kappa: fp(20000)}},
		"b": {Curve: engine.Curve{Type: "saturation", Beta: fp(87000), Kappa: fp(33000)}},
	}}}}
	const T = 136000.0
	step := 300.0
	if testing.Short() {
		step = 900
	}
	for floor := 120300.0; floor < 127400; floor += step {
		t.Run(fmt.Sprint(floor), func(t *testing.T) {
			req := &engine.Request{Constraints: engine.Constraints{Total: exactTotal(T)},
				Objective: engine.Objective{Floors: map[string]float64{"awareness": floor}}}
			res := solveOK(t, m, req)
			if res.Status != engine.StatusOptimal {
				b, _ := json.Marshal(engine.Request{Model: m, Constraints: req.Constraints, Objective: req.Objective})
				t.Fatalf("status %q %q\nrequest: %s", res.Status, res.Messages, b)
			}
			if aw := res.Expected["awareness"]; aw < floor*(1-1e-9) {
				t.Errorf("awareness %.17g below the floor %g", aw, floor)
			}
			// reference: revenue(a) − ∞·[awareness(a) < floor] along a + b = T
			_, best := best1D(func(a float64) float64 {
				e := refKPIs(m, map[string]float64{"a": a, "b": T - a})
				if e["awareness"] < floor {
					return math.Inf(-1)
				}
				return e["revenue"]
			}, T)
			if got := res.Expected["revenue"]; got < best*(1-1e-9) {
				t.Errorf("revenue %.15g below a plan meeting the floor with %.15g", got, best)
			}
		})
	}
}

// TestPrepared: a prepared model answers exactly as Solve does, names the model's hash,
// and gives the same bits when many goroutines share it (run with -race as well).
func TestPrepared(t *testing.T) {
	base := decodeReq(t, baseRequestJSON)
	m := base.Model
	pm, err := engine.Prepare(m)
	if err != nil {
		t.Fatal(err)
	}
	if pm.Hash() != engine.ModelHash(m) {
		t.Errorf("Prepared.Hash %s != ModelHash %s", pm.Hash(), engine.ModelHash(m))
	}
	var reqs []engine.Request
	for _, obj := range []engine.Objective{
		{Type: "max_kpi"},
		{Type: "weighted", Weights: map[string]float64{"revenue": 1, "awareness": 0.05}},
		{Type: "max_kpi", KPI: "awareness"},
		{Type: "target_mroi", MROI: fp(1.2)},
	} {
		r := base
		r.Model = nil
		r.Objective = obj
		reqs = append(reqs, r)
	}
	r := base
	r.Model = nil
	r.Constraints.Total = &engine.Total{Max: fp(1e6)}
	r.Objective = engine.Objective{Type: "min_spend", Target: map[string]float64{"revenue": 5e5}}
	reqs = append(reqs, r)
	want := make([][]byte, len(reqs))
	for i := range reqs {
		res := solveOK(t, m, &reqs[i])
		if res.ModelHash != engine.ModelHash(m) {
			t.Errorf("result model_hash %q, want %q", res.ModelHash, engine.ModelHash(m))
		}
		want[i] = marshalResult(t, res)
		if got := marshalResult(t, pm.Solve(&reqs[i])); !bytes.Equal(got, want[i]) {
			t.Errorf("request %d: Prepared.Solve differs from Solve:\n%s\n%s", i, got, want[i])
		}
	}
	// Prepared.Evaluate matches Evaluate
	allocs := []map[string]float64{{"tv": 1e5, "digital": 5e4}, {}}
	e1, err1 := engine.Evaluate(m, allocs)
	e2, err2 := pm.Evaluate(allocs)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	b1, _ := json.Marshal(e1)
	b2, _ := json.Marshal(e2)
	if !bytes.Equal(b1, b2) {
		t.Errorf("Prepared.Evaluate differs from Evaluate:\n%s\n%s", b2, b1)
	}
	// concurrent use
	const workers = 8
	errc := make(chan string, workers*len(reqs))
	done := make(chan struct{})
	for w := 0; w < workers; w++ {
		go func(w int) {
			defer func() { done <- struct{}{} }()
			for k := 0; k < len(reqs); k++ {
				i := (k + w) % len(reqs)
				res := pm.Solve(&reqs[i])
				res.Engine.ElapsedMicros = 0
				got, err := json.Marshal(res)
				if err != nil || !bytes.Equal(got, want[i]) {
					errc <- fmt.Sprintf("worker %d request %d: %v\n%s\n%s", w, i, err, got, want[i])
				}
			}
		}(w)
	}
	for w := 0; w < workers; w++ {
		<-done
	}
	close(errc)
	for e := range errc {
		t.Error(e)
	}
}

// TestConcaveSharesUnderRangeTotal: concave curves, a total given as a range and a share
// row. Nothing here needs branch and bound, so the answer must be optimal, and since the
// curves increase it must match the same request with the total fixed at the max.
func TestConcaveSharesUnderRangeTotal(t *testing.T) {
	sat := engine.Curve{Type: "saturation", Beta: fp(1), Kappa: fp(20)}
	exp := engine.Curve{Type: "exponential", Beta: fp(1), Kappa: fp(20)}
	hill := engine.Curve{Type: "hill", Beta: fp(1), Alpha: fp(0.25), Kappa: fp(20)}
	pow := engine.Curve{Type: "power", Beta: fp(1), Alpha: fp(0.5)}
	ch := func(c engine.Curve) engine.Channel { return engine.Channel{Curve: c} }
	cases := []struct {
		name string
		m    map[string]engine.Channel
		c    engine.Constraints
	}{
		{"saturation+exponential, group max_share", map[string]engine.Channel{"a": ch(sat), "b": ch(sat), "c": ch(exp)},
			engine.Constraints{Groups: []engine.Group{{Channels: []string{"a", "b"}, MaxShare: fp(0.2)}}}},
		{"power+exponential, group max_share", map[string]engine.Channel{"a": ch(pow), "b": ch(pow), "c": ch(exp)},
			engine.Constraints{Groups: []engine.Group{{Channels: []string{"a", "b"}, MaxShare: fp(0.2)}}}},
		{"hill α<1+exponential, one-channel group max_share", map[string]engine.Channel{"a": ch(hill), "b": ch(exp)},
			engine.Constraints{Groups: []engine.Group{{Channels: []string{"a"}, MaxShare: fp(0.2)}}}},
		{"hill α<1+exponential, group max_share and ratio", map[string]engine.Channel{"a": ch(hill), "b": ch(hill), "c": ch(exp)},
			engine.Constraints{Groups: []engine.Group{{Channels: []string{"a", "b"}, MaxShare: fp(0.2)}},
				Ratios: []engine.Ratio{{Numerator: "a", Denominator: "b", Max: fp(0.01)}}}},
		{"saturation+exponential, max_share", map[string]engine.Channel{"a": ch(sat), "b": ch(exp)},
			engine.Constraints{MaxShare: fp(0.6)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := &engine.Model{ModelID: "small", Channels: c.m}
			exact := &engine.Request{Constraints: c.c}
			exact.Constraints.Total = exactTotal(1000)
			re := solveOK(t, m, exact)
			mustStatus(t, re, engine.StatusOptimal)
			req := &engine.Request{Constraints: c.c}
			req.Constraints.Total = &engine.Total{Max: fp(1000)}
			res := solveOK(t, m, req)
			if res.Status != engine.StatusOptimal {
				b, _ := json.Marshal(engine.Request{Model: m, Constraints: req.Constraints})
				t.Errorf("status %q (gap %.3g) %q, want optimal\nrequest: %s", res.Status, res.Certificate.Gap, res.Messages, b)
			}
			mustHoldPlan(t, m, req, res, 1e-9)
			checkMaxCert(t, res, res.Expected["revenue"], 1e-9)
			if got, want := res.Expected["revenue"], re.Expected["revenue"]; got < want*(1-1e-9) {
				t.Errorf("revenue %.15g below %.15g, the optimum with the total fixed at its max", got, want)
			}
		})
	}
}

// TestOnlyTheZeroPlan: two channels each capped at 40% of the total spend can only spend
// nothing. That plan honours every constraint, so it is the (optimal) answer.
func TestOnlyTheZeroPlan(t *testing.T) {
	m := &engine.Model{ModelID: "zero", Channels: map[string]engine.Channel{
		"a": {Curve: engine.Curve{Type: "power", Beta: fp(10), Alpha: fp(0.5)}},
		"b": {Curve: engine.Curve{Type: "saturation", Beta: fp(1000), Kappa: fp(100)}},
	}}
	for _, req := range []*engine.Request{
		{Constraints: engine.Constraints{MaxShare: fp(0.4)}, Objective: engine.Objective{Type: "target_mroi", MROI: fp(0.5)}},
		{Constraints: engine.Constraints{MaxShare: fp(0.4), Total: &engine.Total{Max: fp(1000)}}},
	} {
		res := solveOK(t, m, req)
		b, _ := json.Marshal(engine.Request{Model: m, Constraints: req.Constraints, Objective: req.Objective})
		if res.Status != engine.StatusOptimal {
			gap := math.NaN()
			if res.Certificate != nil {
				gap = res.Certificate.Gap
			}
			t.Errorf("status %q (gap %.3g) %q, want optimal with nothing spent\nrequest: %s", res.Status, gap, res.Messages, b)
			continue
		}
		if res.TotalSpend != 0 {
			t.Errorf("spend %v, want 0\nrequest: %s", res.TotalSpend, b)
		}
	}
}

// TestNoHang: requests whose only feasible plan spends nothing once made Solve spin
// forever inside the simplex of its feasibility check. Each must come back (within a
// deadline of 5 s; they take milliseconds when they work) with a proper answer: spending
// nothing honours every constraint.
func TestNoHang(t *testing.T) {
	hill := engine.Curve{Type: "hill", Beta: fp(1), Alpha: fp(0.9), Kappa: fp(1)}
	m := &engine.Model{ModelID: "hang", Channels: map[string]engine.Channel{"a": {Curve: hill}, "b": {Curve: hill}}}
	ms := 0.004687571526665141
	cases := []struct {
		name string
		m    *engine.Model
		req  engine.Request
		want string
	}{
		{"max_kpi, range total", m, engine.Request{Constraints: engine.Constraints{Total: &engine.Total{Max: fp(1000)}, MaxShare: fp(0.05),
			Groups: []engine.Group{{Channels: []string{"a"}, MinShare: fp(ms)}}}}, engine.StatusOptimal},
		{"min_spend", m, engine.Request{Constraints: engine.Constraints{MaxShare: fp(0.05),
			Groups: []engine.Group{{Channels: []string{"a"}, MinShare: fp(ms)}}},
			Objective: engine.Objective{Type: "min_spend", Target: map[string]float64{"revenue": 0.05}}}, engine.StatusInfeasible},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, _ := json.Marshal(engine.Request{Model: c.m, Constraints: c.req.Constraints, Objective: c.req.Objective})
			res := solveWithin(t, c.m, &c.req, 5*time.Second, string(b))
			checkResultShape(t, res)
			if res.Status != c.want {
				t.Errorf("status %q %q, want %s\nrequest: %s", res.Status, res.Messages, c.want, b)
			}
		})
	}
}
