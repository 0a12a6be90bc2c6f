package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/atlas-mmm/atlas/engine"
)

// Tolerances of the comparison, relative to the larger magnitude of the two numbers.
const (
	// crossFail: a certified bound below the other run's plan by more than this is a
	// failure: one of the two runs certified something false. The engine accepts plans
	// that honour the constraints to a 1e-9 tolerance, so a plan can beat an exact bound
	// by a little; 1e-9..5e-8 has been seen on honest results, and whether the plan was
	// within tolerance cannot be told from the file, so those are notes, not failures.
	crossFail = 1e-7
	// crossNote: crossings above this (and at most crossFail) are listed as notes; below
	// it they are rounding.
	crossNote = 1e-9
	// objTol: objectives further apart than this count as worse or better.
	objTol = 1e-7
)

// Change is one request whose outcome differs between the runs.
type Change struct {
	Old, New Record
	Rel      float64 // objective change, relative; positive is better (Worse and Better only)
}

// Crossing is a certified bound of one run below (for min_spend: above) the other run's
// plan for the same request. For target_roi and target_mroi a run's bound is for the
// allocation of the spend it settled on, so a crossing there may also mean the runs
// settled on different spends; that is a change to explain all the same.
type Crossing struct {
	ID, Objective string
	Coupled       bool
	BoundRun      string // "new" or "old": whose bound is crossed
	Bound, Plan   float64
	Rel           float64 // by how much, relative
}

// Report is the comparison of a new run with an old one, on the requests both have.
type Report struct {
	OldEngine, NewEngine string
	OldParams, NewParams string
	Common               int
	OnlyOld, OnlyNew     int
	Transitions          map[[2]string]int // (old status, new status) → count
	Differ               int               // records that differ in any field

	Lost      []Change   // optimal → anything else: fails
	Dropped   []Change   // feasible → no plan: fails
	Other     []Change   // other status changes (feasible → optimal excepted): listed
	Crossings []Crossing // beyond crossFail: fails
	Notes     []Crossing // crossNote < rel ≤ crossFail: listed
	Worse     []Change   // both have a plan, the new one worse by more than objTol
	Better    []Change

	NodesOld, NodesNew int // branch-and-bound nodes over the common requests
}

// relDiff is (a − b) relative to the larger of |a| and |b|.
func relDiff(a, b float64) float64 {
	d := a - b
	if d == 0 {
		return 0
	}
	return d / math.Max(math.Abs(a), math.Abs(b))
}

// crossing checks one run's bound against the other's plan. For maximisation the bound
// must not be below the plan; for min_spend (a lower bound on spend) not above it.
func crossing(boundRun string, withBound, withPlan *Record) (Crossing, bool) {
	rel := relDiff(withPlan.Value, withBound.Bound)
	if withBound.minimises() {
		rel = -rel
	}
	if rel <= crossNote {
		return Crossing{}, false
	}
	return Crossing{ID: withBound.ID, Objective: withBound.Objective, Coupled: withBound.Coupled,
		BoundRun: boundRun, Bound: withBound.Bound, Plan: withPlan.Value, Rel: rel}, true
}

// Compare compares two sweeps request by request (matched by id).
func Compare(old, cur *Sweep) *Report {
	r := &Report{OldEngine: old.Engine, NewEngine: cur.Engine, OldParams: old.Params, NewParams: cur.Params,
		Transitions: map[[2]string]int{}}
	byID := make(map[string]*Record, len(old.Records))
	for i := range old.Records {
		byID[old.Records[i].ID] = &old.Records[i]
	}
	for i := range cur.Records {
		n := &cur.Records[i]
		o, ok := byID[n.ID]
		if !ok {
			r.OnlyNew++
			continue
		}
		r.Common++
		r.NodesOld += o.Nodes
		r.NodesNew += n.Nodes
		r.Transitions[[2]string{o.Status, n.Status}]++
		if o.String() != n.String() {
			r.Differ++
		}
		ch := Change{Old: *o, New: *n}
		switch {
		case o.Status == n.Status:
		case o.Status == engine.StatusOptimal:
			r.Lost = append(r.Lost, ch)
		case o.Status == engine.StatusFeasible && n.Status != engine.StatusOptimal:
			r.Dropped = append(r.Dropped, ch)
		case o.Status == engine.StatusFeasible && n.Status == engine.StatusOptimal:
			// a certificate gained: the transitions count them
		default:
			r.Other = append(r.Other, ch)
		}
		if !o.hasPlan() || !n.hasPlan() || o.Objective != n.Objective {
			continue
		}
		for _, c := range []struct {
			run         string
			bound, plan *Record
		}{{"new", n, o}, {"old", o, n}} {
			if x, ok := crossing(c.run, c.bound, c.plan); ok {
				if x.Rel > crossFail {
					r.Crossings = append(r.Crossings, x)
				} else {
					r.Notes = append(r.Notes, x)
				}
			}
		}
		ch.Rel = relDiff(n.Value, o.Value)
		if n.minimises() {
			ch.Rel = -ch.Rel
		}
		switch {
		case ch.Rel < -objTol:
			r.Worse = append(r.Worse, ch)
		case ch.Rel > objTol:
			r.Better = append(r.Better, ch)
		}
	}
	r.OnlyOld = len(old.Records) - r.Common
	return r
}

// SameEngineDiffers: both files name the same engine version and yet results differ.
// The engine's version must change whenever a result bit may (engine.Version), or
// audits cannot tell which engine produced a result.
func (r *Report) SameEngineDiffers() bool { return r.OldEngine == r.NewEngine && r.Differ > 0 }

