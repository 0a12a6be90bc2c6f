// Package sqlite is the embedded read-model store: one SQLite file (modernc.org/sqlite,
// pure Go, no cgo) in WAL mode, with one writer connection and a pool of read-only
// connections, so readers never wait for the writer.
//
// Apply writes a batch's rows and the projector's checkpoint in one IMMEDIATE
// transaction, with INSERT ... ON CONFLICT DO UPDATE on each table's primary key (the
// row's key, see package store): a redelivered batch leaves one row per key, a later
// write wins, and the checkpoint is never visible without its rows nor the rows without
// it. synchronous=NORMAL: a power loss may lose the last transactions, but rows and
// checkpoint are lost together, and the projector re-applies them from the log.
//
// The writer connection is driven through SQLite's C API (see writer), the readers
// through database/sql. A replay's new generation, which nothing reads while it is
// built, is opened with OpenBuild instead, in a mode made for one writer.
//
// The schema is schemas/ddl/sqlite.sql (kept identical to this package's copy by a
// test). Every query is parameterised.
package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"regexp"
	"runtime"
	"strings"
	"sync"

	"github.com/atlas-mmm/atlas/projections/store"
	sqlite3 "modernc.org/sqlite/lib"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

//go:generate go run ../internal/ddlgen -in ../../../schemas/ddl/sqlite.sql -pkg sqlite -out ddl.go

