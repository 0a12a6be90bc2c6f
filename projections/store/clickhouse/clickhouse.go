// Package clickhouse is the read-model store on ClickHouse, over the native protocol
// (github.com/ClickHouse/clickhouse-go/v2), written for what ClickHouse 18.16 (Debian's
// package) and current releases both accept. The schema is schemas/ddl/clickhouse.sql
// (kept identical to this package's copy by a test); see its header for the type choices.
//
// Every table is a ReplacingMergeTree(row_version) ordered by the row's key. Apply gives
// each row a row_version from a per-store sequence that only grows (wall-clock
// nanoseconds, bumped past the last one issued), so a later write of a key wins and a
// re-inserted row (a redelivered batch, or a retried insert whose first attempt did
// land) is a duplicate that every read hides: reads use FINAL. ClickHouse has no
// transactions, so Apply writes the rows first and the checkpoint last: a crash or error
// in between leaves the old checkpoint, and the projector re-applies rows that are
// already there, which changes nothing visible. The checkpoint is never ahead of the rows.
//
// Each table's rows go in one INSERT naming its columns (required by 18.16), built with
// PrepareBatch and appended column by column. A batch cannot be reused after a failed
// Append or Send, so a failed insert is retried (up to 4 attempts, 100 ms backoff
// doubling) with a new batch rebuilt from the kept column slices. Errors that retrying
// cannot fix (syntax, unknown table or column, type mismatch, a cancelled context) are
// returned at once.
//
// Batches with More (a replay) are held instead: each table's rows go as a block of
// an INSERT kept open across Applies, ended before the checkpoint by the next Apply
// without More (see heldInsert). Those are not retried here: a failure drops the held
// rows, and the caller re-applies from the stored checkpoint.
package clickhouse

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"
	"unsafe"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/atlas-mmm/atlas/projections/store"
)

//go:generate go run ../internal/ddlgen -in ../../../schemas/ddl/clickhouse.sql -pkg clickhouse -out ddl.go

// Config says where the store lives.
type Config struct {
	Addr     []string // host:port of the native protocol; default 127.0.0.1:9000
	Database string   // default "atlas"; Migrate creates it when missing
	Username string   // default "default"
	Password string
	TLS      *tls.Config // nil for plain TCP
	// Compression of the native protocol's data blocks: "lz4", "none", or "" (auto):
	// none when every address is a loopback one, else LZ4. Compression trades CPU
	// on both ends for bandwidth, and a loopback connection has bandwidth to spare:
	// there LZ4 was 15% of a replay's CPU (bench/replay), for nothing.
	Compression string
}

// compression is cfg.Compression for the driver (nil: none).
func compression(cfg Config) (*ch.Compression, error) {
	lz4 := &ch.Compression{Method: ch.CompressionLZ4}
	switch cfg.Compression {
	case "lz4":
		return lz4, nil
	case "none":
		return nil, nil
	case "", "auto":
		for _, a := range cfg.Addr {
			host, _, err := net.SplitHostPort(a)
			if err != nil {
				host = a
			}
			if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
				return lz4, nil
			}
		}
		return nil, nil
	}
	return nil, fmt.Errorf("clickhouse: compression %q: use lz4, none or auto", cfg.Compression)
}

// Store is the ClickHouse read model. It is safe for concurrent use; Apply calls are
// serialised.
type Store struct {
	conn driver.Conn
	cfg  Config

	applyMu sync.Mutex             // one writer at a time
	held    map[string]*heldInsert // INSERTs kept open by Applies with More, by table (under applyMu)

	verMu   sync.Mutex
	lastVer uint64

	// Test hooks. sendHook, when set, sends each insert in place of batch.Send (it may
	// fail before or after calling send, as a lost connection would); failBeforeCheckpoint
	// runs after the rows and before the checkpoint (an error aborts the Apply).
	sendHook             func(table string, attempt int, send func() error) error
	failBeforeCheckpoint func() error
	// holdHook, when set, runs before a held INSERT sends a block ("block") and before
	// it ends ("end"); an error fails that step.
	holdHook func(table, step string) error
}

var _ store.Store = (*Store)(nil)

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Open returns a store; it connects lazily (call Ping to check the server, Migrate to
// create the database and tables).
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if len(cfg.Addr) == 0 {
		cfg.Addr = []string{"127.0.0.1:9000"}
	}
	if cfg.Database == "" {
		cfg.Database = "atlas"
	}
	if cfg.Username == "" {
		cfg.Username = "default"
	}
	if !identRE.MatchString(cfg.Database) {
		return nil, fmt.Errorf("clickhouse: database name %q: use letters, digits and _", cfg.Database)
	}
	conn, err := connect(cfg, cfg.Database)
	if err != nil {
		return nil, err
	}
	return &Store{conn: conn, cfg: cfg}, nil
}

