package main

import (
	"bytes"
	"compress/gzip"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sweepOf parses a hand-written sweep file body under a header naming engine.
func sweepOf(t *testing.T, engine, body string) *Sweep {
	t.Helper()
	s, err := parseSweep(strings.NewReader(formatHeader + " engine=" + engine + " seed=7\n" + columns + "\n" + body))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ids[T any](items []T, id func(T) string) []string {
	var out []string
	for _, it := range items {
		out = append(out, id(it))
	}
	return out
}

func changeIDs(cs []Change) []string { return ids(cs, func(c Change) string { return c.New.ID }) }

func TestCompareTransitions(t *testing.T) {
	old := sweepOf(t, "e/1", `
lost true max_kpi optimal 100 100.000001 3
gained false - feasible 100 100.1 200
dropped true weighted feasible 100 100.1 200
found true target_roi infeasible - - 0
same false - optimal 100 100 0
gone false - invalid - - 0
`)
	cur := sweepOf(t, "e/2", `
lost true max_kpi feasible 100 100.2 200
gained false - optimal 100.05 100.05 12
dropped true weighted infeasible - - 200
found true target_roi optimal 50 50 1
same false - optimal 100 100 0
extra false - optimal 1 1 0
`)
	r := Compare(old, cur)
	if r.Common != 5 || r.OnlyOld != 1 || r.OnlyNew != 1 {
		t.Errorf("common %d, only old %d, only new %d; want 5, 1, 1", r.Common, r.OnlyOld, r.OnlyNew)
	}
	for k, want := range map[[2]string]int{
		{"optimal", "feasible"}: 1, {"feasible", "optimal"}: 1, {"feasible", "infeasible"}: 1,
		{"infeasible", "optimal"}: 1, {"optimal", "optimal"}: 1,
	} {
		if got := r.Transitions[k]; got != want {
			t.Errorf("transitions %v = %d, want %d", k, got, want)
		}
	}
	if len(r.Transitions) != 5 {
		t.Errorf("transitions %v, want 5 kinds", r.Transitions)
	}
	for _, c := range []struct {
		name string
		got  []string
		want string
	}{
		{"lost", changeIDs(r.Lost), "lost"},
		{"dropped", changeIDs(r.Dropped), "dropped"},
		{"other", changeIDs(r.Other), "found"},
		{"better", changeIDs(r.Better), "gained"},
		{"worse", changeIDs(r.Worse), ""},
	} {
		if strings.Join(c.got, ",") != c.want {
			t.Errorf("%s: %v, want %q", c.name, c.got, c.want)
		}
	}
	if r.Differ != 4 || r.NodesOld != 403 || r.NodesNew != 413 {
		t.Errorf("differ %d, nodes %d → %d; want 4, 403 → 413", r.Differ, r.NodesOld, r.NodesNew)
	}
	if !r.Failed() {
		t.Error("a lost certificate and a lost plan do not fail the comparison")
	}
	var out bytes.Buffer
	r.Print(&out, "old.txt")
	for _, want := range []string{"FAIL optimal results no longer optimal: 1", "FAIL feasible results without a plan now: 1",
		"lost max_kpi coupled: optimal → feasible", "\nFAILED\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}

	// Gaining certificates alone passes.
	r = Compare(sweepOf(t, "e/1", "a false - feasible 100 101 200\n"), sweepOf(t, "e/2", "a false - optimal 100 100 4\n"))
	if r.Failed() || len(r.Lost)+len(r.Dropped)+len(r.Other) != 0 {
		t.Errorf("feasible → optimal reported: %+v", r)
	}
	// Nothing in common fails: a run that compares nothing proves nothing.
	if r := Compare(sweepOf(t, "e/1", "a false - optimal 1 1 0\n"), sweepOf(t, "e/2", "b false - optimal 1 1 0\n")); !r.Failed() {
		t.Error("disjoint files pass")
	}
}

func TestCompareBounds(t *testing.T) {
	old := sweepOf(t, "e/1", `
newbelow true max_kpi optimal 100 100 5
oldbelow true max_kpi optimal 100 100 5
note true - optimal 100 100 5
rounding true - optimal 100 100 5
spendabove true min_spend optimal 100 100 5
spendok true min_spend feasible 100 90 5
negative true target_mroi optimal -50 -50 5
`)
	cur := sweepOf(t, "e/2", `
newbelow true max_kpi optimal 99.9999 99.9999 5
oldbelow true max_kpi optimal 100.00002 100.00002 5
note true - optimal 99.999999 99.999999 5
rounding true - optimal 99.99999999999 99.99999999999 5
spendabove true min_spend optimal 100.001 100.001 5
spendok true min_spend feasible 95 92 5
negative true target_mroi optimal -50.001 -50.001 5
`)
	r := Compare(old, cur)
	type cross struct {
		id, run string
		rel     float64
	}
	want := []cross{{"newbelow", "new", 1e-6}, {"oldbelow", "old", 2e-7}, {"spendabove", "new", 1e-5}, {"negative", "new", 2e-5}}
	if len(r.Crossings) != len(want) {
		t.Fatalf("crossings %+v, want %v", r.Crossings, want)
	}
	for i, w := range want {
		x := r.Crossings[i]
		if x.ID != w.id || x.BoundRun != w.run || math.Abs(x.Rel-w.rel) > 1e-3*w.rel {
			t.Errorf("crossing %d: %s %s bound by %.3g, want %s %s by %.3g", i, x.ID, x.BoundRun, x.Rel, w.id, w.run, w.rel)
		}
	}
	if len(r.Notes) != 1 || r.Notes[0].ID != "note" || r.Notes[0].BoundRun != "new" {
		t.Errorf("notes %+v, want the 1e-8 crossing of note", r.Notes)
	}
	// min_spend is better when smaller: 100 → 95 is better, 100 → 100.001 worse.
	if got := strings.Join(changeIDs(r.Better), ","); got != "oldbelow,spendok" {
		t.Errorf("better %s, want oldbelow,spendok", got)
	}
	if got := strings.Join(changeIDs(r.Worse), ","); got != "newbelow,spendabove,negative" {
		t.Errorf("worse %s, want newbelow,spendabove,negative", got)
	}
	if !r.Failed() {
		t.Error("crossings beyond 1e-7 do not fail the comparison")
	}
	var out bytes.Buffer
	r.Print(&out, "old.txt")
	for _, want := range []string{"FAIL certified bounds beyond the other run's plan by more than 1e-07 relative: 4",
		"newbelow max_kpi coupled: new bound 99.999899999999997 below the old plan 100 by 1e-06",
		"spendabove min_spend coupled: new bound 100.001 above the old plan 100 by 1e-05",
		"by 1e-09..1e-07 relative (plans honour constraints to 1e-9, which this file cannot check): 1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}

	// A note alone passes.
	r = Compare(sweepOf(t, "e/1", "a true - optimal 100 100 5\n"), sweepOf(t, "e/2", "a true - optimal 99.999999 99.999999 5\n"))
	if r.Failed() || len(r.Notes) != 1 {
		t.Errorf("a 1e-8 crossing: failed %v, notes %d; want a note and a pass", r.Failed(), len(r.Notes))
	}
}

func TestCompareSameEngine(t *testing.T) {
	a := "x true - optimal 100 100 5\n"
	b := "x true - optimal 100 100 6\n"
	if r := Compare(sweepOf(t, "e/1", a), sweepOf(t, "e/1", a)); r.Failed() || r.Differ != 0 {
		t.Errorf("identical runs: failed %v, differ %d", r.Failed(), r.Differ)
	}
	if r := Compare(sweepOf(t, "e/1", a), sweepOf(t, "e/1", b)); !r.Failed() {
		t.Error("a different node count under the same engine version passes")
	}
	if r := Compare(sweepOf(t, "e/1", a), sweepOf(t, "e/2", b)); r.Failed() {
		t.Error("a different node count under a new engine version fails")
	}
}

func TestSweepFile(t *testing.T) {
	s := &Sweep{Engine: "atlas-engine/9.9.9", Params: "seed=7 draws=3 cases=0", Records: []Record{
		{ID: "g0", Coupled: true, Objective: "target_roi", Status: "infeasible", Value: math.NaN(), Bound: math.NaN()},
		{ID: "g1", Objective: "-", Status: "optimal", Value: 635276.98856424738, Bound: 0.1 + 0.2, Nodes: 7},
		{ID: "g2", Objective: "min_spend", Status: "feasible", Value: 1e-300, Bound: -0, Nodes: 200},
	}}
	var buf bytes.Buffer
	if err := s.write(&buf); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	plain, gz := filepath.Join(dir, "s.txt"), filepath.Join(dir, "s.txt.gz")
	if err := os.WriteFile(plain, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var zbuf bytes.Buffer
	zw := gzip.NewWriter(&zbuf)
	zw.Write(buf.Bytes())
	zw.Close()
	if err := os.WriteFile(gz, zbuf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{plain, gz} {
		got, err := readSweep(p)
		if err != nil {
			t.Fatal(err)
		}
		var again bytes.Buffer
		got.write(&again)
		if again.String() != buf.String() || got.Engine != s.Engine || got.Params != s.Params {
			t.Errorf("%s does not read back:\n%s\nvs\n%s", p, again.String(), buf.String())
		}
	}
	for _, bad := range []string{
		"",
		"g1 true - optimal 1 1 0\n",
		formatHeader + " seed=7\n",
		formatHeader + " engine=e\ng1 true - optimal 1 1\n",
		formatHeader + " engine=e\ng1 maybe - optimal 1 1 0\n",
		formatHeader + " engine=e\ng1 true - optimal one 1 0\n",
		formatHeader + " engine=e\ng1 true - optimal 1 1 0\ng1 true - optimal 1 1 0\n",
	} {
		if _, err := parseSweep(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
