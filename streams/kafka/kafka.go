// Package kafka is the Apache Kafka backend of streams.Log, built on
// github.com/segmentio/kafka-go.
//
// # Delivery guarantees
//
// The backend is at-least-once end to end:
//
//   - Append returns only after every record is acknowledged by all in-sync replicas
//     (RequiredAcks = RequireAll). kafka-go has no idempotent producer, so a retried
//     batch (a broker timeout after the write actually landed, a partial failure
//     reported to the caller, who then appends again) can store a record twice.
//     Producers should give records deterministic ids and sinks should be idempotent.
//   - Subscribe uses a consumer group (classic protocol); offsets are committed only
//     by Subscription.Commit, synchronously (CommitInterval 0: the call returns once
//     the coordinator has stored the offset; a non-zero interval would make Commit
//     return before anything is stored and only log failures). Messages fetched but
//     not committed before a rebalance, a crash or Close are delivered again, possibly
//     to another member. A Commit racing a rebalance either fails (the messages will
//     be redelivered) or lands in the next generation even if the partition has moved
//     to another member, which can move that partition's committed offset backwards:
//     more redelivery, never loss. Processing must therefore be idempotent.
//   - Close and a clean shutdown leave the group at once; a crashed member's
//     partitions are reassigned after Config.RebalanceTimeout or SessionTimeout.
//
// # Topics
//
// Writers never auto-create topics (AllowAutoTopicCreation = false); create them with
// CreateTopic. Subscribe, Read and EndOffsets also refuse an unknown topic, because
// kafka-go's group and metadata code would otherwise ask the broker to auto-create it
// (with the broker's default partition count) when auto.create.topics.enable is on.
//
// # Partitioning
//
// Records are routed with kafka.Hash (FNV-1a of the key modulo the partition count,
// the same as Sarama's default hash partitioner), so records with the same key land in
// the same partition as long as the partition count does not change. Records with a
// nil key are spread round-robin.
//
// # Timestamps
//
// Message.Time is the record's CreateTime, set by the writer when it encodes the
// batch (moments before the broker accepts it), or streams.Record.Time when given (to
// the nanosecond: see timestamp.go). Kafka timestamps have millisecond resolution, so
// Position.Time bounds are honoured to the millisecond.
package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"

	"github.com/atlas-mmm/atlas/streams"
)

// Config configures a Kafka-backed Log. Only Brokers is required.
type Config struct {
	// Brokers are the bootstrap addresses, "host:port".
	Brokers []string
	// ClientID is sent to the brokers with every request (default "atlas").
	ClientID string

	// Partitions is the partition count CreateTopic uses when it is called with
	// partitions <= 0. Zero means the broker's num.partitions.
	Partitions int
	// ReplicationFactor of the topics CreateTopic creates. Zero means the broker's
	// default.replication.factor. Production: 3, with min.insync.replicas=2 on the
	// broker or topic, so that RequireAll acknowledgements mean two copies.
	ReplicationFactor int

	// TLS, if set, encrypts every connection.
	TLS *tls.Config
	// SASL, if set, authenticates every connection (for instance plain.Mechanism or a
	// scram.Mechanism from github.com/segmentio/kafka-go/sasl).
	SASL sasl.Mechanism

	// BatchSize is the largest number of records the writer sends to one partition in
	// one produce request (default 1000).
	BatchSize int
	// BatchBytes is the largest produce request per partition (default 1 MiB, the
	// broker's default message.max.bytes).
	BatchBytes int64
	// BatchTimeout is how long the writer waits for a partition batch to fill up
	// before sending it (default 1 ms). It is the extra latency of a lone Append and
	// the window in which concurrent Appends share a produce request.
	BatchTimeout time.Duration
	// Compression of produced batches (default none).
	Compression kafkago.Compression

	// MetadataTTL is how often the client refreshes its cached cluster metadata
	// (default 1 s). A topic created by another client becomes usable by this Log
	// after at most this long.
	MetadataTTL time.Duration

	// Consumer group tuning (Subscribe).
	//
	// SessionTimeout: a member that has not sent a heartbeat for this long is
	// considered dead and its partitions are reassigned (default 10 s; brokers refuse
	// values below group.min.session.timeout.ms, 6 s by default).
	SessionTimeout time.Duration
	// HeartbeatInterval: how often members heartbeat, which is also how quickly a
	// live member notices that a rebalance has started (default 1 s).
	HeartbeatInterval time.Duration
	// RebalanceTimeout: how long the coordinator waits for members to rejoin during
	// a rebalance (default 5 s).
	RebalanceTimeout time.Duration
	// MaxWait: how long a fetch may wait on the broker for new data when the
	// partition is caught up (default 100 ms). Records are returned as soon as one
	// byte is available, so this bounds idle polling, not latency.
	MaxWait time.Duration
	// QueueCapacity: messages a subscription prefetches (default 1000).
	QueueCapacity int

	// Logger and ErrorLogger receive kafka-go's internal logs (default: discarded).
	Logger      kafkago.Logger
	ErrorLogger kafkago.Logger
}