func connect(cfg Config, database string) (driver.Conn, error) {
	comp, err := compression(cfg)
	if err != nil {
		return nil, err
	}
	conn, err := ch.Open(&ch.Options{
		Addr:             cfg.Addr,
		Auth:             ch.Auth{Database: database, Username: cfg.Username, Password: cfg.Password},
		TLS:              cfg.TLS,
		DialTimeout:      10 * time.Second,
		MaxOpenConns:     16,
		MaxIdleConns:     8,
		ConnMaxLifetime:  time.Hour,
		Compression:      comp,
		ConnOpenStrategy: ch.ConnOpenInOrder,
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	return conn, nil
}

// Ping checks that the server answers with the configured database.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.conn.Ping(ctx); err != nil {
		return fmt.Errorf("clickhouse: %w", err)
	}
	return nil
}

// Close drops the rows Applies with More hold back, then closes the connections.
func (s *Store) Close() error {
	s.applyMu.Lock()
	s.dropHeld()
	s.applyMu.Unlock()
	return s.conn.Close()
}

// Exception codes (ClickHouse's ErrorCodes).
const (
	codeUnknownDatabase = 81
)

// Migrate creates the database when it is missing, then the tables.
func (s *Store) Migrate(ctx context.Context) error {
	if err := s.conn.Exec(ctx, "SELECT 1"); err != nil {
		var ex *ch.Exception
		if !errors.As(err, &ex) || ex.Code != codeUnknownDatabase {
			return fmt.Errorf("clickhouse: migrate: %w", err)
		}
		boot, err := connect(s.cfg, "")
		if err != nil {
			return err
		}
		err = boot.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+s.cfg.Database)
		boot.Close()
		if err != nil {
			return fmt.Errorf("clickhouse: migrate: %w", err)
		}
	}
	for _, stmt := range store.SplitSQL(DDL) {
		if err := s.conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("clickhouse: migrate: %w", err)
		}
	}
	return nil
}

// versions reserves n consecutive row versions and returns the first.
func (s *Store) versions(n int) uint64 {
	s.verMu.Lock()
	defer s.verMu.Unlock()
	base := uint64(time.Now().UnixNano())
	if base <= s.lastVer {
		base = s.lastVer + 1
	}
	s.lastVer = base + uint64(n)
	return base
}

// column is one column of an insert: its name and the values, one per row.
type column struct {
	name   string
	values any
}

// seq returns n versions from base.
func seq(base uint64, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = base + uint64(i)
	}
	return out
}

// The range of a DateTime column (seconds in a UInt32).
var (
	minDateTime = time.Unix(0, 0).UTC()
	maxDateTime = time.Unix(math.MaxUint32, 0).UTC()
)

// dateTime converts t for a DateTime column, whose value is for people and partitions
// only (the *_ns column holds the time): whole seconds, the zero time as the epoch, and
// times outside 1970–2106 clamped.
func dateTime(t time.Time) time.Time {
	switch {
	case t.IsZero() || t.Before(minDateTime):
		return minDateTime
	case t.After(maxDateTime):
		return maxDateTime
	}
	return t.UTC().Truncate(time.Second)
}

// insert is one table's rows of a batch, as columns.
type insert struct {
	table string
	n     int
	cols  []column
}

