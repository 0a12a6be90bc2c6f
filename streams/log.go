// Package streams holds Atlas's event log abstraction, its backends (Kafka and NATS
// JetStream, in sub-packages) and the stateful processor.
//
// The abstraction is deliberately small: append keyed records, consume as a named group
// with at-least-once acknowledgement, and read a range for replay. Every backend is held
// to the same conformance suite (streams/logtest).
package streams

import (
	"context"
	"errors"
	"time"
)

// Record is what a producer appends: records with the same key land in the same
// partition, in append order.
type Record struct {
	Key   []byte
	Value []byte
	// Time, when set, is the record's timestamp (Message.Time on the way out) instead of
	// the moment the log accepts it: an import keeps the times of the exported history,
	// which results, read models and time-range reads depend on. Backends keep it to the
	// nanosecond. A log's time-range reads assume timestamps do not run ahead of the
	// moment records are stored; a record dated in the future may be missed by a read
	// starting at a time.
	Time time.Time
}

// Message is a record as stored in the log, with its position.
type Message struct {
	Topic     string
	Partition int
	Offset    int64 // position within the partition: increasing, gaps allowed
	Key       []byte
	Value     []byte
	Time      time.Time // Record.Time, or when the log accepted the record
}

// Position says where a read starts (or ends). Offsets are per partition; a partition
// missing from the map starts at its beginning (ends at its end). A non-zero Time starts
// (ends) at the first message accepted at or after that time, in every partition.
type Position struct {
	Offsets map[int]int64
	Time    time.Time
}

// Log is an append-only, partitioned event log.
type Log interface {
	// CreateTopic creates topic with the given number of partitions if it does not exist.
	CreateTopic(ctx context.Context, topic string, partitions int) error
	// Append stores records durably: it returns once the log has acknowledged all of
	// them (for Kafka, by all in-sync replicas).
	Append(ctx context.Context, topic string, recs ...Record) error
	// Subscribe joins the consumer group on topic. Delivery is at least once: anything
	// not covered by a Commit is delivered again to the group after a restart or a
	// rebalance. Members of one group share the partitions between them.
	Subscribe(ctx context.Context, topic, group string) (Subscription, error)
	// Read calls fn for every message of topic from the position `from` up to, not
	// including, `to` (a zero `to` means the end of the log when Read was called), in
	// offset order within each partition. It does not join any group.
	Read(ctx context.Context, topic string, from, to Position, fn func(Message) error) error
	// EndOffsets returns, per partition, the offset the next appended message will get.
	EndOffsets(ctx context.Context, topic string) (map[int]int64, error)
	Close() error
}

// Subscription is one member's view of a consumer group.
type Subscription interface {
	// Fetch blocks until the next message for this member arrives or ctx ends.
	Fetch(ctx context.Context) (Message, error)
	// Commit records that msgs, and everything before each of them in its partition,
	// have been processed; a restarted group resumes after the committed positions.
	Commit(ctx context.Context, msgs ...Message) error
	// Close leaves the group. Uncommitted messages will be delivered again.
	Close() error
}

// ErrClosed is returned by operations on a closed log or subscription.
var ErrClosed = errors.New("streams: closed")
