package kafka

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/atlas-mmm/atlas/streams"
)

// Subscribe joins consumer group `group` on topic with a kafka.Reader. A group with
// no committed offset for a partition starts at its oldest message. Joining happens in
// the background: Subscribe returns at once and the first Fetch waits for the
// partition assignment.
//
// Fetch uses FetchMessage (never ReadMessage, which commits before processing) and
// Commit commits synchronously (CommitInterval 0), the highest given offset per
// partition. A rebalance (a member joining, leaving or missing its session timeout)
// redelivers everything uncommitted: processing must be idempotent (see the package
// documentation).
func (l *Log) Subscribe(ctx context.Context, topic, group string) (streams.Subscription, error) {
	if l.isClosed() {
		return nil, streams.ErrClosed
	}
	if group == "" {
		return nil, errors.New("kafka: subscribe: empty group")
	}
	// kafka-go's group leader reads partitions with a metadata request that allows
	// auto-creation: refuse unknown topics here instead of creating them by accident.
	if _, err := l.partitions(ctx, topic); err != nil {
		return nil, err
	}
	// The tag, sent as the member's user data, lets Assigned find this member in a
	// DescribeGroups answer. The wrapped balancers assign exactly as kafka-go's
	// (and the Java client's) range and round-robin assignors.
	tag := make([]byte, 16)
	_, _ = rand.Read(tag)
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:           l.cfg.Brokers,
		GroupID:           group,
		Topic:             topic,
		Dialer:            l.dialer,
		QueueCapacity:     l.cfg.QueueCapacity,
		MinBytes:          1,
		MaxBytes:          fetchMaxBytes,
		MaxWait:           l.cfg.MaxWait,
		ReadLagInterval:   -1,
		HeartbeatInterval: l.cfg.HeartbeatInterval,
		CommitInterval:    0, // synchronous: Commit returns once the offsets are stored
		SessionTimeout:    l.cfg.SessionTimeout,
		RebalanceTimeout:  l.cfg.RebalanceTimeout,
		JoinGroupBackoff:  500 * time.Millisecond,
		StartOffset:       kafkago.FirstOffset,
		GroupBalancers: []kafkago.GroupBalancer{
			taggedBalancer{kafkago.RangeGroupBalancer{}, tag},
			taggedBalancer{kafkago.RoundRobinGroupBalancer{}, tag},
		},
		ReadBackoffMin: 50 * time.Millisecond,
		ReadBackoffMax: 500 * time.Millisecond,
		MaxAttempts:    5,
		Logger:         l.cfg.Logger,
		ErrorLogger:    l.cfg.ErrorLogger,
	})
	s := &subscription{log: l, topic: topic, group: group, tag: tag, r: r}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = r.Close()
		return nil, streams.ErrClosed
	}
	l.subs[s] = struct{}{}
	l.mu.Unlock()
	return s, nil
}

type subscription struct {
	log   *Log
	topic string
	group string
	tag   []byte
	r     *kafkago.Reader

	closeOnce sync.Once
	closeErr  error
	mu        sync.Mutex
	closed    bool
}

func (s *subscription) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *subscription) Fetch(ctx context.Context) (streams.Message, error) {
	if s.isClosed() {
		return streams.Message{}, streams.ErrClosed
	}
	m, err := s.r.FetchMessage(ctx)
	if err != nil {
		if s.isClosed() || errors.Is(err, io.EOF) {
			return streams.Message{}, streams.ErrClosed
		}
		return streams.Message{}, err
	}
	return streams.Message{
		Topic:     m.Topic,
		Partition: m.Partition,
		Offset:    m.Offset,
		Key:       m.Key,
		Value:     m.Value,
		Time:      messageTime(m.Time, m.Headers),
	}, nil
}

// Commit stores, for each partition of msgs, the offset after the highest message
// given, in one synchronous OffsetCommit. It may fail while the group rebalances; the
// messages are then delivered again, which the caller may simply accept.
func (s *subscription) Commit(ctx context.Context, msgs ...streams.Message) error {
	if s.isClosed() {
		return streams.ErrClosed
	}
	if len(msgs) == 0 {
		return nil
	}
	high := make(map[int]int64, 4)
	for _, m := range msgs {
		if m.Topic != s.topic {
			return fmt.Errorf("kafka: commit: message of topic %q on a subscription to %q", m.Topic, s.topic)
		}
		if off, ok := high[m.Partition]; !ok || m.Offset > off {
			high[m.Partition] = m.Offset
		}
	}
	kmsgs := make([]kafkago.Message, 0, len(high))
	for p, off := range high {
		kmsgs = append(kmsgs, kafkago.Message{Topic: s.topic, Partition: p, Offset: off})
	}
	if err := s.r.CommitMessages(ctx, kmsgs...); err != nil {
		if s.isClosed() || errors.Is(err, io.ErrClosedPipe) {
			return streams.ErrClosed
		}
		return fmt.Errorf("kafka: commit: %w", err)
	}
	return nil
}

// Assigned returns the partitions the group coordinator has assigned to this member in
// the current generation, or nil while the group is rebalancing, before the member has
// joined, or if the coordinator cannot be asked. It costs a DescribeGroups round trip.
// The logtest suite uses it (logtest.Assigner) to wait exactly as long as a rebalance.
func (s *subscription) Assigned() []int {
	if s.isClosed() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := s.log.client.DescribeGroups(ctx, &kafkago.DescribeGroupsRequest{GroupIDs: []string{s.group}})
	if err != nil {
		return nil
	}
	for _, g := range res.Groups {
		if g.GroupID != s.group || g.Error != nil || g.GroupState != "Stable" {
			continue
		}
		for _, m := range g.Members {
			if !bytes.Equal(m.MemberMetadata.UserData, s.tag) {
				continue
			}
			var out []int
			for _, t := range m.MemberAssignments.Topics {
				if t.Topic == s.topic {
					out = append(out, t.Partitions...)
				}
			}
			sort.Ints(out)
			return out
		}
	}
	return nil
}

// taggedBalancer is a GroupBalancer whose member user data is a tag.
type taggedBalancer struct {
	kafkago.GroupBalancer
	tag []byte
}

func (b taggedBalancer) UserData() ([]byte, error) { return b.tag, nil }

// Close leaves the group (its partitions are reassigned at once, without waiting for
// the session timeout).
func (s *subscription) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.closeErr = s.r.Close()
		s.log.mu.Lock()
		delete(s.log.subs, s)
		s.log.mu.Unlock()
	})
	return s.closeErr
}
