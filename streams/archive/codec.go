package archive

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"runtime"
	"strconv"
	"sync"

	"github.com/atlas-mmm/atlas/streams"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Writer writes an archive: NewWriter writes the header, Write one message per call,
// Close the trailer.
type Writer struct {
	w      *bufio.Writer
	under  io.Writer // what w buffers, for writes too large to buffer
	crc    hash.Hash32
	topics map[string]bool
	counts map[string]int64
	total  int64
	buf    []byte
	err    error
}

// NewWriter writes h's line to w and returns a Writer for the messages. Format and
// Version are filled in.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	h.Format, h.Version = Format, Version
	if err := h.check(); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	aw := &Writer{w: bufio.NewWriterSize(w, 1<<20), under: w, crc: newCRC(), topics: map[string]bool{}, counts: map[string]int64{}}
	for _, t := range h.Topics {
		aw.topics[t.Name] = true
		aw.counts[t.Name] = 0
	}
	b, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("archive: header: %w", err)
	}
	aw.write(append(b, '\n'))
	return aw, aw.err
}

func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	w.crc.Write(b)
	if _, err := w.w.Write(b); err != nil {
		w.err = fmt.Errorf("archive: write: %w", err)
	}
}

// Write adds one message. Its topic must be one of the header's.
func (w *Writer) Write(m streams.Message) error {
	if w.err != nil {
		return w.err
	}
	if !w.topics[m.Topic] {
		return fmt.Errorf("archive: message of topic %q, which the header does not list", m.Topic)
	}
	w.buf = appendMessage(w.buf[:0], &m)
	w.write(w.buf)
	w.counts[m.Topic]++
	w.total++
	return w.err
}

// writeEncoded adds messages already encoded into buf (appendMessage, in order).
func (w *Writer) writeEncoded(msgs []streams.Message, buf []byte) error {
	if w.err != nil {
		return w.err
	}
	for i := range msgs {
		if !w.topics[msgs[i].Topic] {
			return fmt.Errorf("archive: message of topic %q, which the header does not list", msgs[i].Topic)
		}
	}
	// A chunk is large enough to go to the underlying writer without the copy into
	// the buffer.
	if err := w.w.Flush(); err != nil {
		w.err = fmt.Errorf("archive: write: %w", err)
		return w.err
	}
	w.crc.Write(buf)
	if _, err := w.under.Write(buf); err != nil {
		w.err = fmt.Errorf("archive: write: %w", err)
		return w.err
	}
	for i := range msgs {
		w.counts[msgs[i].Topic]++
	}
	w.total += int64(len(msgs))
	return w.err
}

// Close writes the trailer and flushes; it does not close the underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	t := Trailer{Messages: w.total, Topics: w.counts, CRC32C: hex8(w.crc.Sum32())}
	b, err := json.Marshal(struct {
		End Trailer `json:"end"`
	}{t})
	if err != nil {
		return fmt.Errorf("archive: trailer: %w", err)
	}
	if _, err := w.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("archive: write: %w", err)
	}
	if err := w.w.Flush(); err != nil {
		return fmt.Errorf("archive: write: %w", err)
	}
	w.err = errors.New("archive: writer closed")
	return nil
}

// Reader reads an archive. NewReader reads the header; Next returns the messages in
// file order, then io.EOF once the trailer has been checked against them.
type Reader struct {
	// Salvage makes a missing trailer, or one whose counts or checksum do not match,
	// end the archive instead of failing it: the damage is in Damage. Malformed lines
	// still fail. It is for recovering what a damaged file holds (an audit then tells
	// what of it can be trusted).
	Salvage bool
	// Damage is what Salvage let pass, once Next has returned io.EOF.
	Damage error

	r      *bufio.Reader
	header Header
	topics map[string]int // partitions per topic
	names  []string       // the topics, to intern the names on the lines
	crc    hash.Hash32
	counts map[string]int64
	total  int64
	line   int
	sawEnd bool // the trailer was read
	done   bool
	err    error
}

// NewReader reads and checks the header line.
func NewReader(r io.Reader) (*Reader, error) {
	ar := &Reader{r: bufio.NewReaderSize(r, 1<<20), crc: newCRC(), topics: map[string]int{}, counts: map[string]int64{}}
	raw, err := ar.readLine()
	if err == io.EOF {
		return nil, errors.New("archive: empty file")
	}
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ar.header); err != nil {
		return nil, fmt.Errorf("archive: line 1: not an Atlas archive header: %w", err)
	}
	if err := ar.header.check(); err != nil {
		return nil, fmt.Errorf("archive: line 1: %w", err)
	}
	for _, t := range ar.header.Topics {
		ar.topics[t.Name] = t.Partitions
		ar.names = append(ar.names, t.Name)
	}
	return ar, nil
}

