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

// Engine 1.3.0 to 1.3.3 answered these requests of the fuzz generator's sweep "feasible"
// where 1.2.2 (and 1.3.4) certify them "optimal" within their node budget of 200: g12957
// after the envelope's tangency stopped on a Newton/Halley step below 1e-13·z instead of
// bisecting (1.3.0; a 0.04 % worse plan after 116 nodes), the others after hillPolish took
// its powers as exponentials of one logarithm (1.3.1). Both changes were reverted in 1.3.4.
var regressionCertified13 = map[string]string{
	"g12957": `{"model":{"model_id":"gen","baseline":346834.54410104966,"channels":{"digital":{"curve":{"type":"logistic","beta":1965.654958207558,"k":0.07804270996782044,"x0":26.986062658156495}},"radio":{"curve":{"type":"hill","beta":42895344.74075029,"alpha":6.494062079585283,"kappa":3.029750611629113}},"search":{"curve":{"type":"hill","beta":189.8123907934781,"alpha":1.3135551848778306,"kappa":59.730469141235105}},"social":{"curve":{"type":"exponential","beta":17758599.4984233,"kappa":378160.40199756477}},"tv":{"curve":{"type":"power","beta":7.381018158220638,"alpha":0.4490196510800342},"adstock":{"type":"geometric","decay":0.2854662394140535}}},"kpis":{"awareness":{"baseline":5.450114241482432,"channels":{"digital":{"curve":{"type":"logistic","beta":42963.21952067367,"k":0.00002038308219614433,"x0":149655.79283036507},"adstock":{"type":"geometric","decay":0.10538246738384069}},"search":{"curve":{"type":"exponential","beta":73856.87638033781,"kappa":6484881.389022103}}}}}},"budget":{"radio":653206,"search":1329921},"constraints":{"total":1448803,"channels":{"search":{"max":915357},"social":{"min":6272},"tv":{"min":268428}},"max_share":0.6205363546196688,"groups":[{"name":"g","channels":["tv","radio","social"],"max_share":0.9188952468146792},{"name":"g","channels":["tv","radio","social"],"max_share":0.24437323567559321}]},"objective":{},"options":{"max_nodes":200}}`,
	"g1957":  `{"model":{"model_id":"gen","baseline":82691.08655803077,"channels":{"digital":{"curve":{"type":"power","beta":0.0019113076000164965,"alpha":0.17484063220368257}},"ooh":{"curve":{"type":"linear","beta":0.0010611768008882852}},"print":{"curve":{"type":"hill","beta":0.14944690156817395,"alpha":0.2268006038219495,"kappa":938319.3065604261}},"promo":{"curve":{"type":"hill","beta":74403.83667170817,"alpha":0.14895158870857503,"kappa":28.80679396177424}},"radio":{"curve":{"type":"power","beta":0.6769136984089803,"alpha":0.6093405354620652}},"search":{"curve":{"type":"exponential","beta":86356.2119507074,"kappa":3.0446904490637765}},"social":{"curve":{"type":"saturation","beta":0.16770133011671237,"kappa":16.905609117284865}},"tv":{"curve":{"type":"log","beta":32.946926576726625,"kappa":365.759183469008}}}},"budget":{"digital":4603096,"ooh":4903650,"print":722432,"promo":2076801,"radio":296271,"social":236297,"tv":4650906},"constraints":{"total":{"min":1686937,"max":6774715},"channels":{"ooh":{"max":3097111},"radio":{"min":64123},"social":{"min":274871},"tv":{"min":161647}},"max_share":0.8394850080109866,"groups":[{"name":"g","channels":["digital","search","social","ooh"],"max":1624096}]},"objective":{"type":"weighted","weights":{"revenue":0.018896009765774012}},"options":{"max_nodes":200}}`,
	"g11053": `{"model":{"model_id":"gen","baseline":390871.2066257987,"channels":{"digital":{"curve":{"type":"power","beta":71.0468743040522,"alpha":1.4884190800472727}},"tv":{"curve":{"type":"hill","beta":135.2781290950816,"alpha":0.31807163719179415,"kappa":3889952.5569524523}}},"kpis":{"awareness":{"baseline":38.6279008888096,"channels":{"digital":{"curve":{"type":"hill","beta":3857.695250795296,"alpha":0.3244079849660964,"kappa":410.983772061048}}}}}},"budget":{"tv":674784},"constraints":{"total":{"max":887824},"groups":[{"name":"g","channels":["tv"],"max_share":0.5597344930189976},{"name":"g","channels":["digital"],"max_share":0.25842374303807125}],"ratios":[{"numerator":"digital","denominator":"tv","min":1.3699045815765576,"max":4.02934015632406}]},"objective":{"type":"weighted","weights":{"awareness":0.7289440756847486,"revenue":0.014043640802624553}},"options":{"max_nodes":200}}`,
	"g20481": `{"model":{"model_id":"gen","baseline":2873.4110054861835,"channels":{"digital":{"curve":{"type":"saturation","beta":0.0418458652351039,"kappa":10513.052838544672}},"radio":{"curve":{"type":"hill","beta":16.1173565105165,"alpha":0.24300362688129082,"kappa":4930.048006354501}},"tv":{"curve":{"type":"exponential","beta":127591.37475935576,"kappa":2081734.1607753402}}}},"budget":{"radio":173},"constraints":{"total":{"min":60,"max":258},"channels":{"tv":{"max":18}},"max_share":0.7585969329365988,"ratios":[{"numerator":"tv","denominator":"digital","min":0.029880979336253003,"max":0.15620089877185556}]},"objective":{"type":"target_mroi","mroi":74.54775632226203},"options":{"max_nodes":200}}`,
}

func TestRegressionCertified13(t *testing.T) {
	for _, name := range []string{"g12957", "g1957", "g11053", "g20481"} {
		t.Run(name, func(t *testing.T) {
			res := solveChecked(t, regressionCertified13[name])
			if res.Status != engine.StatusOptimal {
				t.Fatalf("status %q (gap %v), want optimal: %q", res.Status, res.Certificate, res.Messages)
			}
		})
	}
}
