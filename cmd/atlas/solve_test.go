package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/atlas-mmm/atlas/engine"
)

func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := dispatch(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestSolveQuickstartFile(t *testing.T) {
	code, out, errs := run(t, "", "solve", "../../examples/quickstart.json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res engine.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"tv": 350000, "digital": 600000, "radio": 50000}
	for ch, v := range want {
		if res.Allocation[ch] != v {
			t.Errorf("%s = %v, want %v", ch, res.Allocation[ch], v)
		}
	}
	if res.Status != engine.StatusOptimal || res.Expected["revenue"] != 1785000 {
		t.Errorf("status %s revenue %v", res.Status, res.Expected["revenue"])
	}
	if !strings.HasPrefix(res.ModelHash, "sha256:") {
		t.Errorf("model hash %q", res.ModelHash)
	}
}

func TestSolveNDJSONWithModelAndBadLines(t *testing.T) {
	in := `{"request_id": "a", "constraints": {"total": 300000}}
{"request_id": "b", "constraints": {"total": "lots"}}
{not json
{"request_id": "c", "budget": {"tv": 1}, "constraints": {"total": 300000, "channels": {"tv": {"min": 200000}, "digital": {"min": 150000}, "search": {"min": 100000}}}}

{"request_id": "d", "budget": {"nope": 1}, "constraints": {"total": 1000}}
`
	code, out, errs := run(t, in, "solve", "--model", "../../examples/acme-model.json", "-")
	if code != 1 {
		t.Fatalf("exit %d, want 1 for malformed lines", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d result lines, want one per request (5):\n%s", len(lines), out)
	}
	statuses := []string{}
	for _, l := range lines {
		var r engine.Result
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		statuses = append(statuses, r.Status)
	}
	want := []string{"optimal", "invalid", "invalid", "infeasible", "invalid"}
	for i := range want {
		if statuses[i] != want[i] {
			t.Errorf("line %d: status %s, want %s", i+1, statuses[i], want[i])
		}
	}
	for _, frag := range []string{"stdin:2: constraints.total", "stdin:3: invalid JSON", "stdin:6: budget.nope"} {
		if !strings.Contains(errs, frag) {
			t.Errorf("stderr lacks %q:\n%s", frag, errs)
		}
	}
	if !strings.Contains(lines[3], "sum of channel minimums 450000 exceeds total 300000") {
		t.Errorf("infeasible result lacks the conflict: %s", lines[3])
	}
}

func TestSolvePrettyPrintedDocument(t *testing.T) {
	in := "{\n  \"model\": {\"channels\": {\"a\": {\"curve\": {\"type\": \"linear\", \"beta\": 2}}}},\n  \"constraints\": {\"total\": 10}\n}\n"
	code, out, errs := run(t, in, "solve")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"status":"optimal"`) {
		t.Fatalf("exit %d out %q err %q", code, out, errs)
	}
}

func TestSolveNeedsAModel(t *testing.T) {
	code, _, errs := run(t, `{"constraints": {"total": 10}}`, "solve")
	if code != 1 || !strings.Contains(errs, "model") {
		t.Fatalf("exit %d: %s", code, errs)
	}
}

func TestUnknownCommand(t *testing.T) {
	if code, _, _ := run(t, "", "frobnicate"); code != 2 {
		t.Fatalf("exit %d", code)
	}
}
