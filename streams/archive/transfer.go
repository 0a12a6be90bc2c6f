package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atlas-mmm/atlas/streams"
)

// Stats counts what an export or import moved.
type Stats struct {
	Messages int64
	Topics   map[string]int64 // by topic name (the archive's)
}

// ExportOptions select what Export writes.
type ExportOptions struct {
	// Source describes the log, for the header (e.g. "kafka:host:9092").
	Source string
	// Since and Until, when set, restrict every topic but the model topic to messages
	// at or after Since and before Until. The model topic is always exported whole:
	// model version numbers are assigned in its log order, so a partial model topic
	// would renumber the versions the results name.
	Since, Until time.Time
	// Progress, if set, is called with the running message count every few thousand
	// messages.
	Progress func(messages int64)
}

// Export writes topics of l to w as an archive: each topic's messages in the order
// Read returns them (on JetStream the order they were stored in across partitions, on
// Kafka partition after partition), topics one after the other, model topic first.
// Partition counts are taken from the log.
func Export(ctx context.Context, l streams.Log, topics []Topic, w io.Writer, opt ExportOptions) (Stats, error) {
	h := Header{Source: opt.Source, Created: time.Now().UTC()}
	if !opt.Since.IsZero() || !opt.Until.IsZero() {
		h.Range = "models: all"
		if !opt.Since.IsZero() {
			h.Range += "; others since " + opt.Since.UTC().Format(time.RFC3339Nano)
		}
		if !opt.Until.IsZero() {
			h.Range += "; others until " + opt.Until.UTC().Format(time.RFC3339Nano)
		}
	}
	// The end of each topic is taken first, results before dead letters before models
	// before requests, and each topic is read up to it: on a log that is still being
	// written, every result's request and model version (appended before the result)
	// are then in the archive too; a request without its result is merely in flight,
	// and a processor on the imported copy answers it.
	topics = slices.Clone(topics)
	slices.SortStableFunc(topics, func(a, b Topic) int { return snapshotOrder(a.Role) - snapshotOrder(b.Role) })
	ends := map[string]map[int]int64{}
	for i, t := range topics {
		e, err := l.EndOffsets(ctx, t.Name)
		if err != nil {
			return Stats{}, fmt.Errorf("export: topic %q: %w", t.Name, err)
		}
		topics[i].Partitions = len(e)
		ends[t.Name] = e
	}
	slices.SortStableFunc(topics, func(a, b Topic) int { return roleOrder(a.Role) - roleOrder(b.Role) })
	h.Topics = topics
	aw, err := NewWriter(w, h)
	if err != nil {
		return Stats{}, err
	}
	st := Stats{Topics: map[string]int64{}}
	enc := newEncoder(aw)
	for _, t := range topics {
		from, to := streams.Position{}, streams.Position{Offsets: ends[t.Name]}
		if t.Role != RoleModels {
			from.Time = opt.Since
			if !opt.Until.IsZero() {
				to = streams.Position{Time: opt.Until}
			}
		}
		err := l.Read(ctx, t.Name, from, to, func(m streams.Message) error {
			m.Topic = t.Name
			if err := enc.add(m); err != nil {
				return err
			}
			st.Messages++
			st.Topics[t.Name]++
			if opt.Progress != nil && st.Messages%progressEvery == 0 {
				opt.Progress(st.Messages)
			}
			return nil
		})
		if err != nil {
			enc.close()
			return st, fmt.Errorf("export: reading %q: %w", t.Name, err)
		}
	}
	if err := enc.close(); err != nil {
		return st, err
	}
	if err := aw.Close(); err != nil {
		return st, err
	}
	if opt.Progress != nil {
		opt.Progress(st.Messages)
	}
	return st, nil
}

// encoder turns messages into lines on every core (checking that a value is JSON costs
// about as much as reading it from the log), while one goroutine writes the chunks in
// their order.
type encoder struct {
	cur   *chunk
	todo  chan *chunk // to the encoding workers
	order chan *chunk // to the writer, in message order
	free  chan *chunk // written chunks, for reuse
	wg    sync.WaitGroup
	done  chan error // the writer's outcome
	err   atomic.Pointer[error]
}

type chunk struct {
	msgs    []streams.Message
	buf     []byte
	encoded chan struct{}
}

const chunkSize = 512

