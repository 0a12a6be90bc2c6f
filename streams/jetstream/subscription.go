package jetstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/atlas-mmm/atlas/streams"
)

// leaseBucketName is the KV bucket holding group membership and partition leases of
// every topic and group.
const leaseBucketName = "atlas_leases"

// leaseBucket is the KV bucket of leases. Its TTL (the bucket's max age) is the lease
// duration: the server itself deletes a lease its holder stopped renewing, which is what
// lets the others take over after a crash without trusting any client's clock.
//
// It is kept in memory, not on file: leases only mean something while their holders'
// connections live. An embedded server (no listener) restarts only with its process, so
// every lease a file-backed bucket would bring back would belong to a dead member and
// hold its partitions for a whole TTL after the restart.
type leaseBucket struct {
	kv  jetstream.KeyValue
	ttl time.Duration
}

func (l *Log) leaseBucket(ctx context.Context) (*leaseBucket, error) {
	l.mu.Lock()
	lb := l.leases
	l.mu.Unlock()
	if lb != nil {
		return lb, nil
	}
	kv, err := l.createLeaseBucket(ctx, l.cfg.LeaseTTL)
	if err != nil {
		return nil, err
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("jetstream: lease bucket: %w", err)
	}
	lb = &leaseBucket{kv: kv, ttl: st.TTL()}
	if lb.ttl <= 0 {
		return nil, fmt.Errorf("jetstream: bucket %s exists without a TTL; delete it", leaseBucketName)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.leases == nil {
		l.leases = lb
	}
	return l.leases, nil
}

// createLeaseBucket creates the lease bucket, or opens it if it exists.
func (l *Log) createLeaseBucket(ctx context.Context, ttl time.Duration) (jetstream.KeyValue, error) {
	kv, err := l.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      leaseBucketName,
		Description: "Atlas consumer-group members and partition leases",
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.MemoryStorage,
		Replicas:    l.cfg.Replicas,
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = l.js.KeyValue(ctx, leaseBucketName)
	}
	if err != nil {
		return nil, fmt.Errorf("jetstream: lease bucket: %w", err)
	}
	return kv, nil
}

// subscription is one member of a consumer group on one topic.
//
// Membership protocol (all in the lease bucket, keys "<stream>.<group>.m.<member>" and
// "<stream>.<group>.p.<partition>"):
//
//   - A member keeps its member key alive and reads the others'. Sorting the live member
//     ids gives each one an index i among n, and a fair share of P partitions:
//     P/n, plus one if i < P%n. Every member computes the same shares.
//   - A member owns a partition while it holds its lease: taken with a KV create (which
//     fails if the key exists: at most one holder), renewed with a compare-and-swap
//     update every third of the TTL (a member that lost its lease notices and stops),
//     deleted when it gives the partition up. It takes free partitions up to its share
//     and gives up its highest-numbered ones above it, so a joining member gets its
//     share within a couple of rebalance intervals, and a leaving one hands its
//     partitions over at once (Close) or after the TTL (crash).
//   - Each partition is consumed through the group's durable consumer for it. Taking a
//     partition resets that consumer to its ack floor (the committed position), so
//     whatever the previous owner had fetched but not committed is delivered again at
//     once and in order, instead of after AckWait.
//
// Delivery is at least once: a message is acked only by a Commit of it or of a later
// message of its partition. Per-key order holds within a member's tenure of a
// partition; a redelivery can only be out of order if a member kept consuming a
// partition after its lease passed to another (a member paused longer than the TTL).
type subscription struct {
	log      *Log
	t        *topic
	group    string
	gtok     string // sanitized group
	id       string // member id
	lb       *leaseBucket
	interval time.Duration

	out      chan delivery   // messages from the partition pumps
	lost     chan *partition // partitions whose pump failed
	closed   chan struct{}
	once     sync.Once
	loopDone chan struct{}
	ctx      context.Context // cancelled by Close
	cancel   context.CancelFunc

	mu    sync.Mutex
	owned map[int]*partition
}

// partition is a partition this member owns.
type partition struct {
	p        int
	rev      uint64 // revision of our lease
	renewed  time.Time
	it       jetstream.MessagesContext
	stop     chan struct{}
	stopOnce sync.Once
	stopped  chan struct{}
	err      error // why the pump stopped by itself

	// Messages handed to the application and not committed yet, in delivery order, which
	// is offset order unless a late redelivery came (unsorted). Guarded by
	// subscription.mu.
	pending  []jetstream.Msg
	pendSeq  []uint64
	unsorted bool
}

// holds reports whether the message at seq is pending.
func (part *partition) holds(seq uint64) bool {
	if part.unsorted {
		return slices.Contains(part.pendSeq, seq)
	}
	_, found := slices.BinarySearch(part.pendSeq, seq)
	return found
}