// Apply writes the rows, table by table, then the checkpoint; with b.More it may hold
// them back (see hold).
func (s *Store) Apply(ctx context.Context, b store.Batch) error {
	if err := store.Validate(b); err != nil {
		return err
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()

	ncp := 0
	for _, parts := range b.Checkpoint {
		ncp += len(parts)
	}
	ver := s.versions(b.Rows() + ncp)
	next := func(n int) []uint64 { v := seq(ver, n); ver += uint64(n); return v }

	// The tables' inserts run concurrently: a batch is mostly time the server spends
	// writing parts, which it does in parallel (measured with bench/replay). Versions
	// are drawn first, in table order, so they do not depend on the schedule.
	var ins []insert
	if n := len(b.Results); n > 0 {
		cols, err := resultColumns(b.Results, next(n))
		if err != nil {
			return fmt.Errorf("clickhouse: apply: results: %w", err)
		}
		ins = append(ins, insert{"results", n, cols})
	}
	if n := len(b.Allocations); n > 0 {
		ins = append(ins, insert{"allocations", n, allocationColumns(b.Allocations, next(n))})
	}
	if n := len(b.Models); n > 0 {
		ins = append(ins, insert{"models", n, modelColumns(b.Models, next(n))})
	}
	if n := len(b.Audit); n > 0 {
		ins = append(ins, insert{"audit", n, auditColumns(b.Audit, next(n))})
	}
	if n := len(b.DeadLetters); n > 0 {
		ins = append(ins, insert{"dead_letters", n, deadLetterColumns(b.DeadLetters, next(n))})
	}
	if b.More || len(s.held) > 0 {
		// Rows held back go into INSERTs kept open across Applies, one per table, and
		// are committed (the INSERTs ended, then the checkpoint written) by the first
		// Apply without More.
		if err := s.hold(ctx, ins); err != nil {
			s.dropHeld()
			return err
		}
		if b.More {
			return nil
		}
		if err := s.commitHeld(); err != nil {
			return err
		}
	} else {
		errs := make([]error, len(ins))
		var wg sync.WaitGroup
		for i, in := range ins {
			wg.Go(func() { errs[i] = s.insert(ctx, in.table, in.n, in.cols) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	if s.failBeforeCheckpoint != nil {
		if err := s.failBeforeCheckpoint(); err != nil {
			return fmt.Errorf("clickhouse: apply: %w", err)
		}
	}
	if ncp > 0 {
		var (
			projector = make([]string, 0, ncp)
			topic     = make([]string, 0, ncp)
			partition = make([]int64, 0, ncp)
			offset    = make([]int64, 0, ncp)
		)
		for t, parts := range b.Checkpoint {
			for p, o := range parts {
				projector = append(projector, b.Projector)
				topic = append(topic, t)
				partition = append(partition, int64(p))
				offset = append(offset, o)
			}
		}
		cols := []column{{"projector", projector}, {"log_topic", topic}, {"log_partition", partition},
			{"next_offset", offset}, {"row_version", next(ncp)}}
		if err := s.insert(ctx, "checkpoints", ncp, cols); err != nil {
			return err
		}
	}
	return nil
}

// text is JSON held as bytes, as a String column's value, without copying it: the
// driver copies the values into its own buffer when the column is appended, within
// Apply, during which the batch's rows do not change. (The copy this saves was 4% of a
// replay's CPU: the events' data and raw bytes are most of what it writes.)
func text(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func resultColumns(rs []store.Result, versions []uint64) ([]column, error) {
	n := len(rs)
	var (
		requestID    = make([]string, n)
		modelID      = make([]string, n)
		modelVersion = make([]int64, n)
		modelHash    = make([]string, n)
		status       = make([]string, n)
		objective    = make([]string, n)
		totalSpend   = make([]float64, n)
		expected     = make([]string, n)
		upper        = make([]*float64, n)
		lower        = make([]*float64, n)
		gap          = make([]float64, n)
		messages     = make([]string, n)
		errs         = make([]string, n)
		rejected     = make([]uint8, n)
		requestTime  = make([]time.Time, n)
		requestNs    = make([]int64, n)
		resultTime   = make([]time.Time, n)
		resultNs     = make([]int64, n)
		eventID      = make([]string, n)
		partition    = make([]int64, n)
		offset       = make([]int64, n)
		data         = make([]string, n)
	)
	for i := range rs {
		r := &rs[i]
		var err error
		if expected[i], err = store.EncodeJSON(r.Expected, len(r.Expected)); err != nil {
			return nil, fmt.Errorf("results[%d].expected: %w", i, err)
		}
		if messages[i], err = store.EncodeJSON(r.Messages, len(r.Messages)); err != nil {
			return nil, fmt.Errorf("results[%d].messages: %w", i, err)
		}
		if errs[i], err = store.EncodeJSON(r.Errors, len(r.Errors)); err != nil {
			return nil, fmt.Errorf("results[%d].errors: %w", i, err)
		}
		requestID[i], modelID[i], modelVersion[i], modelHash[i] = r.RequestID, r.ModelID, int64(r.ModelVersion), r.ModelHash
		status[i], objective[i], totalSpend[i] = r.Status, r.Objective, r.TotalSpend
		upper[i], lower[i], gap[i] = r.UpperBound, r.LowerBound, r.Gap
		if r.Rejected {
			rejected[i] = 1
		}
		requestTime[i], requestNs[i] = dateTime(r.RequestTime), store.UnixNanos(r.RequestTime)
		resultTime[i], resultNs[i] = dateTime(r.ResultTime), store.UnixNanos(r.ResultTime)
		eventID[i], partition[i], offset[i], data[i] = r.EventID, int64(r.Partition), r.Offset, text(r.Data)
	}
	return []column{
		{"request_id", requestID}, {"model_id", modelID}, {"model_version", modelVersion},
		{"model_hash", modelHash}, {"status", status}, {"objective", objective},
		{"total_spend", totalSpend}, {"expected", expected}, {"upper_bound", upper},
		{"lower_bound", lower}, {"gap", gap}, {"messages", messages}, {"errors", errs},
		{"rejected", rejected}, {"request_time", requestTime}, {"request_time_ns", requestNs},
		{"result_time", resultTime}, {"result_time_ns", resultNs}, {"event_id", eventID},
		{"log_partition", partition}, {"log_offset", offset}, {"data", data},
		{"row_version", versions},
	}, nil
}

func allocationColumns(as []store.Allocation, versions []uint64) []column {
	n := len(as)
	var (
		requestID = make([]string, n)
		channel   = make([]string, n)
		spend     = make([]float64, n)
		response  = make([]float64, n)
		roi       = make([]*float64, n)
		mroi      = make([]*float64, n)
		atBound   = make([]string, n)
	)
	for i := range as {
		a := &as[i]
		requestID[i], channel[i], spend[i], response[i] = a.RequestID, a.Channel, a.Spend, a.Response
		roi[i], mroi[i], atBound[i] = a.ROI, a.MROI, a.AtBound
	}
	return []column{{"request_id", requestID}, {"channel", channel}, {"spend", spend},
		{"response", response}, {"roi", roi}, {"mroi", mroi}, {"at_bound", atBound},
		{"row_version", versions}}
}

func modelColumns(ms []store.Model, versions []uint64) []column {
	n := len(ms)
	var (
		modelID   = make([]string, n)
		version   = make([]int64, n)
		hash      = make([]string, n)
		retired   = make([]uint8, n)
		published = make([]time.Time, n)
		publishNs = make([]int64, n)
		eventID   = make([]string, n)
		partition = make([]int64, n)
		offset    = make([]int64, n)
		data      = make([]string, n)
	)
	for i := range ms {
		m := &ms[i]
		modelID[i], version[i], hash[i] = m.ModelID, int64(m.Version), m.Hash
		if m.Retired {
			retired[i] = 1
		}
		published[i], publishNs[i] = dateTime(m.Published), store.UnixNanos(m.Published)
		eventID[i], partition[i], offset[i], data[i] = m.EventID, int64(m.Partition), m.Offset, text(m.Data)
	}
	return []column{{"model_id", modelID}, {"version", version}, {"hash", hash}, {"retired", retired},
		{"published", published}, {"published_ns", publishNs}, {"event_id", eventID},
		{"log_partition", partition}, {"log_offset", offset}, {"data", data}, {"row_version", versions}}
}

func auditColumns(es []store.AuditEvent, versions []uint64) []column {
	n := len(es)
	var (
		requestID   = make([]string, n)
		eventID     = make([]string, n)
		topic       = make([]string, n)
		partition   = make([]int64, n)
		offset      = make([]int64, n)
		typ         = make([]string, n)
		key         = make([]string, n)
		subject     = make([]string, n)
		tm          = make([]time.Time, n)
		tmNs        = make([]int64, n)
		contentHash = make([]string, n)
		modelID     = make([]string, n)
		raw         = make([]string, n)
	)
	for i := range es {
		e := &es[i]
		requestID[i], eventID[i], topic[i], partition[i], offset[i] = e.RequestID, e.EventID, e.Topic, int64(e.Partition), e.Offset
		typ[i], key[i], subject[i], tm[i], tmNs[i] = e.Type, e.Key, e.Subject, dateTime(e.Time), store.UnixNanos(e.Time)
		contentHash[i], modelID[i], raw[i] = e.ContentHash, e.ModelID, text(e.Raw)
	}
	return []column{{"request_id", requestID}, {"event_id", eventID}, {"log_topic", topic},
		{"log_partition", partition}, {"log_offset", offset}, {"type", typ}, {"key", key},
		{"subject", subject}, {"time", tm}, {"time_ns", tmNs}, {"content_hash", contentHash},
		{"model_id", modelID}, {"raw", raw}, {"row_version", versions}}
}

func deadLetterColumns(ds []store.DeadLetter, versions []uint64) []column {
	n := len(ds)
	var (
		topic     = make([]string, n)
		partition = make([]int64, n)
		offset    = make([]int64, n)
		reason    = make([]string, n)
		tm        = make([]time.Time, n)
		tmNs      = make([]int64, n)
		raw       = make([]string, n)
	)
	for i := range ds {
		d := &ds[i]
		topic[i], partition[i], offset[i], reason[i] = d.Topic, int64(d.Partition), d.Offset, d.Reason
		tm[i], tmNs[i], raw[i] = dateTime(d.Time), store.UnixNanos(d.Time), d.Raw
	}
	return []column{{"log_topic", topic}, {"log_partition", partition}, {"log_offset", offset},
		{"reason", reason}, {"time", tm}, {"time_ns", tmNs}, {"raw", raw}, {"row_version", versions}}
}

// Retry policy of an insert.
const (
	insertAttempts = 4
	insertBackoff  = 100 * time.Millisecond
)

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func insertQuery(table string, cols []column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	return "INSERT INTO " + table + " (" + strings.Join(names, ", ") + ")"
}

// insert writes n rows into table, retrying with a new batch built from cols.
func (s *Store) insert(ctx context.Context, table string, n int, cols []column) error {
	query := insertQuery(table, cols)
	backoff := insertBackoff
	for attempt := 1; ; attempt++ {
		err := s.insertOnce(ctx, table, attempt, query, n, cols)
		if err == nil {
			return nil
		}
		if attempt >= insertAttempts || !retryable(ctx, err) {
			return fmt.Errorf("clickhouse: insert %d rows into %s (attempt %d): %w", n, table, attempt, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("clickhouse: insert into %s: %w (after %v)", table, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

func (s *Store) insertOnce(ctx context.Context, table string, attempt int, query string, n int, cols []column) (err error) {
	batch, err := s.conn.PrepareBatch(ctx, query)
	if err != nil {
		return err
	}
	defer func() {
		if !batch.IsSent() {
			_ = batch.Abort()
		}
	}()
	if err := appendColumns(batch, n, cols); err != nil {
		return err
	}
	if s.sendHook != nil {
		return s.sendHook(table, attempt, batch.Send)
	}
	return batch.Send()
}

// appendColumns appends n rows, given as columns, to batch.
func appendColumns(batch driver.Batch, n int, cols []column) error {
	for i, c := range cols {
		if err := batch.Column(i).Append(c.values); err != nil {
			return permanentError{fmt.Errorf("column %s: %w", c.name, err)}
		}
	}
	if got := batch.Rows(); got != n {
		return permanentError{fmt.Errorf("batch has %d rows, want %d", got, n)}
	}
	return nil
}

// heldInsert is one table's INSERT kept open across Applies with More. Each Apply
// sends its rows as one block; the server gathers the blocks of an INSERT into parts
// of up to heldPartBytes (min_insert_block_size_bytes) and writes the rest when the
// INSERT ends. A read model rebuilt this way has a few large parts per table instead
// of one per table and batch: on 18.16 a part costs a file or two per column, and
// creating them, then merging the parts, was most of the server's work in a replay
// (bench/replay, perf). The blocks are not kept: a failure loses every row held since
// the last commit, which the projector then re-applies from the stored checkpoint.
type heldInsert struct {
	ctx   context.Context // the INSERT's: the driver ends it under this context
	batch driver.Batch
}

// heldPartBytes bounds the rows the server gathers for one part of a held INSERT
// (uncompressed). The default, 256 MiB, would let three tables' INSERTs hold most of a
// gigabyte of server memory, and the rows gathered are written when the INSERT ends,
// while the replay waits: at the end of a replay of 100,000 events that wait was
// 0.2-0.7 s with 16 MiB, 0.35-0.9 s with 32 and 0.7-1.1 s with 64 (bench/replay on
// a loaded machine); smaller parts mean more of them for the server to merge.
const heldPartBytes = 32 << 20

// hold sends each insert's rows as a block of its table's held INSERT, opening the
// INSERTs that are not open yet, concurrently. On error the caller drops the held
// INSERTs (their rows are lost).
func (s *Store) hold(ctx context.Context, ins []insert) error {
	for _, h := range s.held {
		if err := h.ctx.Err(); err != nil {
			return fmt.Errorf("clickhouse: apply: the rows held since an earlier Apply were lost with its context: %w", err)
		}
	}
	if s.held == nil {
		s.held = map[string]*heldInsert{}
	}
	opened := make([]*heldInsert, len(ins))
	errs := make([]error, len(ins))
	var wg sync.WaitGroup
	for i, in := range ins {
		h := s.held[in.table]
		wg.Go(func() {
			if h == nil {
				hctx := ch.Context(ctx, ch.WithSettings(ch.Settings{"min_insert_block_size_bytes": heldPartBytes}))
				batch, err := s.conn.PrepareBatch(hctx, insertQuery(in.table, in.cols))
				if err != nil {
					errs[i] = fmt.Errorf("clickhouse: insert into %s: %w", in.table, err)
					return
				}
				h = &heldInsert{ctx: ctx, batch: batch}
				opened[i] = h
			}
			errs[i] = s.sendBlock(h, in)
		})
	}
	wg.Wait()
	for i, h := range opened {
		if h != nil {
			s.held[ins[i].table] = h
		}
	}
	return errors.Join(errs...)
}

func (s *Store) sendBlock(h *heldInsert, in insert) error {
	if err := appendColumns(h.batch, in.n, in.cols); err != nil {
		return fmt.Errorf("clickhouse: insert %d rows into %s: %w", in.n, in.table, err)
	}
	if s.holdHook != nil {
		if err := s.holdHook(in.table, "block"); err != nil {
			return fmt.Errorf("clickhouse: insert %d rows into %s: %w", in.n, in.table, err)
		}
	}
	if err := h.batch.Flush(); err != nil {
		return fmt.Errorf("clickhouse: insert %d rows into %s: %w", in.n, in.table, err)
	}
	return nil
}

// commitHeld ends the held INSERTs, concurrently: once it returns nil the server has
// written every row they were sent.
func (s *Store) commitHeld() error {
	tables := make([]string, 0, len(s.held))
	for t := range s.held {
		tables = append(tables, t)
	}
	errs := make([]error, len(tables))
	var wg sync.WaitGroup
	for i, t := range tables {
		h := s.held[t]
		wg.Go(func() {
			if s.holdHook != nil {
				if err := s.holdHook(t, "end"); err != nil {
					errs[i] = fmt.Errorf("clickhouse: ending the insert into %s: %w", t, err)
					_ = h.batch.Abort()
					return
				}
			}
			if err := h.batch.Send(); err != nil {
				errs[i] = fmt.Errorf("clickhouse: ending the insert into %s: %w", t, err)
			}
		})
	}
	wg.Wait()
	s.held = nil
	return errors.Join(errs...)
}

// dropHeld abandons the held INSERTs: the driver closes their connections, and the
// server drops the rows it has not written yet.
func (s *Store) dropHeld() {
	for _, h := range s.held {
		_ = h.batch.Abort()
	}
	s.held = nil
}

// retryable tells whether an insert error may go away on a new attempt.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var perm permanentError
	if errors.As(err, &perm) {
		return false
	}
	var ex *ch.Exception
	if errors.As(err, &ex) {
		switch ex.Code {
		case 3, // UNEXPECTED_END_OF_FILE
			32,  // ATTEMPT_TO_READ_AFTER_EOF
			159, // TIMEOUT_EXCEEDED
			202, // TOO_MANY_SIMULTANEOUS_QUERIES
			203, // NO_FREE_CONNECTION
			209, // SOCKET_TIMEOUT
			210, // NETWORK_ERROR
			241, // MEMORY_LIMIT_EXCEEDED
			242, // TABLE_IS_READ_ONLY
			252, // TOO_MANY_PARTS
			319, // UNKNOWN_STATUS_OF_INSERT
			425: // SYSTEM_ERROR
			return true
		}
		return false
	}
	// Network and driver-level failures (a refused or dropped connection, EOF mid-batch,
	// an exhausted pool) have no common type: try again.
	return true
}

// readCtx is the context of every read: conditions are never moved to PREWHERE, which
// with FINAL could filter a row's older version in before replacing.
func readCtx(ctx context.Context) context.Context {
	return ch.Context(ctx, ch.WithSettings(ch.Settings{"optimize_move_to_prewhere": 0}))
}

// Checkpoint returns the projector's checkpoint.
func (s *Store) Checkpoint(ctx context.Context, projector string) (map[string]map[int]int64, error) {
	rows, err := s.conn.Query(readCtx(ctx),
		`SELECT log_topic, log_partition, next_offset FROM checkpoints FINAL WHERE projector = ?`, projector)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: checkpoint: %w", err)
	}
	defer rows.Close()
	out := map[string]map[int]int64{}
	for rows.Next() {
		var topic string
		var p, o int64
		if err := rows.Scan(&topic, &p, &o); err != nil {
			return nil, fmt.Errorf("clickhouse: checkpoint: %w", err)
		}
		if out[topic] == nil {
			out[topic] = map[int]int64{}
		}
		out[topic][int(p)] = o
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: checkpoint: %w", err)
	}
	return out, nil
}

const resultSelect = `SELECT request_id, model_id, model_version, model_hash, status, objective, total_spend,
	expected, upper_bound, lower_bound, gap, messages, errors, rejected, request_time_ns, result_time_ns,
	event_id, log_partition, log_offset, data
FROM results FINAL`

func scanResult(rows store.Rows) (store.Result, error) {
	var (
		r                          store.Result
		modelVersion, part, offset int64
		rejected                   uint8
		expected, messages, errs   string
		data                       string
		requestNs, resultNs        int64
	)
	err := rows.Scan(&r.RequestID, &r.ModelID, &modelVersion, &r.ModelHash, &r.Status, &r.Objective,
		&r.TotalSpend, &expected, &r.UpperBound, &r.LowerBound, &r.Gap, &messages, &errs, &rejected,
		&requestNs, &resultNs, &r.EventID, &part, &offset, &data)
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
	r.ModelVersion, r.Partition, r.Offset = int(modelVersion), int(part), offset
	r.Rejected = rejected != 0
	r.RequestTime, r.ResultTime = store.FromUnixNanos(requestNs), store.FromUnixNanos(resultNs)
	r.Data = store.Raw(data)
	return r, nil
}

func (s *Store) results(ctx context.Context, query string, args ...any) ([]store.Result, error) {
	rows, err := s.conn.Query(readCtx(ctx), query, args...)
	if err != nil {
		return nil, err
	}
	return store.Collect(rows, scanResult)
}

// Result returns one result.
func (s *Store) Result(ctx context.Context, requestID string) (store.Result, bool, error) {
	rs, err := s.results(ctx, resultSelect+` WHERE request_id = ?`, requestID)
	if err != nil {
		return store.Result{}, false, fmt.Errorf("clickhouse: result: %w", err)
	}
	if len(rs) == 0 {
		return store.Result{}, false, nil
	}
	return rs[0], true, nil
}

// Results lists results newest first, a page at a time.
func (s *Store) Results(ctx context.Context, q store.ResultQuery) ([]store.Result, string, error) {
	limit := store.Limit(q.Limit)
	where, args, err := store.ResultFilter(q)
	if err != nil {
		return nil, "", err
	}
	query := resultSelect
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY result_time_ns DESC, request_id DESC LIMIT ?"
	args = append(args, limit+1)
	out, err := s.results(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("clickhouse: results: %w", err)
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
	rows, err := s.conn.Query(readCtx(ctx), `SELECT request_id, channel, spend, response, roi, mroi, at_bound
FROM allocations FINAL WHERE request_id = ? ORDER BY channel`, requestID)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: allocations: %w", err)
	}
	out, err := store.Collect(rows, func(rows store.Rows) (store.Allocation, error) {
		var a store.Allocation
		if err := rows.Scan(&a.RequestID, &a.Channel, &a.Spend, &a.Response, &a.ROI, &a.MROI, &a.AtBound); err != nil {
			return a, err
		}
		return a, nil
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse: allocations: %w", err)
	}
	return out, nil
}

const modelSelect = `SELECT model_id, version, hash, retired, published_ns, event_id, log_partition, log_offset, data
FROM models FINAL`

// Models returns every model version by model id then version.
func (s *Store) Models(ctx context.Context) ([]store.Model, error) {
	return s.models(ctx, modelSelect+` ORDER BY model_id, version`)
}

// ModelVersions returns one model's versions in order.
func (s *Store) ModelVersions(ctx context.Context, modelID string) ([]store.Model, error) {
	return s.models(ctx, modelSelect+` WHERE model_id = ? ORDER BY version`, modelID)
}

func (s *Store) models(ctx context.Context, query string, args ...any) ([]store.Model, error) {
	rows, err := s.conn.Query(readCtx(ctx), query, args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: models: %w", err)
	}
	out, err := store.Collect(rows, func(rows store.Rows) (store.Model, error) {
		var (
			m                     store.Model
			version, part, offset int64
			retired               uint8
			ns                    int64
			data                  string
		)
		if err := rows.Scan(&m.ModelID, &version, &m.Hash, &retired, &ns, &m.EventID, &part, &offset, &data); err != nil {
			return m, err
		}
		m.Version, m.Retired, m.Partition, m.Offset = int(version), retired != 0, int(part), offset
		m.Published = store.FromUnixNanos(ns)
		m.Data = store.Raw(data)
		return m, nil
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse: models: %w", err)
	}
	return out, nil
}

// Audit returns a request's events in log order.
func (s *Store) Audit(ctx context.Context, requestID string) ([]store.AuditEvent, error) {
	rows, err := s.conn.Query(readCtx(ctx), `SELECT event_id, type, log_topic, log_partition, log_offset, key, subject,
	time_ns, content_hash, request_id, model_id, raw
FROM audit FINAL WHERE request_id = ?
ORDER BY time_ns, log_topic, log_partition, log_offset, event_id`, requestID)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: audit: %w", err)
	}
	out, err := store.Collect(rows, func(rows store.Rows) (store.AuditEvent, error) {
		var (
			e        store.AuditEvent
			part, ns int64
			raw      string
		)
		if err := rows.Scan(&e.EventID, &e.Type, &e.Topic, &part, &e.Offset, &e.Key, &e.Subject,
			&ns, &e.ContentHash, &e.RequestID, &e.ModelID, &raw); err != nil {
			return e, err
		}
		e.Partition = int(part)
		e.Time = store.FromUnixNanos(ns)
		e.Raw = store.Raw(raw)
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse: audit: %w", err)
	}
	return out, nil
}

// DeadLetters returns the newest dead letters first.
func (s *Store) DeadLetters(ctx context.Context, limit int) ([]store.DeadLetter, error) {
	rows, err := s.conn.Query(readCtx(ctx), `SELECT log_topic, log_partition, log_offset, reason, time_ns, raw
FROM dead_letters FINAL
ORDER BY time_ns DESC, log_topic DESC, log_partition DESC, log_offset DESC LIMIT ?`, store.Limit(limit))
	if err != nil {
		return nil, fmt.Errorf("clickhouse: dead letters: %w", err)
	}
	out, err := store.Collect(rows, func(rows store.Rows) (store.DeadLetter, error) {
		var (
			d        store.DeadLetter
			part, ns int64
		)
		if err := rows.Scan(&d.Topic, &part, &d.Offset, &d.Reason, &ns, &d.Raw); err != nil {
			return d, err
		}
		d.Partition = int(part)
		d.Time = store.FromUnixNanos(ns)
		return d, nil
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse: dead letters: %w", err)
	}
	return out, nil
}

// Generation returns the generation the tables record (zero when none).
func (s *Store) Generation(ctx context.Context) (store.Generation, error) {
	rows, err := s.conn.Query(readCtx(ctx), `SELECT body FROM generation FINAL WHERE id = 1`)
	if err != nil {
		return store.Generation{}, fmt.Errorf("clickhouse: generation: %w", err)
	}
	defer rows.Close()
	var body string
	for rows.Next() {
		if err := rows.Scan(&body); err != nil {
			return store.Generation{}, fmt.Errorf("clickhouse: generation: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return store.Generation{}, fmt.Errorf("clickhouse: generation: %w", err)
	}
	return store.DecodeGeneration(body)
}

// SetGeneration records g (a new row version: the latest wins).
func (s *Store) SetGeneration(ctx context.Context, g store.Generation) error {
	body, err := store.EncodeGeneration(g)
	if err != nil {
		return err
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	cols := []column{{"id", []uint8{1}}, {"body", []string{body}}, {"row_version", []uint64{s.versions(1)}}}
	return s.insert(ctx, "generation", 1, cols)
}

// Database is the database the store reads and writes.
func (s *Store) Database() string { return s.cfg.Database }

// Config is the store's configuration (with defaults filled in).
func (s *Store) Config() Config { return s.cfg }

// Tables are the tables Migrate creates (schemas/ddl/clickhouse.sql), which a switch
// of generations renames together.
func Tables() []string {
	var out []string
	for _, m := range createRE.FindAllStringSubmatch(DDL, -1) {
		out = append(out, m[1])
	}
	return out
}

var createRE = regexp.MustCompile(`(?m)^CREATE TABLE IF NOT EXISTS ([A-Za-z_][A-Za-z0-9_]*)`)

// Databases lists the server's databases whose name starts with prefix, sorted.
func (s *Store) Databases(ctx context.Context, prefix string) ([]string, error) {
	rows, err := s.conn.Query(ctx, `SELECT name FROM system.databases WHERE startsWith(name, ?) ORDER BY name`, prefix)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: databases: %w", err)
	}
	out, err := store.Collect(rows, func(rows store.Rows) (n string, err error) {
		err = rows.Scan(&n)
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse: databases: %w", err)
	}
	return out, nil
}

// DropDatabase drops database name with its tables; never the store's own.
func (s *Store) DropDatabase(ctx context.Context, name string) error {
	if !identRE.MatchString(name) || name == s.cfg.Database {
		return fmt.Errorf("clickhouse: refusing to drop database %q", name)
	}
	if err := s.conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
		return fmt.Errorf("clickhouse: drop database %s: %w", name, err)
	}
	return nil
}

// swapSuffix names a table in flight during SwapTables.
const swapSuffix = "__swap"

// SwapTables exchanges every table of Tables between the store's database and other in
// one RENAME TABLE statement: each table of the store's database moves to other under
// a temporary name, other's takes its place, and the temporary one takes other's.
// Both databases must hold every table (Migrate both first).
//
// ClickHouse 18.16 (Ordinary databases) renames a chain under a global lock with all
// the tables locked, so queries see either every old table or every new one; a chain
// is only left half done if the server itself dies in the middle. On current releases
// with Atomic databases a statement of several renames is not atomic as a whole
// (EXCHANGE TABLES is, one pair at a time): a query may see a mix for the instant the
// statement runs.
func (s *Store) SwapTables(ctx context.Context, other string) error {
	live := s.cfg.Database
	if !identRE.MatchString(other) || other == live {
		return fmt.Errorf("clickhouse: cannot swap tables with database %q", other)
	}
	have := map[string]bool{}
	rows, err := s.conn.Query(ctx, `SELECT database, name FROM system.tables WHERE database IN (?, ?)`, live, other)
	if err != nil {
		return fmt.Errorf("clickhouse: swap: %w", err)
	}
	for rows.Next() {
		var db, name string
		if err := rows.Scan(&db, &name); err != nil {
			rows.Close()
			return fmt.Errorf("clickhouse: swap: %w", err)
		}
		have[db+"."+name] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("clickhouse: swap: %w", err)
	}
	var parts []string
	for _, t := range Tables() {
		for _, db := range []string{live, other} {
			if !have[db+"."+t] {
				return fmt.Errorf("clickhouse: swap: table %s.%s is missing", db, t)
			}
			if have[db+"."+t+swapSuffix] {
				return fmt.Errorf("clickhouse: swap: %s.%s%s is left from an interrupted swap: rename it back by hand", db, t, swapSuffix)
			}
		}
		parts = append(parts,
			fmt.Sprintf("%s.%s TO %s.%s%s", live, t, other, t, swapSuffix),
			fmt.Sprintf("%s.%s TO %s.%s", other, t, live, t),
			fmt.Sprintf("%s.%s%s TO %s.%s", other, t, swapSuffix, other, t))
	}
	if err := s.conn.Exec(ctx, "RENAME TABLE "+strings.Join(parts, ", ")); err != nil {
		return fmt.Errorf("clickhouse: swap tables of %s and %s: %w", live, other, err)
	}
	return nil
}