func newEncoder(w *Writer) *encoder {
	n := runtime.GOMAXPROCS(0)
	e := &encoder{todo: make(chan *chunk, 2*n), order: make(chan *chunk, 4*n), free: make(chan *chunk, 8*n), done: make(chan error, 1)}
	for range n {
		e.wg.Go(func() {
			for c := range e.todo {
				// Sized for the whole chunk up front: growing the buffer line by line
				// copied it over and over (a sixth of an export's CPU).
				size := 0
				for i := range c.msgs {
					size += len(c.msgs[i].Topic) + 2*len(c.msgs[i].Key) + len(c.msgs[i].Value)*4/3 + 128
				}
				if cap(c.buf) < size {
					c.buf = make([]byte, 0, size)
				}
				for i := range c.msgs {
					c.buf = appendMessage(c.buf, &c.msgs[i])
				}
				close(c.encoded)
			}
		})
	}
	go func() {
		var err error
		for c := range e.order {
			<-c.encoded
			if err == nil {
				if err = w.writeEncoded(c.msgs, c.buf); err != nil {
					e.err.Store(&err)
				}
			}
			// Reusing the chunk's memory spares the garbage collector about 1.5 KB per
			// message (and the zeroing of fresh buffers).
			clear(c.msgs) // the values belong to the log's messages
			c.msgs, c.buf, c.encoded = c.msgs[:0], c.buf[:0], make(chan struct{})
			select {
			case e.free <- c:
			default:
			}
		}
		e.done <- err
	}()
	return e
}

func (e *encoder) add(m streams.Message) error {
	if p := e.err.Load(); p != nil {
		return *p
	}
	if e.cur == nil {
		select {
		case e.cur = <-e.free:
		default:
			e.cur = &chunk{msgs: make([]streams.Message, 0, chunkSize), encoded: make(chan struct{})}
		}
	}
	e.cur.msgs = append(e.cur.msgs, m)
	if len(e.cur.msgs) == chunkSize {
		e.submit()
	}
	return nil
}

func (e *encoder) submit() {
	c := e.cur
	e.cur = nil
	e.order <- c
	e.todo <- c
}

// close encodes and writes what is pending and returns the first write error.
func (e *encoder) close() error {
	if e.cur != nil && len(e.cur.msgs) > 0 {
		e.submit()
	}
	close(e.todo)
	close(e.order)
	e.wg.Wait()
	return <-e.done
}

const progressEvery = 4096

// snapshotOrder is the order in which Export takes the topics' ends: see Export.
func snapshotOrder(role string) int {
	switch role {
	case RoleResults:
		return 0
	case RoleDeadLetter:
		return 1
	case RoleModels:
		return 2
	}
	return 3
}

// roleOrder is the order of the topics in an archive: models, requests, results, dead
// letters, for people reading it.
func roleOrder(role string) int {
	switch role {
	case RoleModels:
		return 0
	case RoleRequests:
		return 1
	case RoleResults:
		return 2
	}
	return 3
}

// ImportOptions steer Import.
type ImportOptions struct {
	// Topics maps a role to the target topic's name; a role missing from it keeps the
	// archive's topic name.
	Topics map[string]string
	// Batch is how many records one Append carries (default 8192).
	Batch int
	// Progress, if set, is called with the running message count after each Append.
	Progress func(messages int64)
	// Observe, if set, sees every message as it is read from the archive (with the
	// archive's topic name, partition and offset), before it is appended.
	Observe func(m streams.Message)
}

// ownedAppender is a log with a faster append for a topic that one writer owns, as
// Import owns its new topics (jetstream.Log.AppendOwned).
type ownedAppender interface {
	AppendOwned(ctx context.Context, topic string, recs ...streams.Record) error
}

// ErrNotEmpty is returned (wrapped) when a target topic already holds messages.
var ErrNotEmpty = errors.New("target topic is not empty")

