// Package storetest is the conformance suite every store.Store backend runs, so that the
// embedded and the ClickHouse read models behave alike:
//
//	func TestConformance(t *testing.T) { storetest.Run(t, openFresh) }
//
// open must return a store on a fresh, empty database (not yet migrated) and arrange for
// its cleanup with t.Cleanup. A store that also implements Faults gets the crash tests.
package storetest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atlas-mmm/atlas/projections/store"
)

// Faults is implemented by a backend's test wrapper to inject failures into Apply.
type Faults interface {
	// FailNextApplyBeforeCheckpoint makes the next Apply fail with err after writing the
	// rows and before writing the checkpoint.
	FailNextApplyBeforeCheckpoint(err error)
	// AtomicCheckpoint reports whether rows and checkpoint commit together (then a failed
	// Apply leaves no rows); otherwise the rows of a failed Apply may be visible, but the
	// checkpoint must not have moved.
	AtomicCheckpoint() bool
}

// Run runs the suite, each subtest on a new store from open.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"MigrateTwice", testMigrateTwice},
		{"Empty", testEmpty},
		{"RoundTrip", testRoundTrip},
		{"ApplyTwice", testApplyTwice},
		{"LaterVersionWins", testLaterVersionWins},
		{"LaterInSameBatchWins", testLaterInSameBatchWins},
		{"Checkpoint", testCheckpoint},
		{"InvalidBatch", testInvalidBatch},
		{"FailBeforeCheckpoint", testFailBeforeCheckpoint},
		{"ResultsFilters", testResultsFilters},
		{"Pagination", testPagination},
		{"BadCursor", testBadCursor},
		{"Models", testModels},
		{"AuditOrder", testAuditOrder},
		{"DeadLetters", testDeadLetters},
		{"ExtremeTimes", testExtremeTimes},
		{"ConcurrentReaders", testConcurrentReaders},
		{"Generation", testGeneration},
		{"HeldBatches", testHeldBatches},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			if tc.name != "MigrateTwice" {
				if err := s.Migrate(ctx(t)); err != nil {
					t.Fatalf("Migrate: %v", err)
				}
			}
			tc.fn(t, s)
		})
	}
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func f(v float64) *float64 { return &v }

// base is a time with nanoseconds, far from second boundaries being special.
var base = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

func result(id, model, status string, at time.Time) store.Result {
	return store.Result{
		RequestID: id, ModelID: model, ModelVersion: 3, ModelHash: "sha256:" + strings.Repeat("ab", 32),
		Status: status, Objective: "max_kpi", TotalSpend: 300000,
		Expected:   map[string]float64{"revenue": 1234567.8, "awareness": 0.1 + 0.2},
		UpperBound: f(1234567.9), Gap: 8.1e-8,
		RequestTime: at.Add(-41 * time.Microsecond), ResultTime: at,
		EventID: "res-" + id, Partition: 2, Offset: 7,
		Data: json.RawMessage(`{"request_id":` + mustJSON(id) + `,"status":"` + status + `","total_spend":300000}`),
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// fullBatch has every row type, with awkward values.
func fullBatch() store.Batch {
	weird := `r'1\"; DROP TABLE results; -- ? ünï`
	r1 := result("req-1", "acme", "optimal", base)
	r2 := result(weird, "acme", "infeasible", base.Add(time.Second))
	r2.UpperBound = nil
	r2.LowerBound = f(-1e-300)
	r2.Expected = nil
	r2.Messages = []string{"group digital: min_share 0.6 conflicts with max_share 0.5", "ratios[0]: 'x'"}
	r2.Gap = math.MaxFloat64
	r3 := store.Result{RequestID: "req-3", Status: "invalid", Rejected: true,
		Errors:     []store.FieldError{{Field: "constraints.total", Message: "must be positive"}, {Message: "no budget"}},
		ResultTime: base.Add(2 * time.Second), EventID: "res-3", Offset: 9,
		Data: json.RawMessage(`{"request_id":"req-3","errors":[{"field":"constraints.total","error":"must be positive"},{"error":"no budget"}]}`)}
	return store.Batch{
		Results: []store.Result{r1, r2, r3},
		Allocations: []store.Allocation{
			{RequestID: "req-1", Channel: "tv", Spend: 123000, Response: 456000, ROI: f(3.7), MROI: f(1.9), AtBound: "max"},
			{RequestID: "req-1", Channel: "digital", Spend: 177000, Response: 1e-9, ROI: f(0), MROI: nil},
			{RequestID: "req-1", Channel: "radio ☂", Spend: 0, Response: 0, ROI: nil, MROI: f(1.2), AtBound: "min"},
			{RequestID: weird, Channel: "tv", Spend: 5e-324, Response: 1.7976931348623157e308},
		},
		Models: []store.Model{
			{ModelID: "acme", Version: 1, Hash: "sha256:01", Published: base.Add(-time.Hour), EventID: "m1", Partition: 0, Offset: 0, Data: json.RawMessage(`{"model_id":"acme","channels":{}}`)},
			{ModelID: "acme", Version: 2, Hash: "sha256:02", Published: base.Add(-time.Minute), EventID: "m2", Partition: 0, Offset: 5, Data: json.RawMessage(`{"model_id":"acme","baseline":1}`)},
			{ModelID: "zeta", Version: 1, Hash: "sha256:z1", Retired: true, EventID: "z1", Partition: 1, Offset: 3},
		},
		Audit: []store.AuditEvent{
			{EventID: "e-req", Type: "atlas.optimization.requested.v1", Topic: "atlas.requests", Partition: 2, Offset: 10,
				Key: "req-1", Subject: "req-1", Time: base.Add(-time.Millisecond), ContentHash: "sha256:aa", RequestID: "req-1",
				Raw: json.RawMessage(`{"specversion":"1.0","id":"e-req"}`)},
			{EventID: "res-req-1", Type: "atlas.optimization.completed.v1", Topic: "atlas.results", Partition: 2, Offset: 7,
				Key: "req-1", Subject: "req-1", Time: base, ContentHash: "sha256:bb", RequestID: "req-1", ModelID: "acme",
				Raw: json.RawMessage(`{"specversion":"1.0","id":"res-req-1"}`)},
		},
		DeadLetters: []store.DeadLetter{
			{Topic: "atlas.requests", Partition: 1, Offset: 42, Reason: "event: cannot decode: type: unknown", Time: base, Raw: "not json \x00\xff\xfe ünï"},
		},
		Checkpoint: map[string]map[int]int64{"atlas.results": {2: 8}, "atlas.requests": {1: 43, 2: 11}},
		Projector:  "proj",
	}
}

// state is everything a store shows for the rows of fullBatch-like batches.
type state struct {
	Results     []store.Result
	Allocations map[string][]store.Allocation
	Models      []store.Model
	Audit       map[string][]store.AuditEvent
	DeadLetters []store.DeadLetter
	Checkpoint  map[string]map[int]int64
}

func read(t *testing.T, s store.Store, b store.Batch) state {
	t.Helper()
	c := ctx(t)
	var st state
	var err error
	st.Results, _, err = s.Results(c, store.ResultQuery{Limit: store.MaxLimit})
	check(t, err)
	st.Allocations = map[string][]store.Allocation{}
	st.Audit = map[string][]store.AuditEvent{}
	for _, r := range b.Results {
		as, err := s.Allocations(c, r.RequestID)
		check(t, err)
		if len(as) > 0 {
			st.Allocations[r.RequestID] = as
		}
		es, err := s.Audit(c, r.RequestID)
		check(t, err)
		if len(es) > 0 {
			st.Audit[r.RequestID] = es
		}
	}
	st.Models, err = s.Models(c)
	check(t, err)
	st.DeadLetters, err = s.DeadLetters(c, store.MaxLimit)
	check(t, err)
	st.Checkpoint, err = s.Checkpoint(c, b.Projector)
	check(t, err)
	return st
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func apply(t testing.TB, s store.Store, b store.Batch) {
	t.Helper()
	if err := s.Apply(ctx(t), b); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, show(got), show(want))
	}
}

// show prints values readably (pointers dereferenced by JSON).
func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}