// Header is the archive's header.
func (r *Reader) Header() Header { return r.header }

// readLine returns the next line without its newline (valid until the next call) and
// adds it to the checksum.
func (r *Reader) readLine() ([]byte, error) {
	var long []byte
	for {
		chunk, err := r.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if len(long)+len(chunk) > maxLine {
				return nil, fmt.Errorf("archive: line %d: longer than %d bytes", r.line+1, maxLine)
			}
			long = append(long, chunk...)
			continue
		}
		if err == io.EOF && len(chunk)+len(long) > 0 {
			return nil, fmt.Errorf("archive: line %d: no newline at the end: the file is truncated", r.line+1)
		}
		if err != nil {
			if err == io.EOF {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("archive: reading line %d: %w", r.line+1, err)
		}
		r.line++
		if long != nil {
			chunk = append(long, chunk...)
		}
		r.crc.Write(chunk)
		return chunk[:len(chunk)-1], nil
	}
}

// Next returns the next message (its Key and Value are its own). After the last message it checks
// the trailer and returns io.EOF; a missing or mismatching trailer, or any malformed
// line, is an error naming the line.
func (r *Reader) Next() (streams.Message, error) {
	if r.err != nil {
		return streams.Message{}, r.err
	}
	m, err := r.next()
	if err != nil {
		r.err = err
	}
	return m, err
}

func (r *Reader) next() (streams.Message, error) {
	if r.done {
		return streams.Message{}, io.EOF
	}
	for {
		l, err := r.readRaw()
		if err == io.EOF {
			return streams.Message{}, r.atEOF()
		}
		if err != nil {
			return streams.Message{}, err
		}
		m, ok, err := r.accept(l, parseLine(l, false, r.names))
		if err != nil || ok {
			return m, err
		}
		// The trailer: the loop makes sure nothing follows it.
	}
}

// rawLine is one line as read, with the checksum of everything before it (which is
// what a trailer on this line must carry).
type rawLine struct {
	n   int
	sum uint32
	b   []byte
}

// readRaw reads the next line; its bytes are the reader's buffer, valid until the next
// read. io.EOF at the end of the file.
func (r *Reader) readRaw() (rawLine, error) {
	sum := r.crc.Sum32()
	b, err := r.readLine()
	if err != nil {
		return rawLine{}, err
	}
	return rawLine{n: r.line, sum: sum, b: b}, nil
}

// parsed is a line decoded: a message or the trailer, or why it is neither.
type parsed struct {
	m   streams.Message
	end *Trailer
	err error
}

// parseLine decodes a line; it depends on nothing else, so lines can be parsed in
// parallel. alias and topics are as for parseMessage.
func parseLine(l rawLine, alias bool, topics []string) parsed {
	m, end, err := parseMessage(l.b, alias, topics)
	if err != nil {
		err = fmt.Errorf("archive: line %d: %w", l.n, err)
	}
	return parsed{m: m, end: end, err: err}
}

// accept takes the parsed lines in file order: it returns a message (true), or
// notes the trailer (false) after checking it against what came before.
func (r *Reader) accept(l rawLine, p parsed) (streams.Message, bool, error) {
	if r.sawEnd {
		return streams.Message{}, false, fmt.Errorf("archive: line %d: lines after the trailer", l.n)
	}
	if p.err != nil {
		return streams.Message{}, false, p.err
	}
	if p.end != nil {
		if err := r.checkTrailer(p.end, l.sum); err != nil {
			err = fmt.Errorf("archive: line %d: %w", l.n, err)
			if !r.Salvage {
				return streams.Message{}, false, err
			}
			r.Damage = err
		}
		r.sawEnd = true
		return streams.Message{}, false, nil
	}
	m := p.m
	n, ok := r.topics[m.Topic]
	if !ok {
		return m, false, fmt.Errorf("archive: line %d: topic %q is not in the header", l.n, m.Topic)
	}
	if m.Partition >= n {
		return m, false, fmt.Errorf("archive: line %d: partition %d of topic %q, which has %d", l.n, m.Partition, m.Topic, n)
	}
	r.counts[m.Topic]++
	r.total++
	return m, true, nil
}

