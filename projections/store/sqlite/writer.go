package sqlite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// writer is the store's one write connection, driven through SQLite's C API
// (modernc.org/sqlite/lib, the library the database/sql driver wraps, so both share
// one SQLite and its file locks) rather than through database/sql.
//
// Why: a multi-row upsert binds over a thousand values, and through database/sql and
// the driver each value is boxed in an interface, looked up by its parameter name,
// copied into memory allocated for it alone, bound under the connection's mutex, then
// freed and unbound again; in a replay (bench/replay) that took as long as SQLite's own
// inserting. Here values are bound in order, text and blobs copied into an arena that
// every statement reuses, statements are prepared once, and the connection has no
// mutex of its own: the Store's lock serializes its use.
//
// It is not safe for concurrent use.
type writer struct {
	tls   *libc.TLS
	db    uintptr
	out   uintptr             // 8 bytes of C memory for the API's out parameters
	stmts map[stmtKey]uintptr // prepared statements
	arena arena
	bind  binder // reused by every statement
}

type stmtKey struct {
	query string
	rows  int
}

// sqliteError is an error SQLite returned: its (extended) result code and message.
type sqliteError struct {
	Code int
	Msg  string
}

func (e *sqliteError) Error() string { return fmt.Sprintf("%s (%d)", e.Msg, e.Code) }

// openWriter opens filename (with VFS vfs, "" for the default) for reading and
// writing, creating it if needed.
func openWriter(filename, vfs string) (*writer, error) {
	w := &writer{tls: libc.NewTLS(), stmts: map[stmtKey]uintptr{}}
	if w.out = libc.Xmalloc(w.tls, 8); w.out == 0 {
		w.close()
		return nil, errors.New("sqlite: out of memory")
	}
	name, err := libc.CString(filename)
	if err != nil {
		w.close()
		return nil, err
	}
	defer libc.Xfree(w.tls, name)
	var zvfs uintptr
	if vfs != "" {
		if zvfs, err = libc.CString(vfs); err != nil {
			w.close()
			return nil, err
		}
		defer libc.Xfree(w.tls, zvfs)
	}
	rc := sqlite3.Xsqlite3_open_v2(w.tls, name, w.out,
		sqlite3.SQLITE_OPEN_READWRITE|sqlite3.SQLITE_OPEN_CREATE|sqlite3.SQLITE_OPEN_NOMUTEX|sqlite3.SQLITE_OPEN_EXRESCODE, zvfs)
	w.db = w.ptr() // a handle even on failure, which holds the message
	if rc != sqlite3.SQLITE_OK {
		err := w.error(rc)
		w.close()
		return nil, fmt.Errorf("sqlite: open %s: %w", filename, err)
	}
	return w, nil
}

// ptr reads the pointer the last call left in w.out.
func (w *writer) ptr() uintptr {
	return uintptr(binary.NativeEndian.Uint64(libc.GoBytes(w.out, 8)))
}

// error is the error of result code rc, with the connection's message when it is about
// rc.
func (w *writer) error(rc int32) error {
	msg := libc.GoString(sqlite3.Xsqlite3_errstr(w.tls, rc))
	if w.db != 0 && sqlite3.Xsqlite3_extended_errcode(w.tls, w.db) == rc {
		msg = libc.GoString(sqlite3.Xsqlite3_errmsg(w.tls, w.db))
	}
	return &sqliteError{Code: int(rc), Msg: msg}
}

// busyTimeout makes the connection retry a locked database for up to ms milliseconds.
func (w *writer) busyTimeout(ms int32) error {
	if rc := sqlite3.Xsqlite3_busy_timeout(w.tls, w.db, ms); rc != sqlite3.SQLITE_OK {
		return w.error(rc)
	}
	return nil
}

// errClosed is returned by a closed writer.
var errClosed = errors.New("sqlite: the store is closed")

