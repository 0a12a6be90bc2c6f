package engine_test

// Fuzz targets for the engine's public entry points. Run one with e.g.
//
//	go test -run '^$' -fuzz FuzzSolve -fuzztime 60s ./engine/
//
// Without -fuzz, `go test` runs the seeds below and every input under
// testdata/fuzz/<FuzzName>/ (crashers the fuzzer found are kept there).

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/atlas-mmm/atlas/engine"
	"github.com/atlas-mmm/atlas/engine/enginegen"
)

// maxFuzzInput bounds the inputs the targets look at: a request or model far beyond any
// real one only slows the fuzzer down.
const maxFuzzInput = 64 << 10

// fuzzSeeds are valid and tricky inputs shared by all three targets.
func fuzzSeeds(f *testing.F) {
	if qs, err := os.ReadFile("../examples/quickstart.json"); err == nil {
		f.Add(qs)
	} else {
		f.Fatalf("quickstart: %v", err)
	}
	const mdl = `{"model_id":"m","baseline":1000,"channels":{
	 "tv":{"curve":{"type":"hill","beta":900000,"alpha":2.2,"kappa":250000},"adstock":{"type":"geometric","decay":0.4}},
	 "digital":{"curve":{"type":"saturation","beta":400000,"kappa":80000}},
	 "radio":{"curve":{"type":"linear","beta":1.2}},
	 "search":{"curve":{"type":"exponential","beta":300000,"kappa":50000}},
	 "social":{"curve":{"type":"power","beta":300,"alpha":0.6}},
	 "ooh":{"curve":{"type":"log","beta":100000,"kappa":20000}},
	 "promo":{"curve":{"type":"logistic","beta":200000,"k":0.0001,"x0":40000}},
	 "print":{"curve":{"type":"piecewise","points":[[1000,500],[5000,9000],[20000,12000]]}}},
	 "kpis":{"awareness":{"baseline":0,"channels":{"tv":{"curve":{"type":"log","beta":3e6,"kappa":1e5}},
	   "social":{"curve":{"type":"saturation","beta":1e6,"kappa":1e5}}}}}}`
	f.Add([]byte(baseRequestJSON))
	f.Add([]byte(mdl))
	for _, rest := range []string{
		`"budget":{"tv":100000,"digital":200000},"constraints":{"total":300000}`,
		`"budget":{"tv":100000,"digital":200000,"print":3000},"constraints":{"total":{"min":100000,"max":500000},"channels":{"tv":{"min":50000,"max":200000},"print":{"fixed":true}},"max_share":0.5,"groups":[{"name":"dig","channels":["search","social"],"min_share":0.25}],"ratios":[{"numerator":"search","denominator":"social","min":0.5,"max":2}]},"objective":{"type":"max_kpi"}`,
		`"budget":{"tv":100000,"digital":200000,"ooh":1},"constraints":{"max_change":0.3}`,
		`"constraints":{"total":400000},"objective":{"type":"weighted","weights":{"revenue":1,"awareness":0.1},"floors":{"awareness":2e6}}`,
		`"constraints":{"total":{"max":2e6}},"objective":{"type":"min_spend","target":{"revenue":1.2e6}}`,
		`"objective":{"type":"min_spend","target":{"awareness":1e6}}`,
		`"constraints":{"total":{"max":3e6}},"objective":{"type":"target_roi","roi":2}`,
		`"constraints":{"total":{"max":3e6}},"objective":{"type":"target_mroi","mroi":1.5}`,
		`"constraints":{"total":300000,"groups":[{"channels":["tv","radio"],"min":250000,"max":260000}]},"objective":{"kpi":"awareness"}`,
		`"constraints":{"total":300000,"channels":{"tv":{"min":1e5},"digital":{"min":1e5},"radio":{"min":1.5e5}}}`,
		`"constraints":{"total":1e15},"options":{"max_nodes":50}`,
		`"constraints":{"total":0}`,
		`"budget":{"tv":1e-300},"constraints":{"total":5e-324}`,
	} {
		f.Add([]byte(`{"model":` + mdl + `,` + rest + `}`))
	}
	for _, s := range []string{
		``, `null`, `{}`, `[]`, `"x"`, `{"model":{}}`, `{"model":null}`,
		`{"model":{"channels":{"a":{"curve":{"type":"linear","beta":1}}}},"budget":{"a":1}}`,
		`{"model":{"channels":{"a":{"curve":{"type":"hill","beta":1e15,"alpha":100,"kappa":1e-300}}}},"constraints":{"total":1e15}}`,
		`{"model":{"channels":{"a":{"curve":{"type":"logistic","beta":1,"k":1e15,"x0":-1e15}},"b":{"curve":{"type":"power","beta":1e15,"alpha":100}}}},"constraints":{"total":{"min":0,"max":1e15}}}`,
		`{"model":{"channels":{"":{"curve":{"type":"linear","beta":1}}}}}`,
		`{"model":{"channels":{"a":{"curve":{"type":"piecewise","points":[[1,2,3]]}}}},"budget":{"a":1}}`,
		`{"model":{"channels":{"a":{"curve":{"type":"linear","Beta":1}}}},"budget":{"a":1}}`,
		`{"budget":{"tv":1,"tv":2}}`,
		`{"constraints":{"total":{"mn":5}}}`,
		`{"constraints":{"groups":[{"channels":"tv"}]}}`,
		`{"budget":{"tv":1e999}}`,
		`{"budget":{"tv":1}} xyz`,
		`{"budget":{"tv":1`,
		"{\"model\":{\"channels\":{\"\xff\xfe\":{\"curve\":{\"type\":\"linear\",\"beta\":1}}}},\"budget\":{\"\xff\xfe\":1}}",
		`{"model":{"kpi":"awareness","channels":{"a":{"curve":{"type":"linear","beta":1}}},"kpis":{"awareness":{"channels":{}}}}}`,
	} {
		f.Add([]byte(s))
	}
}