// Store is the SQLite read model. It is safe for concurrent use.
type Store struct {
	mu   sync.Mutex // held while w and json are used
	w    *writer    // the one writer connection
	json []byte     // scratch for a row's JSON columns
	r    *sql.DB    // read-only connections

	path     string
	unsynced bool // a build's commits are not synced (see OpenBuild)

	// failBeforeCheckpoint, set by tests, runs inside Apply's transaction after the rows
	// and before the checkpoint; an error aborts the Apply.
	failBeforeCheckpoint func() error
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database file at path. ":memory:" gives a private
// in-memory database, for tests. Call Migrate before use.
func Open(path string) (*Store, error) {
	return open(path, liveMode)
}

// OpenBuild opens the file at path, creating it if needed, to build a replay's
// generation (projections/replay): one writer, and reads only of what it wrote.
//
// The file is written with a rollback journal instead of a write-ahead log: pages are
// written once, into the file, rather than into the log and again into the file, and a
// transaction that did not commit is rolled back from the journal when the file is next
// opened, so a build that a crash or a kill interrupts resumes from its checkpoint.
// Readers wait while a commit writes, which costs nothing here: the replay reads
// between its writes. Open puts the file back in WAL mode.
//
// Durability: commits are not synced (synchronous=OFF) while the build runs, which
// spares the writer, the replay's critical path, a good part of its time (see
// BENCHMARKS.md); a process crash loses nothing, since the system has every write, but
// a restart of the machine may lose writes of an unfinished build, in any order. So
// the file is marked with the boot it is being built in (its user_version, written and
// synced first), and recording the generation finished (SetGeneration) syncs the whole
// file and clears the mark in one commit. Opened for a build after another boot, a
// marked file returns ErrUnsynced: it may have lost writes, and the build must start
// over. Where the boot cannot be told (not Linux), or the generation is finished
// already, every commit is synced (synchronous=FULL).
func OpenBuild(path string) (*Store, error) {
	return openBuild(path, bootID())
}

// ErrUnsynced is returned by OpenBuild for an unfinished build that a restart of the
// machine interrupted: its file may have lost writes.
var ErrUnsynced = errors.New("sqlite: a build that a restart of the machine interrupted may have lost writes")

func openBuild(path, boot string) (*Store, error) {
	if path == ":memory:" {
		return nil, fmt.Errorf("sqlite: a build needs a file")
	}
	s, err := open(path, buildMode)
	if err != nil {
		return nil, err
	}
	if err := s.markBuild(boot); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// markBuild checks and sets the mark of an unsynced build (see OpenBuild) and stops
// syncing; it leaves a finished generation, or a file in an unknown boot, synced.
func (s *Store) markBuild(boot string) error {
	ctx := context.Background()
	var mark int32
	if err := s.r.QueryRowContext(ctx, "PRAGMA user_version").Scan(&mark); err != nil {
		return fmt.Errorf("sqlite: open for a build: %w", err)
	}
	var tables int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'generation'`).Scan(&tables); err != nil {
		return fmt.Errorf("sqlite: open for a build: %w", err)
	}
	var g store.Generation
	if tables > 0 { // else a new file, not migrated yet
		var err error
		if g, err = s.generation(ctx); err != nil {
			return fmt.Errorf("sqlite: open for a build: %w", err)
		}
	}
	tag := bootTag(boot)
	switch {
	case !g.Finished.IsZero():
		return nil // finished: nothing more to build, and already synced
	case mark != 0 && mark != tag:
		return fmt.Errorf("%w (%s)", ErrUnsynced, s.path)
	case boot == "":
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if mark == 0 {
		// Synced (synchronous=FULL still) before any unsynced write.
		if err := s.w.exec(fmt.Sprintf("PRAGMA user_version = %d", tag)); err != nil {
			return fmt.Errorf("sqlite: open for a build: %w", err)
		}
	}
	if err := s.w.exec("PRAGMA synchronous=OFF"); err != nil {
		return fmt.Errorf("sqlite: open for a build: %w", err)
	}
	s.unsynced = true
	return nil
}

// bootID identifies the machine's current boot ("" where unknown).
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// bootTag is boot as a non-zero user_version.
func bootTag(boot string) int32 {
	return int32(crc32.ChecksumIEEE([]byte(boot)) | 1)
}

type mode int

const (
	liveMode mode = iota
	buildMode
)

// pragmas are the writer connection's settings in mode m. temp_store=2 keeps statement
// journals in memory: a multi-row upsert needs one to undo itself on failure, and
// spilled to a temporary file it cost a fifth of an Apply's time in writes
// (bench/replay); nothing in it outlives the statement, so durability is unchanged.
// page_size applies to a new file.
func (m mode) pragmas() string {
	const common = "PRAGMA page_size=16384; PRAGMA cache_size=-32768; PRAGMA temp_store=2; "
	if m == buildMode {
		return common + "PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL" // see OpenBuild
	}
	return common + "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"
}

// busyTimeout is how long a connection waits for a lock another holds.
const busyTimeout = 10000 // ms

// lockErr is err, or, when ctx is done and err is SQLite's "database is locked" (a
// wait for a lock that gave up, see writer.watch), ctx's error with SQLite's.
func lockErr(ctx context.Context, err error) error {
	var se *sqliteError
	if ctx.Err() != nil && errors.As(err, &se) && se.Code&0xff == sqlite3.SQLITE_BUSY {
		return fmt.Errorf("gave up waiting for the database lock: %w (%w)", ctx.Err(), err)
	}
	return err
}

func open(path string, m mode) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: bad path %q", path)
	}
	filename, vfs, readers := path, "", path
	if path == ":memory:" {
		// A database of SQLite's memdb VFS that the writer and the readers share: a
		// name starting with "/" is shared by the connections of the process, and it
		// lives as long as one of them is open. (No WAL in memory: readers and the
		// writer take turns, waiting up to the busy timeout.)
		var b [8]byte
		_, _ = rand.Read(b[:])
		filename, vfs = "/atlas-"+hex.EncodeToString(b[:]), "memdb"
		readers = "file:" + filename + "?vfs=memdb&"
	} else {
		readers += "?"
	}
	// Open the writer first: it sets the journal mode before any reader opens the file.
	w, err := openWriter(filename, vfs)
	if err != nil {
		return nil, err
	}
	setup := "PRAGMA journal_mode=MEMORY"
	if vfs == "" {
		setup = m.pragmas()
	}
	if err := w.setBusy(busyTimeout); err != nil {
		w.close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := w.exec(setup); err != nil {
		w.close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", fmt.Sprintf("%s_busy_timeout=%d&_query_only=1", readers, busyTimeout))
	if err != nil {
		w.close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	n := max(4, 2*runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	return &Store{w: w, r: r, path: path}, nil
}

// Migrate creates the tables and indexes (schemas/ddl/sqlite.sql).
func (s *Store) Migrate(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.w.watch(ctx)()
	for _, stmt := range store.SplitSQL(DDL) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.w.exec(stmt); err != nil {
			return fmt.Errorf("sqlite: migrate: %w", lockErr(ctx, err))
		}
	}
	return nil
}

// Ping checks the writer and the readers.
func (s *Store) Ping(ctx context.Context) error {
	s.mu.Lock()
	err := s.w.exec("SELECT 1")
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	var one int
	if err := s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error {
	err := s.r.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(err, s.w.close())
}

const (
	upsertResult = `INSERT INTO results (request_id, model_id, model_version, model_hash, status, objective,
	total_spend, expected, upper_bound, lower_bound, gap, messages, errors, rejected,
	request_time_ns, result_time_ns, event_id, log_partition, log_offset, data)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (request_id) DO UPDATE SET model_id = excluded.model_id, model_version = excluded.model_version,
	model_hash = excluded.model_hash, status = excluded.status, objective = excluded.objective,
	total_spend = excluded.total_spend, expected = excluded.expected, upper_bound = excluded.upper_bound,
	lower_bound = excluded.lower_bound, gap = excluded.gap, messages = excluded.messages,
	errors = excluded.errors, rejected = excluded.rejected, request_time_ns = excluded.request_time_ns,
	result_time_ns = excluded.result_time_ns, event_id = excluded.event_id,
	log_partition = excluded.log_partition, log_offset = excluded.log_offset, data = excluded.data`

	upsertAllocation = `INSERT INTO allocations (request_id, channel, spend, response, roi, mroi, at_bound)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (request_id, channel) DO UPDATE SET spend = excluded.spend, response = excluded.response,
	roi = excluded.roi, mroi = excluded.mroi, at_bound = excluded.at_bound`

	upsertModel = `INSERT INTO models (model_id, version, hash, retired, published_ns, event_id, log_partition, log_offset, data)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (model_id, version) DO UPDATE SET hash = excluded.hash, retired = excluded.retired,
	published_ns = excluded.published_ns, event_id = excluded.event_id,
	log_partition = excluded.log_partition, log_offset = excluded.log_offset, data = excluded.data`

	upsertAudit = `INSERT INTO audit (event_id, log_topic, log_partition, log_offset, request_id, type, key, subject,
	time_ns, content_hash, model_id, raw)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (event_id, log_topic, log_partition, log_offset) DO UPDATE SET request_id = excluded.request_id,
	type = excluded.type, key = excluded.key, subject = excluded.subject, time_ns = excluded.time_ns,
	content_hash = excluded.content_hash, model_id = excluded.model_id, raw = excluded.raw`

	upsertDeadLetter = `INSERT INTO dead_letters (log_topic, log_partition, log_offset, reason, time_ns, raw)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (log_topic, log_partition, log_offset) DO UPDATE SET reason = excluded.reason,
	time_ns = excluded.time_ns, raw = excluded.raw`

	upsertCheckpoint = `INSERT INTO checkpoints (projector, log_topic, log_partition, next_offset)
VALUES (?, ?, ?, ?)
ON CONFLICT (projector, log_topic, log_partition) DO UPDATE SET next_offset = excluded.next_offset`

	upsertGeneration = `INSERT INTO generation (id, body) VALUES (1, ?)
ON CONFLICT (id) DO UPDATE SET body = excluded.body`
)

// Apply writes the batch and its checkpoint in one transaction.
func (s *Store) Apply(ctx context.Context, b store.Batch) error {
	if err := store.Validate(b); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.w.watch(ctx)()
	if err := s.w.exec("BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("sqlite: apply: %w", lockErr(ctx, err))
	}
	if err := s.apply(ctx, b); err != nil {
		s.w.rollback()
		return fmt.Errorf("sqlite: apply: %w", lockErr(ctx, err))
	}
	if err := s.w.exec("COMMIT"); err != nil {
		s.w.rollback()
		return fmt.Errorf("sqlite: apply: commit: %w", lockErr(ctx, err))
	}
	return nil
}

// rowsPerStatement is how many rows one INSERT carries at most: a statement per row
// spends more time starting statements than inserting, and a statement's journal (see
// pragmas) holds the pages it changes, fewer per row the more rows share them (measured
// with bench/replay: 8 rows 20% slower than 64, 256 4% faster). 256 rows of at most 20
// columns stay far below SQLite's limit of 32766 parameters.
const rowsPerStatement = 256

var valuesRE = regexp.MustCompile(`VALUES (\([?, ]*\))`)

// multiRow turns an INSERT of one row (VALUES (?, ...)) into one of n rows. An upsert
// of several rows applies them in order, so a later row with the same key still wins.
func multiRow(query string, n int) string {
	m := valuesRE.FindStringSubmatchIndex(query)
	if m == nil {
		panic("sqlite: no VALUES (...) in " + query)
	}
	row := query[m[2]:m[3]]
	return query[:m[2]] + strings.Repeat(row+", ", n-1) + row + query[m[3]:]
}

// insert runs query (an INSERT of one row) for n rows in order, in statements of
// rowsPerStatement rows and, for the rest, of halving sizes (so that a few statements
// serve every batch size); bind binds row i's values.
func (s *Store) insert(ctx context.Context, query string, n int, bind func(v *binder, i int) error) error {
	for start, k := 0, rowsPerStatement; start < n; start += k {
		if err := ctx.Err(); err != nil {
			return err
		}
		for k > n-start {
			k /= 2
		}
		st, err := s.w.prepare(query, k)
		if err != nil {
			return err
		}
		v := s.w.binder(st)
		for i := start; i < start+k; i++ {
			if err := bind(v, i); err != nil {
				return err
			}
		}
		if err := s.w.run(st, v); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) apply(ctx context.Context, b store.Batch) error {
	err := s.insert(ctx, upsertResult, len(b.Results), func(v *binder, i int) error {
		r := &b.Results[i]
		// The JSON columns, encoded one after the other into s.json.
		j, err := store.AppendJSON(s.json[:0], r.Expected, len(r.Expected))
		if err != nil {
			return fmt.Errorf("results[%d].expected: %w", i, err)
		}
		e1 := len(j)
		if j, err = store.AppendJSON(j, r.Messages, len(r.Messages)); err != nil {
			return fmt.Errorf("results[%d].messages: %w", i, err)
		}
		e2 := len(j)
		if j, err = store.AppendJSON(j, r.Errors, len(r.Errors)); err != nil {
			return fmt.Errorf("results[%d].errors: %w", i, err)
		}
		s.json = j
		expected, messages, errs := j[:e1], j[e1:e2], j[e2:]
		v.text(r.RequestID)
		v.text(r.ModelID)
		v.int(int64(r.ModelVersion))
		v.text(r.ModelHash)
		v.text(r.Status)
		v.text(r.Objective)
		v.float(r.TotalSpend)
		v.textBytes(expected)
		v.floatp(r.UpperBound)
		v.floatp(r.LowerBound)
		v.float(r.Gap)
		v.textBytes(messages)
		v.textBytes(errs)
		v.bool(r.Rejected)
		v.int(store.UnixNanos(r.RequestTime))
		v.int(store.UnixNanos(r.ResultTime))
		v.text(r.EventID)
		v.int(int64(r.Partition))
		v.int(r.Offset)
		v.textBytes(r.Data)
		return nil
	})
	if err != nil {
		return fmt.Errorf("results: %w", err)
	}
	err = s.insert(ctx, upsertAllocation, len(b.Allocations), func(v *binder, i int) error {
		a := &b.Allocations[i]
		v.text(a.RequestID)
		v.text(a.Channel)
		v.float(a.Spend)
		v.float(a.Response)
		v.floatp(a.ROI)
		v.floatp(a.MROI)
		v.text(a.AtBound)
		return nil
	})
	if err != nil {
		return fmt.Errorf("allocations: %w", err)
	}
	err = s.insert(ctx, upsertModel, len(b.Models), func(v *binder, i int) error {
		m := &b.Models[i]
		v.text(m.ModelID)
		v.int(int64(m.Version))
		v.text(m.Hash)
		v.bool(m.Retired)
		v.int(store.UnixNanos(m.Published))
		v.text(m.EventID)
		v.int(int64(m.Partition))
		v.int(m.Offset)
		v.textBytes(m.Data)
		return nil
	})
	if err != nil {
		return fmt.Errorf("models: %w", err)
	}
	err = s.insert(ctx, upsertAudit, len(b.Audit), func(v *binder, i int) error {
		e := &b.Audit[i]
		v.text(e.EventID)
		v.text(e.Topic)
		v.int(int64(e.Partition))
		v.int(e.Offset)
		v.text(e.RequestID)
		v.text(e.Type)
		v.text(e.Key)
		v.text(e.Subject)
		v.int(store.UnixNanos(e.Time))
		v.text(e.ContentHash)
		v.text(e.ModelID)
		v.textBytes(e.Raw)
		return nil
	})
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	err = s.insert(ctx, upsertDeadLetter, len(b.DeadLetters), func(v *binder, i int) error {
		d := &b.DeadLetters[i]
		v.text(d.Topic)
		v.int(int64(d.Partition))
		v.int(d.Offset)
		v.text(d.Reason)
		v.int(store.UnixNanos(d.Time))
		v.blob(d.Raw)
		return nil
	})
	if err != nil {
		return fmt.Errorf("dead letters: %w", err)
	}
	if s.failBeforeCheckpoint != nil {
		if err := s.failBeforeCheckpoint(); err != nil {
			return err
		}
	}
	type cp struct {
		topic     string
		partition int
		next      int64
	}
	var cps []cp
	for topic, parts := range b.Checkpoint {
		for p, o := range parts {
			cps = append(cps, cp{topic, p, o})
		}
	}
	err = s.insert(ctx, upsertCheckpoint, len(cps), func(v *binder, i int) error {
		v.text(b.Projector)
		v.text(cps[i].topic)
		v.int(int64(cps[i].partition))
		v.int(cps[i].next)
		return nil
	})
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// Checkpoint returns the projector's checkpoint.
func (s *Store) Checkpoint(ctx context.Context, projector string) (map[string]map[int]int64, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT log_topic, log_partition, next_offset FROM checkpoints WHERE projector = ?`, projector)
	if err != nil {
		return nil, fmt.Errorf("sqlite: checkpoint: %w", err)
	}
	defer rows.Close()
	out := map[string]map[int]int64{}
	for rows.Next() {
		var topic string
		var p int
		var o int64
		if err := rows.Scan(&topic, &p, &o); err != nil {
			return nil, fmt.Errorf("sqlite: checkpoint: %w", err)
		}
		if out[topic] == nil {
			out[topic] = map[int]int64{}
		}
		out[topic][p] = o
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: checkpoint: %w", err)
	}
	return out, nil
}

const resultColumns = `request_id, model_id, model_version, model_hash, status, objective, total_spend,
	expected, upper_bound, lower_bound, gap, messages, errors, rejected, request_time_ns, result_time_ns,
	event_id, log_partition, log_offset, data`

func scanResult(sc interface{ Scan(...any) error }) (store.Result, error) {
	var r store.Result
	var expected, messages, errs, data string
	var requestNs, resultNs int64
	err := sc.Scan(&r.RequestID, &r.ModelID, &r.ModelVersion, &r.ModelHash, &r.Status, &r.Objective,
		&r.TotalSpend, &expected, &r.UpperBound, &r.LowerBound, &r.Gap, &messages, &errs, &r.Rejected,
		&requestNs, &resultNs, &r.EventID, &r.Partition, &r.Offset, &data)
	if err != nil {
		return r, err
	}
	if err := store.DecodeJSON(expected, &r.Expected); err != nil {
		return r, fmt.Errorf("result %s: expected: %w", r.RequestID, err)
	}
	if err := store.DecodeJSON(messages, &r.Messages); err != nil {
		return r, fmt.Errorf("result %s: messages: %w", r.RequestID, err)
	}
	if err := store.DecodeJSON(errs, &r.Errors); err != nil {
		return r, fmt.Errorf("result %s: errors: %w", r.RequestID, err)
	}
	r.RequestTime = store.FromUnixNanos(requestNs)
	r.ResultTime = store.FromUnixNanos(resultNs)
	r.Data = store.Raw(data)
	return r, nil
}

// Result returns one result.
func (s *Store) Result(ctx context.Context, requestID string) (store.Result, bool, error) {
	r, err := scanResult(s.r.QueryRowContext(ctx,
		`SELECT `+resultColumns+` FROM results WHERE request_id = ?`, requestID))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Result{}, false, nil
	}
	if err != nil {
		return store.Result{}, false, fmt.Errorf("sqlite: result: %w", err)
	}
	return r, true, nil
}

