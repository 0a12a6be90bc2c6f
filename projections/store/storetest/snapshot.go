package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"

	"github.com/atlas-mmm/atlas/projections/store"
)

// Snapshot is everything a store shows through its queries: every page of Results
// (unfiltered, and filtered by each model and each status), each Result, Allocations,
// the Audit trail of each request, Models, each model's versions, DeadLetters and a
// projector's checkpoint. Two stores built from the same log must have equal
// snapshots (a replay is checked against the live read models with it).
type Snapshot struct {
	Results     []store.Result
	ByModel     map[string][]store.Result
	ByStatus    map[string][]store.Result
	Result      map[string]store.Result
	Allocations map[string][]store.Allocation
	Audit       map[string][]store.AuditEvent
	Models      []store.Model
	Versions    map[string][]store.Model
	DeadLetters []store.DeadLetter
	Checkpoint  map[string]map[int]int64
}

// Take reads s's snapshot; projector names the checkpoint.
func Take(ctx context.Context, s store.Store, projector string) (Snapshot, error) {
	var snap Snapshot
	var err error
	if snap.Results, err = allResults(ctx, s, store.ResultQuery{}); err != nil {
		return snap, err
	}
	snap.ByModel, snap.ByStatus = map[string][]store.Result{}, map[string][]store.Result{}
	snap.Result, snap.Allocations = map[string]store.Result{}, map[string][]store.Allocation{}
	snap.Audit, snap.Versions = map[string][]store.AuditEvent{}, map[string][]store.Model{}
	for _, r := range snap.Results {
		if _, ok := snap.ByModel[r.ModelID]; !ok {
			if snap.ByModel[r.ModelID], err = allResults(ctx, s, store.ResultQuery{ModelID: r.ModelID}); err != nil {
				return snap, err
			}
		}
		if _, ok := snap.ByStatus[r.Status]; !ok {
			if snap.ByStatus[r.Status], err = allResults(ctx, s, store.ResultQuery{Status: r.Status}); err != nil {
				return snap, err
			}
		}
		one, ok, err := s.Result(ctx, r.RequestID)
		if err != nil || !ok {
			return snap, fmt.Errorf("result %s listed but not found: %v", r.RequestID, err)
		}
		snap.Result[r.RequestID] = one
		if snap.Allocations[r.RequestID], err = s.Allocations(ctx, r.RequestID); err != nil {
			return snap, err
		}
		if snap.Audit[r.RequestID], err = s.Audit(ctx, r.RequestID); err != nil {
			return snap, err
		}
	}
	if snap.Models, err = s.Models(ctx); err != nil {
		return snap, err
	}
	for _, m := range snap.Models {
		if _, ok := snap.Versions[m.ModelID]; !ok {
			if snap.Versions[m.ModelID], err = s.ModelVersions(ctx, m.ModelID); err != nil {
				return snap, err
			}
		}
	}
	if snap.DeadLetters, err = s.DeadLetters(ctx, store.MaxLimit); err != nil {
		return snap, err
	}
	snap.Checkpoint, err = s.Checkpoint(ctx, projector)
	return snap, err
}

func allResults(ctx context.Context, s store.Store, q store.ResultQuery) ([]store.Result, error) {
	q.Limit = store.MaxLimit
	var out []store.Result
	for {
		page, next, err := s.Results(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if next == "" {
			return out, nil
		}
		q.Cursor = next
	}
}

// Diff describes how b differs from a, field by field ("" when they are equal).
func Diff(a, b Snapshot) string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var diffs []string
	for i := range va.NumField() {
		x, y := va.Field(i).Interface(), vb.Field(i).Interface()
		if !reflect.DeepEqual(x, y) {
			diffs = append(diffs, fmt.Sprintf("%s differ:\n  %s\n  %s", va.Type().Field(i).Name, clip(show(x)), clip(show(y))))
		}
	}
	slices.Sort(diffs)
	out := ""
	for _, d := range diffs {
		out += d + "\n"
	}
	return out
}

func clip(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "..."
	}
	return s
}