func testMigrateTwice(t *testing.T, s store.Store) {
	c := ctx(t)
	check(t, s.Migrate(c))
	check(t, s.Migrate(c))
	check(t, s.Ping(c))
	apply(t, s, fullBatch())
	check(t, s.Migrate(c)) // keeps the data
	if _, ok, err := s.Result(c, "req-1"); err != nil || !ok {
		t.Fatalf("after a third Migrate: ok=%v err=%v", ok, err)
	}
}

func testEmpty(t *testing.T, s store.Store) {
	c := ctx(t)
	check(t, s.Ping(c))
	if _, ok, err := s.Result(c, "nope"); err != nil || ok {
		t.Errorf("Result of an empty store: ok=%v err=%v", ok, err)
	}
	rows, next, err := s.Results(c, store.ResultQuery{})
	if err != nil || len(rows) != 0 || next != "" {
		t.Errorf("Results of an empty store: %d rows, next %q, err %v", len(rows), next, err)
	}
	cp, err := s.Checkpoint(c, "proj")
	if err != nil || cp == nil || len(cp) != 0 {
		t.Errorf("Checkpoint of an empty store: %v, %v (want an empty, non-nil map)", cp, err)
	}
	for name, fn := range map[string]func() (int, error){
		"Allocations":   func() (int, error) { x, err := s.Allocations(c, "nope"); return len(x), err },
		"Models":        func() (int, error) { x, err := s.Models(c); return len(x), err },
		"ModelVersions": func() (int, error) { x, err := s.ModelVersions(c, "nope"); return len(x), err },
		"Audit":         func() (int, error) { x, err := s.Audit(c, "nope"); return len(x), err },
		"DeadLetters":   func() (int, error) { x, err := s.DeadLetters(c, 0); return len(x), err },
	} {
		if n, err := fn(); err != nil || n != 0 {
			t.Errorf("%s of an empty store: %d rows, err %v", name, n, err)
		}
	}
}

// wantState is what a store must show after applying b (whose keys are all distinct).
func wantState(b store.Batch) state {
	st := state{Allocations: map[string][]store.Allocation{}, Audit: map[string][]store.AuditEvent{}, Checkpoint: b.Checkpoint}
	st.Results = slices.Clone(b.Results)
	slices.SortFunc(st.Results, func(x, y store.Result) int {
		if c := x.ResultTime.Compare(y.ResultTime); c != 0 {
			return -c
		}
		return -strings.Compare(x.RequestID, y.RequestID)
	})
	for _, a := range b.Allocations {
		st.Allocations[a.RequestID] = append(st.Allocations[a.RequestID], a)
	}
	for _, as := range st.Allocations {
		slices.SortFunc(as, func(x, y store.Allocation) int { return strings.Compare(x.Channel, y.Channel) })
	}
	st.Models = slices.Clone(b.Models)
	slices.SortFunc(st.Models, func(x, y store.Model) int {
		if c := strings.Compare(x.ModelID, y.ModelID); c != 0 {
			return c
		}
		return x.Version - y.Version
	})
	for _, e := range b.Audit {
		st.Audit[e.RequestID] = append(st.Audit[e.RequestID], e)
	}
	for _, es := range st.Audit {
		slices.SortFunc(es, auditOrder)
	}
	st.DeadLetters = slices.Clone(b.DeadLetters)
	slices.SortFunc(st.DeadLetters, func(x, y store.DeadLetter) int {
		if c := x.Time.Compare(y.Time); c != 0 {
			return -c
		}
		if c := strings.Compare(x.Topic, y.Topic); c != 0 {
			return -c
		}
		if x.Partition != y.Partition {
			return y.Partition - x.Partition
		}
		return int(y.Offset - x.Offset)
	})
	return st
}