// Results lists results newest first, a page at a time.
func (s *Store) Results(ctx context.Context, q store.ResultQuery) ([]store.Result, string, error) {
	limit := store.Limit(q.Limit)
	where, args, err := store.ResultFilter(q)
	if err != nil {
		return nil, "", err
	}
	query := `SELECT ` + resultColumns + ` FROM results`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY result_time_ns DESC, request_id DESC LIMIT ?"
	args = append(args, limit+1)
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: results: %w", err)
	}
	out, err := store.Collect(rows, func(rows store.Rows) (store.Result, error) { return scanResult(rows) })
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: results: %w", err)
	}
	var next string
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = store.EncodeCursor(store.Cursor{TimeNanos: store.UnixNanos(last.ResultTime), RequestID: last.RequestID})
	}
	return out, next, nil
}

// Allocations returns a result's channels by name.
func (s *Store) Allocations(ctx context.Context, requestID string) ([]store.Allocation, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT request_id, channel, spend, response, roi, mroi, at_bound
FROM allocations WHERE request_id = ? ORDER BY channel`, requestID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: allocations: %w", err)
	}
	out, err := store.Collect(rows, func(rows store.Rows) (store.Allocation, error) {
		var a store.Allocation
		if err := rows.Scan(&a.RequestID, &a.Channel, &a.Spend, &a.Response, &a.ROI, &a.MROI, &a.AtBound); err != nil {
			return a, err
		}
		return a, nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: allocations: %w", err)
	}
	return out, nil
}

// Models returns every model version by model id then version.
func (s *Store) Models(ctx context.Context) ([]store.Model, error) {
	return s.models(ctx, `SELECT model_id, version, hash, retired, published_ns, event_id, log_partition, log_offset, data
FROM models ORDER BY model_id, version`)
}

// ModelVersions returns one model's versions in order.
func (s *Store) ModelVersions(ctx context.Context, modelID string) ([]store.Model, error) {
	return s.models(ctx, `SELECT model_id, version, hash, retired, published_ns, event_id, log_partition, log_offset, data
FROM models WHERE model_id = ? ORDER BY version`, modelID)
}

func (s *Store) models(ctx context.Context, query string, args ...any) ([]store.Model, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: models: %w", err)
	}
	out, err := store.Collect(rows, func(rows store.Rows) (store.Model, error) {
		var m store.Model
		var ns int64
		var data string
		if err := rows.Scan(&m.ModelID, &m.Version, &m.Hash, &m.Retired, &ns, &m.EventID, &m.Partition, &m.Offset, &data); err != nil {
			return m, err
		}
		m.Published = store.FromUnixNanos(ns)
		m.Data = store.Raw(data)
		return m, nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: models: %w", err)
	}
	return out, nil
}

// Audit returns a request's events in log order.
func (s *Store) Audit(ctx context.Context, requestID string) ([]store.AuditEvent, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT event_id, type, log_topic, log_partition, log_offset, key, subject,
	time_ns, content_hash, request_id, model_id, raw
FROM audit WHERE request_id = ? ORDER BY time_ns, log_topic, log_partition, log_offset, event_id`, requestID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit: %w", err)
	}
	out, err := store.Collect(rows, func(rows store.Rows) (store.AuditEvent, error) {
		var e store.AuditEvent
		var ns int64
		var raw string
		if err := rows.Scan(&e.EventID, &e.Type, &e.Topic, &e.Partition, &e.Offset, &e.Key, &e.Subject,
			&ns, &e.ContentHash, &e.RequestID, &e.ModelID, &raw); err != nil {
			return e, err
		}
		e.Time = store.FromUnixNanos(ns)
		e.Raw = store.Raw(raw)
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit: %w", err)
	}
	return out, nil
}