func (c *Config) setDefaults() {
	if c.ClientID == "" {
		c.ClientID = "atlas"
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 1000
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = 1 << 20
	}
	if c.BatchTimeout <= 0 {
		c.BatchTimeout = time.Millisecond
	}
	if c.MetadataTTL <= 0 {
		c.MetadataTTL = time.Second
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = time.Second
	}
	if c.RebalanceTimeout <= 0 {
		c.RebalanceTimeout = 5 * time.Second
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 100 * time.Millisecond
	}
	if c.QueueCapacity <= 0 {
		c.QueueCapacity = 1000
	}
}

// ErrUnknownTopic is returned (wrapped) for operations on a topic that does not exist.
var ErrUnknownTopic = errors.New("kafka: unknown topic")

// Log is a streams.Log on a Kafka cluster. It is safe for concurrent use.
type Log struct {
	cfg       Config
	addr      net.Addr
	transport *kafkago.Transport
	client    *kafkago.Client
	writer    *kafkago.Writer
	dialer    *kafkago.Dialer

	mu     sync.Mutex
	closed bool
	subs   map[*subscription]struct{}
}

var _ streams.Log = (*Log)(nil)

// Open connects to the cluster and checks that it answers a metadata request.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafka: Config.Brokers is empty")
	}
	cfg.setDefaults()
	l := &Log{
		cfg:       cfg,
		addr:      kafkago.TCP(cfg.Brokers...),
		transport: newTransport(&cfg),
		dialer: &kafkago.Dialer{
			ClientID:      cfg.ClientID,
			Timeout:       10 * time.Second,
			DualStack:     true,
			TLS:           cfg.TLS,
			SASLMechanism: cfg.SASL,
		},
		subs: map[*subscription]struct{}{},
	}
	l.client = &kafkago.Client{Addr: l.addr, Transport: l.transport, Timeout: 30 * time.Second}
	l.writer = &kafkago.Writer{
		Addr:                   l.addr,
		Balancer:               &kafkago.Hash{},
		RequiredAcks:           kafkago.RequireAll,
		BatchSize:              cfg.BatchSize,
		BatchBytes:             cfg.BatchBytes,
		BatchTimeout:           cfg.BatchTimeout,
		Compression:            cfg.Compression,
		AllowAutoTopicCreation: false,
		Transport:              l.transport,
		Logger:                 cfg.Logger,
		ErrorLogger:            cfg.ErrorLogger,
	}
	// Fail fast on a wrong address or bad credentials.
	if _, err := l.client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{}}); err != nil {
		l.transport.CloseIdleConnections()
		return nil, fmt.Errorf("kafka: open %v: %w", cfg.Brokers, err)
	}
	return l, nil
}

