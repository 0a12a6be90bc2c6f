package kafka

// Integration tests against a real broker (deploy/local/kafka.sh start).
//
//   ATLAS_KAFKA_BROKERS   comma-separated bootstrap addresses (default 127.0.0.1:19092)
//   ATLAS_KAFKA_REQUIRED  if set (and not "0"), an unreachable broker fails the tests
//                         instead of skipping them

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/logtest"
)

const defaultBrokers = "127.0.0.1:19092"

var (
	probeOnce sync.Once
	probeErr  error
)

// testBrokers returns the broker addresses, skipping (or failing, when
// ATLAS_KAFKA_REQUIRED is set) if no broker answers.
func testBrokers(t testing.TB) []string {
	t.Helper()
	env := os.Getenv("ATLAS_KAFKA_BROKERS")
	if env == "" {
		env = defaultBrokers
	}
	var addrs []string
	for _, a := range strings.Split(env, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	probeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l, err := Open(ctx, Config{Brokers: addrs})
		if err != nil {
			probeErr = err
			return
		}
		probeErr = l.Close()
	})
	if probeErr != nil {
		if req := os.Getenv("ATLAS_KAFKA_REQUIRED"); req != "" && req != "0" {
			t.Fatalf("Kafka broker %s unreachable and ATLAS_KAFKA_REQUIRED=%s: %v", env, req, probeErr)
		}
		t.Skipf("Kafka broker %s unreachable (%v): start one with deploy/local/kafka.sh start, "+
			"or set ATLAS_KAFKA_REQUIRED=1 to make this a failure", env, probeErr)
	}
	return addrs
}

// testConfig is the configuration the tests use: short group timeouts (6 s is the
// broker's group.min.session.timeout.ms) so that a dead member is replaced quickly.
func testConfig(t testing.TB) Config {
	return Config{
		Brokers:           testBrokers(t),
		ClientID:          "atlas-test",
		Partitions:        4,
		ReplicationFactor: 1,
		SessionTimeout:    6 * time.Second,
		HeartbeatInterval: 500 * time.Millisecond,
		RebalanceTimeout:  3 * time.Second,
	}
}

func openLog(t testing.TB, cfg Config) *Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	l, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// uniqueName returns a topic or group name no earlier run used; topics are deleted
// when the test ends.
func uniqueName(t testing.TB, kind string) string {
	name := unsafeChars.ReplaceAllString(t.Name(), "_")
	if len(name) > 100 {
		name = name[len(name)-100:]
	}
	return fmt.Sprintf("atlas-test.%s.%s.%d", kind, name, time.Now().UnixNano())
}

func newTopic(t testing.TB, l *Log, partitions int) string {
	t.Helper()
	topic := uniqueName(t, "topic")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.CreateTopic(ctx, topic, partitions); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	t.Cleanup(func() { deleteTopic(t, l.cfg, topic) })
	return topic
}

func deleteTopic(t testing.TB, cfg Config, topic string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := newTransport(&cfg)
	defer tr.CloseIdleConnections()
	c := &kafkago.Client{Addr: kafkago.TCP(cfg.Brokers...), Transport: tr}
	if _, err := c.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: []string{topic}}); err != nil {
		t.Logf("delete topic %s: %v", topic, err)
	}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func records(n int, keyf func(i int) string) []streams.Record {
	recs := make([]streams.Record, n)
	for i := range recs {
		recs[i] = streams.Record{Key: []byte(keyf(i)), Value: []byte("v" + strconv.Itoa(i))}
	}
	return recs
}

func readAll(t testing.TB, l *Log, topic string, from, to streams.Position) []streams.Message {
	t.Helper()
	var out []streams.Message
	if err := l.Read(ctxT(t, 20*time.Second), topic, from, to, func(m streams.Message) error {
		out = append(out, m)
		return nil
	}); err != nil {
		t.Fatalf("Read: %v", err)
	}
	return out
}

func values(msgs []streams.Message) map[string]int {
	out := map[string]int{}
	for _, m := range msgs {
		out[string(m.Value)]++
	}
	return out
}