// Import appends the archive's messages to l, in file order, with their keys, values
// and times; each record goes to the partition its key hashes to, so with the archive's
// partition counts (which Import creates the topics with) and the same backend kind
// every record lands in the partition it came from. Offsets are the target's: on an
// empty target they come out as in the source when the source had no gaps.
//
// Every target topic must be empty (never written) and, if it exists, have the
// archive's partition count; Import checks all of them before writing anything. The
// archive is verified as it is read (lines, trailer counts, checksum): if it turns out
// damaged half-way, what was appended stays, and the error says so.
func Import(ctx context.Context, l streams.Log, r *Reader, opt ImportOptions) (Stats, error) {
	if opt.Batch <= 0 {
		opt.Batch = 8192
	}
	target := map[string]string{} // archive topic → target topic
	for _, t := range r.Header().Topics {
		name := t.Name
		if n, ok := opt.Topics[t.Role]; ok && n != "" {
			name = n
		}
		target[t.Name] = name
		if err := l.CreateTopic(ctx, name, t.Partitions); err != nil {
			return Stats{}, fmt.Errorf("import: creating topic %q: %w", name, err)
		}
		ends, err := l.EndOffsets(ctx, name)
		if err != nil {
			return Stats{}, fmt.Errorf("import: topic %q: %w", name, err)
		}
		if len(ends) != t.Partitions {
			return Stats{}, fmt.Errorf("import: topic %q exists with %d partitions, the archive's %q has %d: keys would land in other partitions",
				name, len(ends), t.Name, t.Partitions)
		}
		var held int64
		for _, end := range ends {
			held = max(held, end)
		}
		if held > 0 {
			// A log an import was interrupted in (a crash, a full disk, Ctrl-C) holds the
			// first part of an archive and ends up here too: say so, since appending the
			// archive again would duplicate that part.
			return Stats{}, fmt.Errorf("import: %w: %q already holds messages (end offsets %v); import only into a new, empty log "+
				"(if an earlier import into this one did not finish, it holds part of that archive: delete it and import again)", ErrNotEmpty, name, ends)
		}
	}

	appendTo := l.Append
	if o, ok := l.(ownedAppender); ok {
		appendTo = o.AppendOwned
	}
	// Reading and decoding the file runs beside the appends: one batch in the making
	// while the previous one is written.
	type batch struct {
		topic string
		recs  []streams.Record
		err   error
	}
	batches := make(chan batch, 2)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(batches)
		send := func(b batch) bool {
			select {
			case batches <- b:
				return true
			case <-ctx.Done():
				return false
			}
		}
		var cur batch
		err := r.Each(ctx, func(m streams.Message) error {
			if (m.Topic != cur.topic || len(cur.recs) >= opt.Batch) && len(cur.recs) > 0 {
				if !send(cur) {
					return ctx.Err()
				}
				cur = batch{}
			}
			if opt.Observe != nil {
				opt.Observe(m)
			}
			cur.topic = m.Topic
			if cur.recs == nil {
				cur.recs = make([]streams.Record, 0, opt.Batch)
			}
			cur.recs = append(cur.recs, streams.Record{Key: m.Key, Value: m.Value, Time: m.Time})
			return nil
		})
		if len(cur.recs) > 0 && !send(cur) {
			return
		}
		if err != nil {
			send(batch{err: err})
		}
	}()
	// One appender per topic: the topics are independent logs, so a topic's batches
	// are appended in order while the next topic's already go out (the file holds the
	// topics one after the other; with one appender for all, each would wait for the
	// log's acknowledgements of the one before).
	var (
		mu        sync.Mutex
		st        = Stats{Topics: map[string]int64{}}
		firstErr  error
		appenders = map[string]chan []streams.Record{}
		wg        sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
		mu.Unlock()
	}
	for b := range batches {
		if b.err != nil {
			mu.Lock()
			n := st.Messages
			mu.Unlock()
			fail(fmt.Errorf("import: %w (%d messages were imported before it)", b.err, n))
			break
		}
		q := appenders[b.topic]
		if q == nil {
			q = make(chan []streams.Record, 2)
			appenders[b.topic] = q
			topic, name := b.topic, target[b.topic]
			wg.Go(func() {
				for recs := range q {
					if ctx.Err() != nil {
						continue // drain: another appender failed
					}
					if err := appendTo(ctx, name, recs...); err != nil {
						mu.Lock()
						n := st.Messages
						mu.Unlock()
						fail(fmt.Errorf("import: appending to %q after %d messages: %w", name, n, err))
						continue
					}
					mu.Lock()
					st.Messages += int64(len(recs))
					st.Topics[topic] += int64(len(recs))
					n := st.Messages
					if opt.Progress != nil {
						opt.Progress(n)
					}
					mu.Unlock()
				}
			})
		}
		select {
		case q <- b.recs:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	for _, q := range appenders {
		close(q)
	}
	wg.Wait()
	for range batches { // the decoding goroutine ends on ctx
	}
	if firstErr != nil {
		return st, firstErr
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	return st, nil
}

// Verify reads an archive to its end, checking every line and the trailer, and counts
// its messages.
func Verify(r *Reader) (Stats, error) {
	st := Stats{Topics: map[string]int64{}}
	err := r.Each(context.Background(), func(m streams.Message) error {
		st.Messages++
		st.Topics[m.Topic]++
		return nil
	})
	return st, err
}
