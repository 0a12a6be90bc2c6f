// Package jetstream implements streams.Log on NATS JetStream, either against an
// external nats-server (Config.URL) or an in-process one storing its files under
// Config.DataDir, which is Atlas's single-machine default: no broker to install, yet
// the same durable, replayable log and consumer groups as with Kafka.
//
// # Mapping
//
//   - A topic is one stream, named after the topic (see sanitize), with subjects
//     "<stream>.<partition>". The partition count is kept in the stream's metadata
//     (atlas_partitions), so every Log that opens the topic later agrees on it.
//   - Partition of a record: Kafka's murmur2 partitioner (see Partition), so that the
//     same key maps to the same partition number on both backends.
//   - Message.Offset is the JetStream stream sequence. Sequences are per stream, not per
//     subject, so within one partition offsets are increasing but not contiguous
//     ("increasing, gaps allowed" in streams.Message). This keeps a single sequence space
//     for the whole topic: Read can replay all partitions in their global append order.
//     EndOffsets of a partition is its last sequence + 1 (0 while it is empty).
//   - Message.Time is the time the stream stored the message, or the record's own time
//     (streams.Record.Time, kept in the Atlas-Time header).
//   - The record key travels in a header (Atlas-Key), the value is the payload unchanged.
//
// # Consumer groups
//
// A group is one durable pull consumer per partition (named "<group>-<partition>",
// filtered on the partition's subject, explicit acks). Members of a group split the
// partitions with leases in a JetStream key-value bucket; see Subscribe for the protocol
// and its guarantees.
package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/atlas-mmm/atlas/streams"
)

// Config says which server to use and tunes the consumer-group protocol. Exactly one of
// URL and DataDir must be set.
type Config struct {
	// URL of an external NATS server with JetStream enabled (nats-server 2.14 or later:
	// consumer groups rely on the consumer-reset API).
	URL string
	// NATSOptions are passed to nats.Connect for an external server (credentials, TLS...).
	NATSOptions []nats.Option
	// Replicas of the streams created for new topics on an external cluster (default 1).
	Replicas int

	// DataDir runs nats-server in-process with JetStream file storage in this directory.
	// Logs of one process opened on the same DataDir share one server; another process
	// cannot open it at the same time (it is flock'ed).
	DataDir string
	// SyncAlways makes the embedded server fsync every write before acknowledging it.
	// By default an acknowledged append has been written to the store's files (so it
	// survives a crash of this process) and is fsynced within two minutes (so a power
	// loss can lose the most recent ones), the same trade-off as Kafka's defaults.
	SyncAlways bool
	// ServerOptions, if set, may adjust the embedded server's options before it starts
	// (limits, a listener for the nats CLI, ...).
	ServerOptions func(*server.Options)
	// ServerLogger, if set, receives the embedded server's log (it is silent otherwise).
	ServerLogger server.Logger

	// LeaseTTL is how long a group member may stay silent before its partitions are
	// given to other members (default 10s): the failover time after a crash. It is a
	// property of the shared lease bucket: the first Log to create the bucket sets it,
	// later ones adopt it.
	LeaseTTL time.Duration
	// RebalanceInterval is how often a member renews its leases and rebalances
	// partitions (default 1s, at most LeaseTTL/3).
	RebalanceInterval time.Duration
	// AckWait is how long the server waits for a delivered message's ack before it
	// redelivers it (default 30s). Hand-over between members does not wait for it (the
	// new owner resets the consumer to the committed position); it only bounds how long
	// a message delivered to a member that lost its partition unknowingly stays stuck.
	AckWait time.Duration
	// MaxAckPending bounds, per partition, the messages delivered to a member and not yet
	// committed (default 20000). A member that stops committing stops receiving.
	MaxAckPending int
	// FetchBatch is how many messages a member prefetches per partition (default 256).
	FetchBatch int
	// PublishWindow is how many records one Append keeps in flight before it waits for
	// acknowledgements (default 4096).
	PublishWindow int

	// OnError, if set, is told about errors no call returns: asynchronous connection
	// errors and failed rounds of a group member's background rebalancing (retried on
	// the next round). They are dropped otherwise.
	OnError func(error)
}