// Failed reports whether the new run must not replace the old one as it stands.
func (r *Report) Failed() bool {
	return r.Common == 0 || len(r.Lost) > 0 || len(r.Dropped) > 0 || len(r.Crossings) > 0 || r.SameEngineDiffers()
}

// maxListed bounds each list in the printed report.
const maxListed = 40

// statusOrder sorts transitions from the best outcome to the worst.
var statusOrder = []string{engine.StatusOptimal, engine.StatusFeasible, engine.StatusInfeasible, engine.StatusInvalid}

func statusRank(s string) int {
	if i := slices.Index(statusOrder, s); i >= 0 {
		return i
	}
	return len(statusOrder)
}

func coupledWord(c bool) string {
	if c {
		return " coupled"
	}
	return ""
}

func (c Change) String() string {
	o, n := c.Old, c.New
	s := fmt.Sprintf("%s %s%s: %s → %s", n.ID, n.Objective, coupledWord(n.Coupled), o.Status, n.Status)
	if o.hasPlan() || n.hasPlan() {
		s += fmt.Sprintf("; objective %s → %s", formatFloat(o.Value), formatFloat(n.Value))
		if c.Rel != 0 {
			s += fmt.Sprintf(" (%+.2g)", c.Rel)
		}
		s += fmt.Sprintf(", bound %s → %s", formatFloat(o.Bound), formatFloat(n.Bound))
	}
	return s + fmt.Sprintf(", nodes %d → %d", o.Nodes, n.Nodes)
}

func (x Crossing) String() string {
	other, dir := "old", "below"
	if x.BoundRun == "old" {
		other = "new"
	}
	if x.Objective == engine.ObjMinSpend {
		dir = "above"
	}
	return fmt.Sprintf("%s %s%s: %s bound %s %s the %s plan %s by %.2g", x.ID, x.Objective, coupledWord(x.Coupled),
		x.BoundRun, formatFloat(x.Bound), dir, other, formatFloat(x.Plan), x.Rel)
}

func printList[T fmt.Stringer](w io.Writer, items []T) {
	for i, it := range items {
		if i == maxListed {
			fmt.Fprintf(w, "    ... and %d more\n", len(items)-maxListed)
			break
		}
		fmt.Fprintf(w, "    %s\n", it)
	}
}

// Print writes the report for a person: what fails first, then what to look at.
func (r *Report) Print(w io.Writer, oldName string) {
	fmt.Fprintf(w, "sweep: %s (this run) against %s (%s)\n", r.NewEngine, oldName, r.OldEngine)
	if r.OldParams != r.NewParams {
		fmt.Fprintf(w, "  drawn differently: old %q, new %q\n", r.OldParams, r.NewParams)
	}
	fmt.Fprintf(w, "  %d requests in both", r.Common)
	if r.OnlyOld > 0 || r.OnlyNew > 0 {
		fmt.Fprintf(w, " (%d only in the old file, %d only in this run: compared on the common ones)", r.OnlyOld, r.OnlyNew)
	}
	fmt.Fprintf(w, "; %d differ in some field\n", r.Differ)

	keys := make([][2]string, 0, len(r.Transitions))
	for k := range r.Transitions {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int {
		if c := statusRank(a[0]) - statusRank(b[0]); c != 0 {
			return c
		}
		if c := statusRank(a[1]) - statusRank(b[1]); c != 0 {
			return c
		}
		return strings.Compare(a[0]+a[1], b[0]+b[1])
	})
	fmt.Fprintln(w, "status (old → new):")
	for _, k := range keys {
		fmt.Fprintf(w, "  %-10s → %-10s %6d\n", k[0], k[1], r.Transitions[k])
	}

	fmt.Fprintln(w, "checks (FAIL if any):")
	check := func(n int, what string) {
		mark := "ok  "
		if n > 0 {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s %s: %d\n", mark, what, n)
	}
	check(len(r.Lost), "optimal results no longer optimal")
	printList(w, r.Lost)
	check(len(r.Dropped), "feasible results without a plan now")
	printList(w, r.Dropped)
	check(len(r.Crossings), fmt.Sprintf("certified bounds beyond the other run's plan by more than %.0g relative", crossFail))
	printList(w, r.Crossings)
	if r.OldEngine == r.NewEngine {
		check(r.Differ, "results that differ although both runs are "+r.NewEngine+" (a change that may alter results must bump engine.Version)")
	}
	fmt.Fprintf(w, "notes:\n  bounds beyond the other run's plan by %.0g..%.0g relative (plans honour constraints to 1e-9, which this file cannot check): %d\n",
		crossNote, crossFail, len(r.Notes))
	printList(w, r.Notes)
	fmt.Fprintf(w, "  other status changes (feasible → optimal aside): %d\n", len(r.Other))
	printList(w, r.Other)
	fmt.Fprintf(w, "  objectives, both with a plan: %d worse by more than %.0g relative, %d better\n", len(r.Worse), objTol, len(r.Better))
	slices.SortStableFunc(r.Worse, func(a, b Change) int { return cmpFloat(a.Rel, b.Rel) })
	printList(w, r.Worse)
	ratio := math.NaN()
	if r.NodesOld > 0 {
		ratio = float64(r.NodesNew) / float64(r.NodesOld)
	}
	fmt.Fprintf(w, "  branch-and-bound nodes: old %d, new %d (×%.3f)\n", r.NodesOld, r.NodesNew, ratio)
	switch {
	case r.Common == 0:
		fmt.Fprintln(w, "FAILED: no request in common, nothing compared")
	case r.Failed():
		fmt.Fprintln(w, "FAILED")
	default:
		fmt.Fprintln(w, "OK")
	}
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
