package engine_test

// Regression tests for the engine bugs a long fuzzing session found, which the fuzz
// tests used to skip (knownBug/knownModelBug with ATLAS_FUZZ_SKIP_KNOWN=1). Each runs the
// same checks as FuzzSolve on a concrete request.

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/atlas-mmm/atlas/engine"
)

// solveChecked solves a request given as JSON and applies FuzzSolve's checks: the result
// marshals (no NaN/Inf), a plan honours every constraint, a concave problem is optimal,
// an infeasibility claim is true, an invalid answer says why.
func solveChecked(t *testing.T, input string) engine.Result {
	t.Helper()
	req := decodeReq(t, input)
	res := engine.Solve(nil, &req)
	checkResultShape(t, res)
	switch res.Status {
	case engine.StatusOptimal, engine.StatusFeasible:
		for _, v := range planViolations(req.Model, &req, &res, 1e-6) {
			t.Errorf("%s result breaks a constraint: %s", res.Status, v)
		}
		checkConcaveOptimal(t, &req, &res, input)
		c := res.Certificate
		if c == nil {
			t.Fatalf("%s result without a certificate", res.Status)
		}
		for _, b := range []*float64{c.UpperBound, c.LowerBound, &c.Objective, &c.Gap} {
			if b != nil && (math.IsNaN(*b) || math.IsInf(*b, 0)) {
				t.Errorf("certificate %+v not finite", c)
			}
		}
	case engine.StatusInfeasible:
		checkInfeasibleClaim(t, &req, input)
	case engine.StatusInvalid:
		if len(res.Errors) == 0 {
			t.Errorf("invalid without a FieldError: %q", res.Messages)
		}
	}
	return res
}

func wantField(t *testing.T, res engine.Result, field string) {
	t.Helper()
	if res.Status != engine.StatusInvalid {
		t.Fatalf("status %q, want invalid (%s)", res.Status, field)
	}
	for _, e := range res.Errors {
		if e.Field == field {
			return
		}
	}
	t.Fatalf("errors %+v do not name %s", res.Errors, field)
}

const twoConcave = `"model":{"channels":{"a":{"curve":{"type":"hill","beta":100,"alpha":0.5,"kappa":10},"adstock":{"type":"geometric","decay":0.3}},"b":{"curve":{"type":"power","beta":5,"alpha":0.4}}}}`

// Bug 1: a maximisation with no finite total max gave a NaN bound (0·Inf in the price
// search's dual).
func TestRegressionOpenTotalBound(t *testing.T) {
	res := solveChecked(t, `{`+twoConcave+`,"objective":{"type":"target_mroi","mroi":0.5}}`)
	mustStatus(t, res, engine.StatusOptimal)
	res = solveChecked(t, `{`+twoConcave+`,"constraints":{"total":{"min":20}},"objective":{"type":"target_mroi","mroi":0.5}}`)
	mustStatus(t, res, engine.StatusOptimal)
	if res.TotalSpend < 20*(1-1e-9) {
		t.Errorf("total spend %g below the minimum 20", res.TotalSpend)
	}
	// Without a price on spend the optimum is genuinely unbounded: a FieldError.
	for _, obj := range []string{`{"type":"max_kpi"}`, `{"type":"weighted","weights":{"revenue":1}}`} {
		res = solveChecked(t, `{`+twoConcave+`,"constraints":{"total":{"min":20}},"objective":`+obj+`}`)
		wantField(t, res, "constraints.total")
	}
}

// Bug 2: max_share·channels < 1 leaves only the all-zero plan; with an infinite slope at
// zero the engine called it infeasible.
func TestRegressionMaxShareAllZero(t *testing.T) {
	for _, obj := range []string{`{"type":"max_kpi"}`, `{"type":"target_mroi","mroi":1}`, `{"type":"target_roi","roi":1}`,
		`{"type":"min_spend","target":{"revenue":0}}`} {
		res := solveChecked(t, `{`+twoConcave+`,"constraints":{"total":{"max":100},"max_share":0.3},"objective":`+obj+`}`)
		mustStatus(t, res, engine.StatusOptimal)
		if res.TotalSpend != 0 {
			t.Errorf("%s: spend %g, want the all-zero plan", obj, res.TotalSpend)
		}
		if res.Certificate.Gap != 0 {
			t.Errorf("%s: gap %g on the only feasible plan", obj, res.Certificate.Gap)
		}
	}
	// Spend that must be positive conflicts with it: infeasible, with the reason.
	res := solveChecked(t, `{`+twoConcave+`,"constraints":{"total":{"min":10,"max":100},"max_share":0.3},"objective":{"type":"max_kpi"}}`)
	mustStatus(t, res, engine.StatusInfeasible)
	res = solveChecked(t, `{`+twoConcave+`,"constraints":{"channels":{"a":{"min":1}},"max_share":0.3},"objective":{"type":"target_mroi","mroi":1}}`)
	mustStatus(t, res, engine.StatusInfeasible)
	if !strings.Contains(strings.Join(res.Messages, ";"), "max_share") {
		t.Errorf("infeasibility does not name max_share: %q", res.Messages)
	}
}

