package store

// Helpers shared by the backends, so that both validate, encode and page alike.

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrBadCursor is wrapped by the error Results returns for a malformed cursor.
var ErrBadCursor = errors.New("store: bad cursor")

// ErrInvalidBatch is wrapped by the error Apply returns for a batch Validate rejects.
var ErrInvalidBatch = errors.New("store: invalid batch")

// Validate checks what both backends need of a batch before writing any of it: every
// row has its key, every float is finite (JSON, where the rows come from, has no NaN or
// infinity, and SQLite would store NaN as NULL),
// offsets and partitions are not negative, times are in range, and a checkpoint has a
// projector name.
func Validate(b Batch) error {
	// Labels are formatted only for what fails: this runs on every row a replay writes.
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	nan := func(kind string, i int, vs ...float64) {
		for _, v := range vs {
			if !finite(v) {
				bad("%s[%d]: %v", kind, i, v)
				return
			}
		}
	}
	nanp := func(kind string, i int, ps ...*float64) {
		for _, p := range ps {
			if p != nil && !finite(*p) {
				bad("%s[%d]: %v", kind, i, *p)
				return
			}
		}
	}
	pos := func(kind string, i int, partition int, offset int64) {
		if partition < 0 || offset < 0 {
			bad("%s[%d]: negative partition or offset (%d, %d)", kind, i, partition, offset)
		}
	}
	for i := range b.Results {
		r := &b.Results[i]
		if r.RequestID == "" {
			bad("results[%d]: empty request id", i)
		}
		nan("results", i, r.TotalSpend, r.Gap)
		nanp("results", i, r.UpperBound, r.LowerBound)
		for k, v := range r.Expected {
			if !finite(v) {
				bad("results[%d].expected.%s: %v", i, k, v)
			}
		}
		pos("results", i, r.Partition, r.Offset)
	}
	for i := range b.Allocations {
		a := &b.Allocations[i]
		if a.RequestID == "" || a.Channel == "" {
			bad("allocations[%d]: empty request id or channel", i)
		}
		nan("allocations", i, a.Spend, a.Response)
		nanp("allocations", i, a.ROI, a.MROI)
	}
	for i := range b.Models {
		m := &b.Models[i]
		if m.ModelID == "" || m.Version < 1 {
			bad("models[%d]: empty model id or version < 1", i)
		}
		pos("models", i, m.Partition, m.Offset)
	}
	for i := range b.Audit {
		e := &b.Audit[i]
		if e.EventID == "" {
			bad("audit[%d]: empty event id", i)
		}
		pos("audit", i, e.Partition, e.Offset)
	}
	for i := range b.DeadLetters {
		d := &b.DeadLetters[i]
		pos("dead_letters", i, d.Partition, d.Offset)
	}
	if len(b.Checkpoint) > 0 && b.Projector == "" {
		bad("checkpoint without a projector name")
	}
	for topic, parts := range b.Checkpoint {
		if topic == "" {
			bad("checkpoint: empty topic")
		}
		for p, o := range parts {
			if p < 0 || o < 0 {
				bad("checkpoint %s: negative partition or offset (%d, %d)", topic, p, o)
			}
		}
	}
	if len(errs) > 0 {
		if len(errs) > 10 {
			errs = append(errs[:10], fmt.Sprintf("and %d more", len(errs)-10))
		}
		return fmt.Errorf("%w: %s", ErrInvalidBatch, strings.Join(errs, "; "))
	}
	return nil
}

// Limit applies the page-size rules: n ≤ 0 gives DefaultLimit, more than MaxLimit gives
// MaxLimit.
func Limit(n int) int {
	switch {
	case n <= 0:
		return DefaultLimit
	case n > MaxLimit:
		return MaxLimit
	}
	return n
}

// Cursor is the keyset position of a Results page: the last row's ResultTime (Unix
// nanoseconds, see UnixNanos) and RequestID.
type Cursor struct {
	TimeNanos int64
	RequestID string
}

// cursorVersion prefixes the encoding so that the format can change.
const cursorVersion = "r1"

// EncodeCursor makes the opaque cursor: URL-safe base64 (no padding) of
// ["r1", nanos, request id].
func EncodeCursor(c Cursor) string {
	raw, _ := json.Marshal([]any{cursorVersion, c.TimeNanos, c.RequestID})
	return base64.RawURLEncoding.EncodeToString(raw)
}

// DecodeCursor reads a cursor made by EncodeCursor; an error wraps ErrBadCursor.
func DecodeCursor(s string) (Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, fmt.Errorf("%w: not base64", ErrBadCursor)
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(raw, &parts); err != nil || len(parts) != 3 {
		return Cursor{}, fmt.Errorf("%w: not a cursor", ErrBadCursor)
	}
	var v string
	var c Cursor
	if json.Unmarshal(parts[0], &v) != nil || v != cursorVersion ||
		json.Unmarshal(parts[1], &c.TimeNanos) != nil ||
		json.Unmarshal(parts[2], &c.RequestID) != nil || c.RequestID == "" {
		return Cursor{}, fmt.Errorf("%w: not a cursor", ErrBadCursor)
	}
	return c, nil
}

// The times Unix nanoseconds in an int64 can hold (1677-09-21 to 2262-04-11).
var (
	minNanoTime = time.Unix(0, math.MinInt64)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)

