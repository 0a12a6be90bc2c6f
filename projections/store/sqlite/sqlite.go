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
// The schema is schemas/ddl/sqlite.sql (kept identical to this package's copy by a
// test). Every query is parameterised.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"strings"

	"github.com/atlas-mmm/atlas/projections/store"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

//go:generate go run ../internal/ddlgen -in ../../../schemas/ddl/sqlite.sql -pkg sqlite -out ddl.go

// Store is the SQLite read model. It is safe for concurrent use.
type Store struct {
	w *sql.DB // the one writer connection
	r *sql.DB // read-only connections (the writer itself for ":memory:")

	// failBeforeCheckpoint, set by tests, runs inside Apply's transaction after the rows
	// and before the checkpoint; an error aborts the Apply.
	failBeforeCheckpoint func() error
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database file at path. ":memory:" gives a private
// in-memory database on a single connection, for tests. Call Migrate before use.
func Open(path string) (*Store, error) {
	return open(path, "&_journal_mode=WAL&_synchronous=NORMAL")
}

func open(path, durability string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: bad path %q", path)
	}
	common := "_busy_timeout=10000"
	if path == ":memory:" {
		db, err := sql.Open("sqlite", path+"?"+common+"&_txlock=immediate")
		if err != nil {
			return nil, fmt.Errorf("sqlite: %w", err)
		}
		db.SetMaxOpenConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
		return &Store{w: db, r: db}, nil
	}
	// temp_store(2) keeps statement journals in memory: a multi-row upsert needs one to
	// undo itself on failure, and spilled to a temporary file it cost a fifth of an
	// Apply's time in writes (bench/replay). Nothing in it outlives the statement, so
	// durability is unchanged.
	w, err := sql.Open("sqlite", path+"?"+common+"&_pragma=page_size(16384)&_pragma=cache_size(-32768)&_pragma=temp_store(2)"+durability+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	// Open the writer first: it switches the file to WAL before any reader opens it.
	if err := w.Ping(); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", path+"?"+common+"&_query_only=1")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	n := max(4, 2*runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	return &Store{w: w, r: r}, nil
}

// Migrate creates the tables and indexes (schemas/ddl/sqlite.sql).
func (s *Store) Migrate(ctx context.Context) error {
	for _, stmt := range store.SplitSQL(DDL) {
		if _, err := s.w.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("sqlite: migrate: %w", err)
		}
	}
	return nil
}

// Ping checks both connection pools.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
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
	var err error
	if s.r != s.w {
		err = s.r.Close()
	}
	return errors.Join(err, s.w.Close())
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
)

// Apply writes the batch and its checkpoint in one transaction.
func (s *Store) Apply(ctx context.Context, b store.Batch) error {
	if err := store.Validate(b); err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: apply: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := s.apply(ctx, tx, b); err != nil {
		return fmt.Errorf("sqlite: apply: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: apply: commit: %w", err)
	}
	return nil
}

// rowsPerStatement is how many rows one INSERT carries: a statement per row spends
// most of an Apply in database/sql and the driver rather than in SQLite (measured with
// bench/replay); 64 rows of at most 20 columns stay far below SQLite's limit of 32766
// parameters.
const rowsPerStatement = 64

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

// each runs query (an INSERT of one row) for n rows, rowsPerStatement at a time.
func each(ctx context.Context, tx *sql.Tx, query string, n int, args func(i int) ([]any, error)) error {
	var full *sql.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	var vals []any
	for start := 0; start < n; start += rowsPerStatement {
		k := min(rowsPerStatement, n-start)
		vals = vals[:0]
		for i := start; i < start+k; i++ {
			a, err := args(i)
			if err != nil {
				return err
			}
			vals = append(vals, a...)
		}
		st := full
		if k < rowsPerStatement || full == nil {
			var err error
			if st, err = tx.PrepareContext(ctx, multiRow(query, k)); err != nil {
				return err
			}
			if k == rowsPerStatement {
				full = st
			} else {
				defer st.Close()
			}
		}
		if _, err := st.ExecContext(ctx, vals...); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) apply(ctx context.Context, tx *sql.Tx, b store.Batch) error {
	err := each(ctx, tx, upsertResult, len(b.Results), func(i int) ([]any, error) {
		r := &b.Results[i]
		expected, err := store.EncodeJSON(r.Expected, len(r.Expected))
		if err != nil {
			return nil, fmt.Errorf("results[%d].expected: %w", i, err)
		}
		messages, err := store.EncodeJSON(r.Messages, len(r.Messages))
		if err != nil {
			return nil, fmt.Errorf("results[%d].messages: %w", i, err)
		}
		errs, err := store.EncodeJSON(r.Errors, len(r.Errors))
		if err != nil {
			return nil, fmt.Errorf("results[%d].errors: %w", i, err)
		}
		return []any{r.RequestID, r.ModelID, r.ModelVersion, r.ModelHash, r.Status, r.Objective,
			r.TotalSpend, expected, r.UpperBound, r.LowerBound, r.Gap, messages, errs, r.Rejected,
			store.UnixNanos(r.RequestTime), store.UnixNanos(r.ResultTime), r.EventID, r.Partition, r.Offset,
			string(r.Data)}, nil
	})
	if err != nil {
		return fmt.Errorf("results: %w", err)
	}
	err = each(ctx, tx, upsertAllocation, len(b.Allocations), func(i int) ([]any, error) {
		a := &b.Allocations[i]
		return []any{a.RequestID, a.Channel, a.Spend, a.Response, a.ROI, a.MROI, a.AtBound}, nil
	})
	if err != nil {
		return fmt.Errorf("allocations: %w", err)
	}
	err = each(ctx, tx, upsertModel, len(b.Models), func(i int) ([]any, error) {
		m := &b.Models[i]
		return []any{m.ModelID, m.Version, m.Hash, m.Retired, store.UnixNanos(m.Published), m.EventID,
			m.Partition, m.Offset, string(m.Data)}, nil
	})
	if err != nil {
		return fmt.Errorf("models: %w", err)
	}
	err = each(ctx, tx, upsertAudit, len(b.Audit), func(i int) ([]any, error) {
		e := &b.Audit[i]
		return []any{e.EventID, e.Topic, e.Partition, e.Offset, e.RequestID, e.Type, e.Key, e.Subject,
			store.UnixNanos(e.Time), e.ContentHash, e.ModelID, string(e.Raw)}, nil
	})
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	err = each(ctx, tx, upsertDeadLetter, len(b.DeadLetters), func(i int) ([]any, error) {
		d := &b.DeadLetters[i]
		return []any{d.Topic, d.Partition, d.Offset, d.Reason, store.UnixNanos(d.Time), []byte(d.Raw)}, nil
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
	err = each(ctx, tx, upsertCheckpoint, len(cps), func(i int) ([]any, error) {
		return []any{b.Projector, cps[i].topic, cps[i].partition, cps[i].next}, nil
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
	var body string
	err := s.r.QueryRowContext(ctx, `SELECT body FROM generation WHERE id = 1`).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Generation{}, nil
	}
	if err != nil {
		return store.Generation{}, fmt.Errorf("sqlite: generation: %w", err)
	}
	return store.DecodeGeneration(body)
}

// SetGeneration records g.
func (s *Store) SetGeneration(ctx context.Context, g store.Generation) error {
	body, err := store.EncodeGeneration(g)
	if err != nil {
		return err
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO generation (id, body) VALUES (1, ?)
ON CONFLICT (id) DO UPDATE SET body = excluded.body`, body)
	if err != nil {
		return fmt.Errorf("sqlite: set generation: %w", err)
	}
	return nil
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
