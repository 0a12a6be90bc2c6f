package jetstream

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/logtest"
)

// testConfig makes group hand-overs quick: rebalancing every 100ms, leases of 5s
// (long enough not to expire on a loaded machine; a clean Close hands over at once).
func testConfig(c Config) Config {
	c.LeaseTTL = 5 * time.Second
	c.RebalanceInterval = 100 * time.Millisecond
	return c
}

var caps = logtest.Capabilities{
	SharedGroups:     true,
	Reopen:           true,
	Timeout:          10 * time.Second,
	RebalanceTimeout: 10 * time.Second,
}

// dirs gives each (sub)test one data directory, so that every Log the suite opens in a
// test shares that test's embedded server and data.
type dirs struct {
	mu sync.Mutex
	m  map[*testing.T]string
}

func (d *dirs) get(t *testing.T) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[*testing.T]string{}
	}
	if dir, ok := d.m[t]; ok {
		return dir
	}
	dir := t.TempDir()
	d.m[t] = dir
	t.Cleanup(func() {
		d.mu.Lock()
		delete(d.m, t)
		d.mu.Unlock()
	})
	return dir
}

func open(t testing.TB, cfg Config) *Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

// The suite against the embedded server (DataDir), Atlas's single-machine default.
func TestConformanceEmbedded(t *testing.T) {
	var d dirs
	c := caps
	c.Parallel = true
	logtest.Run(t, func(t *testing.T) streams.Log {
		return open(t, testConfig(Config{DataDir: d.get(t)}))
	}, c)
}

// The suite against a server reached over TCP (URL), as a separate nats-server would be.
func TestConformanceExternal(t *testing.T) {
	srv := startServer(t, t.TempDir())
	c := caps
	c.Parallel = true
	logtest.Run(t, func(t *testing.T) streams.Log {
		return open(t, testConfig(Config{URL: srv.ClientURL()}))
	}, c)
}

// startServer runs a nats-server with JetStream listening on a random local port.
func startServer(t testing.TB, dir string) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv
}