func auditOrder(x, y store.AuditEvent) int {
	if c := x.Time.Compare(y.Time); c != 0 {
		return c
	}
	if c := strings.Compare(x.Topic, y.Topic); c != 0 {
		return c
	}
	if x.Partition != y.Partition {
		return x.Partition - y.Partition
	}
	if x.Offset != y.Offset {
		return int(x.Offset - y.Offset)
	}
	return strings.Compare(x.EventID, y.EventID)
}

func compareState(t *testing.T, got, want state) {
	t.Helper()
	equal(t, "results", got.Results, want.Results)
	equal(t, "allocations", got.Allocations, want.Allocations)
	equal(t, "models", got.Models, want.Models)
	equal(t, "audit", got.Audit, want.Audit)
	equal(t, "dead letters", got.DeadLetters, want.DeadLetters)
	equal(t, "checkpoint", got.Checkpoint, want.Checkpoint)
}

func testRoundTrip(t *testing.T, s store.Store) {
	b := fullBatch()
	apply(t, s, b)
	compareState(t, read(t, s, b), wantState(b))

	c := ctx(t)
	for _, want := range b.Results {
		got, ok, err := s.Result(c, want.RequestID)
		check(t, err)
		if !ok {
			t.Fatalf("Result(%q) not found", want.RequestID)
		}
		equal(t, "Result("+want.RequestID+")", got, want)
	}
	vs, err := s.ModelVersions(c, "acme")
	check(t, err)
	equal(t, "ModelVersions(acme)", vs, b.Models[:2])
}

func testApplyTwice(t *testing.T, s store.Store) {
	b := fullBatch()
	apply(t, s, b)
	apply(t, s, b)
	compareState(t, read(t, s, b), wantState(b))
	// And once more after another batch touching other keys.
	other := store.Batch{Results: []store.Result{result("other", "acme", "optimal", base.Add(time.Hour))}}
	apply(t, s, other)
	apply(t, s, b)
	want := wantState(b)
	want.Results = append([]store.Result{other.Results[0]}, want.Results...)
	compareState(t, read(t, s, b), want)
}

// changed returns b with every non-key field of every row changed.
func changed(b store.Batch) store.Batch {
	n := store.Batch{Projector: b.Projector, Checkpoint: map[string]map[int]int64{}}
	for _, r := range b.Results {
		r.Status, r.ModelVersion, r.TotalSpend = "feasible", r.ModelVersion+1, r.TotalSpend+1
		r.Expected = map[string]float64{"revenue": 1}
		r.UpperBound, r.LowerBound = f(2), nil
		r.Messages, r.Errors, r.Rejected = []string{"changed"}, nil, false
		r.ResultTime = r.ResultTime.Add(time.Nanosecond)
		r.Offset++
		r.Data = json.RawMessage(`{"changed":true}`)
		n.Results = append(n.Results, r)
	}
	for _, a := range b.Allocations {
		a.Spend, a.Response, a.ROI, a.MROI, a.AtBound = a.Spend+1, a.Response/2, f(9), nil, "fixed"
		n.Allocations = append(n.Allocations, a)
	}
	for _, m := range b.Models {
		m.Retired, m.Hash, m.Data = !m.Retired, m.Hash+"x", json.RawMessage(`{"v":2}`)
		n.Models = append(n.Models, m)
	}
	for _, e := range b.Audit {
		e.Subject, e.ContentHash, e.Raw = e.Subject+"'", "sha256:changed", json.RawMessage(`[]`)
		n.Audit = append(n.Audit, e)
	}
	for _, d := range b.DeadLetters {
		d.Reason, d.Raw = "second reason", "second raw"
		n.DeadLetters = append(n.DeadLetters, d)
	}
	for topic, parts := range b.Checkpoint {
		n.Checkpoint[topic] = map[int]int64{}
		for p, o := range parts {
			n.Checkpoint[topic][p] = o + 100
		}
	}
	return n
}

func testLaterVersionWins(t *testing.T, s store.Store) {
	b1 := fullBatch()
	b2 := changed(b1)
	apply(t, s, b1)
	apply(t, s, b2)
	compareState(t, read(t, s, b2), wantState(b2))

	// Filters see only the latest version: no row of b1's statuses remains.
	c := ctx(t)
	for _, status := range []string{"optimal", "infeasible", "invalid"} {
		rows, _, err := s.Results(c, store.ResultQuery{Status: status})
		check(t, err)
		if len(rows) != 0 {
			t.Errorf("status %q: %d rows of an overwritten version: %s", status, len(rows), show(rows))
		}
	}
	rows, _, err := s.Results(c, store.ResultQuery{Status: "feasible", Until: base.Add(time.Hour)})
	check(t, err)
	if len(rows) != len(b2.Results) {
		t.Errorf("status feasible: %d rows, want %d", len(rows), len(b2.Results))
	}
	// An exact time filter on the old time finds nothing, on the new one the row.
	old := b1.Results[0].ResultTime
	rows, _, err = s.Results(c, store.ResultQuery{Since: old, Until: old.Add(time.Nanosecond)})
	check(t, err)
	if len(rows) != 0 {
		t.Errorf("old result time still matches: %s", show(rows))
	}
	rows, _, err = s.Results(c, store.ResultQuery{Since: old.Add(time.Nanosecond), Until: old.Add(2 * time.Nanosecond)})
	check(t, err)
	if len(rows) != 1 || rows[0].RequestID != b1.Results[0].RequestID {
		t.Errorf("new result time: %s", show(rows))
	}
	// And back again: the later apply wins whatever the content.
	apply(t, s, b1)
	compareState(t, read(t, s, b1), wantState(b1))
}