func newTransport(cfg *Config) *kafkago.Transport {
	return &kafkago.Transport{
		Dial:        (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		DialTimeout: 5 * time.Second,
		MetadataTTL: cfg.MetadataTTL,
		ClientID:    cfg.ClientID,
		TLS:         cfg.TLS,
		SASL:        cfg.SASL,
	}
}

func (l *Log) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// CreateTopic creates topic with the given number of partitions (Config.Partitions
// if partitions <= 0) and Config.ReplicationFactor. An existing topic is left as it
// is, whatever its partition count. It returns once the topic's partitions all have a
// leader in this client's metadata, so that Append can use it at once.
func (l *Log) CreateTopic(ctx context.Context, topic string, partitions int) error {
	if l.isClosed() {
		return streams.ErrClosed
	}
	if partitions <= 0 {
		partitions = l.cfg.Partitions
	}
	if partitions <= 0 {
		partitions = -1 // broker default
	}
	rf := l.cfg.ReplicationFactor
	if rf <= 0 {
		rf = -1 // broker default
	}
	res, err := l.client.CreateTopics(ctx, &kafkago.CreateTopicsRequest{
		Topics: []kafkago.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: rf}},
	})
	if err != nil {
		return fmt.Errorf("kafka: create topic %q: %w", topic, err)
	}
	if err := res.Errors[topic]; err != nil && !errors.Is(err, kafkago.TopicAlreadyExists) {
		return fmt.Errorf("kafka: create topic %q: %w", topic, err)
	}
	_, err = l.partitions(ctx, topic)
	return err
}

// partitions returns the sorted partition ids of topic once all of them have a
// leader in the cached metadata. A topic missing from the cache is looked up with a
// fresh metadata request: if it does not exist the error wraps ErrUnknownTopic,
// otherwise partitions waits for the cache to catch up.
func (l *Log) partitions(ctx context.Context, topic string) ([]int, error) {
	var deadline time.Time
	probed := false
	for {
		ids, err := l.cachedPartitions(ctx, topic)
		if err == nil {
			return ids, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, kafkago.UnknownTopicOrPartition) && !probed {
			probed = true
			ok, perr := l.topicExists(ctx, topic)
			if perr != nil {
				return nil, fmt.Errorf("kafka: metadata for %q: %w", topic, perr)
			}
			if !ok {
				return nil, fmt.Errorf("%w %q", ErrUnknownTopic, topic)
			}
		}
		var temp interface{ Temporary() bool }
		if !errors.Is(err, kafkago.UnknownTopicOrPartition) && !(errors.As(err, &temp) && temp.Temporary()) {
			return nil, fmt.Errorf("kafka: metadata for %q: %w", topic, err)
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(2*l.cfg.MetadataTTL + 10*time.Second)
		} else if time.Now().After(deadline) {
			return nil, fmt.Errorf("kafka: topic %q not ready: %w", topic, err)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

func (l *Log) cachedPartitions(ctx context.Context, topic string) ([]int, error) {
	md, err := l.client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, err
	}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return nil, t.Error
		}
		if len(t.Partitions) == 0 {
			return nil, kafkago.LeaderNotAvailable
		}
		ids := make([]int, 0, len(t.Partitions))
		for _, p := range t.Partitions {
			if p.Error != nil {
				return nil, p.Error
			}
			ids = append(ids, p.ID)
		}
		sort.Ints(ids)
		return ids, nil
	}
	return nil, kafkago.UnknownTopicOrPartition
}

// topicExists asks the cluster directly (the shared transport answers metadata
// requests from its cache), through a short-lived transport whose first action is a
// full metadata request; it never asks for auto-creation.
func (l *Log) topicExists(ctx context.Context, topic string) (bool, error) {
	tr := newTransport(&l.cfg)
	tr.MetadataTTL = time.Hour
	defer tr.CloseIdleConnections()
	c := &kafkago.Client{Addr: l.addr, Transport: tr, Timeout: 30 * time.Second}
	md, err := c.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return false, err
	}
	for _, t := range md.Topics {
		if t.Name == topic {
			return !errors.Is(t.Error, kafkago.UnknownTopicOrPartition), nil
		}
	}
	return false, nil
}