func (c *Config) defaults() error {
	if (c.URL == "") == (c.DataDir == "") {
		return errors.New("jetstream: set exactly one of Config.URL and Config.DataDir")
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 10 * time.Second
	}
	if c.RebalanceInterval <= 0 {
		c.RebalanceInterval = time.Second
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = 20000
	}
	if c.FetchBatch <= 0 {
		c.FetchBatch = 256
	}
	if c.PublishWindow <= 0 {
		c.PublishWindow = 4096
	}
	if c.OnError == nil {
		c.OnError = func(error) {}
	}
	return nil
}

// Log is a streams.Log on JetStream. It is safe for concurrent use.
type Log struct {
	cfg Config
	emb *embeddedServer // nil with an external server
	nc  *nats.Conn
	js  jetstream.JetStream

	mu     sync.Mutex
	closed bool
	topics map[string]*topic
	subs   map[*subscription]struct{}
	leases *leaseBucket
}

var _ streams.Log = (*Log)(nil)

// topic is what the Log caches about a topic's stream.
type topic struct {
	name       string // as the caller spells it
	stream     string // sanitized: stream name and subject prefix
	partitions int
	subjects   []string // subject of each partition
	s          jetstream.Stream
}

const (
	metaPartitions  = "atlas_partitions"
	metaPartitioner = "atlas_partitioner"
	metaTopic       = "atlas_topic"
	// partitioner names the key-to-partition function (Partition) in the stream's
	// metadata, so that a future change of it cannot silently split existing keys.
	partitioner = "murmur2"
)

// Open connects to the server Config names (starting the embedded one for DataDir).
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	l := &Log{cfg: cfg, topics: map[string]*topic{}, subs: map[*subscription]struct{}{}}
	// nats.go prints asynchronous errors to stderr by default; route them to OnError.
	onErr := nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
		if sub != nil {
			err = fmt.Errorf("jetstream: subscription %s: %w", sub.Subject, err)
		} else {
			err = fmt.Errorf("jetstream: connection: %w", err)
		}
		cfg.OnError(err)
	})
	var err error
	if cfg.DataDir != "" {
		if l.emb, err = acquireEmbedded(cfg); err != nil {
			return nil, err
		}
		l.nc, err = nats.Connect("", nats.InProcessServer(l.emb.srv), nats.Name("atlas"), onErr)
	} else {
		opts := append([]nats.Option{nats.Name("atlas"), nats.MaxReconnects(-1), onErr}, cfg.NATSOptions...)
		l.nc, err = nats.Connect(cfg.URL, opts...)
	}
	if err != nil {
		l.release()
		return nil, fmt.Errorf("jetstream: connect: %w", err)
	}
	l.js, err = jetstream.New(l.nc,
		// Appends are pipelined (see Append); this bounds what all concurrent Appends of
		// this Log keep in flight together, beyond which publishing blocks.
		jetstream.WithPublishAsyncMaxPending(4*cfg.PublishWindow),
		jetstream.WithPublishAsyncTimeout(30*time.Second))
	if err != nil {
		l.release()
		return nil, err
	}
	if _, err := l.js.AccountInfo(ctx); err != nil {
		l.release()
		return nil, fmt.Errorf("jetstream: server has no JetStream: %w", err)
	}
	return l, nil
}

func (l *Log) release() {
	if l.nc != nil {
		l.nc.Close()
	}
	if l.emb != nil {
		l.emb.release()
	}
}

// Conn is the Log's NATS connection, for uses beyond the streams.Log interface (e.g.
// plain subscriptions on a topic's subjects for live notifications).
func (l *Log) Conn() *nats.Conn { return l.nc }

// JetStream is the Log's JetStream handle.
func (l *Log) JetStream() jetstream.JetStream { return l.js }

// Server is the embedded server, or nil with an external one.
func (l *Log) Server() *server.Server {
	if l.emb == nil {
		return nil
	}
	return l.emb.srv
}

// Subject is the NATS subject that holds the given partition of topic.
func Subject(topic string, partition int) string {
	return sanitize(topic) + "." + strconv.Itoa(partition)
}

// Subjects is the wildcard subject of all partitions of topic: a plain NATS
// subscription on it (through Conn) sees every record appended from then on, as it is
// stored, without joining a group or acking — for live notifications.
func Subjects(topic string) string { return sanitize(topic) + ".*" }