func testLaterInSameBatchWins(t *testing.T, s store.Store) {
	b1 := fullBatch()
	b2 := changed(b1)
	both := store.Batch{
		Results:     append(slices.Clone(b1.Results), b2.Results...),
		Allocations: append(slices.Clone(b1.Allocations), b2.Allocations...),
		Models:      append(slices.Clone(b1.Models), b2.Models...),
		Audit:       append(slices.Clone(b1.Audit), b2.Audit...),
		DeadLetters: append(slices.Clone(b1.DeadLetters), b2.DeadLetters...),
		Checkpoint:  b2.Checkpoint,
		Projector:   b2.Projector,
	}
	apply(t, s, both)
	compareState(t, read(t, s, b2), wantState(b2))
}

// testHeldBatches: batches applied with More, then one without, end as if each had
// been applied on its own (a store may hold the rows back until the batch without
// More): the later write of a key wins across them, and the last checkpoint stands.
func testHeldBatches(t *testing.T, s store.Store) {
	b1 := fullBatch()
	b2 := changed(b1)
	b1.More, b2.More = true, true
	apply(t, s, b1)
	apply(t, s, b2)
	apply(t, s, store.Batch{Projector: b2.Projector, Checkpoint: b2.Checkpoint}) // no rows, commits
	compareState(t, read(t, s, b2), wantState(b2))

	// The batch without More has rows of its own.
	b1.More, b2.More = true, false
	apply(t, s, b1)
	apply(t, s, b2)
	compareState(t, read(t, s, b2), wantState(b2))
	b1.More = false
	apply(t, s, b1)
	compareState(t, read(t, s, b1), wantState(b1))
}

func testCheckpoint(t *testing.T, s store.Store) {
	c := ctx(t)
	apply(t, s, store.Batch{Projector: "p", Checkpoint: map[string]map[int]int64{"a": {0: 10}}})
	apply(t, s, store.Batch{Projector: "p", Checkpoint: map[string]map[int]int64{"a": {1: 5}, "b": {0: 1}}})
	apply(t, s, store.Batch{Projector: "q", Checkpoint: map[string]map[int]int64{"a": {0: 99}}})
	// No checkpoint: leaves it alone.
	apply(t, s, store.Batch{Results: []store.Result{result("x", "m", "optimal", base)}})
	apply(t, s, store.Batch{Projector: "p", Checkpoint: map[string]map[int]int64{"a": {0: 20}}})
	got, err := s.Checkpoint(c, "p")
	check(t, err)
	equal(t, "checkpoint p", got, map[string]map[int]int64{"a": {0: 20, 1: 5}, "b": {0: 1}})
	got, err = s.Checkpoint(c, "q")
	check(t, err)
	equal(t, "checkpoint q", got, map[string]map[int]int64{"a": {0: 99}})
	got, err = s.Checkpoint(c, "nobody")
	check(t, err)
	equal(t, "checkpoint nobody", got, map[string]map[int]int64{})
	// The same checkpoint again: unchanged.
	apply(t, s, store.Batch{Projector: "p", Checkpoint: map[string]map[int]int64{"a": {0: 20}}})
	got, err = s.Checkpoint(c, "p")
	check(t, err)
	equal(t, "checkpoint p again", got, map[string]map[int]int64{"a": {0: 20, 1: 5}, "b": {0: 1}})
}

// testGeneration: a store records which build it holds (a replay's switch depends on
// it), and a later SetGeneration replaces the earlier one.
func testGeneration(t *testing.T, s store.Store) {
	gs, ok := s.(store.Generations)
	if !ok {
		t.Fatal("the store does not implement store.Generations")
	}
	c := ctx(t)
	g, err := gs.Generation(c)
	check(t, err)
	equal(t, "generation of a new store", g, store.Generation{})
	building := store.Generation{Name: "g1", From: "0:5", To: "2025-01-01T00:00:00Z", Started: base}
	check(t, gs.SetGeneration(c, building))
	g, err = gs.Generation(c)
	check(t, err)
	equal(t, "generation while building", g, building)
	done := building
	done.Finished, done.Messages = base.Add(time.Minute), 42
	done.Checkpoint = map[string]map[int]int64{"a": {0: 7, 3: 9}, "b": {1: 0}}
	check(t, gs.SetGeneration(c, done))
	g, err = gs.Generation(c)
	check(t, err)
	equal(t, "generation when done", g, done)
	if !g.Same(building) || g.Same(store.Generation{Name: "g1"}) {
		t.Error("Same: a build is the same build before and after it finishes, and no other")
	}
	// The rows and checkpoints are untouched.
	cp, err := s.Checkpoint(c, "p")
	check(t, err)
	equal(t, "checkpoint", cp, map[string]map[int]int64{})
}

