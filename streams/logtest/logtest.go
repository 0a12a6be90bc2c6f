// Package logtest is the conformance suite every streams.Log backend must pass, in the
// manner of watermill's pub/sub tests: one set of behaviours, run against real servers,
// with capability flags for what a backend legitimately cannot do.
//
// A backend's test calls Run with a constructor:
//
//	func TestConformance(t *testing.T) {
//		logtest.Run(t, func(t *testing.T) streams.Log { ... }, logtest.Capabilities{...})
//	}
//
// Every subtest works on topics and groups of its own (named after the subtest, with a
// random suffix), so the constructor may return Logs on one shared server. The suite
// closes every Log it gets (possibly twice: Close must tolerate that).
package logtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atlas-mmm/atlas/streams"
)

// Capabilities tells the suite what the backend under test supports.
type Capabilities struct {
	// Partitions of the topics the suite creates (default 4, at least 2).
	Partitions int
	// DenseOffsets: the offsets of a partition are 0, 1, 2, ... (Kafka). Without it the
	// suite only requires them to increase, gaps allowed.
	DenseOffsets bool
	// SharedGroups: members of one group split the partitions between them. Without it
	// the two-member test is skipped.
	SharedGroups bool
	// Reopen: within one test, every call of newLog returns a Log on the same data (topics,
	// messages, committed positions), whether or not the earlier ones are still open.
	// Without it, restart tests reuse one Log and only re-subscribe.
	Reopen bool
	// Timeout bounds every wait for a message or an operation (default 10s).
	Timeout time.Duration
	// RebalanceTimeout bounds how long a group may take to hand partitions to a member
	// that joins or to take them from one that left (default 15s).
	RebalanceTimeout time.Duration
	// SettleTime is how long the two-member test waits for the partitions to be split
	// when subscriptions do not implement Assigner (default 5s).
	SettleTime time.Duration
	// Parallel runs the subtests in parallel.
	Parallel bool
}

// Assigner is optionally implemented by a Subscription: the partitions this member owns
// now. With it the suite waits exactly as long as a rebalance takes.
type Assigner interface {
	Assigned() []int
}

// Run runs the suite. newLog is called once or more per subtest (see
// Capabilities.Reopen) and must return a Log the subtest may create topics on.
func Run(t *testing.T, newLog func(t *testing.T) streams.Log, caps Capabilities) {
	if caps.Partitions == 0 {
		caps.Partitions = 4
	}
	if caps.Partitions < 2 {
		t.Fatal("logtest: Capabilities.Partitions must be at least 2")
	}
	if caps.Timeout == 0 {
		caps.Timeout = 10 * time.Second
	}
	if caps.RebalanceTimeout == 0 {
		caps.RebalanceTimeout = 15 * time.Second
	}
	if caps.SettleTime == 0 {
		caps.SettleTime = 5 * time.Second
	}
	s := &suite{newLog: newLog, caps: caps}
	tests := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"AppendRead", s.testAppendRead},
		{"KeyPartitioning", s.testKeyPartitioning},
		{"KeysAndValues", s.testKeysAndValues},
		{"RecordTime", s.testRecordTime},
		{"EndOffsets", s.testEndOffsets},
		{"ReadPositions", s.testReadPositions},
		{"ReadStopsOnError", s.testReadStopsOnError},
		{"ConcurrentAppends", s.testConcurrentAppends},
		{"SubscribeDeliversAll", s.testSubscribeDeliversAll},
		{"IndependentGroups", s.testIndependentGroups},
		{"AtLeastOnceAfterSubscriptionCrash", func(t *testing.T) { s.testAtLeastOnce(t, false) }},
		{"AtLeastOnceAfterLogCrash", func(t *testing.T) { s.testAtLeastOnce(t, true) }},
		{"ResumeAfterRestart", s.testResumeAfterRestart},
		{"TwoMembersSplitPartitions", s.testTwoMembers},
		{"SurvivorTakesOver", s.testSurvivorTakesOver},
		{"FetchHonoursContext", s.testFetchContext},
		{"SubscriptionClose", s.testSubscriptionClose},
		{"LogClose", s.testLogClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if caps.Parallel {
				t.Parallel()
			}
			tc.fn(t)
		})
	}
}

type suite struct {
	newLog func(*testing.T) streams.Log
	caps   Capabilities
}

// ---------------------------------------------------------------- helpers