// checkDecodeError: every decode error is a non-empty engine.FieldErrors.
func checkDecodeError(t *testing.T, err error) {
	t.Helper()
	fes, ok := err.(engine.FieldErrors)
	if !ok {
		var fe engine.FieldErrors
		t.Fatalf("error is %T (%v), want engine.FieldErrors (errors.As: %v)", err, err, errors.As(err, &fe))
	}
	if len(fes) == 0 || err.Error() == "" {
		t.Fatalf("empty FieldErrors")
	}
	for _, e := range fes {
		if e.Message == "" {
			t.Fatalf("field error without a message: %+v", e)
		}
	}
}

func FuzzDecodeModel(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			t.Skip("input over 64 KiB")
		}
		// Requests are seeds too: try their inline model as well as the whole input.
		inputs := [][]byte{data}
		var wrapper struct {
			Model json.RawMessage `json:"model"`
		}
		if json.Unmarshal(data, &wrapper) == nil && len(wrapper.Model) > 0 {
			inputs = append(inputs, wrapper.Model)
		}
		for _, in := range inputs {
			m, err := engine.DecodeModel(in)
			if err != nil {
				checkDecodeError(t, err)
				continue
			}
			if errs := engine.ValidateModel(&m); len(errs) > 0 {
				t.Fatalf("decoded model fails validation: %v", errs)
			}
			// A decoded model re-encodes, decodes again and keeps its hash.
			b, err := json.Marshal(&m)
			if err != nil {
				t.Fatalf("decoded model does not marshal: %v", err)
			}
			m2, err := engine.DecodeModel(b)
			if err != nil {
				t.Fatalf("re-encoded model rejected: %v\n%s", err, b)
			}
			if h1, h2 := engine.ModelHash(&m), engine.ModelHash(&m2); h1 != h2 {
				t.Fatalf("hash changes across a JSON round trip: %s vs %s\n%s", h1, h2, b)
			}
			// Evaluating a valid model at zero and at a modest plan gives finite numbers.
			alloc := map[string]float64{}
			for name := range m.Channels {
				alloc[name] = 1000
			}
			ev, err := engine.Evaluate(&m, []map[string]float64{{}, alloc})
			if err != nil {
				t.Fatalf("Evaluate on a valid model: %v", err)
			}
			if _, err := json.Marshal(ev); err != nil {
				t.Fatalf("evaluation does not marshal: %v (%+v)", err, ev)
			}
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			t.Skip("input over 64 KiB")
		}
		req, err := engine.DecodeRequest(data)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if req.Model != nil {
			if errs := engine.ValidateModel(req.Model); len(errs) > 0 {
				t.Fatalf("accepted an inline model that fails validation: %v", errs)
			}
		}
		// A decoded request re-encodes to JSON that decodes to the same request.
		b, err := json.Marshal(&req)
		if err != nil {
			t.Fatalf("decoded request does not marshal: %v", err)
		}
		req2, err := engine.DecodeRequest(b)
		if err != nil {
			t.Fatalf("re-encoded request rejected: %v\n%s", err, b)
		}
		b2, err := json.Marshal(&req2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatalf("JSON round trip changes the request:\n%s\n%s", b, b2)
		}
	})
}