func testInvalidBatch(t *testing.T, s store.Store) {
	c := ctx(t)
	good := fullBatch()
	for name, mutate := range map[string]func(*store.Batch){
		"no request id":      func(b *store.Batch) { b.Results[1].RequestID = "" },
		"NaN spend":          func(b *store.Batch) { b.Allocations[3].Spend = math.NaN() },
		"Inf roi":            func(b *store.Batch) { b.Allocations[0].ROI = f(math.Inf(1)) },
		"NaN expected":       func(b *store.Batch) { b.Results[0].Expected["revenue"] = math.NaN() },
		"version 0":          func(b *store.Batch) { b.Models[0].Version = 0 },
		"no event id":        func(b *store.Batch) { b.Audit[1].EventID = "" },
		"negative offset":    func(b *store.Batch) { b.Results[0].Offset = -1 },
		"no projector":       func(b *store.Batch) { b.Projector = "" },
		"checkpoint -1":      func(b *store.Batch) { b.Checkpoint["atlas.results"][2] = -1 },
		"empty allocation":   func(b *store.Batch) { b.Allocations[0].Channel = "" },
		"empty model id":     func(b *store.Batch) { b.Models[2].ModelID = "" },
		"negative partition": func(b *store.Batch) { b.Audit[0].Partition = -2 },
	} {
		b := fullBatch()
		mutate(&b)
		err := s.Apply(c, b)
		if !errors.Is(err, store.ErrInvalidBatch) {
			t.Errorf("%s: Apply = %v, want ErrInvalidBatch", name, err)
		}
	}
	// Nothing was written.
	compareState(t, read(t, s, good), state{Allocations: map[string][]store.Allocation{},
		Audit: map[string][]store.AuditEvent{}, Checkpoint: map[string]map[int]int64{}})
}

func testFailBeforeCheckpoint(t *testing.T, s store.Store) {
	fs, ok := s.(Faults)
	if !ok {
		t.Skip("the store does not implement storetest.Faults")
	}
	c := ctx(t)
	b1 := store.Batch{Projector: "p", Results: []store.Result{result("one", "m", "optimal", base)},
		Checkpoint: map[string]map[int]int64{"t": {0: 1}}}
	b2 := store.Batch{Projector: "p",
		Results:     []store.Result{result("two", "m", "optimal", base.Add(time.Second))},
		Allocations: []store.Allocation{{RequestID: "two", Channel: "tv", Spend: 1}},
		Checkpoint:  map[string]map[int]int64{"t": {0: 2}}}
	apply(t, s, b1)
	boom := errors.New("injected crash")
	fs.FailNextApplyBeforeCheckpoint(boom)
	if err := s.Apply(c, b2); !errors.Is(err, boom) {
		t.Fatalf("Apply with an injected failure = %v", err)
	}
	cp, err := s.Checkpoint(c, "p")
	check(t, err)
	equal(t, "checkpoint after a failed Apply", cp, b1.Checkpoint) // never ahead of the rows
	_, found, err := s.Result(c, "two")
	check(t, err)
	if fs.AtomicCheckpoint() && found {
		t.Errorf("rows of a failed Apply are visible on a store whose checkpoint is atomic with them")
	}
	// The projector restarts from the old checkpoint and applies the batch again.
	apply(t, s, b2)
	want := wantState(store.Batch{Results: append(slices.Clone(b2.Results), b1.Results...),
		Allocations: b2.Allocations, Checkpoint: b2.Checkpoint, Projector: "p"})
	compareState(t, read(t, s, store.Batch{Results: want.Results, Projector: "p"}), want)
}

// manyResults makes n results over 3 models and 3 statuses, with many equal result times
// (to the nanosecond) and many in the same second, in shuffled order.
func manyResults(n int, seed uint64) []store.Result {
	rng := rand.New(rand.NewPCG(seed, 1))
	models := []string{"acme", "beta", "gamma"}
	statuses := []string{"optimal", "feasible", "infeasible"}
	out := make([]store.Result, n)
	for i := range out {
		var at time.Time
		switch i % 4 {
		case 0: // ties: only 5 distinct instants
			at = base.Add(time.Duration(i%5) * time.Millisecond)
		case 1: // the same second, different nanoseconds
			at = base.Truncate(time.Second).Add(time.Duration(rng.IntN(1e9)))
		default: // spread over a few days
			at = base.Add(time.Duration(rng.Int64N(int64(72 * time.Hour))))
		}
		r := result(fmt.Sprintf("req-%04d-%d", rng.IntN(10000), i), models[rng.IntN(3)], statuses[rng.IntN(3)], at)
		r.Offset = int64(i)
		out[i] = r
	}
	return out
}

// expect filters and sorts rs as Results must.
func expect(rs []store.Result, q store.ResultQuery) []store.Result {
	var out []store.Result
	for _, r := range rs {
		if (q.ModelID == "" || r.ModelID == q.ModelID) && (q.Status == "" || r.Status == q.Status) &&
			(q.Since.IsZero() || !r.ResultTime.Before(q.Since)) && (q.Until.IsZero() || r.ResultTime.Before(q.Until)) {
			out = append(out, r)
		}
	}
	return wantState(store.Batch{Results: out}).Results
}

func ids(rs []store.Result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.RequestID)
	}
	return out
}

func queries() []store.ResultQuery {
	return []store.ResultQuery{
		{},
		{ModelID: "acme"},
		{Status: "feasible"},
		{ModelID: "beta", Status: "optimal"},
		{Since: base.Add(time.Millisecond)},
		{Until: base.Add(2 * time.Millisecond)},
		{Since: base.Truncate(time.Second), Until: base.Truncate(time.Second).Add(time.Second)},
		{Since: base.Add(time.Hour), Until: base.Add(30 * time.Hour), ModelID: "gamma"},
		{Since: base.Add(3 * time.Millisecond), Until: base.Add(3*time.Millisecond + 1)}, // one instant
		{ModelID: "nope"},
		{Since: base.Add(time.Hour), Until: base.Add(time.Hour)}, // empty range
	}
}