// Bug 3: target_roi with no total max and a curve without a finite supremum was called
// unbounded (invalid, no FieldError) although the ROI falls below target at finite spend.
func TestRegressionTargetROIOpenTotal(t *testing.T) {
	for _, ch := range []string{`{"type":"linear","beta":0.5}`, `{"type":"power","beta":10,"alpha":0.5}`,
		`{"type":"power","beta":0.5,"alpha":1}`, `{"type":"log","beta":50,"kappa":5}`} {
		res := solveChecked(t, `{"model":{"channels":{"a":{"curve":`+ch+`},"b":{"curve":{"type":"log","beta":50,"kappa":5}}}},"objective":{"type":"target_roi","roi":1}}`)
		mustStatus(t, res, engine.StatusOptimal)
		if roi := res.Expected["revenue"] / res.TotalSpend; roi < 1-1e-9 {
			t.Errorf("%s: ROI %g below the target 1", ch, roi)
		}
	}
	// Really unbounded: a channel returns at least the target per unit forever.
	for _, ch := range []string{`{"type":"linear","beta":2}`, `{"type":"power","beta":1,"alpha":1.5}`} {
		res := solveChecked(t, `{"model":{"channels":{"a":{"curve":`+ch+`},"b":{"curve":{"type":"log","beta":50,"kappa":5}}}},"objective":{"type":"target_roi","roi":1}}`)
		wantField(t, res, "constraints.total")
	}
}

// Bug 4: parameter limits that let β·x^α or β·ln(1+x/κ) overflow. The validator names the
// parameter; the largest allowed values stay finite at the largest allowed spend.
func TestRegressionParameterLimitsFinite(t *testing.T) {
	for in, field := range map[string]string{
		`{"type":"power","beta":1,"alpha":100}`: "model.channels.a.curve.alpha",
		`{"type":"power","beta":1,"alpha":4.5}`: "model.channels.a.curve.alpha",
		`{"type":"log","beta":1,"kappa":1e-9}`:  "model.channels.a.curve.kappa",
	} {
		var req engine.Request
		if err := json.Unmarshal([]byte(`{"model":{"channels":{"a":{"curve":`+in+`}}},"constraints":{"total":1000}}`), &req); err != nil {
			t.Fatal(err)
		}
		wantField(t, solveOK(t, nil, &req), field)
	}
	for _, ch := range []string{`{"type":"power","beta":1e15,"alpha":4}`, `{"type":"log","beta":1e15,"kappa":1e-6}`} {
		for _, total := range []string{`1000`, `1e15`} {
			res := solveChecked(t, `{"model":{"channels":{"a":{"curve":`+ch+`,"adstock":{"type":"geometric","decay":0.999}},"b":{"curve":{"type":"linear","beta":1}}}},"constraints":{"total":`+total+`}}`)
			mustStatus(t, res, engine.StatusOptimal)
			for k, v := range res.Expected {
				if math.IsInf(v, 0) || math.IsNaN(v) {
					t.Errorf("expected[%s] = %v", k, v)
				}
			}
		}
	}
}

// The price search's Newton steps oscillated across the answer without shrinking the
// bracket (a nearly linear channel, saturation with a huge κ, next to steep concave
// ones) until the iteration cap, and a concave problem came back "feasible" with a gap
// of 1e-3 (found by FuzzSolveGenerated, testdata 01850d879ff07043).
func TestRegressionPriceSearchOscillation(t *testing.T) {
	res := solveChecked(t, `{"model":{"model_id":"gen","baseline":12.471370006941846,"channels":{"digital":{"curve":{"type":"saturation","beta":68.47116921532557,"kappa":1349647.929772022},"adstock":{"type":"geometric","decay":0.2134236667429618}},"radio":{"curve":{"type":"piecewise","points":[[189632.4105943498,0]]},"adstock":{"type":"geometric","decay":0.18635294117647058}},"search":{"curve":{"type":"hill","beta":0.7626985859023448,"alpha":0.22815432371706781,"kappa":20.780072518241724},"adstock":{"type":"geometric","decay":0.18635294117647058}},"tv":{"curve":{"type":"saturation","beta":0.7626985859023448,"kappa":20.780072518241724}}}},"budget":{"digital":1066,"search":499,"tv":484},"constraints":{"total":1751,"channels":{"search":{"max":1287},"tv":{"min":80}}},"objective":{"type":"weighted","weights":{"revenue":0.9831288624399176}},"options":{"max_nodes":200}}`)
	mustStatus(t, res, engine.StatusOptimal)
	// equal marginal returns on the three channels inside their boxes
	d, s, tv := *res.Channels["digital"].MROI, *res.Channels["search"].MROI, *res.Channels["tv"].MROI
	if relDiff(d, s) > 1e-6 || relDiff(s, tv) > 1e-6 {
		t.Errorf("marginal returns differ: %g %g %g", d, s, tv)
	}
}