// exec runs SQL text of one or more statements without parameters, rows discarded.
func (w *writer) exec(query string) error {
	if w.db == 0 {
		return errClosed
	}
	z, err := libc.CString(query)
	if err != nil {
		return err
	}
	defer libc.Xfree(w.tls, z)
	if rc := sqlite3.Xsqlite3_exec(w.tls, w.db, z, 0, 0, 0); rc != sqlite3.SQLITE_OK {
		return w.error(rc)
	}
	return nil
}

// rollback ends the transaction, if there still is one (SQLite ends it itself on some
// errors).
func (w *writer) rollback() {
	if w.db != 0 && sqlite3.Xsqlite3_get_autocommit(w.tls, w.db) == 0 {
		_ = w.exec("ROLLBACK")
	}
}

// prepare returns the statement of query, an INSERT of one row, made an INSERT of
// rows rows (see multiRow), prepared on first use and kept.
func (w *writer) prepare(query string, rows int) (uintptr, error) {
	if w.db == 0 {
		return 0, errClosed
	}
	key := stmtKey{query, rows}
	if st, ok := w.stmts[key]; ok {
		return st, nil
	}
	if rows > 1 {
		query = multiRow(query, rows)
	}
	z, err := libc.CString(query)
	if err != nil {
		return 0, err
	}
	defer libc.Xfree(w.tls, z)
	if rc := sqlite3.Xsqlite3_prepare_v3(w.tls, w.db, z, -1, sqlite3.SQLITE_PREPARE_PERSISTENT, w.out, 0); rc != sqlite3.SQLITE_OK {
		return 0, w.error(rc)
	}
	st := w.ptr()
	if st == 0 {
		return 0, fmt.Errorf("sqlite: no statement in %q", query)
	}
	w.stmts[key] = st
	return st, nil
}

// binder starts binding the parameters of statement st.
func (w *writer) binder(st uintptr) *binder {
	w.bind = binder{w: w, st: st, i: 1}
	return &w.bind
}

// run runs statement st, whose parameters v bound, to its end, and makes it and the
// arena ready for the next statement.
func (w *writer) run(st uintptr, v *binder) error {
	defer w.arena.reset(w.tls)
	if v.err != nil {
		return v.err
	}
	if n := sqlite3.Xsqlite3_bind_parameter_count(w.tls, st); v.i-1 != n {
		return fmt.Errorf("sqlite: %d values bound to %d parameters", v.i-1, n)
	}
	for {
		switch rc := sqlite3.Xsqlite3_step(w.tls, st); rc {
		case sqlite3.SQLITE_ROW:
		case sqlite3.SQLITE_DONE:
			if rc := sqlite3.Xsqlite3_reset(w.tls, st); rc != sqlite3.SQLITE_OK {
				return w.error(rc)
			}
			return nil
		default:
			err := w.error(rc)
			sqlite3.Xsqlite3_reset(w.tls, st)
			return err
		}
	}
}

// close finalizes the statements, closes the connection and frees its memory.
func (w *writer) close() error {
	if w.tls == nil {
		return nil
	}
	var err error
	for k, st := range w.stmts {
		sqlite3.Xsqlite3_finalize(w.tls, st)
		delete(w.stmts, k)
	}
	if w.db != 0 {
		if rc := sqlite3.Xsqlite3_close_v2(w.tls, w.db); rc != sqlite3.SQLITE_OK {
			err = w.error(rc)
		}
		w.db = 0
	}
	w.arena.free(w.tls)
	if w.out != 0 {
		libc.Xfree(w.tls, w.out)
		w.out = 0
	}
	w.tls.Close()
	w.tls = nil
	return err
}

// binder binds a statement's parameters, in order. The first error is kept (run
// returns it); later values are then ignored.
type binder struct {
	w   *writer
	st  uintptr
	i   int32 // the next parameter, from 1
	err error
}

func (b *binder) check(rc int32) {
	if rc != sqlite3.SQLITE_OK && b.err == nil {
		b.err = fmt.Errorf("binding parameter %d: %w", b.i, b.w.error(rc))
	}
	b.i++
}