func testResultsFilters(t *testing.T, s store.Store) {
	c := ctx(t)
	rs := manyResults(300, 7)
	apply(t, s, store.Batch{Results: rs[:150]})
	apply(t, s, store.Batch{Results: rs[150:]})
	for _, q := range queries() {
		q.Limit = store.MaxLimit
		got, next, err := s.Results(c, q)
		check(t, err)
		want := expect(rs, q)
		equal(t, fmt.Sprintf("Results(%s)", show(q)), ids(got), ids(want))
		if next != "" {
			t.Errorf("Results(%s): a next cursor on the only page", show(q))
		}
	}
	// The first query returns the rows whole.
	got, _, err := s.Results(c, store.ResultQuery{Limit: 1000})
	check(t, err)
	equal(t, "all results", got, expect(rs, store.ResultQuery{}))
	// Limits: default and cap.
	got, next, err := s.Results(c, store.ResultQuery{})
	check(t, err)
	if len(got) != store.DefaultLimit || next == "" {
		t.Errorf("default limit: %d rows, next %q", len(got), next)
	}
}

func testPagination(t *testing.T, s store.Store) {
	c := ctx(t)
	rs := manyResults(1100, 11)
	apply(t, s, store.Batch{Results: rs})
	got, next, err := s.Results(c, store.ResultQuery{Limit: 5000})
	check(t, err)
	if len(got) != store.MaxLimit || next == "" {
		t.Errorf("limit above the cap: %d rows (want %d), next %q", len(got), store.MaxLimit, next)
	}
	for _, q := range queries() {
		want := ids(expect(rs, q))
		for _, limit := range []int{7, 50, 333} {
			if len(want)/limit > 60 {
				continue // keep the page count reasonable
			}
			q := q
			q.Limit = limit
			var all []string
			pages := 0
			for {
				rows, next, err := s.Results(c, q)
				check(t, err)
				pages++
				if len(rows) > limit {
					t.Fatalf("page of %d rows, limit %d", len(rows), limit)
				}
				if next != "" && len(rows) != limit {
					t.Fatalf("a short page (%d rows) with a next cursor", len(rows))
				}
				all = append(all, ids(rows)...)
				if next == "" {
					break
				}
				if pages > len(want)+2 {
					t.Fatalf("pagination does not end")
				}
				q.Cursor = next
			}
			seen := map[string]bool{}
			for _, id := range all {
				if seen[id] {
					t.Errorf("query %s limit %d: %s on two pages", show(q), limit, id)
				}
				seen[id] = true
			}
			equal(t, fmt.Sprintf("pages of %s", show(q)), all, want)
		}
	}
	// Rows arriving between pages: a page boundary stays put, newer rows do not shift it.
	q := store.ResultQuery{Limit: 100}
	page1, next, err := s.Results(c, q)
	check(t, err)
	apply(t, s, store.Batch{Results: []store.Result{result("newest", "acme", "optimal", base.Add(1000*time.Hour))}})
	q.Cursor = next
	page2, _, err := s.Results(c, q)
	check(t, err)
	want := ids(expect(rs, store.ResultQuery{}))
	equal(t, "pages 1-2 around an insert", append(ids(page1), ids(page2)...), want[:200])
}

func testBadCursor(t *testing.T, s store.Store) {
	c := ctx(t)
	apply(t, s, store.Batch{Results: manyResults(5, 3)})
	for _, cur := range []string{
		"!!!",
		"bm90IGpzb24", // "not json"
		base64.RawURLEncoding.EncodeToString([]byte(`[1,2,3]`)), // wrong shape
		base64.RawURLEncoding.EncodeToString([]byte(`["r0",1,"x"]`)),
		base64.RawURLEncoding.EncodeToString([]byte(`["r1",1.5,"x"]`)),
		base64.RawURLEncoding.EncodeToString([]byte(`["r1",1,""]`)),
		base64.StdEncoding.EncodeToString([]byte(`["r1",1,"x"]`)) + "==",
	} {
		_, _, err := s.Results(c, store.ResultQuery{Cursor: cur})
		if !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("cursor %q: err = %v, want ErrBadCursor", cur, err)
		}
	}
	// A cursor naming a row that does not exist is fine: it is a position.
	cur := store.EncodeCursor(store.Cursor{TimeNanos: base.Add(time.Hour).UnixNano(), RequestID: "zzz"})
	if _, _, err := s.Results(c, store.ResultQuery{Cursor: cur}); err != nil {
		t.Errorf("cursor at a position without a row: %v", err)
	}
}