// fetchN fetches n messages (or fails after the deadline).
func fetchN(t testing.TB, sub streams.Subscription, n int, d time.Duration) []streams.Message {
	t.Helper()
	ctx := ctxT(t, d)
	out := make([]streams.Message, 0, n)
	for len(out) < n {
		m, err := sub.Fetch(ctx)
		if err != nil {
			t.Fatalf("Fetch after %d of %d messages: %v", len(out), n, err)
		}
		out = append(out, m)
	}
	return out
}

// expectNothing checks that sub delivers nothing within d.
func expectNothing(t testing.TB, sub streams.Subscription, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if m, err := sub.Fetch(ctx); err == nil {
		t.Fatalf("unexpected message %s/%d@%d %q", m.Topic, m.Partition, m.Offset, m.Value)
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fetch: %v", err)
	}
}

// ---------------------------------------------------------------------------------

var _ logtest.Assigner = (*subscription)(nil)

// TestConformance runs the backend-agnostic suite. Every Log of a subtest talks to
// the same broker, so Reopen holds.
func TestConformance(t *testing.T) {
	cfg := testConfig(t)
	logtest.Run(t, func(t *testing.T) streams.Log {
		return openLog(t, cfg)
	}, logtest.Capabilities{
		Partitions:       4,
		DenseOffsets:     true,
		SharedGroups:     true,
		Reopen:           true,
		Timeout:          10 * time.Second,
		RebalanceTimeout: 15 * time.Second,
		Parallel:         true,
	})
}

func TestCreateTopicIdempotent(t *testing.T) {
	l := openLog(t, testConfig(t))
	topic := newTopic(t, l, 3)
	if err := l.CreateTopic(ctxT(t, 10*time.Second), topic, 5); err != nil {
		t.Fatalf("second CreateTopic: %v", err)
	}
	ends, err := l.EndOffsets(ctxT(t, 10*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	if len(ends) != 3 {
		t.Fatalf("EndOffsets = %v, want 3 partitions (the existing topic is kept)", ends)
	}
	for p, off := range ends {
		if off != 0 {
			t.Errorf("partition %d end offset %d, want 0", p, off)
		}
	}
	// The Config.Partitions default applies to partitions <= 0.
	topic2 := uniqueName(t, "topic")
	if err := l.CreateTopic(ctxT(t, 10*time.Second), topic2, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteTopic(t, l.cfg, topic2) })
	if ends, err := l.EndOffsets(ctxT(t, 10*time.Second), topic2); err != nil || len(ends) != 4 {
		t.Fatalf("EndOffsets = %v, %v; want 4 partitions", ends, err)
	}
	// Without Config.Partitions and ReplicationFactor, the broker's defaults apply.
	cfg := testConfig(t)
	cfg.Partitions, cfg.ReplicationFactor = 0, 0
	l2 := openLog(t, cfg)
	topic3 := uniqueName(t, "topic")
	if err := l2.CreateTopic(ctxT(t, 10*time.Second), topic3, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteTopic(t, l.cfg, topic3) })
	if ends, err := l2.EndOffsets(ctxT(t, 10*time.Second), topic3); err != nil || len(ends) < 1 {
		t.Fatalf("EndOffsets = %v, %v", ends, err)
	} else {
		t.Logf("broker default: %d partitions", len(ends))
	}
}