// target_mroi capped each channel's spend at its own price point (where its marginal
// return falls below the price) even where a constraint forces spend past it (a group or
// total minimum, a ratio, a floor), and called satisfiable requests infeasible (found by
// FuzzSolveGenerated, testdata c015df1092f7b2bf) or answered "optimal" in the wrong box.
func TestRegressionForcedSpendPastPricePoint(t *testing.T) {
	res := solveChecked(t, `{"model":{"model_id":"gen","baseline":12.471370006941846,"channels":{"digital":{"curve":{"type":"saturation","beta":0.7626985859023448,"kappa":20.780072518241724},"adstock":{"type":"geometric","decay":0.18635294117647058}},"radio":{"curve":{"type":"saturation","beta":0.7626985859023448,"kappa":20.780072518241724},"adstock":{"type":"geometric","decay":0.18635294117647058}},"search":{"curve":{"type":"saturation","beta":0.7626985859023448,"kappa":20.780072518241724},"adstock":{"type":"geometric","decay":0.18635294117647058}},"tv":{"curve":{"type":"saturation","beta":0.7626985859023448,"kappa":20.780072518241724},"adstock":{"type":"geometric","decay":0.18635294117647058}}}},"budget":{"tv":464},"constraints":{"channels":{"tv":{"min":63}},"groups":[{"name":"g","channels":["digital","search"],"max":909},{"name":"g","channels":["tv","radio"],"min":463}],"ratios":[{"numerator":"radio","denominator":"search","max":0.16796668970161213}]},"objective":{"type":"target_mroi","mroi":84.03647779470431},"options":{"max_nodes":200}}`)
	mustStatus(t, res, engine.StatusOptimal)
	if s := res.Allocation["tv"] + res.Allocation["radio"]; relDiff(s, 463) > 1e-9 {
		t.Errorf("tv + radio = %g, want the group minimum 463 (the price makes every unit a loss)", s)
	}
	// A total minimum past the sum of the price points: spend exactly the minimum, split
	// where the marginal returns are equal.
	res = solveChecked(t, `{`+twoConcave+`,"constraints":{"total":{"min":1000}},"objective":{"type":"target_mroi","mroi":0.5}}`)
	mustStatus(t, res, engine.StatusOptimal)
	if relDiff(res.TotalSpend, 1000) > 1e-9 {
		t.Errorf("total spend %g, want the minimum 1000", res.TotalSpend)
	}
	if a, b := *res.Channels["a"].MROI, *res.Channels["b"].MROI; relDiff(a, b) > 1e-6 {
		t.Errorf("marginal returns differ: %g %g", a, b)
	}
	// A KPI floor past the price points, which the current plan misses: it was called
	// out of reach ("at most 77.0077 under the other constraints").
	res = solveChecked(t, `{`+twoConcave+`,"budget":{"a":1,"b":1},"objective":{"type":"target_mroi","mroi":0.5,"floors":{"revenue":150}}}`)
	mustStatus(t, res, engine.StatusOptimal)
	if v := res.Expected["revenue"]; v < 150*(1-1e-9) {
		t.Errorf("revenue %g below the floor 150", v)
	}
	// Maximums force spend too. A ratio's maximum on a fixed numerator: the denominator
	// spends at least numerator/max (it was capped at its price point, 0, and the
	// request called infeasible; found by FuzzSolveGenerated, testdata 77b0351796568d34).
	res = solveChecked(t, `{"model":{"model_id":"gen","baseline":12.471370006941846,"channels":{"digital":{"curve":{"type":"saturation","beta":0.7626985859023448,"kappa":20.780072518241724}},"tv":{"curve":{"type":"saturation","beta":0.7626985859023448,"kappa":20.780072518241724}}}},"budget":{"digital":254,"tv":254},"constraints":{"channels":{"tv":{"fixed":true}},"ratios":[{"numerator":"tv","denominator":"digital","max":5.532430909993726}]},"objective":{"type":"target_mroi","mroi":0.29744806931961804},"options":{"max_nodes":200}}`)
	mustStatus(t, res, engine.StatusOptimal)
	if d, want := res.Allocation["digital"], 254/5.532430909993726; relDiff(d, want) > 1e-9 {
		t.Errorf("digital %g, want the least the ratio allows, %g", d, want)
	}
	// A share of the total: a channel's minimum makes the others spend.
	res = solveChecked(t, `{`+twoConcave+`,"constraints":{"channels":{"a":{"min":100}},"max_share":0.6},"objective":{"type":"target_mroi","mroi":50}}`)
	mustStatus(t, res, engine.StatusOptimal)
	if a, b := res.Allocation["a"], res.Allocation["b"]; relDiff(a, 100) > 1e-9 || relDiff(b, 100*0.4/0.6) > 1e-9 {
		t.Errorf("a = %g, b = %g, want 100 and %g (a at its minimum, b what its share needs)", a, b, 100*0.4/0.6)
	}
}