func (s *suite) open(t *testing.T) streams.Log {
	t.Helper()
	l := s.newLog(t)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// reopen returns a Log on the same data as l: a new one if the backend allows, after
// closing l when close is set; otherwise l itself.
func (s *suite) reopen(t *testing.T, l streams.Log, close bool) streams.Log {
	t.Helper()
	if !s.caps.Reopen {
		return l
	}
	if close {
		if err := l.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	return s.open(t)
}

func (s *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), s.caps.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// name is a topic or group name unique to this run of the subtest, made only of
// characters every backend accepts.
func name(t *testing.T, kind string) string {
	var b strings.Builder
	b.WriteString("lt-")
	for _, r := range strings.ToLower(t.Name()) {
		if b.Len() >= 40 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else if !strings.HasSuffix(b.String(), "-") {
			b.WriteByte('-')
		}
	}
	fmt.Fprintf(&b, "-%s-%06x", kind, rand.Uint32()&0xffffff)
	return b.String()
}

func (s *suite) topic(t *testing.T, l streams.Log) string {
	t.Helper()
	topic := name(t, "t")
	if err := l.CreateTopic(s.ctx(t), topic, s.caps.Partitions); err != nil {
		t.Fatalf("CreateTopic(%q): %v", topic, err)
	}
	return topic
}

// records returns perKey records for each of keys, interleaved across keys; the value
// of the j-th record of key k is "k/j".
func records(keys []string, perKey int) []streams.Record {
	recs := make([]streams.Record, 0, len(keys)*perKey)
	for j := range perKey {
		for _, k := range keys {
			recs = append(recs, streams.Record{Key: []byte(k), Value: fmt.Appendf(nil, "%s/%d", k, j)})
		}
	}
	return recs
}

func keys(prefix string, n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = prefix + strconv.Itoa(i)
	}
	return ks
}

// seqOf parses the j of a "k/j" value.
func seqOf(t *testing.T, m streams.Message) int {
	t.Helper()
	v := string(m.Value)
	i := strings.LastIndexByte(v, '/')
	j, err := strconv.Atoi(v[i+1:])
	if i < 0 || err != nil {
		t.Fatalf("unexpected value %q", v)
	}
	return j
}

func (s *suite) append(t *testing.T, l streams.Log, topic string, recs []streams.Record) {
	t.Helper()
	if err := l.Append(s.ctx(t), topic, recs...); err != nil {
		t.Fatalf("Append(%d records): %v", len(recs), err)
	}
}

func (s *suite) read(t *testing.T, l streams.Log, topic string, from, to streams.Position) []streams.Message {
	t.Helper()
	var msgs []streams.Message
	if err := l.Read(s.ctx(t), topic, from, to, func(m streams.Message) error {
		msgs = append(msgs, m)
		return nil
	}); err != nil {
		t.Fatalf("Read: %v", err)
	}
	return msgs
}

// values returns the sorted values of msgs, to compare message sets.
func values(msgs []streams.Message) []string {
	vs := make([]string, len(msgs))
	for i, m := range msgs {
		vs[i] = string(m.Value)
	}
	slices.Sort(vs)
	return vs
}

func recValues(recs []streams.Record) []string {
	vs := make([]string, len(recs))
	for i, r := range recs {
		vs[i] = string(r.Value)
	}
	slices.Sort(vs)
	return vs
}

func sameSet(t *testing.T, what string, got []streams.Message, want []string) {
	t.Helper()
	g := values(got)
	w := slices.Clone(want)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Fatalf("%s: got %d messages %v, want %d %v", what, len(g), abbrev(g), len(w), abbrev(w))
	}
}

func abbrev(vs []string) []string {
	if len(vs) > 12 {
		return append(slices.Clone(vs[:12]), "...")
	}
	return vs
}

// checkOrder checks that msgs, in the order given, keep each key's records in append
// order and each partition's offsets increasing, and that a key stays in one partition.
func checkOrder(t *testing.T, msgs []streams.Message) {
	t.Helper()
	lastSeq := map[string]int{}
	lastOff := map[int]int64{}
	partOf := map[string]int{}
	for _, m := range msgs {
		k := string(m.Key)
		j := seqOf(t, m)
		if prev, ok := lastSeq[k]; ok && j <= prev {
			t.Fatalf("key %q: record %d came after record %d", k, j, prev)
		}
		lastSeq[k] = j
		if prev, ok := lastOff[m.Partition]; ok && m.Offset <= prev {
			t.Fatalf("partition %d: offset %d came after offset %d", m.Partition, m.Offset, prev)
		}
		lastOff[m.Partition] = m.Offset
		if p, ok := partOf[k]; ok && p != m.Partition {
			t.Fatalf("key %q in partitions %d and %d", k, p, m.Partition)
		}
		partOf[k] = m.Partition
	}
}

// firstDeliveries drops redeliveries (same partition and offset), keeping the first.
func firstDeliveries(msgs []streams.Message) []streams.Message {
	type pos struct {
		p   int
		off int64
	}
	seen := map[pos]bool{}
	var out []streams.Message
	for _, m := range msgs {
		if !seen[pos{m.Partition, m.Offset}] {
			seen[pos{m.Partition, m.Offset}] = true
			out = append(out, m)
		}
	}
	return out
}

