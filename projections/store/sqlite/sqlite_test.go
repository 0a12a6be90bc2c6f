package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atlas-mmm/atlas/projections/store"
	"github.com/atlas-mmm/atlas/projections/store/storetest"
)

// faultStore lets the suite make an Apply fail inside its transaction.
type faultStore struct{ *Store }

func (f faultStore) FailNextApplyBeforeCheckpoint(err error) {
	f.failBeforeCheckpoint = func() error {
		f.failBeforeCheckpoint = nil
		return err
	}
}

func (faultStore) AtomicCheckpoint() bool { return true }

func openFile(t testing.TB) *Store {
	s, err := Open(filepath.Join(t.TempDir(), "atlas.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return faultStore{openFile(t)} })
}

func TestConformanceMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(":memory:")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return faultStore{s}
	})
}

// The Go copy of the DDL is schemas/ddl/sqlite.sql ("go generate" refreshes it).
func TestDDLIsCurrent(t *testing.T) {
	src, err := os.ReadFile("../../../schemas/ddl/sqlite.sql")
	if err != nil {
		t.Fatal(err)
	}
	if string(src) != DDL {
		t.Fatal("ddl.go differs from schemas/ddl/sqlite.sql: run go generate ./projections/store/...")
	}
}

func TestWALAndReadOnlyReaders(t *testing.T) {
	s := openFile(t)
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var mode string
	if err := s.r.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	_, err := s.r.ExecContext(ctx, "DELETE FROM results")
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "readonly") {
		t.Errorf("a write through the reader pool: %v, want a read-only error", err)
	}
}

func TestOpenRejectsDSNPaths(t *testing.T) {
	for _, p := range []string{"", "x.db?_pragma=foo", "x#y"} {
		if _, err := Open(p); err == nil {
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}

func BenchmarkApplyAllocations(b *testing.B) {
	s := openFile(b)
	if err := s.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	storetest.BenchApplyAllocations(b, s)
}