// atEOF ends the archive at the end of the file: io.EOF after a sound trailer, an error
// for a file without one (unless salvaging).
func (r *Reader) atEOF() error {
	r.done = true
	if r.sawEnd {
		return io.EOF
	}
	err := fmt.Errorf("archive: no trailer after line %d: the file is truncated", r.line)
	if r.Salvage {
		r.Damage = err
		return io.EOF
	}
	return err
}

// Each calls fn with every message in file order, parsing lines on every core (a
// line's value must be checked to be JSON, which costs about as much as appending it
// to the log). It returns nil once the trailer has been checked, or the first error.
// It takes the place of Next.
func (r *Reader) Each(ctx context.Context, fn func(streams.Message) error) error {
	if r.err != nil {
		return r.err
	}
	type chunk struct {
		lines  []rawLine
		parsed []parsed
		err    error // reading failed after these lines
		eof    bool  // the file ended after these lines
		done   chan struct{}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := runtime.GOMAXPROCS(0)
	todo := make(chan *chunk, 2*workers)
	order := make(chan *chunk, 4*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for c := range todo {
				c.parsed = make([]parsed, len(c.lines))
				for i, l := range c.lines {
					// The line is in the chunk's own memory: the message may keep
					// parts of it rather than copies.
					c.parsed[i] = parseLine(l, true, r.names)
				}
				close(c.done)
			}
		})
	}
	go func() {
		defer func() {
			close(todo)
			close(order)
		}()
		var slab []byte // memory for the lines: one allocation for many of them
		for ctx.Err() == nil {
			c := &chunk{lines: make([]rawLine, 0, chunkSize), done: make(chan struct{})}
			for len(c.lines) < chunkSize && c.err == nil && !c.eof {
				l, err := r.readRaw()
				switch {
				case err == io.EOF:
					c.eof = true
				case err != nil:
					c.err = err
				default:
					if len(l.b) > cap(slab)-len(slab) {
						slab = make([]byte, 0, max(slabSize, len(l.b)))
					}
					slab = append(slab, l.b...)
					l.b = slab[len(slab)-len(l.b) : len(slab) : len(slab)]
					c.lines = append(c.lines, l)
				}
			}
			select {
			case order <- c:
			case <-ctx.Done():
				close(c.done)
				return
			}
			todo <- c
			if c.err != nil || c.eof {
				return
			}
		}
	}()
	defer wg.Wait()
	defer func() {
		cancel()
		for c := range order { // let the reading goroutine finish
			_ = c
		}
	}()
	for c := range order {
		<-c.done
		for i, l := range c.lines {
			m, ok, err := r.accept(l, c.parsed[i])
			if err != nil {
				r.err = err
				return err
			}
			if ok {
				if err := fn(m); err != nil {
					return err
				}
			}
		}
		if c.err != nil {
			r.err = c.err
			return c.err
		}
		if c.eof {
			if err := r.atEOF(); err != io.EOF {
				r.err = err
				return err
			}
			return nil
		}
	}
	return ctx.Err()
}

// slabSize is the size of the blocks Each copies lines into. A block stays in memory as
// long as any message parsed from it does.
const slabSize = 256 << 10

func (r *Reader) checkTrailer(t *Trailer, sum uint32) error {
	if t.Messages != r.total {
		return fmt.Errorf("trailer counts %d messages, the file holds %d", t.Messages, r.total)
	}
	for name := range r.topics {
		if t.Topics[name] != r.counts[name] {
			return fmt.Errorf("trailer counts %d messages of topic %q, the file holds %d", t.Topics[name], name, r.counts[name])
		}
	}
	for name := range t.Topics {
		if _, ok := r.topics[name]; !ok {
			return fmt.Errorf("trailer counts topic %q, which the header does not list", name)
		}
	}
	want, err := strconv.ParseUint(t.CRC32C, 16, 32)
	if err != nil || len(t.CRC32C) != 8 {
		return fmt.Errorf("trailer: crc32c %q is not 8 hex digits", t.CRC32C)
	}
	if uint32(want) != sum {
		return fmt.Errorf("checksum mismatch (crc32c %08x, trailer says %s): the file is damaged", sum, t.CRC32C)
	}
	return nil
}

func newCRC() hash.Hash32 { return crc32.New(castagnoli) }

func hex8(v uint32) string { return fmt.Sprintf("%08x", v) }