// TestAppendAcksAll: the writer requires acknowledgement by all in-sync replicas, and
// when Append returns the records are below the high watermark (which only covers
// records replicated to the whole ISR), so every reader can see them at once.
func TestAppendAcksAll(t *testing.T) {
	l := openLog(t, testConfig(t))
	if l.writer.RequiredAcks != kafkago.RequireAll {
		t.Fatalf("RequiredAcks = %v, want RequireAll", l.writer.RequiredAcks)
	}
	if l.writer.AllowAutoTopicCreation {
		t.Fatal("writer may auto-create topics")
	}
	if _, ok := l.writer.Balancer.(*kafkago.Hash); !ok {
		t.Fatalf("Balancer = %T, want *kafka.Hash", l.writer.Balancer)
	}
	if l.writer.BatchTimeout > 10*time.Millisecond {
		t.Fatalf("BatchTimeout = %v", l.writer.BatchTimeout)
	}
	topic := newTopic(t, l, 4)

	// A second, independent client observes the offsets.
	other := openLog(t, testConfig(t))
	total := 0
	for round := 0; round < 5; round++ {
		n := 1 + round*37
		if err := l.Append(ctxT(t, 10*time.Second), topic, records(n, func(i int) string { return fmt.Sprintf("k%d-%d", round, i) })...); err != nil {
			t.Fatalf("Append: %v", err)
		}
		total += n
		ends, err := other.EndOffsets(ctxT(t, 10*time.Second), topic)
		if err != nil {
			t.Fatal(err)
		}
		sum := int64(0)
		for _, off := range ends {
			sum += off
		}
		if sum != int64(total) {
			t.Fatalf("round %d: high watermarks sum to %d right after Append, want %d", round, sum, total)
		}
	}
	if got := len(readAll(t, other, topic, streams.Position{}, streams.Position{})); got != total {
		t.Fatalf("read %d messages, want %d", got, total)
	}
	// An empty Append is a no-op.
	if err := l.Append(ctxT(t, 5*time.Second), topic); err != nil {
		t.Fatal(err)
	}
}

// TestKeyedPartitioning: records land in the partition kafka.Hash picks for their
// key, in append order per key.
func TestKeyedPartitioning(t *testing.T) {
	l := openLog(t, testConfig(t))
	const parts = 6
	topic := newTopic(t, l, parts)
	const keys, perKey = 40, 10
	var recs []streams.Record
	for i := 0; i < perKey; i++ {
		for k := 0; k < keys; k++ {
			recs = append(recs, streams.Record{Key: []byte(fmt.Sprintf("channel-%d", k)), Value: []byte(strconv.Itoa(i))})
		}
	}
	// Two calls, so that order must also hold across Appends.
	if err := l.Append(ctxT(t, 10*time.Second), topic, recs[:len(recs)/2]...); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(ctxT(t, 10*time.Second), topic, recs[len(recs)/2:]...); err != nil {
		t.Fatal(err)
	}
	ids := make([]int, parts)
	for i := range ids {
		ids[i] = i
	}
	msgs := readAll(t, l, topic, streams.Position{}, streams.Position{})
	if len(msgs) != len(recs) {
		t.Fatalf("read %d, want %d", len(msgs), len(recs))
	}
	next := map[string]int{}
	used := map[int]bool{}
	h := &kafkago.Hash{}
	for _, m := range msgs {
		want := h.Balance(kafkago.Message{Key: m.Key}, ids...)
		if m.Partition != want {
			t.Fatalf("key %s in partition %d, kafka.Hash says %d", m.Key, m.Partition, want)
		}
		used[m.Partition] = true
		if got := string(m.Value); got != strconv.Itoa(next[string(m.Key)]) {
			t.Fatalf("key %s: got value %s, want %d (append order)", m.Key, got, next[string(m.Key)])
		}
		next[string(m.Key)]++
		if m.Time.IsZero() || time.Since(m.Time) > time.Minute {
			t.Fatalf("bad timestamp %v", m.Time)
		}
	}
	if len(used) < parts-1 {
		t.Fatalf("40 keys used only partitions %v", used)
	}
}