// text binds s as TEXT.
func (b *binder) text(s string) { bindBytes(b, s, false) }

// textBytes binds s as TEXT.
func (b *binder) textBytes(s []byte) { bindBytes(b, s, false) }

// blob binds s as a BLOB.
func (b *binder) blob(s string) { bindBytes(b, s, true) }

func bindBytes[T string | []byte](b *binder, s T, blob bool) {
	if len(s) > math.MaxInt32 {
		b.check(sqlite3.SQLITE_TOOBIG)
		return
	}
	p, err := put(&b.w.arena, b.w.tls, s)
	if err != nil {
		if b.err == nil {
			b.err = err
		}
		b.i++
		return
	}
	// The destructor 0 is SQLITE_STATIC: SQLite reads the value where it is, in the
	// arena, which holds it until the statement has run.
	if blob {
		b.check(sqlite3.Xsqlite3_bind_blob(b.w.tls, b.st, b.i, p, int32(len(s)), 0))
	} else {
		b.check(sqlite3.Xsqlite3_bind_text(b.w.tls, b.st, b.i, p, int32(len(s)), 0))
	}
}

func (b *binder) int(v int64) { b.check(sqlite3.Xsqlite3_bind_int64(b.w.tls, b.st, b.i, v)) }

// bool binds 1 or 0, as database/sql did.
func (b *binder) bool(v bool) {
	var n int64
	if v {
		n = 1
	}
	b.int(n)
}

func (b *binder) float(v float64) { b.check(sqlite3.Xsqlite3_bind_double(b.w.tls, b.st, b.i, v)) }

// floatp binds *v, NULL for nil.
func (b *binder) floatp(v *float64) {
	if v == nil {
		b.check(sqlite3.Xsqlite3_bind_null(b.w.tls, b.st, b.i))
		return
	}
	b.float(*v)
}

// arena is C memory that the text and blob values of a statement are copied into,
// bound from there without a copy of SQLite's own and reused by the next statement:
// chunks of arenaChunk bytes, kept, and values larger than a chunk in allocations of
// their own, freed at reset.
type arena struct {
	chunks []uintptr
	cur    int // the chunk being filled
	off    int // in it
	big    []uintptr
}

const arenaChunk = 1 << 20

// put copies s into the arena and returns its address. An empty s gets a valid
// address too: SQLite binds a zero-length value there, where address 0 binds NULL.
func put[T string | []byte](a *arena, tls *libc.TLS, s T) (uintptr, error) {
	n := len(s)
	if n > arenaChunk {
		p := libc.Xmalloc(tls, libc.Tsize_t(n))
		if p == 0 {
			return 0, fmt.Errorf("sqlite: cannot allocate %d bytes", n)
		}
		a.big = append(a.big, p)
		copy(libc.GoBytes(p, n), s)
		return p, nil
	}
	if len(a.chunks) == 0 || a.off+n > arenaChunk {
		if len(a.chunks) > 0 {
			a.cur++
		}
		if a.cur == len(a.chunks) {
			p := libc.Xmalloc(tls, arenaChunk)
			if p == 0 {
				return 0, fmt.Errorf("sqlite: cannot allocate %d bytes", arenaChunk)
			}
			a.chunks = append(a.chunks, p)
		}
		a.off = 0
	}
	p := a.chunks[a.cur] + uintptr(a.off)
	copy(libc.GoBytes(p, n), s)
	a.off += n
	return p, nil
}

// reset makes the arena's memory reusable.
func (a *arena) reset(tls *libc.TLS) {
	a.cur, a.off = 0, 0
	for _, p := range a.big {
		libc.Xfree(tls, p)
	}
	a.big = a.big[:0]
}

// free releases the arena's memory.
func (a *arena) free(tls *libc.TLS) {
	a.reset(tls)
	for _, p := range a.chunks {
		libc.Xfree(tls, p)
	}
	a.chunks = nil
}
