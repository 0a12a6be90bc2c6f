package sqlite

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"
	"unsafe"

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
	wait  uintptr             // a waitState in C memory, busyWait's (see setBusy)
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

// waitState is what busyWait needs, kept in C memory so that the callback finds it
// through its argument alone, with no Go pointer handed to C and no registry.
type waitState struct {
	timeoutMS int32 // how long one call waits for a lock in all
	call      int32 // numbers the calls watch starts
	cancelled int32 // the highest call whose context is done
}

// setBusy makes the connection retry a locked database for up to ms milliseconds,
// with busyWait rather than SQLite's sqlite3_busy_timeout: SQLite's callback sleeps
// to the end of the timeout whatever happens, and sqlite3_interrupt does not reach a
// connection that waits for a lock, only a running statement. So a writer waiting for
// a lock another process holds (a replay switching files, a second atlas on the same
// file) kept a shutdown or a cancelled replay waiting up to the whole timeout.
func (w *writer) setBusy(ms int32) error {
	if w.wait == 0 {
		if w.wait = libc.Xcalloc(w.tls, 1, waitStateSize); w.wait == 0 {
			return errors.New("sqlite: out of memory")
		}
	}
	w.state().timeoutMS = ms
	if rc := sqlite3.Xsqlite3_busy_handler(w.tls, w.db, cFuncPointer(busyWait), w.wait); rc != sqlite3.SQLITE_OK {
		return w.error(rc)
	}
	return nil
}

// waitStateSize is the C memory setBusy allocates for a waitState (the array below
// fails to compile if a waitState outgrows it).
const waitStateSize = 16

var _ [waitStateSize - unsafe.Sizeof(waitState{})]byte

func (w *writer) state() *waitState { return (*waitState)(cMemory(w.wait)) }

// cMemory is the address p of memory libc allocated, as a pointer. That memory is
// outside Go's heap, neither moved nor collected, so holding its address as a uintptr
// is sound; the reinterpretation (rather than a conversion) says so to go vet, whose
// check of uintptr conversions is about Go memory.
func cMemory(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }

// watch makes the lock waits of the calls that follow, until release, give up once ctx
// is done; the call waiting then fails with SQLITE_BUSY, which callers report as
// ctx.Err(). Calls are numbered so that the cancellation of an earlier context,
// arriving late, cannot cut a later call's wait short.
func (w *writer) watch(ctx context.Context) (release func()) {
	if w.wait == 0 || ctx.Done() == nil {
		return func() {}
	}
	st := w.state()
	call := atomic.AddInt32(&st.call, 1)
	stop := context.AfterFunc(ctx, func() {
		for {
			c := atomic.LoadInt32(&st.cancelled)
			if c >= call || atomic.CompareAndSwapInt32(&st.cancelled, c, call) {
				return
			}
		}
	})
	return func() { stop() }
}

// The retry schedule of SQLite's own busy callback (sqliteDefaultBusyCallback): the
// delay before the n-th retry and the time waited before it, in ms.
var (
	busyDelays = [...]int32{1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100}
	busyTotals = [...]int32{0, 1, 3, 8, 18, 33, 53, 78, 103, 128, 178, 228}
)

// busyPoll is how often a wait looks at its call's cancellation.
const busyPoll = 5 * time.Millisecond

// busyWait is SQLite's busy callback for the writer: the schedule of SQLite's own,
// except that it gives up as soon as the context of the call in progress is done (see
// watch). It runs on the goroutine of that call; pArg is the writer's waitState.
func busyWait(_ *libc.TLS, pArg uintptr, count int32) int32 {
	st := (*waitState)(cMemory(pArg))
	n := int32(len(busyDelays))
	var delay, prior int32
	if count < n {
		delay, prior = busyDelays[count], busyTotals[count]
	} else {
		delay = busyDelays[n-1]
		prior = busyTotals[n-1] + delay*(count-(n-1))
	}
	if prior+delay > st.timeoutMS {
		if delay = st.timeoutMS - prior; delay <= 0 {
			return 0
		}
	}
	call := atomic.LoadInt32(&st.call)
	for left := time.Duration(delay) * time.Millisecond; ; left -= busyPoll {
		if atomic.LoadInt32(&st.cancelled) == call {
			return 0
		}
		if left <= 0 {
			return 1
		}
		time.Sleep(min(left, busyPoll))
	}
}

// cFuncPointer is the C function pointer of a Go function declared at package level,
// the form modernc.org/libc calls back (Go's function values are pointers to the code
// pointer: https://golang.org/s/go11func). Never a closure.
func cFuncPointer[T any](f T) uintptr {
	return *(*uintptr)(unsafe.Pointer(&struct{ f T }{f}))
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
	if w.wait != 0 {
		libc.Xfree(w.tls, w.wait)
		w.wait = 0
	}
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