type delivery struct {
	part *partition
	msg  jetstream.Msg
}

// Subscribe joins group on topic and returns once the member has taken its initial share
// of the partitions (all of them if it is alone). See subscription for the protocol.
// A new group starts at the beginning of the topic.
func (l *Log) Subscribe(ctx context.Context, name, group string) (streams.Subscription, error) {
	t, err := l.topic(ctx, name)
	if err != nil {
		return nil, err
	}
	if group == "" {
		return nil, errors.New("jetstream: Subscribe needs a group")
	}
	lb, err := l.leaseBucket(ctx)
	if err != nil {
		return nil, err
	}
	s := &subscription{
		log:      l,
		t:        t,
		group:    group,
		gtok:     sanitize(group),
		id:       nuid.Next(),
		lb:       lb,
		interval: min(l.cfg.RebalanceInterval, lb.ttl/3),
		out:      make(chan delivery, 64),
		lost:     make(chan *partition, t.partitions),
		closed:   make(chan struct{}),
		loopDone: make(chan struct{}),
		owned:    map[int]*partition{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, streams.ErrClosed
	}
	l.subs[s] = struct{}{}
	l.mu.Unlock()
	if err := s.balance(ctx); err != nil {
		close(s.loopDone)
		s.Close()
		return nil, err
	}
	go s.loop()
	return s, nil
}

func (s *subscription) leaseKey(p int) string {
	return s.t.stream + "." + s.gtok + ".p." + strconv.Itoa(p)
}

func (s *subscription) memberPrefix() string { return s.t.stream + "." + s.gtok + ".m." }

func (s *subscription) consumerName(p int) string { return s.gtok + "-" + strconv.Itoa(p) }

// Assigned returns the partitions this member owns now, in ascending order. It is not
// part of streams.Subscription; tests use it to wait for a rebalance to settle.
func (s *subscription) Assigned() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := make([]int, 0, len(s.owned))
	for p := range s.owned {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

func (s *subscription) loop() {
	defer close(s.loopDone)
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	for {
		select {
		case <-s.closed:
			return
		case part := <-s.lost:
			s.log.cfg.OnError(fmt.Errorf("jetstream: group %q lost partition %d of %q: %w", s.group, part.p, s.t.name, part.err))
			s.drop(s.ctx, part, true)
		case <-tick.C:
			ctx, cancel := context.WithTimeout(s.ctx, s.lb.ttl/2)
			// Errors are transient here (the server answers again later, or our leases
			// expire and others take over): retry on the next tick.
			if err := s.balance(ctx); err != nil && s.ctx.Err() == nil {
				s.log.cfg.OnError(err)
			}
			cancel()
		}
	}
}

// balance runs one round of the membership protocol.
func (s *subscription) balance(ctx context.Context) error {
	kv := s.lb.kv
	// First renew our leases (what must not lapse); a lease we cannot renew because it
	// changed hands (or expired) is lost.
	now := time.Now()
	for _, part := range s.parts() {
		if now.Sub(part.renewed) < s.lb.ttl/3 {
			continue
		}
		rev, err := kv.Update(ctx, s.leaseKey(part.p), []byte(s.id), part.rev)
		switch {
		case err == nil:
			part.rev, part.renewed = rev, now
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			s.drop(ctx, part, false)
		default:
			return s.bucketError(ctx, fmt.Errorf("jetstream: group %q renew lease: %w", s.group, err))
		}
	}

	// Announce ourselves: the member key lives as long as we renew it.
	if _, err := kv.Put(ctx, s.memberPrefix()+s.id, []byte(s.id)); err != nil {
		return s.bucketError(ctx, fmt.Errorf("jetstream: group %q heartbeat: %w", s.group, err))
	}
	members, err := s.members(ctx)
	if err != nil {
		return err
	}
	n, P := len(members), s.t.partitions
	idx, _ := slices.BinarySearch(members, s.id)
	share := P / n
	if idx < P%n {
		share++
	}

	// Give up partitions above our share, highest first.
	parts := s.parts()
	for i := len(parts) - 1; i >= share; i-- {
		s.drop(ctx, parts[i], true)
	}

	// Take free partitions up to our share. Starting from our slice of the range keeps
	// members from all racing for partition 0.
	owned := len(s.parts())
	for i := 0; i < P && owned < share; i++ {
		p := (idx*P/n + i) % P
		if s.ownsNumber(p) {
			continue
		}
		rev, err := kv.Create(ctx, s.leaseKey(p), []byte(s.id))
		if err != nil {
			continue // held by another member, or a transient error: next round
		}
		if err := s.acquire(ctx, p, rev); err != nil {
			_ = kv.Delete(ctx, s.leaseKey(p), jetstream.LastRevision(rev))
			return err
		}
		owned++
	}
	return nil
}

// bucketError passes err on, first creating the lease bucket again if it is gone: a
// standalone server does not keep memory streams across a restart, so the bucket (and
// every lease with it) disappears; our renewals then fail and we take partitions again
// like any new member.
func (s *subscription) bucketError(ctx context.Context, err error) error {
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrStreamNotFound) {
		_, _ = s.log.createLeaseBucket(ctx, s.lb.ttl)
	}
	return err
}

// members returns the sorted ids of the group's live members, including this one.
func (s *subscription) members(ctx context.Context) ([]string, error) {
	lister, err := s.lb.kv.ListKeysFiltered(ctx, s.memberPrefix()+"*")
	if err != nil {
		return nil, fmt.Errorf("jetstream: group %q members: %w", s.group, err)
	}
	seen := map[string]bool{s.id: true}
	ids := []string{s.id}
	for k := range lister.Keys() {
		if id := strings.TrimPrefix(k, s.memberPrefix()); !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	slices.Sort(ids)
	return ids, nil
}

func (s *subscription) parts() []*partition {
	s.mu.Lock()
	defer s.mu.Unlock()
	parts := make([]*partition, 0, len(s.owned))
	for _, part := range s.owned {
		parts = append(parts, part)
	}
	slices.SortFunc(parts, func(a, b *partition) int { return a.p - b.p })
	return parts
}

func (s *subscription) owns(part *partition) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.owned[part.p] == part
}

func (s *subscription) ownsNumber(p int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.owned[p] != nil
}

// acquire starts consuming partition p, whose lease we just took.
func (s *subscription) acquire(ctx context.Context, p int, rev uint64) error {
	js, stream, name := s.log.js, s.t.stream, s.consumerName(p)
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:       name,
		Description:   fmt.Sprintf("Atlas group %q, partition %d of %q", s.group, p, s.t.name),
		FilterSubject: s.t.subjects[p],
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// Explicit acks, not AckAll: a Commit acks exactly the messages this member
		// handed out, so a message that went to a previous owner after we took over (see
		// subscription) is still redelivered instead of being acked with later ones.
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.log.cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: s.log.cfg.MaxAckPending,
		Metadata:      map[string]string{"atlas_group": s.group},
	})
	if err != nil {
		return fmt.Errorf("jetstream: group %q partition %d: %w", s.group, p, err)
	}
	// Resume from the committed position: everything delivered but not acked (to us or
	// to the previous owner) is delivered again, now and in order.
	if _, err := js.ResetConsumer(ctx, stream, name); err != nil {
		return fmt.Errorf("jetstream: group %q partition %d: reset: %w", s.group, p, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(s.log.cfg.FetchBatch))
	if err != nil {
		return fmt.Errorf("jetstream: group %q partition %d: %w", s.group, p, err)
	}
	part := &partition{
		p: p, rev: rev, renewed: time.Now(), it: it,
		stop: make(chan struct{}), stopped: make(chan struct{}),
	}
	s.mu.Lock()
	s.owned[p] = part
	s.mu.Unlock()
	go s.pump(part)
	return nil
}