// UnixNanos is how times are stored: Unix nanoseconds, 0 for the zero time (so the
// instant 1970-01-01T00:00:00Z reads back as the zero time). Times beyond what an int64
// holds (before 1678, after 2262) saturate.
func UnixNanos(t time.Time) int64 {
	switch {
	case t.IsZero():
		return 0
	case t.Before(minNanoTime):
		return math.MinInt64
	case t.After(maxNanoTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// FromUnixNanos is the inverse of UnixNanos, in UTC.
func FromUnixNanos(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// EncodeJSON encodes a map or slice for a JSON column: "" when empty, so that empty and
// absent read back alike (as nil). n is v's length.
func EncodeJSON(v any, n int) (string, error) {
	b, err := AppendJSON(nil, v, n)
	return string(b), err
}

// AppendJSON appends what EncodeJSON returns for v to dst. The encoding is
// encoding/json's; a result's expected KPIs (map[string]float64) and messages
// ([]string) are encoded here without reflection when their strings need no escaping,
// which is how they come (a replay encodes one of each per result, on the store's one
// writer, the replay's critical path).
func AppendJSON(dst []byte, v any, n int) ([]byte, error) {
	if n == 0 {
		return dst, nil
	}
	switch v := v.(type) {
	case map[string]float64:
		if b, ok := appendFloatMap(dst, v); ok {
			return b, nil
		}
	case []string:
		if b, ok := appendStrings(dst, v); ok {
			return b, nil
		}
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	return append(dst, raw...), nil
}

// appendFloatMap appends m as encoding/json does (keys in order), or reports false
// for a key that needs escaping or a value JSON cannot hold.
func appendFloatMap(dst []byte, m map[string]float64) ([]byte, bool) {
	var room [8]string
	keys := room[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		var ok bool
		if dst, ok = appendPlainString(dst, k); !ok {
			return dst, false
		}
		dst = append(dst, ':')
		if dst, ok = appendFloat(dst, m[k]); !ok {
			return dst, false
		}
	}
	return append(dst, '}'), true
}

// appendStrings appends ss as encoding/json does, or reports false for a string that
// needs escaping.
func appendStrings(dst []byte, ss []string) ([]byte, bool) {
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		var ok bool
		if dst, ok = appendPlainString(dst, s); !ok {
			return dst, false
		}
	}
	return append(dst, ']'), true
}

// appendPlainString appends s quoted if it is printable ASCII that encoding/json does
// not escape (it escapes '"', '\\' and, for HTML, '<', '>' and '&').
func appendPlainString(dst []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return dst, false
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"'), true
}

// appendFloat appends f as encoding/json does (ES6 number formatting), or reports false
// for NaN and infinities, which it refuses.
func appendFloat(dst []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return dst, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// e-09 becomes e-9
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, true
}

// DecodeJSON decodes a JSON column written by EncodeJSON into v ("" leaves v alone).
func DecodeJSON(s string, v any) error {
	if s == "" {
		return nil
	}
	return json.Unmarshal([]byte(s), v)
}

// Raw returns a JSON column's value as json.RawMessage, nil for "".
func Raw(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

// SplitSQL splits a DDL script into statements: "--" comments are dropped and statements
// end with ";". (The scripts in schemas/ddl keep "--" and ";" out of string literals.)
func SplitSQL(script string) []string {
	var b strings.Builder
	for line := range strings.SplitSeq(script, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	var out []string
	for stmt := range strings.SplitSeq(b.String(), ";") {
		if stmt = strings.TrimSpace(stmt); stmt != "" {
			out = append(out, stmt)
		}
	}
	return out
}

// ResultFilter turns a query's filters and cursor into SQL conditions (to be joined with
// AND) and their arguments, for the stores' results tables: it is the same SQL in
// SQLite and ClickHouse. Values are always arguments, never text in the query.
func ResultFilter(q ResultQuery) (where []string, args []any, err error) {
	if q.ModelID != "" {
		where = append(where, "model_id = ?")
		args = append(args, q.ModelID)
	}
	if q.Status != "" {
		where = append(where, "status = ?")
		args = append(args, q.Status)
	}
	if !q.Since.IsZero() {
		where = append(where, "result_time_ns >= ?")
		args = append(args, UnixNanos(q.Since))
	}
	if !q.Until.IsZero() {
		where = append(where, "result_time_ns < ?")
		args = append(args, UnixNanos(q.Until))
	}
	if q.Cursor != "" {
		c, err := DecodeCursor(q.Cursor)
		if err != nil {
			return nil, nil, err
		}
		// keyset pagination on (result_time_ns, request_id), newest first
		where = append(where, "(result_time_ns < ? OR (result_time_ns = ? AND request_id < ?))")
		args = append(args, c.TimeNanos, c.TimeNanos, c.RequestID)
	}
	return where, args, nil
}

// EncodeGeneration is how backends store a Generation: JSON.
func EncodeGeneration(g Generation) (string, error) {
	b, err := json.Marshal(g)
	if err != nil {
		return "", fmt.Errorf("encoding generation: %w", err)
	}
	return string(b), nil
}

// DecodeGeneration reads what EncodeGeneration wrote; "" is the zero Generation.
func DecodeGeneration(body string) (Generation, error) {
	var g Generation
	if body == "" {
		return g, nil
	}
	if err := json.Unmarshal([]byte(body), &g); err != nil {
		return g, fmt.Errorf("decoding generation: %w", err)
	}
	g.Started, g.Finished, g.Switched = g.Started.UTC(), g.Finished.UTC(), g.Switched.UTC()
	return g, nil
}