// MessageKey returns the record key carried by the headers of a message of a topic's
// subject (nil for a record without a key). The value is the message's data.
func MessageKey(h nats.Header) ([]byte, error) { return keyFromHeader(h) }

// stillOn reports why a long Append must stop: its context ended or the log closed.
// Appends check it every few hundred records rather than per record.
func (l *Log) stillOn(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.isClosed() {
		return streams.ErrClosed
	}
	return nil
}

// message is the NATS message that stores r in t: its partition's subject, and the
// key and time in headers.
func (t *topic) message(r streams.Record) *nats.Msg {
	return &nats.Msg{
		Subject: t.subjects[Partition(r.Key, t.partitions)],
		Header:  recordHeader(r.Key, r.Time),
		Data:    r.Value,
	}
}

func (l *Log) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// CreateTopic creates the topic's stream if it does not exist. If it does, its existing
// partition count wins: changing it would move keys to other partitions.
func (l *Log) CreateTopic(ctx context.Context, name string, partitions int) error {
	if l.isClosed() {
		return streams.ErrClosed
	}
	if name == "" || partitions < 1 {
		return fmt.Errorf("jetstream: CreateTopic(%q, %d): need a name and at least one partition", name, partitions)
	}
	sname := sanitize(name)
	s, err := l.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        sname,
		Description: "Atlas topic " + name,
		Subjects:    []string{sname + ".*"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		Replicas:    l.cfg.Replicas,
		// Direct gets make EndOffsets (last message per subject) cheap.
		AllowDirect: true,
		Metadata: map[string]string{
			metaPartitions:  strconv.Itoa(partitions),
			metaPartitioner: partitioner,
			metaTopic:       name,
		},
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		_, err = l.topic(ctx, name)
		return err
	}
	if err != nil {
		return fmt.Errorf("jetstream: create topic %q: %w", name, err)
	}
	_, err = l.cacheTopic(name, s)
	return err
}

// ErrUnknownTopic is returned for a topic that was never created.
var ErrUnknownTopic = errors.New("jetstream: unknown topic")

func (l *Log) topic(ctx context.Context, name string) (*topic, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, streams.ErrClosed
	}
	t := l.topics[name]
	l.mu.Unlock()
	if t != nil {
		return t, nil
	}
	s, err := l.js.Stream(ctx, sanitize(name))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("%w %q", ErrUnknownTopic, name)
	}
	if err != nil {
		return nil, fmt.Errorf("jetstream: topic %q: %w", name, err)
	}
	return l.cacheTopic(name, s)
}

func (l *Log) cacheTopic(name string, s jetstream.Stream) (*topic, error) {
	cfg := s.CachedInfo().Config
	n, err := strconv.Atoi(cfg.Metadata[metaPartitions])
	if err != nil || n < 1 {
		return nil, fmt.Errorf("jetstream: stream %s exists but is not an Atlas topic (no %s metadata)", cfg.Name, metaPartitions)
	}
	if p := cfg.Metadata[metaPartitioner]; p != partitioner {
		return nil, fmt.Errorf("jetstream: topic %q was partitioned with %q, this version uses %q", name, p, partitioner)
	}
	t := &topic{name: name, stream: cfg.Name, partitions: n, s: s, subjects: make([]string, n)}
	for p := range t.subjects {
		t.subjects[p] = cfg.Name + "." + strconv.Itoa(p)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, streams.ErrClosed
	}
	if old := l.topics[name]; old != nil {
		return old, nil
	}
	l.topics[name] = t
	return t, nil
}

// partitionOf parses the partition number out of a message subject "<stream>.<p>".
func partitionOf(subject string) (int, error) {
	for i := len(subject) - 1; i >= 0; i-- {
		if subject[i] == '.' {
			return strconv.Atoi(subject[i+1:])
		}
	}
	return 0, fmt.Errorf("jetstream: unexpected subject %q", subject)
}

// publishOpts: no retries on "no responders" (see Append), and block rather than fail
// when all concurrent Appends together have too many records in flight.
var publishOpts = []jetstream.PublishOpt{jetstream.WithRetryAttempts(0), jetstream.WithStallWait(30 * time.Second)}