func FuzzSolve(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			t.Skip("input over 64 KiB")
		}
		req, err := engine.DecodeRequest(data)
		if err != nil {
			return
		}
		if req.Model == nil {
			res := solveOK(t, nil, &req)
			mustStatus(t, res, engine.StatusInvalid)
			return
		}
		// Keep each input cheap: the branch-and-bound cap is a count, so a smaller one
		// changes nothing about what must hold (a capped search answers "feasible").
		if len(req.Model.Channels) > 24 || len(req.Constraints.Groups)+len(req.Constraints.Ratios) > 24 {
			t.Skip("too large for a fuzz iteration")
		}
		if req.Options == nil {
			req.Options = &engine.Options{}
		}
		if req.Options.MaxNodes <= 0 || req.Options.MaxNodes > 500 {
			req.Options.MaxNodes = 500
		}
		res := solveWithin(t, nil, &req, fuzzSolveDeadline, string(data))
		for _, msg := range res.Messages {
			if strings.Contains(msg, "internal error") {
				t.Fatalf("engine panicked (recovered): %s", msg)
			}
		}
		out, err := json.Marshal(res)
		if err != nil {
			t.Fatalf("result does not marshal (NaN or Inf?): %v\nresult: %+v\ncertificate: %+v", err, res, res.Certificate)
		}
		checkResultShape(t, res)
		switch res.Status {
		case engine.StatusOptimal, engine.StatusFeasible:
			if res.Allocation == nil {
				t.Fatalf("%s result without an allocation: %s", res.Status, out)
			}
			for _, v := range planViolations(req.Model, &req, &res, 1e-6) {
				t.Errorf("%s result breaks a constraint: %s", res.Status, v)
			}
			checkConcaveOptimal(t, &req, &res, string(data))
			for k, v := range res.Expected {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Errorf("expected[%s] = %v", k, v)
				}
			}
			if res.Certificate == nil {
				t.Errorf("%s result without a certificate", res.Status)
			}
		case engine.StatusInfeasible:
			checkInfeasibleClaim(t, &req, string(data))
		case engine.StatusInvalid:
			if len(res.Errors) == 0 && len(res.Messages) == 0 {
				t.Errorf("invalid without errors")
			}
		}
	})
}

// ---------------------------------------------------------------------------------------
// FuzzSolveGenerated: byte-mutating JSON rarely yields a request that decodes, so this
// target reads the fuzz bytes as a stream of choices and builds a well-formed model and
// request from them (every curve type, adstock, secondary KPIs, every constraint kind and
// every objective; package enginegen), then checks the same properties as FuzzSolve plus
// determinism.

func FuzzSolveGenerated(f *testing.F) {
	for _, s := range []string{
		"", "\x00", "\x07\x03\x01\x02\x03\x04\x05\x06\x07\x08\x09", "quickstart", "max_kpi with S-curves",
		"\x02\x01\x10\x20\x30\x40\x50\x60\x02\x10\x20\x30\x40\x50\x60\x70\x80",
		strings.Repeat("\xff", 64), strings.Repeat("\x80\x01", 64), strings.Repeat("atlas", 30),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			t.Skip("input over 64 KiB")
		}
		req := enginegen.Request(data)
		reqJSON, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("generated request does not marshal: %v", err)
		}
		res := solveWithin(t, nil, req, fuzzSolveDeadline, string(reqJSON))
		for _, msg := range res.Messages {
			if strings.Contains(msg, "internal error") {
				t.Fatalf("engine panicked (recovered): %s\nrequest: %s", msg, reqJSON)
			}
		}
		out, err := json.Marshal(res)
		if err != nil {
			t.Fatalf("result does not marshal (NaN or Inf?): %v\nrequest: %s\nresult: %+v\ncertificate: %+v", err, reqJSON, res, res.Certificate)
		}
		checkResultShape(t, res)
		switch res.Status {
		case engine.StatusOptimal, engine.StatusFeasible:
			for _, v := range planViolations(req.Model, req, &res, 1e-6) {
				t.Errorf("%s result breaks a constraint: %s\nrequest: %s", res.Status, v, reqJSON)
			}
			checkConcaveOptimal(t, req, &res, string(reqJSON))
			if res.Certificate == nil {
				t.Errorf("%s result without a certificate", res.Status)
			}
			// never worse than a current plan that honours every constraint
			obj := req.Objective.Type
			if obj == "" || obj == engine.ObjMaxKPI {
				kpi := req.Objective.KPI
				if kpi == "" {
					kpi = "revenue"
				}
				cur := engine.Result{Allocation: req.Budget}
				if len(planViolations(req.Model, req, &cur, 0)) == 0 && res.Current != nil {
					if a, b := res.Expected[kpi], res.Current.Expected[kpi]; a < b-1e-9*math.Abs(b) {
						t.Errorf("plan's %s %.17g below the feasible current plan's %.17g\nrequest: %s", kpi, a, b, reqJSON)
					}
				}
			}
		case engine.StatusInfeasible:
			checkInfeasibleClaim(t, req, string(reqJSON))
		case engine.StatusInvalid:
			// the generator only builds well-formed requests, except where constraints
			// themselves are contradictory (min > max and the like)
			if len(res.Errors) == 0 {
				t.Errorf("invalid without a field error: %q\nrequest: %s", res.Messages, reqJSON)
			}
		}
		// determinism: again, and from the request's JSON
		req2, err := engine.DecodeRequest(reqJSON)
		if err != nil {
			t.Fatalf("generated request rejected by DecodeRequest: %v\n%s", err, reqJSON)
		}
		res2 := solveWithin(t, nil, &req2, fuzzSolveDeadline, string(reqJSON))
		res2.Engine.ElapsedMicros, res.Engine.ElapsedMicros = 0, 0
		out1, _ := json.Marshal(res)
		out2, _ := json.Marshal(res2)
		if !bytes.Equal(out1, out2) {
			t.Fatalf("same request, different results:\n%s\n%s\nrequest: %s", out1, out2, reqJSON)
		}
		_ = out
	})
}