func testModels(t *testing.T, s store.Store) {
	c := ctx(t)
	var ms []store.Model
	for _, id := range []string{"m-b", "m-a", "m-c"} {
		for v := 12; v >= 1; v-- { // versions out of order, two digits (no string sort)
			ms = append(ms, store.Model{ModelID: id, Version: v, Hash: fmt.Sprintf("h%d", v),
				Published: base.Add(time.Duration(v) * time.Minute), EventID: fmt.Sprintf("%s-%d", id, v), Offset: int64(v)})
		}
	}
	apply(t, s, store.Batch{Models: ms})
	got, err := s.Models(c)
	check(t, err)
	equal(t, "Models", got, wantState(store.Batch{Models: ms}).Models)
	vs, err := s.ModelVersions(c, "m-b")
	check(t, err)
	if len(vs) != 12 {
		t.Fatalf("ModelVersions(m-b): %d", len(vs))
	}
	for i, v := range vs {
		if v.Version != i+1 || v.ModelID != "m-b" {
			t.Errorf("ModelVersions(m-b)[%d] = %s %d", i, v.ModelID, v.Version)
		}
	}
	// Retire m-a: the projector rewrites its versions.
	var retired []store.Model
	for _, m := range ms {
		if m.ModelID == "m-a" {
			m.Retired = true
			retired = append(retired, m)
		}
	}
	apply(t, s, store.Batch{Models: retired})
	vs, err = s.ModelVersions(c, "m-a")
	check(t, err)
	for _, v := range vs {
		if !v.Retired {
			t.Errorf("m-a v%d not retired", v.Version)
		}
	}
	if len(vs) != 12 {
		t.Errorf("m-a has %d versions after retiring, want 12", len(vs))
	}
}

func testAuditOrder(t *testing.T, s store.Store) {
	c := ctx(t)
	var es []store.AuditEvent
	add := func(req, id, topic string, p int, off int64, at time.Time) {
		es = append(es, store.AuditEvent{EventID: id, Type: "t", Topic: topic, Partition: p, Offset: off,
			Key: req, Subject: req, Time: at, ContentHash: "sha256:" + id, RequestID: req, Raw: json.RawMessage(`{"id":"` + id + `"}`)})
	}
	// Same partition: offset order; different topics at the same nanosecond: topic order;
	// times within the same second.
	add("r", "e5", "results", 0, 100, base.Add(3*time.Millisecond))
	add("r", "e1", "requests", 3, 7, base)
	add("r", "e3", "models", 0, 2, base.Add(time.Microsecond))
	add("r", "e4", "results", 0, 99, base.Add(time.Microsecond))
	add("r", "e2", "requests", 3, 8, base.Add(time.Nanosecond))
	add("other", "x1", "requests", 3, 9, base)
	add("r", "e6", "results", 1, 1, base.Add(2*time.Hour))
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(es), func(i, j int) { es[i], es[j] = es[j], es[i] })
	apply(t, s, store.Batch{Audit: es[:3]})
	apply(t, s, store.Batch{Audit: es[3:]})
	apply(t, s, store.Batch{Audit: es}) // redelivered
	got, err := s.Audit(c, "r")
	check(t, err)
	var gotIDs []string
	for _, e := range got {
		gotIDs = append(gotIDs, e.EventID)
	}
	equal(t, "audit order", gotIDs, []string{"e1", "e2", "e3", "e4", "e5", "e6"})
	equal(t, "audit rows", got, wantState(store.Batch{Audit: es}).Audit["r"])
	// An event id seen at two positions (a re-published record) is two audit rows.
	dup := es[0]
	dup.Offset += 1000
	apply(t, s, store.Batch{Audit: []store.AuditEvent{dup}})
	got, err = s.Audit(c, dup.RequestID)
	check(t, err)
	n := 0
	for _, e := range got {
		if e.EventID == dup.EventID {
			n++
		}
	}
	if n != 2 {
		t.Errorf("event %s at two positions: %d rows, want 2", dup.EventID, n)
	}
}

func testDeadLetters(t *testing.T, s store.Store) {
	c := ctx(t)
	var ds []store.DeadLetter
	for i := range 120 {
		ds = append(ds, store.DeadLetter{Topic: []string{"a", "b"}[i%2], Partition: i % 3, Offset: int64(i),
			Reason: fmt.Sprintf("reason %d", i), Time: base.Add(time.Duration(i%40) * time.Second), Raw: fmt.Sprintf("raw\x00%d", i)})
	}
	apply(t, s, store.Batch{DeadLetters: ds})
	apply(t, s, store.Batch{DeadLetters: ds[:10]})
	want := wantState(store.Batch{DeadLetters: ds}).DeadLetters
	got, err := s.DeadLetters(c, 0)
	check(t, err)
	equal(t, "DeadLetters(0)", got, want[:store.DefaultLimit])
	got, err = s.DeadLetters(c, 7)
	check(t, err)
	equal(t, "DeadLetters(7)", got, want[:7])
	got, err = s.DeadLetters(c, 100000)
	check(t, err)
	equal(t, "DeadLetters(all)", got, want)
}