// Append publishes the records asynchronously and returns when the stream has
// acknowledged every one of them (see Config.SyncAlways for what an acknowledgement
// means on disk). Up to Config.PublishWindow records are in flight at once: one round
// trip per record would cap throughput at a few thousand records per second.
//
// Records of one Append reach the stream in order (one connection, no publish retries:
// a retried record could overtake later ones of the same key). If Append fails, some
// records may have been stored anyway; retrying the call duplicates them, which the
// log's at-least-once contract allows.
func (l *Log) Append(ctx context.Context, name string, recs ...streams.Record) error {
	t, err := l.topic(ctx, name)
	if err != nil {
		return err
	}
	window := l.cfg.PublishWindow
	inflight := make([]jetstream.PubAckFuture, 0, min(len(recs), window))
	head := 0
	wait := func(f jetstream.PubAckFuture) error {
		select {
		case <-f.Ok():
			return nil
		case err := <-f.Err():
			return fmt.Errorf("jetstream: append to %q: %w", name, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for i, r := range recs {
		if i%256 == 0 {
			if err := l.stillOn(ctx); err != nil {
				return err
			}
		}
		m := t.message(r)
		f, err := l.js.PublishMsgAsync(m, publishOpts...)
		if err != nil {
			if l.isClosed() {
				return streams.ErrClosed
			}
			return fmt.Errorf("jetstream: append to %q: %w", name, err)
		}
		inflight = append(inflight, f)
		if len(inflight)-head >= window {
			if err := wait(inflight[head]); err != nil {
				return err
			}
			inflight[head] = nil
			head++
			if head >= window {
				inflight = append(inflight[:0], inflight[head:]...)
				head = 0
			}
		}
	}
	for _, f := range inflight[head:] {
		if err := wait(f); err != nil {
			if l.isClosed() {
				return streams.ErrClosed
			}
			return err
		}
	}
	return nil
}

// ownedAckEvery is how many records AppendOwned publishes per acknowledged one.
const ownedAckEvery = 512

// AppendOwned appends records to a topic that nothing else writes to while it runs (an
// import into a new topic) and, like Append, returns once the stream has stored every
// one of them. It costs the server and this process about a third less per record:
// only the first and the last record, and one in every ownedAckEvery between them, are
// published asking for an acknowledgement; the others are plain NATS messages on the
// partition's subject, which the stream stores without answering. One connection
// delivers the records in order and the stream numbers what it stores consecutively, so
// the sequence numbers in the acknowledgements prove that every record between them was
// stored: a record the stream dropped (it would tell only a record that asked) shows as
// a gap, and AppendOwned fails saying so. A record of another writer in between shows as
// a gap too, which is why the topic must be this caller's alone (with other writers a
// dropped record and a foreign one could cancel out); use Append otherwise. Concurrent
// AppendOwned calls on one topic are not allowed either.
//
// What is stored when AppendOwned fails, and what an acknowledgement means on disk, is
// as for Append.
func (l *Log) AppendOwned(ctx context.Context, name string, recs ...streams.Record) error {
	if len(recs) == 0 {
		return nil
	}
	t, err := l.topic(ctx, name)
	if err != nil {
		return err
	}
	type acked struct {
		i int // index in recs
		f jetstream.PubAckFuture
	}
	var (
		window   = max(l.cfg.PublishWindow, 2*ownedAckEvery)
		inflight = make([]acked, 0, len(recs)/ownedAckEvery+2)
		head     = 0
		first    uint64 // stream sequence of recs[0]
	)
	fail := func(err error) error {
		if l.isClosed() {
			return streams.ErrClosed
		}
		return fmt.Errorf("jetstream: append to %q: %w", name, err)
	}
	// confirm waits for the oldest acknowledgement and checks its sequence.
	confirm := func() error {
		a := inflight[head]
		inflight[head] = acked{}
		head++
		var seq uint64
		select {
		case ack := <-a.f.Ok():
			seq = ack.Sequence
		case err := <-a.f.Err():
			return fail(err)
		case <-ctx.Done():
			return ctx.Err()
		}
		if a.i == 0 {
			first = seq
			return nil
		}
		switch d := int64(seq-first) - int64(a.i); {
		case d < 0:
			return fail(fmt.Errorf("record %d of %d was stored %d after the first: the stream dropped %d record(s) before it",
				a.i, len(recs), seq-first, -d))
		case d > 0:
			return fail(fmt.Errorf("record %d of %d was stored %d after the first: %d message(s) of another writer came between (the topic must have no other writer)",
				a.i, len(recs), seq-first, d))
		}
		return nil
	}
	for i, r := range recs {
		if i%256 == 0 {
			if err := l.stillOn(ctx); err != nil {
				return err
			}
		}
		m := t.message(r)
		if i%ownedAckEvery != 0 && i != len(recs)-1 {
			if err := l.nc.PublishMsg(m); err != nil {
				return fail(err)
			}
			continue
		}
		f, err := l.js.PublishMsgAsync(m, publishOpts...)
		if err != nil {
			return fail(err)
		}
		inflight = append(inflight, acked{i, f})
		// Wait while more than the window of records has not been acknowledged.
		for head < len(inflight) && i-inflight[head].i >= window {
			if err := confirm(); err != nil {
				return err
			}
		}
	}
	for head < len(inflight) {
		if err := confirm(); err != nil {
			return err
		}
	}
	return nil
}

// EndOffsets returns, per partition, the sequence of its last message + 1 (0 if it has
// none). Sequences are shared by all partitions of the stream, so the next message of a
// partition may get a larger offset than this; no message of the partition will ever
// get an offset below it, which is what a reader needs to know whether it caught up.
func (l *Log) EndOffsets(ctx context.Context, name string) (map[int]int64, error) {
	t, err := l.topic(ctx, name)
	if err != nil {
		return nil, err
	}
	ends := make(map[int]int64, t.partitions)
	for p, subj := range t.subjects {
		m, err := t.s.GetLastMsgForSubject(ctx, subj)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			ends[p] = 0
		case err != nil:
			if l.isClosed() {
				return nil, streams.ErrClosed
			}
			return nil, fmt.Errorf("jetstream: end offsets of %q: %w", name, err)
		default:
			ends[p] = int64(m.Sequence) + 1
		}
	}
	return ends, nil
}

// Read replays the topic with an ordered consumer (an ephemeral, flow-controlled
// consumer that needs no acks) over all its partitions, so messages come in the order
// the stream stored them: offset order within each partition and, beyond what the
// interface promises, global append order across partitions.
//
// The consumer starts at from.Time if set (the server finds the first message at or
// after it), otherwise at the smallest offset in from (or the first message of a
// partition missing from it); messages of a partition below its from offset are
// skipped client-side, so partitions whose from offsets are far apart cost a scan of
// the stream between them.
//
// Reading stops at the stream's last message when Read was called, and per partition
// at to's offset or at the first message at or after to.Time.
func (l *Log) Read(ctx context.Context, name string, from, to streams.Position, fn func(streams.Message) error) error {
	t, err := l.topic(ctx, name)
	if err != nil {
		return err
	}
	info, err := t.s.Info(ctx)
	if err != nil {
		if l.isClosed() {
			return streams.ErrClosed
		}
		return fmt.Errorf("jetstream: read %q: %w", name, err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return nil
	}
	// The highest sequence that can be read at all.
	upper := uint64(0)
	ends := make([]uint64, t.partitions) // exclusive end per partition
	for p := range ends {
		ends[p] = last + 1
		if off, ok := to.Offsets[p]; ok {
			ends[p] = uint64(max(off, 0))
		}
		upper = max(upper, min(ends[p]-min(ends[p], 1), last))
	}
	ocfg := jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: time.Minute,
		MaxResetAttempts:  5,
	}
	if !from.Time.IsZero() {
		// If nothing was stored at or after from.Time, a consumer starting there would
		// wait for the future: check the last message first.
		lm, err := t.s.GetMsg(ctx, last)
		if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("jetstream: read %q: %w", name, err)
		}
		if err == nil && lm.Time.Before(from.Time) {
			return nil
		}
		start := from.Time
		ocfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		ocfg.OptStartTime = &start
	} else {
		// Start at the earliest message any partition needs. For a partition missing
		// from `from`, that is its first message: looking it up (a direct get) spares
		// re-reading the whole stream from sequence 1, which matters to callers that
		// poll with the offsets they reached, some partitions never having had any.
		start := last + 1
		for p, subj := range t.subjects {
			if off, ok := from.Offsets[p]; ok {
				start = min(start, uint64(max(off, 1)))
				continue
			}
			fm, err := t.s.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(subj))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue // empty partition
			}
			if err != nil {
				if l.isClosed() {
					return streams.ErrClosed
				}
				return fmt.Errorf("jetstream: read %q: %w", name, err)
			}
			start = min(start, fm.Sequence)
		}
		if start > upper {
			return nil
		}
		if start > 1 {
			ocfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
			ocfg.OptStartSeq = start
		}
	}
	if upper == 0 {
		return nil
	}
	cons, err := l.js.OrderedConsumer(ctx, t.stream, ocfg)
	if err != nil {
		return fmt.Errorf("jetstream: read %q: %w", name, err)
	}
	// The client buffers up to 16 MB ahead of fn: the server fills it while fn is busy
	// and fn has it while the server loads the next block from disk, so the two overlap
	// on two cores (an export read 180-190k events/s with 1024 messages prefetched,
	// 255k/s with 16 MB, of about 1.4 KB each). A bound in bytes rather than messages
	// also caps the memory with large messages (1024 of 1 MB were a gigabyte).
	it, err := cons.Messages(jetstream.PullMaxBytes(16 << 20))
	if err != nil {
		return fmt.Errorf("jetstream: read %q: %w", name, err)
	}
	defer func() {
		it.Stop()
		// The ordered consumer is ephemeral; delete it now rather than let it linger for
		// its inactivity threshold.
		if ci := cons.CachedInfo(); ci != nil {
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = l.js.DeleteConsumer(dctx, t.stream, ci.Name)
			cancel()
		}
	}()
	done := make([]bool, t.partitions)    // partition reached to.Time
	started := make([]bool, t.partitions) // partition reached from.Time
	ndone := 0
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if l.isClosed() {
				return streams.ErrClosed
			}
			return fmt.Errorf("jetstream: read %q: %w", name, err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("jetstream: read %q: %w", name, err)
		}
		seq := meta.Sequence.Stream
		if seq > upper {
			return nil
		}
		p, err := partitionOf(m.Subject())
		if err != nil || p >= t.partitions {
			return fmt.Errorf("jetstream: read %q: message %d on unexpected subject %q", name, seq, m.Subject())
		}
		ts, err := messageTime(m.Headers(), meta.Timestamp)
		if err != nil {
			return fmt.Errorf("jetstream: read %q: message %d: %w", name, seq, err)
		}
		if !to.Time.IsZero() && !done[p] && !ts.Before(to.Time) {
			done[p] = true
			if ndone++; ndone == t.partitions {
				return nil
			}
		}
		// The server started at the first message stored at or after from.Time; a
		// message appended with an earlier time of its own (an import) may come after
		// it, so a partition starts at its first message whose own time is not earlier.
		if !from.Time.IsZero() && !started[p] && !ts.Before(from.Time) {
			started[p] = true
		}
		off, hasFrom := from.Offsets[p]
		if !done[p] && seq < ends[p] && (!hasFrom || int64(seq) >= off) && (from.Time.IsZero() || started[p]) {
			key, err := keyFromHeader(m.Headers())
			if err != nil {
				return err
			}
			if err := fn(streams.Message{
				Topic: name, Partition: p, Offset: int64(seq),
				Key: key, Value: m.Data(), Time: ts,
			}); err != nil {
				return err
			}
		}
		if seq >= upper || meta.NumPending == 0 {
			return nil
		}
	}
}

// Close leaves every group this Log's subscriptions are in (releasing their partitions
// at once, so their successors need not wait for leases to expire), drains the
// connection and, if this was the last Log on an embedded server, shuts it down.
// Closing twice is harmless.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	subs := make([]*subscription, 0, len(l.subs))
	for s := range l.subs {
		subs = append(subs, s)
	}
	l.mu.Unlock()
	for _, s := range subs {
		s.Close()
	}
	drained := make(chan struct{})
	l.nc.SetClosedHandler(func(*nats.Conn) { close(drained) })
	if err := l.nc.Drain(); err == nil {
		select {
		case <-drained:
		case <-time.After(5 * time.Second):
		}
	}
	l.nc.Close()
	if l.emb != nil {
		l.emb.release()
	}
	return nil
}