func TestRead(t *testing.T) {
	l := openLog(t, testConfig(t))
	topic := newTopic(t, l, 4)
	ctx := ctxT(t, 30*time.Second)

	// Empty topic: Read returns at once.
	start := time.Now()
	if got := readAll(t, l, topic, streams.Position{}, streams.Position{}); len(got) != 0 {
		t.Fatalf("empty topic: %d messages", len(got))
	}
	// One key: three of the four partitions stay empty and must not block.
	if err := l.Append(ctx, topic, records(10, func(int) string { return "one" })...); err != nil {
		t.Fatal(err)
	}
	all := readAll(t, l, topic, streams.Position{}, streams.Position{})
	if len(all) != 10 {
		t.Fatalf("read %d, want 10", len(all))
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("reads took %v", d)
	}
	p := all[0].Partition
	for i, m := range all {
		if m.Partition != p || m.Offset != int64(i) || string(m.Value) != "v"+strconv.Itoa(i) {
			t.Fatalf("message %d: %+v", i, m)
		}
	}

	time.Sleep(5 * time.Millisecond) // timestamps have millisecond resolution
	mid := time.Now()
	time.Sleep(5 * time.Millisecond)
	if err := l.Append(ctx, topic, records(5, func(int) string { return "one" })...); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name     string
		from, to streams.Position
		want     []int64 // offsets in partition p
	}{
		{"all", streams.Position{}, streams.Position{}, seq(0, 15)},
		{"from offset", streams.Position{Offsets: map[int]int64{p: 12}}, streams.Position{}, seq(12, 15)},
		{"to offset", streams.Position{}, streams.Position{Offsets: map[int]int64{p: 3}}, seq(0, 3)},
		{"offset range", streams.Position{Offsets: map[int]int64{p: 4}}, streams.Position{Offsets: map[int]int64{p: 7}}, seq(4, 7)},
		{"to beyond end", streams.Position{Offsets: map[int]int64{p: 13}}, streams.Position{Offsets: map[int]int64{p: 1000}}, seq(13, 15)},
		{"from end", streams.Position{Offsets: map[int]int64{p: 15}}, streams.Position{}, nil},
		{"from time", streams.Position{Time: mid}, streams.Position{}, seq(10, 15)},
		{"to time", streams.Position{}, streams.Position{Time: mid}, seq(0, 10)},
		{"from future time", streams.Position{Time: time.Now().Add(time.Hour)}, streams.Position{}, nil},
		{"to past time", streams.Position{}, streams.Position{Time: time.Now().Add(-time.Hour)}, nil},
	}
	for _, c := range cases {
		got := readAll(t, l, topic, c.from, c.to)
		var offs []int64
		for _, m := range got {
			if m.Partition != p {
				t.Fatalf("%s: message in partition %d", c.name, m.Partition)
			}
			offs = append(offs, m.Offset)
		}
		if fmt.Sprint(offs) != fmt.Sprint(c.want) {
			t.Errorf("%s: offsets %v, want %v", c.name, offs, c.want)
		}
	}

	// fn's error stops Read and is returned.
	stop := errors.New("stop")
	n := 0
	err := l.Read(ctx, topic, streams.Position{}, streams.Position{}, func(streams.Message) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Fatalf("Read = %v after %d calls, want stop after 3", err, n)
	}
}

func seq(lo, hi int64) []int64 {
	var out []int64
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}

// TestReadLarge crosses several fetch responses.
func TestReadLarge(t *testing.T) {
	l := openLog(t, testConfig(t))
	topic := newTopic(t, l, 2)
	val := bytes.Repeat([]byte("x"), 1000)
	const n = 12000 // 12 MB: several 4 MiB fetches per partition
	recs := make([]streams.Record, n)
	for i := range recs {
		recs[i] = streams.Record{Key: []byte(strconv.Itoa(i)), Value: val}
	}
	if err := l.Append(ctxT(t, 30*time.Second), topic, recs...); err != nil {
		t.Fatal(err)
	}
	last := map[int]int64{}
	count := 0
	err := l.Read(ctxT(t, 30*time.Second), topic, streams.Position{}, streams.Position{}, func(m streams.Message) error {
		if prev, ok := last[m.Partition]; ok && m.Offset != prev+1 {
			return fmt.Errorf("partition %d: offset %d after %d", m.Partition, m.Offset, prev)
		}
		last[m.Partition] = m.Offset
		count++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if count != n {
		t.Fatalf("read %d, want %d", count, n)
	}
}

func TestUnknownTopic(t *testing.T) {
	l := openLog(t, testConfig(t))
	topic := uniqueName(t, "missing")
	t.Cleanup(func() { deleteTopic(t, l.cfg, topic) }) // in case a bug created it
	ctx := ctxT(t, 20*time.Second)
	if err := l.Append(ctx, topic, streams.Record{Value: []byte("x")}); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("Append: %v, want ErrUnknownTopic", err)
	}
	if _, err := l.EndOffsets(ctx, topic); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("EndOffsets: %v, want ErrUnknownTopic", err)
	}
	if err := l.Read(ctx, topic, streams.Position{}, streams.Position{}, func(streams.Message) error { return nil }); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("Read: %v, want ErrUnknownTopic", err)
	}
	if _, err := l.Subscribe(ctx, topic, uniqueName(t, "group")); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("Subscribe: %v, want ErrUnknownTopic", err)
	}
	if ok, err := l.topicExists(ctx, topic); err != nil || ok {
		t.Errorf("topic was created (%v, %v)", ok, err)
	}
}

