package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// Batches of every size up to past two full statements are written whole and in order
// (a later row of a key wins, also across statements), values of every size bind
// alike, and an empty text or blob is stored as empty, not NULL.
func TestWriterStatementsAndValues(t *testing.T) {
	for _, mode := range []struct {
		name string
		open func(string) (*Store, error)
	}{{"live", Open}, {"build", OpenBuild}} {
		t.Run(mode.name, func(t *testing.T) {
			s, err := mode.open(filepath.Join(t.TempDir(), "atlas.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			for _, n := range []int{1, 2, 3, 63, 64, 65, 255, 256, 257, 300, 511, 513} {
				var b store.Batch
				for i := range n {
					// every fifth row rewrites the row 37 before it (or a row of an
					// earlier statement), so later writes cross statement boundaries
					key := i
					if i%5 == 4 && i >= 37 {
						key = i - 37
					}
					b.Allocations = append(b.Allocations, store.Allocation{RequestID: fmt.Sprintf("n%d-%d", n, key), Channel: "tv",
						Spend: float64(i), Response: float64(n)})
					b.DeadLetters = append(b.DeadLetters, store.DeadLetter{Topic: "t", Partition: n, Offset: int64(i),
						Reason: strings.Repeat("r", i%3), Raw: strings.Repeat("\x00", i%2)})
				}
				if err := s.Apply(ctx, b); err != nil {
					t.Fatalf("%d rows: %v", n, err)
				}
				want := map[string]float64{}
				for _, a := range b.Allocations {
					want[a.RequestID] = a.Spend
				}
				for id, spend := range want {
					as, err := s.Allocations(ctx, id)
					if err != nil || len(as) != 1 || as[0].Spend != spend {
						t.Fatalf("%d rows: %s: %+v, %v; want spend %v", n, id, as, err, spend)
					}
				}
				var rows int
				if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM dead_letters WHERE log_partition = ?
AND raw IS NOT NULL AND reason IS NOT NULL AND length(raw) = log_offset % 2`, n).Scan(&rows); err != nil || rows != n {
					t.Fatalf("%d rows: %d dead letters as written, %v", n, rows, err)
				}
			}

			// Values larger than the arena's chunks, and several that fill more than one.
			big := func(c byte, n int) json.RawMessage {
				return json.RawMessage(`"` + strings.Repeat(string(c), n-2) + `"`)
			}
			var b store.Batch
			for i, size := range []int{3 << 20, 600 << 10, 600 << 10, 2, 600 << 10, 1 << 20} {
				b.Models = append(b.Models, store.Model{ModelID: "big", Version: i + 1, Data: big(byte('a'+i), size)})
			}
			if err := s.Apply(ctx, b); err != nil {
				t.Fatal(err)
			}
			ms, err := s.ModelVersions(ctx, "big")
			if err != nil || len(ms) != len(b.Models) {
				t.Fatalf("%d versions, %v", len(ms), err)
			}
			for i, m := range ms {
				if string(m.Data) != string(b.Models[i].Data) {
					t.Errorf("version %d: %d bytes read back differ from the %d written", m.Version, len(m.Data), len(b.Models[i].Data))
				}
			}
		})
	}
}

// A cancelled Apply writes nothing.
func TestApplyCancelled(t *testing.T) {
	s := openFile(t)
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	err := s.Apply(cctx, store.Batch{Allocations: []store.Allocation{{RequestID: "r", Channel: "tv"}},
		Checkpoint: map[string]map[int]int64{"t": {0: 1}}, Projector: "p"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply: %v, want context.Canceled", err)
	}
	as, err := s.Allocations(ctx, "r")
	if err != nil || len(as) != 0 {
		t.Fatalf("allocations after a cancelled Apply: %v, %v", as, err)
	}
	if err := s.Apply(ctx, store.Batch{Allocations: []store.Allocation{{RequestID: "r", Channel: "tv"}}}); err != nil {
		t.Fatalf("Apply after a cancelled one: %v", err)
	}
}

// A build writes with a rollback journal; Open puts the file back in WAL mode, with
// what the build wrote.
func TestOpenBuildThenOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gen.db")
	ctx := context.Background()
	b, err := OpenBuild(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	batch := store.Batch{Allocations: []store.Allocation{{RequestID: "r", Channel: "tv", Spend: 1}},
		Checkpoint: map[string]map[int]int64{"t": {0: 1}}, Projector: "p"}
	if err := b.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if mode := journalMode(t, b); mode != "delete" {
		t.Errorf("build: journal_mode %q, want delete", mode)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBuild(":memory:"); err == nil {
		t.Error("OpenBuild(:memory:) succeeded")
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if mode := journalMode(t, s); mode != "wal" {
		t.Errorf("reopened: journal_mode %q, want wal", mode)
	}
	cp, err := s.Checkpoint(ctx, "p")
	if err != nil || cp["t"][0] != 1 {
		t.Fatalf("checkpoint %v, %v", cp, err)
	}
}

// A closed store refuses writes with an error.
func TestClosedStore(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "atlas.db"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, store.Batch{Allocations: []store.Allocation{{RequestID: "r", Channel: "tv"}}}); err == nil {
		t.Error("Apply after Close succeeded")
	}
	if err := s.SetGeneration(ctx, store.Generation{Name: "g"}); err == nil {
		t.Error("SetGeneration after Close succeeded")
	}
	if err := s.Migrate(ctx); err == nil {
		t.Error("Migrate after Close succeeded")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func journalMode(t *testing.T, s *Store) string {
	t.Helper()
	var mode string
	if err := s.r.QueryRowContext(context.Background(), "PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	return mode
}

func userVersion(t *testing.T, s *Store) int32 {
	t.Helper()
	var v int32
	if err := s.r.QueryRowContext(context.Background(), "PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// A build in a known boot is marked with it and not synced until it is recorded
// finished; opened again in another boot, an unfinished one is refused (ErrUnsynced),
// a finished one is not, and in the same boot an unfinished one resumes. Where the
// boot is unknown, a build is synced throughout.
func TestBuildSyncAndBootMark(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	build := func(path, boot string) *Store {
		t.Helper()
		s, err := openBuild(path, boot)
		if err != nil {
			t.Fatalf("openBuild(%s, %q): %v", filepath.Base(path), boot, err)
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		return s
	}
	batch := store.Batch{Allocations: []store.Allocation{{RequestID: "r", Channel: "tv", Spend: 1}},
		Checkpoint: map[string]map[int]int64{"t": {0: 1}}, Projector: "p"}

	unfinished := filepath.Join(dir, "unfinished.db")
	s := build(unfinished, "boot-a")
	if !s.unsynced || userVersion(t, s) != bootTag("boot-a") {
		t.Fatalf("new build: unsynced %v, mark %d; want unsynced, marked %d", s.unsynced, userVersion(t, s), bootTag("boot-a"))
	}
	if err := s.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := s.SetGeneration(ctx, store.Generation{Name: "g", Started: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if !s.unsynced || userVersion(t, s) != bootTag("boot-a") {
		t.Error("recording an unfinished generation ended the unsynced build")
	}
	s.Close()
	if _, err := openBuild(unfinished, "boot-b"); !errors.Is(err, ErrUnsynced) {
		t.Errorf("unfinished build opened in another boot: %v, want ErrUnsynced", err)
	}
	if _, err := openBuild(unfinished, ""); !errors.Is(err, ErrUnsynced) {
		t.Errorf("unfinished build opened in an unknown boot: %v, want ErrUnsynced", err)
	}
	s = build(unfinished, "boot-a") // the same boot: resumes
	cp, err := s.Checkpoint(ctx, "p")
	if err != nil || cp["t"][0] != 1 {
		t.Errorf("resumed build: checkpoint %v, %v", cp, err)
	}
	if err := s.SetGeneration(ctx, store.Generation{Name: "g", Started: time.Now(), Finished: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if s.unsynced || userVersion(t, s) != 0 {
		t.Errorf("finished build: unsynced %v, mark %d; want synced, no mark", s.unsynced, userVersion(t, s))
	}
	s.Close()
	s = build(unfinished, "boot-b") // finished: another boot is harmless
	if s.unsynced || userVersion(t, s) != 0 {
		t.Errorf("finished build opened in another boot: unsynced %v, mark %d", s.unsynced, userVersion(t, s))
	}
	s.Close()

	unknown := build(filepath.Join(dir, "unknown.db"), "")
	defer unknown.Close()
	if unknown.unsynced || userVersion(t, unknown) != 0 {
		t.Errorf("build in an unknown boot: unsynced %v, mark %d; want synced, no mark", unknown.unsynced, userVersion(t, unknown))
	}
}

// holdLock opens a second connection to the store's file and takes its write lock, as
// another process would (a replay switching files, a second atlas on the same file);
// the returned func releases it.
func holdLock(t *testing.T, path string) (release func()) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := conn.ExecContext(context.Background(), "COMMIT"); err != nil {
			t.Error(err)
		}
		conn.Close()
	}
}

// A writer waiting for a lock another connection holds gives up when its context is
// done, rather than at the end of the busy timeout (10 s), and keeps waiting, and
// then writes, when it is not.
func TestApplyLockWaitEndsWithContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "atlas.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	batch := store.Batch{Allocations: []store.Allocation{{RequestID: "r", Channel: "tv", Spend: 1}},
		Checkpoint: map[string]map[int]int64{"t": {0: 1}}, Projector: "p"}

	release := holdLock(t, path)
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	err = s.Apply(cctx, batch)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply while another holds the lock, cancelled after 200 ms: %v, want context.Canceled", err)
	}
	t.Logf("gave up after %v: %v", time.Since(start), err)

	// The cancellation of the call before must not cut this one's wait short: it waits
	// until the lock is released.
	time.AfterFunc(300*time.Millisecond, release)
	waitCtx, waitCancel := context.WithCancel(ctx)
	defer waitCancel()
	if err := s.Apply(waitCtx, batch); err != nil {
		t.Fatalf("Apply waiting for a lock released after 300 ms: %v", err)
	}
	as, err := s.Allocations(ctx, "r")
	if err != nil || len(as) != 1 {
		t.Fatalf("allocations: %v, %v", as, err)
	}
}