// DeadLetters returns the newest dead letters first.
func (s *Store) DeadLetters(ctx context.Context, limit int) ([]store.DeadLetter, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT log_topic, log_partition, log_offset, reason, time_ns, raw
FROM dead_letters ORDER BY time_ns DESC, log_topic DESC, log_partition DESC, log_offset DESC LIMIT ?`,
		store.Limit(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: dead letters: %w", err)
	}
	out, err := store.Collect(rows, func(rows store.Rows) (store.DeadLetter, error) {
		var d store.DeadLetter
		var ns int64
		var raw []byte
		if err := rows.Scan(&d.Topic, &d.Partition, &d.Offset, &d.Reason, &ns, &raw); err != nil {
			return d, err
		}
		d.Time = store.FromUnixNanos(ns)
		d.Raw = string(raw)
		return d, nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: dead letters: %w", err)
	}
	return out, nil
}

// Generation returns the generation the file records (zero when none).
func (s *Store) Generation(ctx context.Context) (store.Generation, error) {
	g, err := s.generation(ctx)
	if err != nil {
		return g, fmt.Errorf("sqlite: generation: %w", err)
	}
	return g, nil
}

func (s *Store) generation(ctx context.Context) (store.Generation, error) {
	var body string
	err := s.r.QueryRowContext(ctx, `SELECT body FROM generation WHERE id = 1`).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Generation{}, nil
	}
	if err != nil {
		return store.Generation{}, err
	}
	return store.DecodeGeneration(body)
}

// SetGeneration records g. For a build whose commits are not synced (see OpenBuild),
// recording it finished syncs the whole file and clears the build's mark in the same
// commit.
func (s *Store) SetGeneration(ctx context.Context, g store.Generation) error {
	body, err := store.EncodeGeneration(g)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.w.watch(ctx)()
	finish := s.unsynced && !g.Finished.IsZero()
	if err := s.setGeneration(body, finish); err != nil {
		return fmt.Errorf("sqlite: set generation: %w", lockErr(ctx, err))
	}
	if finish {
		s.unsynced = false
	}
	return nil
}

func (s *Store) setGeneration(body string, finish bool) error {
	if finish {
		// The commit's fsync of the file writes out every page the unsynced commits
		// left to the system.
		if err := s.w.exec("PRAGMA synchronous=FULL; BEGIN IMMEDIATE; PRAGMA user_version = 0"); err != nil {
			s.w.rollback()
			return err
		}
	}
	st, err := s.w.prepare(upsertGeneration, 1)
	if err == nil {
		v := s.w.binder(st)
		v.text(body)
		err = s.w.run(st, v)
	}
	if finish {
		if err == nil {
			err = s.w.exec("COMMIT")
		}
		if err != nil {
			s.w.rollback()
		}
	}
	return err
}

// Quiesce folds the write-ahead log of the database file at path into the file and
// leaves it in rollback-journal mode, with no -wal or -shm file beside it: the file
// alone then holds the database and can be renamed (a replay's switch swaps files).
// Open puts it back in WAL mode. It fails when another connection, in this process or
// another, has the file open, since SQLite leaves WAL mode only with none.
func Quiesce(ctx context.Context, path string) error {
	if path == "" || path == ":memory:" || strings.ContainsAny(path, "?#") {
		return fmt.Errorf("sqlite: bad path %q", path)
	}
	db, err := sql.Open("sqlite", path+"?_busy_timeout=5000")
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	db.SetMaxOpenConns(1)
	defer db.Close()
	if _, err := db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return fmt.Errorf("sqlite: quiesce %s: %w", path, err)
	}
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode=DELETE").Scan(&mode); err != nil {
		return fmt.Errorf("sqlite: quiesce %s: %w", path, err)
	}
	if mode != "delete" {
		return fmt.Errorf("sqlite: quiesce %s: still in %s mode: another process has it open (stop atlas serve/project/api)", path, mode)
	}
	return db.Close()
}