func (s *suite) subscribe(t *testing.T, l streams.Log, topic, group string) streams.Subscription {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.caps.RebalanceTimeout)
	defer cancel()
	sub, err := l.Subscribe(ctx, topic, group)
	if err != nil {
		t.Fatalf("Subscribe(%q, %q): %v", topic, group, err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	return sub
}

// fetchUntil fetches until done says so, failing after wait.
func fetchUntil(t *testing.T, sub streams.Subscription, wait time.Duration, done func([]streams.Message) bool) []streams.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var msgs []streams.Message
	for !done(msgs) {
		m, err := sub.Fetch(ctx)
		if err != nil {
			t.Fatalf("Fetch after %d messages: %v", len(msgs), err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func (s *suite) fetchN(t *testing.T, sub streams.Subscription, n int) []streams.Message {
	t.Helper()
	return fetchUntil(t, sub, s.caps.RebalanceTimeout, func(ms []streams.Message) bool { return len(ms) >= n })
}

// expectNothing fails if sub delivers anything within d.
func expectNothing(t *testing.T, sub streams.Subscription, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	m, err := sub.Fetch(ctx)
	if err == nil {
		t.Fatalf("unexpected message: partition %d offset %d value %q", m.Partition, m.Offset, m.Value)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fetch on an idle subscription: %v, want context.DeadlineExceeded", err)
	}
}

// ---------------------------------------------------------------- tests

// Append then Read returns everything; per-key order and per-partition offsets hold.
func (s *suite) testAppendRead(t *testing.T) {
	l := s.open(t)
	topic := s.topic(t, l)
	if got := s.read(t, l, topic, streams.Position{}, streams.Position{}); len(got) != 0 {
		t.Fatalf("Read of an empty topic: %d messages", len(got))
	}
	recs := records(keys("k", 16), 8)
	before := time.Now()
	s.append(t, l, topic, recs[:50])
	s.append(t, l, topic, recs[50:])
	after := time.Now()

	msgs := s.read(t, l, topic, streams.Position{}, streams.Position{})
	sameSet(t, "Read", msgs, recValues(recs))
	checkOrder(t, msgs)
	parts := map[int]int{}
	for _, m := range msgs {
		if m.Topic != topic {
			t.Fatalf("Message.Topic = %q, want %q", m.Topic, topic)
		}
		if m.Partition < 0 || m.Partition >= s.caps.Partitions {
			t.Fatalf("Message.Partition = %d, want [0,%d)", m.Partition, s.caps.Partitions)
		}
		if !strings.HasPrefix(string(m.Value), string(m.Key)+"/") {
			t.Fatalf("message with key %q has value %q", m.Key, m.Value)
		}
		if m.Time.Before(before.Add(-2*time.Second)) || m.Time.After(after.Add(2*time.Second)) {
			t.Fatalf("Message.Time = %v, appended between %v and %v", m.Time, before, after)
		}
		if s.caps.DenseOffsets && m.Offset != int64(parts[m.Partition]) {
			t.Fatalf("partition %d: offset %d, want %d (dense offsets)", m.Partition, m.Offset, parts[m.Partition])
		}
		parts[m.Partition]++
	}
	if len(parts) < 2 {
		t.Fatalf("16 keys all landed in %d partition(s)", len(parts))
	}
}

// The same key goes to the same partition every time, across Append calls.
func (s *suite) testKeyPartitioning(t *testing.T) {
	l := s.open(t)
	topic := s.topic(t, l)
	ks := keys("key-", 32)
	for j := range 3 { // separate calls, keys in a different order each time
		rot := append(slices.Clone(ks[j*5:]), ks[:j*5]...)
		s.append(t, l, topic, records(rot, 1))
	}
	for j := range 5 { // alone, and at various positions in a batch
		recs := records(keys("other-", j), 1)
		recs = append(recs, streams.Record{Key: []byte("same"), Value: []byte("same/x")})
		s.append(t, l, topic, recs)
	}
	partOf := map[string]int{}
	used := map[int]bool{}
	for _, m := range s.read(t, l, topic, streams.Position{}, streams.Position{}) {
		k := string(m.Key)
		if p, ok := partOf[k]; ok && p != m.Partition {
			t.Fatalf("key %q in partitions %d and %d", k, p, m.Partition)
		}
		partOf[k] = m.Partition
		used[m.Partition] = true
	}
	if len(partOf) != 37 {
		t.Fatalf("read %d distinct keys, want 37", len(partOf))
	}
	if len(used) != s.caps.Partitions {
		t.Fatalf("32 keys used %d of %d partitions", len(used), s.caps.Partitions)
	}
}

// Keys and values come back byte for byte, including binary and empty ones.
func (s *suite) testKeysAndValues(t *testing.T) {
	l := s.open(t)
	topic := s.topic(t, l)
	recs := []streams.Record{
		{Key: []byte("plain"), Value: []byte(`{"a":1}`)},
		{Key: []byte(" spaced key "), Value: []byte("v")},
		{Key: []byte{0, 1, 2, 0xff, '\r', '\n'}, Value: []byte{0, 0xfe, '\n'}},
		{Key: []byte("ключ"), Value: []byte("значение")},
		{Key: []byte("empty-value"), Value: nil},
		{Key: []byte("big"), Value: []byte(strings.Repeat("x", 64<<10))},
	}
	s.append(t, l, topic, recs)
	msgs := s.read(t, l, topic, streams.Position{}, streams.Position{})
	if len(msgs) != len(recs) {
		t.Fatalf("read %d messages, want %d", len(msgs), len(recs))
	}
	for _, r := range recs {
		found := false
		for _, m := range msgs {
			if string(m.Key) == string(r.Key) {
				found = true
				if string(m.Value) != string(r.Value) {
					t.Errorf("key %q: value %q, want %q", r.Key, abbrevBytes(m.Value), abbrevBytes(r.Value))
				}
			}
		}
		if !found {
			t.Errorf("key %q not read back", r.Key)
		}
	}
}

// A record appended with its own time comes back with exactly that time (to the
// nanosecond), from Read and from a subscription, and time-range reads use it; a record
// without one is stamped by the log.
func (s *suite) testRecordTime(t *testing.T) {
	l := s.open(t)
	topic := s.topic(t, l)
	// An hour ago (clear of retention), with a sub-millisecond part, one minute apart.
	base := time.Now().Add(-time.Hour).Truncate(time.Second).Add(123456789 * time.Nanosecond)
	recs := records(keys("k", 8), 3)
	want := map[string]time.Time{}
	for i := range recs {
		recs[i].Time = base.Add(time.Duration(i)*time.Minute + time.Duration(i)*time.Nanosecond)
		want[string(recs[i].Value)] = recs[i].Time
	}
	last := recs[len(recs)-1].Time
	stamped := records(keys("now", 2), 2)
	s.append(t, l, topic, recs[:10])
	s.append(t, l, topic, append(slices.Clone(recs[10:]), stamped...))

	check := func(what string, msgs []streams.Message) {
		t.Helper()
		for _, m := range msgs {
			w, ok := want[string(m.Value)]
			switch {
			case ok && !m.Time.Equal(w):
				t.Fatalf("%s: %q has time %v, appended with %v", what, m.Value, m.Time, w)
			case !ok && !m.Time.After(last):
				t.Fatalf("%s: %q appended without a time has %v, before the explicit times", what, m.Value, m.Time)
			}
		}
	}
	all := s.read(t, l, topic, streams.Position{}, streams.Position{})
	sameSet(t, "Read", all, append(recValues(recs), recValues(stamped)...))
	check("Read", all)
	sub := s.subscribe(t, l, topic, name(t, "g"))
	check("Fetch", firstDeliveries(s.fetchN(t, sub, len(recs)+len(stamped))))

	// Times increase in append order, so each partition's records from the middle one
	// on are those at or after its time.
	mid := recs[len(recs)/2].Time
	sameSet(t, "from time", s.read(t, l, topic, streams.Position{Time: mid}, streams.Position{}),
		append(recValues(recs[len(recs)/2:]), recValues(stamped)...))
	sameSet(t, "to time", s.read(t, l, topic, streams.Position{}, streams.Position{Time: mid}), recValues(recs[:len(recs)/2]))
}

func abbrevBytes(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

// EndOffsets brackets exactly the messages appended between two calls.
func (s *suite) testEndOffsets(t *testing.T) {
	l := s.open(t)
	topic := s.topic(t, l)
	ctx := s.ctx(t)
	ends := func() map[int]int64 {
		t.Helper()
		e, err := l.EndOffsets(ctx, topic)
		if err != nil {
			t.Fatalf("EndOffsets: %v", err)
		}
		if len(e) != s.caps.Partitions {
			t.Fatalf("EndOffsets has %d partitions, want %d: %v", len(e), s.caps.Partitions, e)
		}
		return e
	}
	e0 := ends()
	for p, off := range e0 {
		if off < 0 || s.caps.DenseOffsets && off != 0 {
			t.Fatalf("EndOffsets of an empty topic: partition %d at %d", p, off)
		}
	}
	prev := e0
	for round, recs := range [][]streams.Record{records(keys("a", 8), 3), records(keys("b", 3), 2)} {
		s.append(t, l, topic, recs)
		next := ends()
		msgs := s.read(t, l, topic, streams.Position{}, streams.Position{})
		// This round's messages (Read orders partitions, not the topic as a whole).
		ours := map[string]bool{}
		for _, v := range recValues(recs) {
			ours[v] = true
		}
		var fresh []streams.Message
		added := map[int]int{}
		for _, m := range msgs {
			if ours[string(m.Value)] {
				fresh = append(fresh, m)
				added[m.Partition]++
			}
		}
		sameSet(t, fmt.Sprintf("round %d", round), fresh, recValues(recs))
		for _, m := range msgs {
			if m.Offset >= next[m.Partition] {
				t.Fatalf("round %d: partition %d has offset %d at or past its end offset %d", round, m.Partition, m.Offset, next[m.Partition])
			}
		}
		for _, m := range fresh {
			if m.Offset < prev[m.Partition] {
				t.Fatalf("round %d: new message at offset %d, below the previous end offset %d of partition %d", round, m.Offset, prev[m.Partition], m.Partition)
			}
		}
		for p := range s.caps.Partitions {
			if next[p] < prev[p] || added[p] == 0 && next[p] != prev[p] {
				t.Fatalf("round %d: partition %d end offset went from %d to %d with %d new messages", round, p, prev[p], next[p], added[p])
			}
			if s.caps.DenseOffsets && next[p]-prev[p] != int64(added[p]) {
				t.Fatalf("round %d: partition %d end offset went from %d to %d with %d new messages", round, p, prev[p], next[p], added[p])
			}
		}
		// Read up to the end offsets returns exactly what was appended so far.
		upto := s.read(t, l, topic, streams.Position{}, streams.Position{Offsets: next})
		if len(upto) != len(msgs) {
			t.Fatalf("round %d: Read up to EndOffsets gave %d messages, want %d", round, len(upto), len(msgs))
		}
		prev = next
	}
}

// Read from offsets, from a time, up to offsets and up to a time.
func (s *suite) testReadPositions(t *testing.T) {
	l := s.open(t)
	topic := s.topic(t, l)
	ctx := s.ctx(t)
	a := records(keys("a", 10), 3)
	b := records(keys("b", 10), 3)
	s.append(t, l, topic, a)
	mid, err := l.EndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond) // clear of timestamp resolution (Kafka: 1 ms)
	split := time.Now()
	time.Sleep(30 * time.Millisecond)
	s.append(t, l, topic, b)
	all := s.read(t, l, topic, streams.Position{}, streams.Position{})
	sameSet(t, "everything", all, append(recValues(a), recValues(b)...))

	sameSet(t, "to offsets", s.read(t, l, topic, streams.Position{}, streams.Position{Offsets: mid}), recValues(a))
	sameSet(t, "from offsets", s.read(t, l, topic, streams.Position{Offsets: mid}, streams.Position{}), recValues(b))
	sameSet(t, "to time", s.read(t, l, topic, streams.Position{}, streams.Position{Time: split}), recValues(a))
	sameSet(t, "from time", s.read(t, l, topic, streams.Position{Time: split}, streams.Position{}), recValues(b))
	sameSet(t, "empty range", s.read(t, l, topic, streams.Position{Offsets: mid}, streams.Position{Offsets: mid}), nil)
	sameSet(t, "from the future", s.read(t, l, topic, streams.Position{Time: time.Now().Add(time.Hour)}, streams.Position{}), nil)

	// From the middle message of every partition, and of partition 0 only (the others
	// then start at their beginning).
	byPart := map[int][]streams.Message{}
	for _, m := range all {
		byPart[m.Partition] = append(byPart[m.Partition], m)
	}
	from := map[int]int64{}
	var want, want0 []string
	for p, ms := range byPart {
		h := len(ms) / 2
		from[p] = ms[h].Offset
		for _, m := range ms[h:] {
			want = append(want, string(m.Value))
		}
		for i, m := range ms {
			if p != 0 || i >= h {
				want0 = append(want0, string(m.Value))
			}
		}
	}
	sameSet(t, "from mid offsets", s.read(t, l, topic, streams.Position{Offsets: from}, streams.Position{}), want)
	if _, ok := from[0]; ok {
		sameSet(t, "from partition 0's mid offset", s.read(t, l, topic, streams.Position{Offsets: map[int]int64{0: from[0]}}, streams.Position{}), want0)
	}

	// A zero `to` means the end when Read was called: messages appended during the
	// read are not waited for (and a Read of a live topic terminates).
	c := records(keys("c", 2), 2)
	n := 0
	if err := l.Read(ctx, topic, streams.Position{}, streams.Position{}, func(m streams.Message) error {
		if n == 0 {
			if err := l.Append(ctx, topic, c...); err != nil {
				return err
			}
		}
		n++
		return nil
	}); err != nil {
		t.Fatalf("Read while appending: %v", err)
	}
	if n < len(all) || n > len(all)+len(c) {
		t.Fatalf("Read while appending returned %d messages, want between %d and %d", n, len(all), len(all)+len(c))
	}
}

// An error from fn stops Read and is returned.
func (s *suite) testReadStopsOnError(t *testing.T) {
	l := s.open(t)
	topic := s.topic(t, l)
	s.append(t, l, topic, records(keys("k", 5), 4))
	stop := errors.New("stop")
	n := 0
	err := l.Read(s.ctx(t), topic, streams.Position{}, streams.Position{}, func(streams.Message) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Fatalf("Read returned %v after %d calls, want the callback's error after 3", err, n)
	}
}

// Appends from several goroutines are all stored, each goroutine's order kept.
func (s *suite) testConcurrentAppends(t *testing.T) {
	l := s.open(t)
	topic := s.topic(t, l)
	const writers, perWriter = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	var want []string
	for w := range writers {
		ks := []string{fmt.Sprintf("w%d-a", w), fmt.Sprintf("w%d-b", w)}
		recs := records(ks, perWriter/2)
		want = append(want, recValues(recs)...)
		wg.Go(func() {
			for i := 0; i < len(recs); i += 5 { // several small appends
				if err := l.Append(s.ctx(t), topic, recs[i:min(i+5, len(recs))]...); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Append: %v", err)
	}
	msgs := s.read(t, l, topic, streams.Position{}, streams.Position{})
	sameSet(t, "concurrent appends", msgs, want)
	checkOrder(t, msgs)
}

// A single member gets every message, in per-key order, and nothing twice.
func (s *suite) testSubscribeDeliversAll(t *testing.T) {
	l := s.open(t)
	topic := s.topic(t, l)
	sub := s.subscribe(t, l, topic, name(t, "g"))
	recs := records(keys("k", 12), 5)
	s.append(t, l, topic, recs[:30])
	s.append(t, l, topic, recs[30:])
	msgs := s.fetchN(t, sub, len(recs))
	sameSet(t, "Fetch", msgs, recValues(recs))
	checkOrder(t, msgs)
	if err := sub.Commit(s.ctx(t), msgs...); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	expectNothing(t, sub, 300*time.Millisecond)
}

// Two groups each get every message.
func (s *suite) testIndependentGroups(t *testing.T) {
	l := s.open(t)
	topic := s.topic(t, l)
	recs := records(keys("k", 6), 4)
	s.append(t, l, topic, recs)
	for _, g := range []string{name(t, "g1"), name(t, "g2")} {
		sub := s.subscribe(t, l, topic, g)
		msgs := s.fetchN(t, sub, len(recs))
		sameSet(t, "group "+g, msgs, recValues(recs))
		if err := sub.Commit(s.ctx(t), msgs...); err != nil {
			t.Fatalf("Commit: %v", err)
		}
	}
}

// At least once across a crash: a member consumes part of the topic, commits some of
// it and goes away without committing the rest (its subscription, or its whole Log,
// closed). The next member of the group gets every uncommitted message again and none
// of the committed ones.
func (s *suite) testAtLeastOnce(t *testing.T, crashLog bool) {
	if crashLog && !s.caps.Reopen {
		t.Skip("backend cannot reopen a log")
	}
	l := s.open(t)
	topic := s.topic(t, l)
	group := name(t, "g")
	recs := records(keys("k", 8), 5)
	s.append(t, l, topic, recs)

	sub := s.subscribe(t, l, topic, group)
	first := s.fetchN(t, sub, 24)
	checkOrder(t, first)
	byPart := map[int][]streams.Message{}
	for _, m := range first {
		byPart[m.Partition] = append(byPart[m.Partition], m)
	}
	committed := map[int]int64{} // per partition: offsets up to this one are committed
	var commits []streams.Message
	for p, ms := range byPart {
		if h := len(ms) / 2; h > 0 {
			committed[p] = ms[h-1].Offset
			commits = append(commits, ms[h-1])
		}
	}
	if len(commits) == 0 {
		t.Fatal("no partition delivered two messages out of 24")
	}
	if err := sub.Commit(s.ctx(t), commits...); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	// Crash: the rest of what was fetched is never committed.
	if crashLog {
		l = s.reopen(t, l, true)
	} else if err := sub.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	all := s.read(t, l, topic, streams.Position{}, streams.Position{})
	var want []string
	for _, m := range all {
		if off, ok := committed[m.Partition]; !ok || m.Offset > off {
			want = append(want, string(m.Value))
		}
	}
	sub2 := s.subscribe(t, l, topic, group)
	missing := map[string]bool{}
	for _, v := range want {
		missing[v] = true
	}
	got := fetchUntil(t, sub2, s.caps.RebalanceTimeout, func(ms []streams.Message) bool {
		if len(ms) > 0 {
			delete(missing, string(ms[len(ms)-1].Value))
		}
		return len(missing) == 0
	})
	for _, m := range got {
		if off, ok := committed[m.Partition]; ok && m.Offset <= off {
			t.Fatalf("committed message redelivered: partition %d offset %d (committed up to %d)", m.Partition, m.Offset, off)
		}
	}
	checkOrder(t, firstDeliveries(got))
	if err := sub2.Commit(s.ctx(t), got...); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	expectNothing(t, sub2, 300*time.Millisecond)
}

// A clean restart resumes right after the committed positions.
func (s *suite) testResumeAfterRestart(t *testing.T) {
	l := s.open(t)
	topic := s.topic(t, l)
	group := name(t, "g")
	old := records(keys("old", 6), 3)
	s.append(t, l, topic, old)
	sub := s.subscribe(t, l, topic, group)
	msgs := s.fetchN(t, sub, len(old))
	if err := sub.Commit(s.ctx(t), msgs...); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := sub.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	l = s.reopen(t, l, true)

	recent := records(keys("new", 6), 2)
	s.append(t, l, topic, recent)
	sub2 := s.subscribe(t, l, topic, group)
	got := s.fetchN(t, sub2, len(recent))
	sameSet(t, "after restart", got, recValues(recent))
	checkOrder(t, got)
	if err := sub2.Commit(s.ctx(t), got...); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	expectNothing(t, sub2, 300*time.Millisecond)
}

// Two members of one group split the partitions: when both commit and neither
// crashes, together they see every message exactly once, each partition through one
// member.
func (s *suite) testTwoMembers(t *testing.T) {
	if !s.caps.SharedGroups {
		t.Skip("backend does not share a group's partitions between members")
	}
	l1 := s.open(t)
	topic := s.topic(t, l1)
	group := name(t, "g")
	l2 := s.reopen(t, l1, false)
	subs := []streams.Subscription{s.subscribe(t, l1, topic, group), s.subscribe(t, l2, topic, group)}
	s.waitSplit(t, subs)

	recs := records(keys("k", 32), 3)
	s.append(t, l1, topic, recs)

	ctx, cancel := context.WithTimeout(context.Background(), s.caps.RebalanceTimeout)
	defer cancel()
	var mu sync.Mutex
	got := make([][]streams.Message, len(subs))
	total := 0
	var wg sync.WaitGroup
	errs := make(chan error, len(subs))
	for i, sub := range subs {
		wg.Go(func() {
			for {
				m, err := sub.Fetch(ctx)
				if err != nil {
					if ctx.Err() == nil { // else done, or timed out: the counts below tell
						errs <- fmt.Errorf("member %d: Fetch: %w", i, err)
					}
					return
				}
				if err := sub.Commit(ctx, m); err != nil && ctx.Err() == nil {
					errs <- fmt.Errorf("member %d: Commit: %w", i, err)
					return
				}
				mu.Lock()
				got[i] = append(got[i], m)
				total++
				if total >= len(recs) {
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, sub := range subs {
		expectNothing(t, sub, 300*time.Millisecond)
	}
	sameSet(t, "both members", append(slices.Clone(got[0]), got[1]...), recValues(recs))
	owner := map[int]int{}
	for i, ms := range got {
		if len(ms) == 0 {
			t.Fatalf("member %d got nothing", i)
		}
		checkOrder(t, ms)
		for _, m := range ms {
			if o, ok := owner[m.Partition]; ok && o != i {
				t.Fatalf("partition %d delivered to both members", m.Partition)
			}
			owner[m.Partition] = i
		}
	}
}

// When one of two members leaves with uncommitted messages, the other takes its
// partitions over and gets those messages again, and none it committed.
func (s *suite) testSurvivorTakesOver(t *testing.T) {
	if !s.caps.SharedGroups {
		t.Skip("backend does not share a group's partitions between members")
	}
	l1 := s.open(t)
	topic := s.topic(t, l1)
	group := name(t, "g")
	l2 := s.reopen(t, l1, false)
	a, b := s.subscribe(t, l1, topic, group), s.subscribe(t, l2, topic, group)
	s.waitSplit(t, []streams.Subscription{a, b})

	recs := records(keys("k", 32), 3)
	s.append(t, l1, topic, recs)
	// b takes some of its messages, commits the first few of each partition, leaves.
	fromB := s.fetchN(t, b, 16)
	committed := map[int]int64{}
	var commits []streams.Message
	for _, m := range fromB {
		if _, ok := committed[m.Partition]; !ok {
			committed[m.Partition] = m.Offset
			commits = append(commits, m)
		}
	}
	if err := b.Commit(s.ctx(t), commits...); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	var want []string
	for _, m := range s.read(t, l1, topic, streams.Position{}, streams.Position{}) {
		if off, ok := committed[m.Partition]; !ok || m.Offset > off {
			want = append(want, string(m.Value))
		}
	}
	missing := map[string]bool{}
	for _, v := range want {
		missing[v] = true
	}
	got := fetchUntil(t, a, s.caps.RebalanceTimeout, func(ms []streams.Message) bool {
		if len(ms) > 0 {
			m := ms[len(ms)-1]
			if off, ok := committed[m.Partition]; ok && m.Offset <= off {
				t.Fatalf("message committed by the member that left delivered again: partition %d offset %d", m.Partition, m.Offset)
			}
			delete(missing, string(m.Value))
		}
		return len(missing) == 0
	})
	checkOrder(t, firstDeliveries(got))
	if err := a.Commit(s.ctx(t), got...); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	// The hand-over may have made a's backend re-read some of a's own partitions from
	// before a committed (Kafka revokes and reassigns them all): more copies of what a
	// already got are allowed, anything else is not.
	delivered := map[string]bool{}
	for _, m := range got {
		delivered[string(m.Value)] = true
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		m, err := a.Fetch(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return
		}
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		if !delivered[string(m.Value)] {
			t.Fatalf("unexpected message after the hand-over: partition %d offset %d value %q", m.Partition, m.Offset, m.Value)
		}
	}
}

// waitSplit waits until the members own disjoint, non-empty sets of partitions covering
// the topic (or SettleTime, if the backend does not say).
func (s *suite) waitSplit(t *testing.T, subs []streams.Subscription) {
	t.Helper()
	var as []Assigner
	for _, sub := range subs {
		a, ok := sub.(Assigner)
		if !ok {
			time.Sleep(s.caps.SettleTime)
			return
		}
		as = append(as, a)
	}
	deadline := time.Now().Add(s.caps.RebalanceTimeout)
	for {
		var all [][]int
		seen := map[int]int{}
		ok := true
		for _, a := range as {
			ps := a.Assigned()
			all = append(all, ps)
			ok = ok && len(ps) > 0
			for _, p := range ps {
				seen[p]++
			}
		}
		for p := range s.caps.Partitions {
			ok = ok && seen[p] == 1
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions not split between the members after %v: %v", s.caps.RebalanceTimeout, all)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Fetch on an idle subscription returns the context's error.
func (s *suite) testFetchContext(t *testing.T) {
	l := s.open(t)
	topic := s.topic(t, l)
	sub := s.subscribe(t, l, topic, name(t, "g"))
	expectNothing(t, sub, 200*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := sub.Fetch(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Fetch with a cancelled context: %v", err)
	}
}

// Closing a subscription wakes a blocked Fetch with ErrClosed, and later calls fail
// with ErrClosed.
func (s *suite) testSubscriptionClose(t *testing.T) {
	l := s.open(t)
	topic := s.topic(t, l)
	sub := s.subscribe(t, l, topic, name(t, "g"))
	s.append(t, l, topic, records(keys("k", 2), 1))
	msgs := s.fetchN(t, sub, 2)
	done := make(chan error, 1)
	go func() {
		_, err := sub.Fetch(context.Background())
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := sub.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, streams.ErrClosed) {
			t.Fatalf("blocked Fetch returned %v, want ErrClosed", err)
		}
	case <-time.After(s.caps.Timeout):
		t.Fatal("Close did not wake a blocked Fetch")
	}
	if _, err := sub.Fetch(s.ctx(t)); !errors.Is(err, streams.ErrClosed) {
		t.Fatalf("Fetch after Close: %v, want ErrClosed", err)
	}
	if err := sub.Commit(s.ctx(t), msgs...); !errors.Is(err, streams.ErrClosed) {
		t.Fatalf("Commit after Close: %v, want ErrClosed", err)
	}
	_ = sub.Close() // twice: must not panic
	// The log is still usable.
	s.append(t, l, topic, records(keys("after", 1), 1))
}

// Closing a log fails later calls with ErrClosed and closes its subscriptions.
func (s *suite) testLogClose(t *testing.T) {
	l := s.open(t)
	topic := s.topic(t, l)
	sub := s.subscribe(t, l, topic, name(t, "g"))
	done := make(chan error, 1)
	go func() {
		_, err := sub.Fetch(context.Background())
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, streams.ErrClosed) {
			t.Fatalf("Fetch blocked across Log.Close returned %v, want ErrClosed", err)
		}
	case <-time.After(s.caps.Timeout):
		t.Fatal("Log.Close did not wake a blocked Fetch")
	}
	ctx := s.ctx(t)
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, streams.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", op, err)
		}
	}
	check("CreateTopic", l.CreateTopic(ctx, topic+"-2", 2))
	check("Append", l.Append(ctx, topic, streams.Record{Key: []byte("k"), Value: []byte("v")}))
	_, err := l.Subscribe(ctx, topic, name(t, "g2"))
	check("Subscribe", err)
	check("Read", l.Read(ctx, topic, streams.Position{}, streams.Position{}, func(streams.Message) error { return nil }))
	_, err = l.EndOffsets(ctx, topic)
	check("EndOffsets", err)
	_, err = sub.Fetch(ctx)
	check("Fetch", err)
	_ = l.Close() // twice: must not panic
}