// pump moves one partition's messages to the subscription's queue, in order.
func (s *subscription) pump(part *partition) {
	defer close(part.stopped)
	for {
		m, err := part.it.Next()
		if err != nil {
			select {
			case <-part.stop:
				return
			default:
			}
			if errors.Is(err, jetstream.ErrNoHeartbeat) {
				continue // the iterator re-issues its pull request itself
			}
			// The consumer was deleted or the connection closed: give the partition up;
			// the balancer takes it back (resetting the consumer) if it can.
			part.err = err
			select {
			case s.lost <- part:
			case <-part.stop:
			case <-s.closed:
			}
			return
		}
		select {
		case s.out <- delivery{part, m}:
		case <-part.stop:
			return
		}
	}
}

// drop stops consuming a partition. Messages of it that were handed out and not
// committed are forgotten: their next owner (maybe us again) gets them again. With
// release, the lease is deleted so that another member can take the partition at once;
// the iterator is stopped first, and both go over our one connection in that order,
// so the server has dropped our pull requests before anyone can take over.
func (s *subscription) drop(ctx context.Context, part *partition, release bool) {
	s.mu.Lock()
	if s.owned[part.p] == part {
		delete(s.owned, part.p)
	}
	s.mu.Unlock()
	part.stopOnce.Do(func() {
		close(part.stop)
		part.it.Stop()
	})
	<-part.stopped
	if release && s.log.nc.IsConnected() {
		_ = s.lb.kv.Delete(ctx, s.leaseKey(part.p), jetstream.LastRevision(part.rev))
	}
}