// testExtremeTimes: any time is accepted (a producer's clock must not stall the
// projection); 1678–2262 round-trips to the nanosecond and orders correctly, beyond
// saturates. A dead letter without a topic is stored too.
func testExtremeTimes(t *testing.T, s store.Store) {
	c := ctx(t)
	moon := time.Date(1969, 7, 20, 20, 17, 40, 123456789, time.UTC)
	far := time.Date(2200, 1, 1, 0, 0, 0, 1, time.UTC)
	ancient := time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC)
	r1 := result("moon", "m", "optimal", moon)
	r1.RequestTime = ancient
	r2 := result("far", "m", "optimal", far)
	r3 := result("now", "m", "optimal", base)
	b := store.Batch{Results: []store.Result{r1, r2, r3},
		Audit: []store.AuditEvent{{EventID: "e1", RequestID: "far", Time: far}, {EventID: "e0", RequestID: "far", Time: moon}},
		DeadLetters: []store.DeadLetter{{Partition: 1, Offset: 2, Reason: "no topic", Time: far, Raw: "x"},
			{Topic: "t", Reason: "old", Time: moon, Raw: "y"}},
		Models: []store.Model{{ModelID: "m", Version: 1, Published: moon}}}
	apply(t, s, b)
	rows, _, err := s.Results(c, store.ResultQuery{})
	check(t, err)
	equal(t, "order", ids(rows), []string{"far", "now", "moon"})
	got, _, err := s.Result(c, "moon")
	check(t, err)
	if !got.ResultTime.Equal(moon) {
		t.Errorf("1969 result time read back as %v", got.ResultTime)
	}
	if want := time.Unix(0, math.MinInt64).UTC(); !got.RequestTime.Equal(want) {
		t.Errorf("a time before 1678 read back as %v, want it saturated to %v", got.RequestTime, want)
	}
	got, _, err = s.Result(c, "far")
	check(t, err)
	if !got.ResultTime.Equal(far) {
		t.Errorf("2200 result time read back as %v", got.ResultTime)
	}
	rows, _, err = s.Results(c, store.ResultQuery{Since: moon, Until: moon.Add(time.Nanosecond)})
	check(t, err)
	equal(t, "since/until around 1969", ids(rows), []string{"moon"})
	rows, _, err = s.Results(c, store.ResultQuery{Until: base})
	check(t, err)
	equal(t, "until now", ids(rows), []string{"moon"})
	es, err := s.Audit(c, "far")
	check(t, err)
	if len(es) != 2 || es[0].EventID != "e0" || !es[0].Time.Equal(moon) || !es[1].Time.Equal(far) {
		t.Errorf("audit: %s", show(es))
	}
	ds, err := s.DeadLetters(c, 0)
	check(t, err)
	equal(t, "dead letters", ds, wantState(b).DeadLetters)
	ms, err := s.Models(c)
	check(t, err)
	if len(ms) != 1 || !ms[0].Published.Equal(moon) {
		t.Errorf("models: %s", show(ms))
	}
}

// testConcurrentReaders applies batches while readers check that whatever checkpoint
// they see, the rows it covers are visible (rows never lag the checkpoint), and that
// reads never fail or show a duplicate.
func testConcurrentReaders(t *testing.T, s store.Store) {
	c := ctx(t)
	const batches, perBatch = 25, 12
	mk := func(k int) store.Batch {
		b := store.Batch{Projector: "p", Checkpoint: map[string]map[int]int64{"t": {0: int64(k + 1)}}}
		for i := range perBatch {
			id := fmt.Sprintf("b%02d-%02d", k, i)
			b.Results = append(b.Results, result(id, "m", "optimal", base.Add(time.Duration(k*perBatch+i)*time.Millisecond)))
			b.Allocations = append(b.Allocations, store.Allocation{RequestID: id, Channel: "tv", Spend: float64(k)},
				store.Allocation{RequestID: id, Channel: "radio", Spend: float64(i)})
		}
		return b
	}
	var done atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	var reads atomic.Int64
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !done.Load() {
				cp, err := s.Checkpoint(c, "p")
				if err != nil {
					report(err)
					return
				}
				covered := int(cp["t"][0]) // batches 0..covered-1 are applied
				rows, _, err := s.Results(c, store.ResultQuery{ModelID: "m", Limit: store.MaxLimit})
				if err != nil {
					report(err)
					return
				}
				if len(rows) < covered*perBatch {
					report(fmt.Errorf("reader %d: checkpoint covers %d batches but only %d rows are visible", r, covered, len(rows)))
					return
				}
				seen := map[string]bool{}
				for _, row := range rows {
					if seen[row.RequestID] {
						report(fmt.Errorf("reader %d: %s twice", r, row.RequestID))
						return
					}
					seen[row.RequestID] = true
				}
				if covered > 0 {
					id := fmt.Sprintf("b%02d-%02d", covered-1, perBatch-1)
					if _, ok, err := s.Result(c, id); err != nil || !ok {
						report(fmt.Errorf("reader %d: Result(%s) ok=%v err=%v under checkpoint %d", r, id, ok, err, covered))
						return
					}
					as, err := s.Allocations(c, id)
					if err != nil || len(as) != 2 {
						report(fmt.Errorf("reader %d: Allocations(%s) = %d rows, err %v", r, id, len(as), err))
						return
					}
				}
				reads.Add(1)
			}
		}()
	}
	for k := range batches {
		b := mk(k)
		if err := s.Apply(c, b); err != nil {
			report(err)
			break
		}
		if k%5 == 0 {
			_ = s.Apply(c, b) // redelivery while reading
		}
	}
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	rows, _, err := s.Results(c, store.ResultQuery{Limit: store.MaxLimit})
	check(t, err)
	if len(rows) != batches*perBatch {
		t.Errorf("%d rows after the writer, want %d", len(rows), batches*perBatch)
	}
	t.Logf("%d consistent reads during %d applies", reads.Load(), batches)
}

// BenchApplyAllocations measures Apply of batches of 5,000 new allocation rows (with a
// checkpoint, as the projector writes them) and reports rows/s. s must be migrated.
func BenchApplyAllocations(b *testing.B, s store.Store) {
	const rows = 5000
	c := context.Background()
	channels := []string{"tv", "digital", "radio", "search", "social", "display", "print", "ooh", "podcast", "email"}
	batch := store.Batch{Projector: "bench", Allocations: make([]store.Allocation, rows)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := range batch.Allocations {
			batch.Allocations[j] = store.Allocation{
				RequestID: fmt.Sprintf("bench-%d-%d", i, j/len(channels)), Channel: channels[j%len(channels)],
				Spend: float64(j) * 1000.5, Response: float64(j) * 2345.25, ROI: f(2.5), MROI: f(0.75), AtBound: "",
			}
		}
		batch.Checkpoint = map[string]map[int]int64{"atlas.results": {0: int64((i + 1) * rows)}}
		b.StartTimer()
		if err := s.Apply(c, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "rows/s")
}