// Append sends all records in one WriteMessages call on the shared writer and returns
// once all of them are acknowledged by all in-sync replicas. On error some records
// may have been stored: retrying may duplicate them.
func (l *Log) Append(ctx context.Context, topic string, recs ...streams.Record) error {
	if l.isClosed() {
		return streams.ErrClosed
	}
	if len(recs) == 0 {
		return nil
	}
	msgs := make([]kafkago.Message, len(recs))
	for i, r := range recs {
		// A zero Time is stamped by the writer when it encodes the batch.
		msgs[i] = kafkago.Message{Topic: topic, Key: r.Key, Value: r.Value, Time: r.Time, Headers: timeHeaders(r.Time)}
	}
	err := l.writer.WriteMessages(ctx, msgs...)
	if errors.Is(err, kafkago.UnknownTopicOrPartition) {
		// The writer looks partitions up in the transport's metadata cache; a topic
		// created by another client appears there within MetadataTTL.
		if _, perr := l.partitions(ctx, topic); perr != nil {
			return fmt.Errorf("kafka: append to %q: %w", topic, perr)
		}
		err = l.writer.WriteMessages(ctx, msgs...)
	}
	if err != nil {
		if l.isClosed() {
			return streams.ErrClosed
		}
		var werr kafkago.WriteErrors
		if errors.As(err, &werr) {
			return fmt.Errorf("kafka: append to %q: %d of %d records failed: %w", topic, werr.Count(), len(recs), firstError(werr))
		}
		return fmt.Errorf("kafka: append to %q: %w", topic, err)
	}
	return nil
}

func firstError(werr kafkago.WriteErrors) error {
	for _, e := range werr {
		if e != nil {
			return e
		}
	}
	return werr
}

// EndOffsets returns, per partition, the offset the next appended record will get
// (the high watermark).
func (l *Log) EndOffsets(ctx context.Context, topic string) (map[int]int64, error) {
	if l.isClosed() {
		return nil, streams.ErrClosed
	}
	parts, err := l.partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	return l.listOffsets(ctx, topic, parts, kafkago.LastOffset)
}

// listOffsets runs one ListOffsets request for all parts with the given timestamp
// (FirstOffset, LastOffset or a time in Unix milliseconds). For a time with no record
// at or after it, the partition is missing from the result.
func (l *Log) listOffsets(ctx context.Context, topic string, parts []int, ts int64) (map[int]int64, error) {
	reqs := make([]kafkago.OffsetRequest, len(parts))
	for i, p := range parts {
		reqs[i] = kafkago.OffsetRequest{Partition: p, Timestamp: ts}
	}
	var lastErr error
	for attempt := 0; attempt < 10; attempt++ {
		if attempt > 0 {
			if err := sleep(ctx, backoff(attempt)); err != nil {
				return nil, err
			}
		}
		res, err := l.client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{
			Topics: map[string][]kafkago.OffsetRequest{topic: reqs},
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			lastErr = err
			continue
		}
		out := make(map[int]int64, len(parts))
		lastErr = nil
		for _, po := range res.Topics[topic] {
			if po.Error != nil {
				lastErr = po.Error
				break
			}
			switch ts {
			case kafkago.FirstOffset:
				out[po.Partition] = po.FirstOffset
			case kafkago.LastOffset:
				out[po.Partition] = po.LastOffset
			default:
				for off := range po.Offsets {
					if off >= 0 {
						out[po.Partition] = off
					}
				}
			}
		}
		if lastErr == nil && ts < 0 && len(out) != len(parts) {
			lastErr = fmt.Errorf("answer covers %d of %d partitions", len(out), len(parts))
		}
		if lastErr == nil {
			return out, nil
		}
		if !retriable(lastErr) {
			break
		}
	}
	return nil, fmt.Errorf("kafka: list offsets of %q: %w", topic, lastErr)
}

// Close flushes and closes the writer, closes every open subscription (leaving their
// groups) and releases connections. It is idempotent.
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

	var errs []error
	for _, s := range subs {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := l.writer.Close(); err != nil {
		errs = append(errs, err)
	}
	l.transport.CloseIdleConnections()
	return errors.Join(errs...)
}

func retriable(err error) bool {
	var temp interface{ Temporary() bool }
	if errors.As(err, &temp) {
		return temp.Temporary()
	}
	var nerr net.Error
	return errors.As(err, &nerr)
}

func backoff(attempt int) time.Duration {
	d := 50 * time.Millisecond << min(attempt, 5)
	return min(d, time.Second)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