// Everything survives closing the embedded server and starting it again on the same
// directory: topics and their partition counts, messages and offsets, committed
// positions.
func TestRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := testConfig(Config{DataDir: dir})
	l := open(t, cfg)
	if err := l.CreateTopic(ctx, "events", 3); err != nil {
		t.Fatal(err)
	}
	var recs []streams.Record
	for i := range 30 {
		recs = append(recs, streams.Record{Key: fmt.Appendf(nil, "k%d", i%7), Value: fmt.Appendf(nil, "v%d", i)})
	}
	if err := l.Append(ctx, "events", recs...); err != nil {
		t.Fatal(err)
	}
	before := readAll(t, l, "events")
	ends, err := l.EndOffsets(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := l.Subscribe(ctx, "events", "proc")
	if err != nil {
		t.Fatal(err)
	}
	var got []streams.Message
	for range 20 {
		m, err := sub.Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	if err := sub.Commit(ctx, got...); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l.emb.srv.Running() {
		t.Fatal("embedded server still running after the last Log closed")
	}

	l = open(t, cfg)
	defer l.Close()
	if err := l.CreateTopic(ctx, "events", 8); err != nil { // exists: keeps 3
		t.Fatal(err)
	}
	after := readAll(t, l, "events")
	if !slices.EqualFunc(before, after, func(a, b streams.Message) bool {
		return a.Partition == b.Partition && a.Offset == b.Offset && string(a.Key) == string(b.Key) &&
			string(a.Value) == string(b.Value) && a.Time.Equal(b.Time)
	}) {
		t.Fatalf("messages changed across a restart:\nbefore %v\nafter  %v", before, after)
	}
	if ends2, err := l.EndOffsets(ctx, "events"); err != nil || !mapsEqual(ends, ends2) {
		t.Fatalf("EndOffsets %v across a restart, was %v (err %v)", ends2, ends, err)
	}
	committed := map[string]bool{}
	for _, m := range got {
		committed[string(m.Value)] = true
	}
	sub, err = l.Subscribe(ctx, "events", "proc")
	if err != nil {
		t.Fatal(err)
	}
	for range len(recs) - len(got) {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		m, err := sub.Fetch(fctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if committed[string(m.Value)] {
			t.Fatalf("committed message %q delivered again after a restart", m.Value)
		}
	}
}

func readAll(t *testing.T, l *Log, topic string) []streams.Message {
	t.Helper()
	var msgs []streams.Message
	if err := l.Read(context.Background(), topic, streams.Position{}, streams.Position{}, func(m streams.Message) error {
		msgs = append(msgs, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return msgs
}

func mapsEqual(a, b map[int]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// A member that dies without leaving (its connection just drops, so it releases
// nothing) loses its partitions when its leases expire; the member that takes them
// over gets everything that was not committed.
func TestCrashFailover(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := testConfig(Config{DataDir: dir})
	cfg.LeaseTTL = time.Second
	a := open(t, cfg)
	defer a.Close()
	if err := a.CreateTopic(ctx, "t", 4); err != nil {
		t.Fatal(err)
	}
	var recs []streams.Record
	for i := range 40 {
		recs = append(recs, streams.Record{Key: fmt.Appendf(nil, "k%d", i%10), Value: fmt.Appendf(nil, "v%d", i)})
	}
	if err := a.Append(ctx, "t", recs...); err != nil {
		t.Fatal(err)
	}
	subA, err := a.Subscribe(ctx, "t", "g")
	if err != nil {
		t.Fatal(err)
	}
	var first []streams.Message
	for range 20 {
		m, err := subA.Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		first = append(first, m)
	}
	if err := subA.Commit(ctx, first[:10]...); err != nil {
		t.Fatal(err)
	}
	upto := map[int]int64{}
	for _, m := range first[:10] {
		upto[m.Partition] = max(upto[m.Partition], m.Offset)
	}

	b := open(t, cfg) // shares the embedded server
	defer b.Close()
	a.nc.Close() // crash: no lease is released
	start := time.Now()
	subB, err := b.Subscribe(ctx, "t", "g")
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, m := range readAll(t, b, "t") {
		if off, ok := upto[m.Partition]; !ok || m.Offset > off {
			want++
		}
	}
	seen := map[string]bool{}
	for len(seen) < want {
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		m, err := subB.Fetch(fctx)
		cancel()
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", len(seen), want, err)
		}
		if off, ok := upto[m.Partition]; ok && m.Offset <= off {
			t.Fatalf("committed message %q delivered again", m.Value)
		}
		seen[string(m.Value)] = true
	}
	took := time.Since(start)
	t.Logf("failover delivered %d messages after %v (lease TTL %v)", want, took, cfg.LeaseTTL)
	if took < cfg.LeaseTTL/2 {
		t.Errorf("took over after %v, before the dead member's leases could expire", took)
	}
}

// Logs on one DataDir in one process share the server; another process could not open
// it (the lock is per process, so this checks the sharing only).
func TestSharedEmbeddedServer(t *testing.T) {
	dir := t.TempDir()
	a := open(t, Config{DataDir: dir})
	b := open(t, Config{DataDir: filepath.Join(dir, ".")})
	if a.Server() != b.Server() {
		t.Fatal("two Logs on one DataDir started two servers")
	}
	a.Close()
	if !b.Server().Running() {
		t.Fatal("closing one Log stopped the server the other still uses")
	}
	ctx := context.Background()
	if err := b.CreateTopic(ctx, "x", 1); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if b.Server().Running() {
		t.Fatal("server still running after the last Log closed")
	}
}

// Kafka's murmur2 test vectors (from librdkafka, via kafka-go), and the partitions
// Kafka's default partitioner gives.
func TestPartitionMatchesKafka(t *testing.T) {
	for _, tc := range []struct {
		key  string
		hash uint32
	}{
		{"kafka", 0xd067cf64},
		{"giberish123456789", 0x8f552b0c},
		{"1234", 0x9fc97b14},
		{"234", 0xe7c009ca},
		{"34", 0x873930da},
		{"4", 0x5a4b5ca1},
		{"PreAmbleWillBeRemoved,ThePrePartThatIs", 0x78424f1c},
		{"reAmbleWillBeRemoved,ThePrePartThatIs", 0x4a62b377},
		{"eAmbleWillBeRemoved,ThePrePartThatIs", 0xe0e4e09e},
		{"AmbleWillBeRemoved,ThePrePartThatIs", 0x62b8b43f},
		{"", 0x106e08d9},
	} {
		if got := murmur2([]byte(tc.key)); got != tc.hash {
			t.Errorf("murmur2(%q) = %#x, want %#x", tc.key, got, tc.hash)
		}
		if got, want := Partition([]byte(tc.key), 7), int((tc.hash&0x7fffffff)%7); got != want {
			t.Errorf("Partition(%q, 7) = %d, want %d", tc.key, got, want)
		}
	}
	if Partition(nil, 5) != Partition([]byte{}, 5) {
		t.Error("nil and empty keys in different partitions")
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"atlas-events": "atlas-events",
		"Atlas_1":      "Atlas_1",
	} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
	seen := map[string]string{}
	for _, in := range []string{"a.b", "a_b", "a b", "a*b", "a>b", "a/b", "", "ä", string(make([]byte, 300))} {
		got := sanitize(in)
		if len(got) == 0 || len(got) > maxNameLen {
			t.Errorf("sanitize(%q) = %q: bad length", in, got)
		}
		for i := range len(got) {
			if !isNameByte(got[i]) {
				t.Errorf("sanitize(%q) = %q: bad byte %q", in, got, got[i])
			}
		}
		if prev, ok := seen[got]; ok {
			t.Errorf("sanitize(%q) = sanitize(%q) = %q", in, prev, got)
		}
		seen[got] = in
	}
}

func TestKeyHeaderRoundTrip(t *testing.T) {
	for _, k := range [][]byte{[]byte("plain"), []byte(" lead"), []byte("trail "), {0, 1, 2}, []byte("a\r\nb"), []byte("ключ")} {
		got, err := keyFromHeader(keyHeader(k))
		if err != nil || string(got) != string(k) {
			t.Errorf("key %q came back as %q (%v)", k, got, err)
		}
	}
	if got, _ := keyFromHeader(keyHeader(nil)); got != nil {
		t.Errorf("nil key came back as %q", got)
	}
}

// AppendOwned stores what Append would, in the same order, with keys and times; and a
// record the stream drops without telling (it answers only records that ask) fails the
// call instead of going missing.
func TestAppendOwned(t *testing.T) {
	ctx := context.Background()
	l := open(t, Config{DataDir: t.TempDir()})
	defer l.Close()
	if err := l.CreateTopic(ctx, "owned", 3); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 26, 4, 21, 0, 123456789, time.UTC)
	// Several acknowledgement intervals, and a last record off the interval.
	recs := make([]streams.Record, 3*ownedAckEvery+7)
	for i := range recs {
		recs[i] = streams.Record{Key: fmt.Appendf(nil, "key-%d", i%37), Value: fmt.Appendf(nil, `{"i":%d}`, i), Time: t0.Add(time.Duration(i))}
	}
	recs[5].Key = nil
	if err := l.AppendOwned(ctx, "owned", recs[:1]...); err != nil {
		t.Fatal(err)
	}
	if err := l.AppendOwned(ctx, "owned", recs[1:]...); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, l, "owned")
	if len(got) != len(recs) {
		t.Fatalf("read %d records, appended %d", len(got), len(recs))
	}
	for i, m := range got {
		r := recs[i]
		if string(m.Key) != string(r.Key) || string(m.Value) != string(r.Value) || !m.Time.Equal(r.Time) ||
			m.Offset != int64(i+1) || m.Partition != Partition(r.Key, 3) {
			t.Fatalf("record %d: got %+v, appended %+v", i, m, r)
		}
	}

	// The stream refuses a record over its size limit, and tells only a publisher that
	// asked for an acknowledgement: here, the record is one that does not ask.
	info, err := l.js.Stream(ctx, sanitize("owned"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.CachedInfo().Config
	cfg.MaxMsgSize = 1024
	if _, err := l.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	more := slices.Clone(recs[:2*ownedAckEvery])
	more[ownedAckEvery/2].Value = make([]byte, 2048)
	err = l.AppendOwned(ctx, "owned", more...)
	if err == nil || !strings.Contains(err.Error(), "dropped 1 record(s)") {
		t.Fatalf("AppendOwned with a dropped record: %v, want an error saying 1 record was lost", err)
	}
}

// ---------------------------------------------------------------- benchmarks

const benchPartitions = 8

func benchValue() []byte {
	v := make([]byte, 200)
	for i := range v {
		v[i] = 'a' + byte(i%26)
	}
	return v
}

func benchRecords(n int) []streams.Record {
	v := benchValue()
	recs := make([]streams.Record, n)
	for i := range recs {
		recs[i] = streams.Record{Key: fmt.Appendf(nil, "key-%d", i%1000), Value: v}
	}
	return recs
}

// BenchmarkAppend: records of 200 bytes appended in batches of 1000 to an embedded
// file-backed server; reports msgs/s.
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	l := open(b, Config{DataDir: b.TempDir()})
	defer l.Close()
	if err := l.CreateTopic(ctx, "bench", benchPartitions); err != nil {
		b.Fatal(err)
	}
	recs := benchRecords(1000)
	b.ResetTimer()
	start := time.Now()
	for n := 0; n < b.N; n += len(recs) {
		if err := l.Append(ctx, "bench", recs[:min(len(recs), b.N-n)]...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkAppendOne: one record per Append call (a round trip each).
func BenchmarkAppendOne(b *testing.B) {
	ctx := context.Background()
	l := open(b, Config{DataDir: b.TempDir()})
	defer l.Close()
	if err := l.CreateTopic(ctx, "bench", benchPartitions); err != nil {
		b.Fatal(err)
	}
	recs := benchRecords(1000)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := l.Append(ctx, "bench", recs[i%len(recs)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkConsume: one group member fetching b.N records of 200 bytes and committing
// every 1000; reports msgs/s.
func BenchmarkConsume(b *testing.B) {
	ctx := context.Background()
	l := open(b, Config{DataDir: b.TempDir()})
	defer l.Close()
	if err := l.CreateTopic(ctx, "bench", benchPartitions); err != nil {
		b.Fatal(err)
	}
	recs := benchRecords(1000)
	for n := 0; n < b.N; n += len(recs) {
		if err := l.Append(ctx, "bench", recs[:min(len(recs), b.N-n)]...); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	sub, err := l.Subscribe(ctx, "bench", "bench")
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]streams.Message, 0, 1000)
	for i := 0; i < b.N; i++ {
		m, err := sub.Fetch(ctx)
		if err != nil {
			b.Fatal(err)
		}
		batch = append(batch, m)
		if len(batch) == cap(batch) || i == b.N-1 {
			if err := sub.Commit(ctx, batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	b.StopTimer()
	sub.Close()
}

// A plain NATS subscription on a topic's subjects sees appended records live.
func TestLiveSubjects(t *testing.T) {
	ctx := context.Background()
	l := open(t, Config{DataDir: t.TempDir()})
	defer l.Close()
	if err := l.CreateTopic(ctx, "atlas.events", 4); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *nats.Msg, 10)
	sub, err := l.Conn().ChanSubscribe(Subjects("atlas.events"), ch)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := l.Append(ctx, "atlas.events", streams.Record{Key: []byte{0xff, 'k'}, Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-ch:
		k, err := MessageKey(m.Header)
		if err != nil || string(k) != "\xffk" || string(m.Data) != "v" {
			t.Fatalf("live message: key %q (%v), data %q", k, err, m.Data)
		}
		if m.Subject != Subject("atlas.events", Partition(k, 4)) {
			t.Fatalf("live message on %s, want %s", m.Subject, Subject("atlas.events", Partition(k, 4)))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no live message")
	}
}

// An external server that restarts (same store, same port) loses the memory-only lease
// bucket; a member keeps or retakes its partitions and consumption goes on where it was
// committed.
func TestExternalServerRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv := startServer(t, dir)
	port := srv.Addr().(*net.TCPAddr).Port
	l := open(t, testConfig(Config{URL: srv.ClientURL(), NATSOptions: []nats.Option{nats.ReconnectWait(50 * time.Millisecond)}}))
	defer l.Close()
	if err := l.CreateTopic(ctx, "t", 2); err != nil {
		t.Fatal(err)
	}
	rec := func(i int) streams.Record {
		return streams.Record{Key: fmt.Appendf(nil, "k%d", i%5), Value: fmt.Appendf(nil, "v%d", i)}
	}
	var recs []streams.Record
	for i := range 10 {
		recs = append(recs, rec(i))
	}
	if err := l.Append(ctx, "t", recs...); err != nil {
		t.Fatal(err)
	}
	sub, err := l.Subscribe(ctx, "t", "g")
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(n int) map[string]bool {
		t.Helper()
		got := map[string]bool{}
		var ms []streams.Message
		for len(got) < n {
			fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			m, err := sub.Fetch(fctx)
			cancel()
			if err != nil {
				t.Fatalf("after %d of %d: %v", len(got), n, err)
			}
			got[string(m.Value)] = true
			ms = append(ms, m)
		}
		if err := sub.Commit(ctx, ms...); err != nil {
			t.Fatal(err)
		}
		return got
	}
	fetch(10)
	srv.Shutdown()
	srv.WaitForShutdown()
	srv2, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv2.Start()
	defer func() { srv2.Shutdown(); srv2.WaitForShutdown() }()
	if !srv2.ReadyForConnections(10 * time.Second) {
		t.Fatal("restarted server not ready")
	}
	recs = recs[:0]
	for i := 10; i < 20; i++ {
		recs = append(recs, rec(i))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := l.Append(ctx, "t", recs...)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Append after the server restarted: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got := fetch(10)
	for v := range got {
		if n, _ := strconv.Atoi(v[1:]); n < 10 {
			t.Fatalf("committed message %s delivered again", v)
		}
	}
	l.Close() // while the server is up: it releases the leases
}

// Messages the application holds longer than AckWait are redelivered by the server;
// the member drops those copies instead of handing them out twice.
func TestAckWaitRedeliveryDropped(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(Config{DataDir: t.TempDir()})
	cfg.AckWait = 500 * time.Millisecond
	l := open(t, cfg)
	defer l.Close()
	if err := l.CreateTopic(ctx, "t", 2); err != nil {
		t.Fatal(err)
	}
	var recs []streams.Record
	for i := range 6 {
		recs = append(recs, streams.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i)})
	}
	if err := l.Append(ctx, "t", recs...); err != nil {
		t.Fatal(err)
	}
	sub, err := l.Subscribe(ctx, "t", "g")
	if err != nil {
		t.Fatal(err)
	}
	var got []streams.Message
	for range len(recs) {
		m, err := sub.Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	fctx, cancel := context.WithTimeout(ctx, 1600*time.Millisecond) // three AckWaits
	m, err := sub.Fetch(fctx)
	cancel()
	if err == nil {
		t.Fatalf("message %q handed out twice", m.Value)
	}
	if err := sub.Commit(ctx, got...); err != nil {
		t.Fatal(err)
	}
	fctx, cancel = context.WithTimeout(ctx, time.Second)
	m, err = sub.Fetch(fctx)
	cancel()
	if err == nil {
		t.Fatalf("committed message %q delivered again", m.Value)
	}
}