// Fetch returns the next message of any partition this member owns. Messages of one
// partition come in offset order; partitions are interleaved as their messages arrive.
func (s *subscription) Fetch(ctx context.Context) (streams.Message, error) {
	for {
		select {
		case <-s.closed:
			return streams.Message{}, streams.ErrClosed
		default:
		}
		select {
		case d := <-s.out:
			if m, ok, err := s.accept(d); err != nil || ok {
				return m, err
			}
		case <-ctx.Done():
			return streams.Message{}, ctx.Err()
		case <-s.closed:
			return streams.Message{}, streams.ErrClosed
		}
	}
}

// accept records d as handed out, unless its partition was dropped since, or it is a
// redelivery (after AckWait) of a message the application already holds.
func (s *subscription) accept(d delivery) (streams.Message, bool, error) {
	meta, err := d.msg.Metadata()
	if err != nil {
		return streams.Message{}, false, fmt.Errorf("jetstream: %w", err)
	}
	seq := meta.Sequence.Stream
	s.mu.Lock()
	part := s.owned[d.part.p]
	if part != d.part || (meta.NumDelivered > 1 && part.holds(seq)) {
		s.mu.Unlock()
		return streams.Message{}, false, nil
	}
	if n := len(part.pendSeq); n > 0 && part.pendSeq[n-1] > seq {
		part.unsorted = true
	}
	part.pending = append(part.pending, d.msg)
	part.pendSeq = append(part.pendSeq, seq)
	s.mu.Unlock()
	key, err := keyFromHeader(d.msg.Headers())
	if err != nil {
		return streams.Message{}, false, err
	}
	ts, err := messageTime(d.msg.Headers(), meta.Timestamp)
	if err != nil {
		return streams.Message{}, false, err
	}
	return streams.Message{
		Topic: s.t.name, Partition: part.p, Offset: int64(seq),
		Key: key, Value: d.msg.Data(), Time: ts,
	}, true, nil
}

// Commit acks, per partition, every message this member handed out up to the highest
// committed offset; the last ack of each partition waits for the server's confirmation
// (acks of one consumer are processed in order, so that covers the others). Messages of
// partitions this member no longer owns are skipped: their new owner has them again.
func (s *subscription) Commit(ctx context.Context, msgs ...streams.Message) error {
	select {
	case <-s.closed:
		return streams.ErrClosed
	default:
	}
	upto := map[int]int64{}
	for _, m := range msgs {
		if m.Topic != s.t.name {
			return fmt.Errorf("jetstream: commit of a %q message on a %q subscription", m.Topic, s.t.name)
		}
		if off, ok := upto[m.Partition]; !ok || m.Offset > off {
			upto[m.Partition] = m.Offset
		}
	}
	type batch struct {
		part *partition
		msgs []jetstream.Msg
	}
	var acks []batch
	s.mu.Lock()
	for p, off := range upto {
		part := s.owned[p]
		if part == nil {
			continue
		}
		var ack []jetstream.Msg
		keep, keepSeq := part.pending[:0], part.pendSeq[:0]
		for i, seq := range part.pendSeq {
			if int64(seq) <= off {
				ack = append(ack, part.pending[i])
			} else {
				keep, keepSeq = append(keep, part.pending[i]), append(keepSeq, seq)
			}
		}
		clear(part.pending[len(keep):])
		part.pending, part.pendSeq = keep, keepSeq
		if len(keep) == 0 {
			part.unsorted = false
		}
		if len(ack) > 0 {
			acks = append(acks, batch{part, ack})
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, b := range acks {
		for _, m := range b.msgs[:len(b.msgs)-1] {
			if err := m.Ack(); err != nil {
				errs = append(errs, err)
			}
		}
		// The server does not answer an ack for a message past its consumer's delivery
		// point, which is where one lands if the partition changed hands (and the
		// consumer was reset) since we took these handles: bound the wait, and do not
		// report a failure for a partition we no longer own.
		actx, cancel := context.WithTimeout(ctx, ackTimeout)
		err := b.msgs[len(b.msgs)-1].DoubleAck(actx)
		cancel()
		if err != nil && s.owns(b.part) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		if s.log.isClosed() {
			return streams.ErrClosed
		}
		return fmt.Errorf("jetstream: commit: %w", err)
	}
	return nil
}

// ackTimeout bounds the wait for the server to confirm a Commit's acks.
const ackTimeout = 5 * time.Second

// Close leaves the group: it stops consuming, hands its partitions over by deleting
// their leases and withdraws its member key. Uncommitted messages go to the next owner.
func (s *subscription) Close() error {
	s.once.Do(func() {
		close(s.closed)
		s.cancel()
		<-s.loopDone
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, part := range s.parts() {
			s.drop(ctx, part, true)
		}
		if s.log.nc.IsConnected() {
			_ = s.lb.kv.Delete(ctx, s.memberPrefix()+s.id)
		}
		s.log.mu.Lock()
		delete(s.log.subs, s)
		s.log.mu.Unlock()
	})
	return nil
}