// TestTopicFromAnotherClient: a topic created by another client, absent from this
// client's metadata cache, becomes usable as soon as the cache refreshes
// (Config.MetadataTTL) instead of failing with UnknownTopicOrPartition.
func TestTopicFromAnotherClient(t *testing.T) {
	l := openLog(t, testConfig(t))
	other := openLog(t, testConfig(t))
	topic := newTopic(t, other, 2)
	ctx := ctxT(t, 20*time.Second)
	start := time.Now()
	if err := l.Append(ctx, topic, streams.Record{Key: []byte("k"), Value: []byte("v")}); err != nil {
		t.Fatalf("Append to a topic created by another client: %v", err)
	}
	t.Logf("first Append after %v", time.Since(start))
	topic2 := newTopic(t, other, 3)
	if ends, err := l.EndOffsets(ctx, topic2); err != nil || len(ends) != 3 {
		t.Fatalf("EndOffsets = %v, %v", ends, err)
	}
}

func TestClosed(t *testing.T) {
	l := openLog(t, testConfig(t))
	topic := newTopic(t, l, 1)
	sub, err := l.Subscribe(ctxT(t, 10*time.Second), topic, uniqueName(t, "group"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := sub.Fetch(context.Background())
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, streams.ErrClosed) {
			t.Errorf("blocked Fetch returned %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Fetch still blocked after Close")
	}
	ctx := ctxT(t, 5*time.Second)
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := l.Append(ctx, topic, streams.Record{}); !errors.Is(err, streams.ErrClosed) {
		t.Errorf("Append: %v", err)
	}
	if _, err := l.Subscribe(ctx, topic, "g"); !errors.Is(err, streams.ErrClosed) {
		t.Errorf("Subscribe: %v", err)
	}
	if err := l.Read(ctx, topic, streams.Position{}, streams.Position{}, nil); !errors.Is(err, streams.ErrClosed) {
		t.Errorf("Read: %v", err)
	}
	if _, err := l.EndOffsets(ctx, topic); !errors.Is(err, streams.ErrClosed) {
		t.Errorf("EndOffsets: %v", err)
	}
	if err := l.CreateTopic(ctx, topic, 1); !errors.Is(err, streams.ErrClosed) {
		t.Errorf("CreateTopic: %v", err)
	}
	if _, err := sub.Fetch(ctx); !errors.Is(err, streams.ErrClosed) {
		t.Errorf("Fetch: %v", err)
	}
	if err := sub.Commit(ctx, streams.Message{Topic: topic}); !errors.Is(err, streams.ErrClosed) {
		t.Errorf("Commit: %v", err)
	}
}

// TestGroupResumeAfterReopen: a group resumes from its committed offsets in a new Log
// (a restarted process), and uncommitted messages are delivered again.
func TestGroupResumeAfterReopen(t *testing.T) {
	cfg := testConfig(t)
	l1 := openLog(t, cfg)
	topic := newTopic(t, l1, 4)
	group := uniqueName(t, "group")
	const n = 40
	if err := l1.Append(ctxT(t, 10*time.Second), topic, records(n, func(i int) string { return "k" + strconv.Itoa(i%8) })...); err != nil {
		t.Fatal(err)
	}

	sub, err := l1.Subscribe(ctxT(t, 10*time.Second), topic, group)
	if err != nil {
		t.Fatal(err)
	}
	first := fetchN(t, sub, 15, 20*time.Second)
	// Commit the first 10 (per partition, fetch order is offset order, so these 10
	// are exactly what the commit covers), fetch 5 more without committing.
	if err := sub.Commit(ctxT(t, 10*time.Second), first[:10]...); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	covered := map[int]int64{}
	for _, m := range first[:10] {
		covered[m.Partition] = max(covered[m.Partition], m.Offset+1)
	}
	committed := 0
	for _, m := range first {
		if m.Offset < covered[m.Partition] {
			committed++
		}
	}
	if err := l1.Close(); err != nil { // closes sub too: leaves the group
		t.Fatal(err)
	}

	start := time.Now()
	l2 := openLog(t, cfg)
	sub2, err := l2.Subscribe(ctxT(t, 10*time.Second), topic, group)
	if err != nil {
		t.Fatal(err)
	}
	rest := fetchN(t, sub2, n-committed, 20*time.Second)
	t.Logf("resumed after %v", time.Since(start))
	for _, m := range rest {
		if m.Offset < covered[m.Partition] {
			t.Fatalf("committed message %d@%d delivered again", m.Partition, m.Offset)
		}
	}
	all := values(append(first[:committed:committed], rest...))
	if len(all) != n {
		t.Fatalf("saw %d distinct messages, want %d", len(all), n)
	}
	expectNothing(t, sub2, 300*time.Millisecond)

	// Commit everything: a third member gets nothing.
	if err := sub2.Commit(ctxT(t, 10*time.Second), rest...); err != nil {
		t.Fatal(err)
	}
	if err := sub2.Close(); err != nil {
		t.Fatal(err)
	}
	sub3, err := l2.Subscribe(ctxT(t, 10*time.Second), topic, group)
	if err != nil {
		t.Fatal(err)
	}
	defer sub3.Close()
	expectNothing(t, sub3, time.Second)
	// ...until something new arrives.
	if err := l2.Append(ctxT(t, 10*time.Second), topic, streams.Record{Key: []byte("new"), Value: []byte("new")}); err != nil {
		t.Fatal(err)
	}
	if m := fetchN(t, sub3, 1, 10*time.Second)[0]; string(m.Value) != "new" {
		t.Fatalf("got %q, want new", m.Value)
	}
}

// TestGroupMembersShare: two members of one group split the partitions; together they
// see every message, and at most the handful fetched before the rebalance twice.
func TestGroupMembersShare(t *testing.T) {
	l := openLog(t, testConfig(t))
	topic := newTopic(t, l, 4)
	group := uniqueName(t, "group")
	ctx := ctxT(t, 40*time.Second)

	a, err := l.Subscribe(ctx, topic, group)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Subscribe(ctx, topic, group)
	if err != nil {
		t.Fatal(err)
	}
	// Both members must hold partitions before anything is appended, or the first to
	// join may drain the topic before the group rebalances (a race, not a bug).
	for wait := time.Now().Add(30 * time.Second); ; {
		if len(a.(interface{ Assigned() []int }).Assigned()) > 0 && len(b.(interface{ Assigned() []int }).Assigned()) > 0 {
			break
		}
		if time.Now().After(wait) {
			t.Fatal("the group did not give both members partitions")
		}
		time.Sleep(50 * time.Millisecond)
	}
	const n = 200
	if err := l.Append(ctx, topic, records(n, func(i int) string { return "k" + strconv.Itoa(i) })...); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	seen := map[string]int{}
	parts := map[string]map[int]bool{"a": {}, "b": {}}
	consume := func(name string, sub streams.Subscription) {
		for {
			m, err := sub.Fetch(ctx)
			if err != nil {
				return
			}
			if err := sub.Commit(ctx, m); err != nil {
				t.Logf("%s: commit: %v (rebalance)", name, err)
			}
			mu.Lock()
			seen[string(m.Value)]++
			parts[name][m.Partition] = true
			mu.Unlock()
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for name, sub := range map[string]streams.Subscription{"a": a, "b": b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for cctx.Err() == nil {
				consume(name, sub)
				return
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		done := len(seen) == n && len(parts["a"]) > 0 && len(parts["b"]) > 0
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			mu.Lock()
			t.Fatalf("saw %d of %d; partitions a=%v b=%v", len(seen), n, parts["a"], parts["b"])
		}
		time.Sleep(20 * time.Millisecond)
	}
	a.Close()
	b.Close()
	wg.Wait()
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	t.Logf("partitions a=%v b=%v, %d duplicates", parts["a"], parts["b"], dups)
}

// TestGroupMemberCrash: a member that dies without leaving the group (SIGKILL of a
// child process) is replaced after the session timeout; the new member resumes after
// the crashed member's last commit.
func TestGroupMemberCrash(t *testing.T) {
	if os.Getenv("ATLAS_KAFKA_CRASH_CHILD") != "" {
		t.Skip("child process")
	}
	cfg := testConfig(t)
	l := openLog(t, cfg)
	topic := newTopic(t, l, 2)
	group := uniqueName(t, "group")
	const n = 30
	if err := l.Append(ctxT(t, 10*time.Second), topic, records(n, func(i int) string { return "k" + strconv.Itoa(i) })...); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), "ATLAS_KAFKA_CRASH_CHILD=1", "ATLAS_KAFKA_CRASH_TOPIC="+topic, "ATLAS_KAFKA_CRASH_GROUP="+group)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()

	// The child fetches 20 messages, commits the first 10 and reports what it committed.
	committed := map[int]int64{}
	sc := bufio.NewScanner(stdout)
	ready := false
	for sc.Scan() {
		line := sc.Text()
		var p int
		var off int64
		if _, err := fmt.Sscanf(line, "COMMITTED %d %d", &p, &off); err == nil {
			committed[p] = off
		}
		if line == "READY" {
			ready = true
			break
		}
	}
	if !ready {
		t.Fatal("child did not get ready")
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no LeaveGroup
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	killed := time.Now()

	sub, err := l.Subscribe(ctxT(t, 10*time.Second), topic, group)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	want := 0
	for p := 0; p < 2; p++ {
		want += int(committedEnd(t, l, topic, p) - committed[p])
	}
	got := fetchN(t, sub, want, 30*time.Second)
	t.Logf("partitions taken over %v after the kill (session timeout %v)", time.Since(killed).Round(time.Millisecond), cfg.SessionTimeout)
	for _, m := range got {
		if m.Offset < committed[m.Partition] {
			t.Fatalf("committed %d@%d delivered again", m.Partition, m.Offset)
		}
	}
	if len(values(got)) != want {
		t.Fatalf("got %d distinct, want %d", len(values(got)), want)
	}
}

func committedEnd(t *testing.T, l *Log, topic string, p int) int64 {
	ends, err := l.EndOffsets(ctxT(t, 10*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	return ends[p]
}

// TestCrashChild is the member that TestGroupMemberCrash kills.
func TestCrashChild(t *testing.T) {
	if os.Getenv("ATLAS_KAFKA_CRASH_CHILD") == "" {
		t.Skip("run by TestGroupMemberCrash")
	}
	cfg := testConfig(t)
	l, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := l.Subscribe(context.Background(), os.Getenv("ATLAS_KAFKA_CRASH_TOPIC"), os.Getenv("ATLAS_KAFKA_CRASH_GROUP"))
	if err != nil {
		t.Fatal(err)
	}
	msgs := fetchN(t, sub, 20, 20*time.Second)
	if err := sub.Commit(context.Background(), msgs[:10]...); err != nil {
		t.Fatal(err)
	}
	high := map[int]int64{}
	for _, m := range msgs[:10] {
		high[m.Partition] = max(high[m.Partition], m.Offset+1)
	}
	for p, off := range high {
		fmt.Printf("COMMITTED %d %d\n", p, off)
	}
	fmt.Println("READY")
	select {} // wait for SIGKILL, heartbeating
}
