package projections

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/atlas-mmm/atlas/projections/store"
	"github.com/atlas-mmm/atlas/projections/store/sqlite"
)

// failingStore records the checkpoint of each Apply it is given and fails the one
// numbered failAt (from 1).
type failingStore struct {
	store.Store
	failAt  int
	applied []int64
}

func (f *failingStore) Apply(ctx context.Context, b store.Batch) error {
	n := b.Checkpoint["t"][0]
	f.applied = append(f.applied, n)
	if len(f.applied) == f.failAt {
		return fmt.Errorf("batch %d: %w", n, errBoom)
	}
	return f.Store.Apply(ctx, b)
}

var errBoom = errors.New("boom")

// The applier writes batches in the order handed over, several in flight; after a
// failure it writes none of the batches still waiting, every later submit returns the
// failure, and the checkpoint stays the last written one's.
func TestApplierOrderAndFailure(t *testing.T) {
	ctx := context.Background()
	for _, failAt := range []int{0, 1, 3, 6} {
		st, err := sqlite.Open(":memory:")
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		fs := &failingStore{Store: st, failAt: failAt}
		p := &Projector{Store: fs, Name: "p"}
		ap := &applier{p: p}
		var submitErr error
		for i := 1; i <= 8 && submitErr == nil; i++ {
			b := store.Batch{Projector: "p", Checkpoint: map[string]map[int]int64{"t": {0: int64(i)}},
				Allocations: []store.Allocation{{RequestID: fmt.Sprint(i), Channel: "tv"}}}
			submitErr = ap.submit(ctx, b, "t", 1, time.Time{})
		}
		err = ap.wait()
		want := int64(8)
		if failAt > 0 {
			want = int64(failAt - 1)
			if !errors.Is(err, errBoom) || (submitErr != nil && !errors.Is(submitErr, errBoom)) {
				t.Fatalf("failAt %d: wait %v, submit %v; want the failure", failAt, err, submitErr)
			}
			if len(fs.applied) != failAt {
				t.Errorf("failAt %d: batches %v given to the store, want none after the failed one", failAt, fs.applied)
			}
		} else if err != nil || submitErr != nil {
			t.Fatalf("wait %v, submit %v", err, submitErr)
		}
		for i, n := range fs.applied {
			if n != int64(i+1) {
				t.Fatalf("failAt %d: batches applied in the order %v", failAt, fs.applied)
			}
		}
		cp, err := st.Checkpoint(ctx, "p")
		if err != nil {
			t.Fatal(err)
		}
		if got := cp["t"][0]; got != want {
			t.Errorf("failAt %d: checkpoint %d, want %d", failAt, got, want)
		}
		if err := ap.submit(ctx, store.Batch{}, "t", 0, time.Time{}); failAt > 0 && !errors.Is(err, errBoom) {
			t.Errorf("failAt %d: submit after the failure: %v", failAt, err)
		}
		ap.wait()
	}
}