// checkInfeasibleClaim: "infeasible" means no plan honours the constraints, so the
// current budget must break one of them (target_roi aside, whose condition is not a
// constraint on the plan alone).
func checkInfeasibleClaim(t *testing.T, req *engine.Request, input string) {
	t.Helper()
	if req.Objective.Type == engine.ObjTargetROI || req.Model == nil {
		return
	}
	cur := engine.Result{Allocation: map[string]float64{}}
	for name := range req.Model.Channels {
		cur.Allocation[name] = req.Budget[name]
	}
	if v := planViolations(req.Model, req, &cur, 0); len(v) == 0 {
		t.Errorf("status infeasible, but the current budget honours every constraint\nrequest: %s", input)
	}
}

// concaveCurve reports whether a curve is concave on spend ≥ 0 (contract §1 shapes).
func concaveCurve(c engine.Curve) bool {
	switch c.Type {
	case "linear", "saturation", "exponential", "log":
		return true
	case "power", "hill":
		return c.Alpha != nil && *c.Alpha <= 1
	case "logistic":
		return c.X0 != nil && *c.X0 <= 0
	case "piecewise":
		px, py, slope := 0.0, 0.0, math.Inf(1)
		for _, p := range c.Points {
			if len(p) != 2 {
				return false
			}
			s := (p[1] - py) / (p[0] - px)
			if s > slope {
				return false
			}
			px, py, slope = p[0], p[1], s
		}
		return true
	}
	return false
}

// concaveModel: every curve of every KPI is concave, so the relaxation is exact and the
// engine has no reason to stop short of its gap tolerance.
func concaveModel(m *engine.Model) bool {
	for _, ch := range m.Channels {
		if !concaveCurve(ch.Curve) {
			return false
		}
	}
	for _, k := range m.KPIs {
		for _, ch := range k.Channels {
			if !concaveCurve(ch.Curve) {
				return false
			}
		}
	}
	return true
}

// checkConcaveOptimal: a concave problem answered "feasible" means the convex solver
// failed (the search-node cap cannot be the reason: there is nothing to branch on).
func checkConcaveOptimal(t *testing.T, req *engine.Request, res *engine.Result, input string) {
	t.Helper()
	if res.Status == engine.StatusFeasible && req.Model != nil && concaveModel(req.Model) {
		gap := math.NaN()
		if res.Certificate != nil {
			gap = res.Certificate.Gap
		}
		c := req.Constraints
		coupled := len(c.Groups) > 0 || len(c.Ratios) > 0 || c.MaxShare != nil || len(req.Objective.Floors) > 0 ||
			req.Objective.Type == engine.ObjMinSpend
		if coupled {
			// Known limitation (README): with coupling constraints the interior-point
			// method can stall on extreme curves (x^α, α ≪ 1, near zero); the engine then
			// answers "feasible" with its honest gap, which the contract allows.
			t.Logf("coupled concave problem answered feasible (gap %.3g)", gap)
			return
		}
		t.Errorf("concave problem answered feasible (gap %.3g, %q), want optimal\nrequest: %s", gap, res.Messages, input)
	}
}

// fuzzSolveDeadline bounds one Solve in the fuzz targets. Real requests of this size take
// milliseconds; a Solve that does not return is reported as a failure (naming the
// request) instead of hanging the fuzzer or the test run.
const fuzzSolveDeadline = 10 * time.Second

// solveWithin runs Solve with a deadline. On timeout the test fails; the stuck goroutine
// is abandoned (it keeps running until the test binary exits).
func solveWithin(t testing.TB, m *engine.Model, req *engine.Request, d time.Duration, input string) engine.Result {
	t.Helper()
	done := make(chan engine.Result, 1)
	go func() { done <- engine.Solve(m, req) }()
	select {
	case res := <-done:
		return res
	case <-time.After(d):
		t.Fatalf("Solve did not return within %v (hang)\nrequest: %s", d, input)
		return engine.Result{}
	}
}
