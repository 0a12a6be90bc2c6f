package clickhouse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/atlas-mmm/atlas/projections/store"
	"github.com/atlas-mmm/atlas/projections/store/storetest"
)

// The tests use a real server: ATLAS_CLICKHOUSE_ADDR (default 127.0.0.1:19000, what
// deploy/local/clickhouse.sh starts). They skip when it is unreachable, unless
// ATLAS_CLICKHOUSE_REQUIRED is set. Each store gets a database atlas_test_<random>, which
// Migrate creates and the cleanup drops.

func addr() string {
	if a := os.Getenv("ATLAS_CLICKHOUSE_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:19000"
}

// admin connects to the server's default database, or skips/fails the test.
func admin(t testing.TB) driver.Conn {
	t.Helper()
	conn, err := connect(Config{Addr: []string{addr()}, Username: "default"}, "")
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = conn.Ping(ctx)
		cancel()
		if err != nil {
			conn.Close()
		}
	}
	if err != nil {
		if os.Getenv("ATLAS_CLICKHOUSE_REQUIRED") != "" {
			t.Fatalf("ClickHouse at %s (ATLAS_CLICKHOUSE_REQUIRED is set): %v", addr(), err)
		}
		t.Skipf("ClickHouse at %s unreachable (start it with deploy/local/clickhouse.sh start): %v", addr(), err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func freshName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "atlas_test_" + hex.EncodeToString(b[:])
}

// openFresh opens a store on a new database, dropped when the test ends.
func openFresh(t testing.TB) *Store {
	t.Helper()
	adm := admin(t)
	name := freshName()
	s, err := Open(context.Background(), Config{Addr: []string{addr()}, Database: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := adm.Exec(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	return s
}

// faultStore lets the suite make an Apply fail between the rows and the checkpoint.
type faultStore struct{ *Store }

func (f faultStore) FailNextApplyBeforeCheckpoint(err error) {
	f.failBeforeCheckpoint = func() error {
		f.failBeforeCheckpoint = nil
		return err
	}
}

func (faultStore) AtomicCheckpoint() bool { return false }

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return faultStore{openFresh(t)} })
}

// The Go copy of the DDL is schemas/ddl/clickhouse.sql ("go generate" refreshes it).
func TestDDLIsCurrent(t *testing.T) {
	src, err := os.ReadFile("../../../schemas/ddl/clickhouse.sql")
	if err != nil {
		t.Fatal(err)
	}
	if string(src) != DDL {
		t.Fatal("ddl.go differs from schemas/ddl/clickhouse.sql: run go generate ./projections/store/...")
	}
}

func migrated(t *testing.T) *Store {
	s := openFresh(t)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func count(t *testing.T, s *Store, query string) uint64 {
	t.Helper()
	var n uint64
	if err := s.conn.QueryRow(context.Background(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func allocBatch(n int) store.Batch {
	b := store.Batch{Projector: "p", Checkpoint: map[string]map[int]int64{"t": {0: int64(n)}}}
	for i := range n {
		b.Allocations = append(b.Allocations, store.Allocation{RequestID: "r", Channel: string(rune('a' + i)), Spend: float64(i)})
	}
	return b
}

// A failed Send is retried with a rebuilt batch; an attempt that did land and still
// reported an error leaves duplicates that FINAL hides.
func TestInsertRetry(t *testing.T) {
	s := migrated(t)
	ctx := context.Background()
	var calls atomic.Int32
	s.sendHook = func(table string, attempt int, send func() error) error {
		calls.Add(1)
		if table != "allocations" {
			return send()
		}
		switch attempt {
		case 1:
			return errors.New("connection reset before send")
		case 2:
			if err := send(); err != nil {
				return err
			}
			return errors.New("connection lost after the server took the rows")
		}
		return send()
	}
	b := allocBatch(5)
	if err := s.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got := calls.Load(); got != 4 { // 3 allocation attempts + the checkpoint
		t.Errorf("%d sends, want 4", got)
	}
	if n := count(t, s, "SELECT count() FROM allocations"); n != 10 {
		t.Errorf("%d stored rows, want 10 (two attempts landed)", n)
	}
	as, err := s.Allocations(ctx, "r")
	if err != nil || len(as) != 5 {
		t.Fatalf("Allocations: %d rows, %v; want 5", len(as), err)
	}
	if n := count(t, s, "SELECT count() FROM allocations FINAL"); n != 5 {
		t.Errorf("FINAL shows %d rows, want 5", n)
	}
	// Background merges reach the same state.
	if err := s.conn.Exec(ctx, "OPTIMIZE TABLE allocations FINAL"); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count() FROM allocations"); n != 5 {
		t.Errorf("%d rows after OPTIMIZE FINAL, want 5", n)
	}
}

// When every attempt fails, Apply fails after the last one and the checkpoint stays.
func TestInsertGivesUp(t *testing.T) {
	s := migrated(t)
	ctx := context.Background()
	if err := s.Apply(ctx, allocBatch(1)); err != nil {
		t.Fatal(err)
	}
	var attempts atomic.Int32
	s.sendHook = func(table string, attempt int, send func() error) error {
		if table == "checkpoints" {
			return send()
		}
		attempts.Add(1)
		return errors.New("network down")
	}
	err := s.Apply(ctx, allocBatch(3))
	if err == nil || !strings.Contains(err.Error(), "network down") {
		t.Fatalf("Apply = %v", err)
	}
	if attempts.Load() != insertAttempts {
		t.Errorf("%d attempts, want %d", attempts.Load(), insertAttempts)
	}
	cp, err := s.Checkpoint(ctx, "p")
	if err != nil || cp["t"][0] != 1 {
		t.Errorf("checkpoint %v, %v; want t/0 = 1", cp, err)
	}
}

// Errors a retry cannot fix are returned at once.
func TestNoRetryOnPermanentErrors(t *testing.T) {
	s := openFresh(t)
	if err := s.conn.Exec(context.Background(), "SELECT 1"); err == nil {
		t.Fatal("the database exists before Migrate")
	}
	s = migrated(t)
	ctx := context.Background()
	if err := s.conn.Exec(ctx, "DROP TABLE allocations"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := s.Apply(ctx, allocBatch(2))
	var ex *ch.Exception
	if !errors.As(err, &ex) || ex.Code != 60 { // UNKNOWN_TABLE
		t.Fatalf("Apply into a dropped table = %v, want exception 60", err)
	}
	if !strings.Contains(err.Error(), "attempt 1") || time.Since(start) > insertBackoff {
		t.Errorf("retried a permanent error: %v after %v", err, time.Since(start))
	}
	// A cancelled context stops at once too.
	c, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Apply(c, fullRow()); err == nil {
		t.Error("Apply with a cancelled context succeeded")
	}
}

func fullRow() store.Batch {
	return store.Batch{Results: []store.Result{{RequestID: "x", Status: "optimal"}}}
}

// Sub-second order survives DateTime's seconds: the *_ns columns carry it.
func TestSubSecondOrder(t *testing.T) {
	s := migrated(t)
	ctx := context.Background()
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var rs []store.Result
	for i, id := range []string{"a", "b", "c", "d"} {
		rs = append(rs, store.Result{RequestID: id, Status: "optimal", ResultTime: at.Add(time.Duration(4-i) * time.Nanosecond)})
	}
	if err := s.Apply(ctx, store.Batch{Results: rs}); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.Results(ctx, store.ResultQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range got {
		order = append(order, r.RequestID)
		if r.ResultTime.Nanosecond() == 0 {
			t.Errorf("%s lost its nanoseconds: %v", r.RequestID, r.ResultTime)
		}
	}
	if strings.Join(order, "") != "abcd" {
		t.Errorf("order %v, want a b c d (newest first)", order)
	}
	var secs uint32
	if err := s.conn.QueryRow(ctx, "SELECT toUInt32(max(result_time)) FROM results").Scan(&secs); err != nil {
		t.Fatal(err)
	}
	if int64(secs) != at.Unix() {
		t.Errorf("result_time = %d, want %d", secs, at.Unix())
	}
}

func TestOpenRejectsBadDatabaseName(t *testing.T) {
	if _, err := Open(context.Background(), Config{Database: "x; DROP DATABASE y"}); err == nil {
		t.Error("Open accepted a database name that is not an identifier")
	}
}

func BenchmarkApplyAllocations(b *testing.B) {
	s := openFresh(b)
	if err := s.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	storetest.BenchApplyAllocations(b, s)
}

// heldBatch allocates channels a..e of request id, with checkpoint t/0 = offset.
func heldBatch(id string, offset int64, more bool) store.Batch {
	b := allocBatch(5)
	for i := range b.Allocations {
		b.Allocations[i].RequestID = id
	}
	b.Checkpoint["t"][0], b.More = offset, more
	return b
}

func checkpointIs(t *testing.T, s *Store, want int64) {
	t.Helper()
	cp, err := s.Checkpoint(context.Background(), "p")
	if err != nil {
		t.Fatal(err)
	}
	if got := cp["t"][0]; got != want {
		t.Errorf("checkpoint t/0 = %d, want %d", got, want)
	}
}

// Batches applied with More go into one INSERT per table, which the commit (the first
// Apply without More) ends: one part for all of them, and the checkpoint only then.
func TestHeldInsertsWriteOnePart(t *testing.T) {
	s := migrated(t)
	ctx := context.Background()
	for i := range 4 {
		if err := s.Apply(ctx, heldBatch(fmt.Sprint("r", i), int64(i+1), true)); err != nil {
			t.Fatal(err)
		}
	}
	checkpointIs(t, s, 0)
	if err := s.Apply(ctx, store.Batch{Projector: "p", Checkpoint: map[string]map[int]int64{"t": {0: 4}}}); err != nil {
		t.Fatal(err)
	}
	checkpointIs(t, s, 4)
	if n := count(t, s, "SELECT count() FROM allocations FINAL"); n != 20 {
		t.Errorf("%d allocations, want 20", n)
	}
	parts := count(t, s, "SELECT count() FROM system.parts WHERE database = '"+s.Database()+"' AND table = 'allocations'")
	if parts != 1 {
		t.Errorf("%d parts of allocations, want 1", parts)
	}
}

// A failure while rows are held drops every held INSERT and leaves the checkpoint where
// the last commit put it; the store then takes batches again. So does a context that
// ended under held rows, and Close.
func TestHeldInsertFailures(t *testing.T) {
	s := migrated(t)
	ctx := context.Background()
	if err := s.Apply(ctx, heldBatch("r0", 1, false)); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("connection lost")
	for _, step := range []string{"block", "end"} {
		s.holdHook = func(table, at string) error {
			if at == step {
				return boom
			}
			return nil
		}
		if err := s.Apply(ctx, heldBatch("r1", 2, true)); err != nil {
			if step != "block" || !errors.Is(err, boom) {
				t.Fatalf("%s: held Apply = %v", step, err)
			}
		} else if err := s.Apply(ctx, heldBatch("r2", 3, false)); !errors.Is(err, boom) {
			t.Fatalf("%s: commit = %v, want %v", step, err, boom)
		}
		if len(s.held) != 0 {
			t.Errorf("%s: %d INSERTs still held after a failure", step, len(s.held))
		}
		checkpointIs(t, s, 1)
	}
	s.holdHook = nil

	gone, cancel := context.WithCancel(ctx)
	if err := s.Apply(gone, heldBatch("r1", 2, true)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := s.Apply(ctx, heldBatch("r2", 3, false)); err == nil || !strings.Contains(err.Error(), "lost") {
		t.Fatalf("commit after the held rows' context ended = %v", err)
	}
	checkpointIs(t, s, 1)

	// The projector re-applies from the checkpoint.
	if err := s.Apply(ctx, heldBatch("r1", 2, true)); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, heldBatch("r2", 3, false)); err != nil {
		t.Fatal(err)
	}
	checkpointIs(t, s, 3)
	if n := count(t, s, "SELECT count() FROM allocations FINAL"); n != 15 {
		t.Errorf("%d allocations, want 15", n)
	}

	// Close drops held rows: a new store on the database sees the old checkpoint.
	if err := s.Apply(ctx, heldBatch("r3", 4, true)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	again, err := Open(ctx, s.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	checkpointIs(t, again, 3)
}

func TestCompressionChoice(t *testing.T) {
	for _, tc := range []struct {
		comp  string
		addr  []string
		lz4   bool
		error bool
	}{
		{"", []string{"127.0.0.1:9000"}, false, false},
		{"auto", []string{"localhost:9000", "[::1]:9000", "127.0.0.2:9000"}, false, false},
		{"", []string{"127.0.0.1:9000", "10.0.0.5:9000"}, true, false},
		{"auto", []string{"clickhouse:9000"}, true, false}, // a name is not resolved: may be remote
		{"lz4", []string{"127.0.0.1:9000"}, true, false},
		{"none", []string{"10.0.0.5:9000"}, false, false},
		{"zstd", []string{"127.0.0.1:9000"}, false, true},
	} {
		c, err := compression(Config{Addr: tc.addr, Compression: tc.comp})
		if (err != nil) != tc.error || (c != nil) != tc.lz4 {
			t.Errorf("%q to %v: %+v, %v; want LZ4 %v, error %v", tc.comp, tc.addr, c, err, tc.lz4, tc.error)
		}
	}
}

// The suite runs uncompressed (the server is on a loopback address): LZ4, as to a
// remote server, carries the same rows, held back or not.
func TestLZ4(t *testing.T) {
	s := migrated(t)
	cfg := s.Config()
	cfg.Compression = "lz4"
	z, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	ctx := context.Background()
	for _, b := range []store.Batch{heldBatch("r0", 1, false), heldBatch("r1", 2, true), heldBatch("r2", 3, false), fullRow()} {
		if err := z.Apply(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	checkpointIs(t, z, 3)
	for _, id := range []string{"r0", "r1", "r2"} {
		if as, err := z.Allocations(ctx, id); err != nil || len(as) != 5 {
			t.Errorf("Allocations(%s): %d rows, %v; want 5", id, len(as), err)
		}
	}
	if r, ok, err := z.Result(ctx, "x"); err != nil || !ok || r.Status != "optimal" {
		t.Errorf("Result(x) = %+v, %v, %v", r, ok, err)
	}
}
