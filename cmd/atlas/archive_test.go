package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/archive"
	"github.com/atlas-mmm/atlas/streams/event"
	"github.com/atlas-mmm/atlas/streams/jetstream"
	"github.com/atlas-mmm/atlas/streams/processor"
)

// history writes a small but complete history to l: two versions of a model (requests
// answered against each), feasible, infeasible and malformed requests, a request with an
// inline model, and an undecodable message (a dead letter); the processor answers
// everything. It returns the number of requests.
func history(t *testing.T, l streams.Log, topics processor.Topics, n int) int {
	t.Helper()
	ctx := context.Background()
	if err := processor.CreateTopics(ctx, l, topics, 4); err != nil {
		t.Fatal(err)
	}
	model, err := os.ReadFile("../../examples/acme-model.json")
	if err != nil {
		t.Fatal(err)
	}
	publish := func(topic, typ string, data []byte, id string) {
		t.Helper()
		env, err := event.New(typ, "atlas/test", "", json.RawMessage(data), id, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		b, err := event.Encode(env)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Append(ctx, topic, streams.Record{Key: []byte(env.Key()), Value: b}); err != nil {
			t.Fatal(err)
		}
	}
	requests := func(from, to int) {
		for i := from; i < to; i++ {
			total := 100000 + float64(i%50)*5000
			c := map[string]any{"total": total}
			switch i % 10 {
			case 9: // infeasible
				c["channels"] = map[string]any{"tv": map[string]any{"min": total * 2}}
			case 8: // malformed: rejected
				c["max_share"] = 7
			}
			req := map[string]any{"request_id": fmt.Sprintf("req-%05d", i), "model_id": "acme-mmm",
				"budget": map[string]float64{"tv": total / 2, "digital": total / 2}, "constraints": c}
			if i%25 == 7 {
				delete(req, "model_id")
				req["model"] = json.RawMessage(model)
			}
			b, _ := json.Marshal(req)
			if i%10 == 8 {
				// The schema refuses it: build the event by hand, as a broken producer would.
				b, _ = json.Marshal(map[string]any{"specversion": "1.0", "id": fmt.Sprintf("evt-%d", i), "source": "atlas/test",
					"type": event.OptimizationRequested, "subject": req["request_id"], "time": time.Now().UTC(), "data": req})
				if err := l.Append(ctx, topics.Requests, streams.Record{Key: []byte(req["request_id"].(string)), Value: b}); err != nil {
					t.Fatal(err)
				}
				continue
			}
			publish(topics.Requests, event.OptimizationRequested, b, fmt.Sprintf("evt-%d", i))
		}
	}
	publish(topics.Models, event.ModelPublished, model, "model-v1")
	requests(0, n/2)
	if err := l.Append(ctx, topics.Requests, streams.Record{Key: []byte("junk"), Value: []byte{0xff, 'n', 'o', 't', 0}}); err != nil {
		t.Fatal(err)
	}
	answer(t, l, topics, n/2)
	v2 := bytes.Replace(model, []byte(`"baseline": 50000`), []byte(`"baseline": 60000`), 1)
	if bytes.Equal(v2, model) {
		t.Fatal("could not derive a second model version")
	}
	publish(topics.Models, event.ModelPublished, v2, "model-v2")
	requests(n/2, n)
	answer(t, l, topics, n)
	return n
}

// answer runs the processor until n requests have a result.
func answer(t *testing.T, l streams.Log, topics processor.Topics, n int) {
	t.Helper()
	p, err := processor.New(processor.Config{Log: l, Topics: topics, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("processor: %v", err)
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		seen := map[string]bool{}
		if err := l.Read(ctx, topics.Results, streams.Position{}, streams.Position{}, func(m streams.Message) error {
			seen[string(m.Key)] = true
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(seen) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests answered", len(seen), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readArchiveFile(t *testing.T, path string) (archive.Header, []streams.Message) {
	t.Helper()
	f, err := archive.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := archive.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []streams.Message
	for {
		m, err := r.Next()
		if err == io.EOF {
			return r.Header(), msgs
		}
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
}

func sameArchived(t *testing.T, got, want []streams.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Topic != w.Topic || g.Partition != w.Partition || g.Offset != w.Offset || !bytes.Equal(g.Key, w.Key) ||
			!bytes.Equal(g.Value, w.Value) || !g.Time.Equal(w.Time) {
			t.Fatalf("message %d differs:\n got %s/%d/%d %v %.100s\nwant %s/%d/%d %v %.100s", i,
				g.Topic, g.Partition, g.Offset, g.Time, g.Value, w.Topic, w.Partition, w.Offset, w.Time, w.Value)
		}
	}
}

// Export from the embedded log, import into another, export again: the same messages
// (ids, order, times, bytes, and here also partitions and offsets). A second import
// into the now non-empty log is refused, and a damaged file is recognised.
func TestExportImportCommands(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	topics := processor.DefaultTopics()
	l := openDir(t, a)
	history(t, l, topics, 60)
	l.Close()

	first := filepath.Join(dir, "first.ndjson.zst")
	if code, _, errs := run(t, "", "export", "--data-dir", a, "--out", first); code != 0 {
		t.Fatalf("export: exit %d\n%s", code, errs)
	}
	if code, _, errs := run(t, "", "import", "--data-dir", b, first); code != 0 {
		t.Fatalf("import: exit %d\n%s", code, errs)
	}
	second := filepath.Join(dir, "second.ndjson.gz")
	if code, _, errs := run(t, "", "export", "--data-dir", b, "--out", second); code != 0 {
		t.Fatalf("export: exit %d\n%s", code, errs)
	}
	h, want := readArchiveFile(t, first)
	_, got := readArchiveFile(t, second)
	sameArchived(t, got, want)
	if len(h.Topics) != 4 || h.Source != "jetstream:"+a {
		t.Fatalf("header %+v", h)
	}

	code, _, errs := run(t, "", "import", "--data-dir", b, first)
	if code != 1 || !strings.Contains(errs, "not empty") || !strings.Contains(errs, topics.Models) {
		t.Fatalf("import into a non-empty log: exit %d\n%s", code, errs)
	}

	// The import committed the processor's group past every answered request (and the
	// dead-lettered one): a processor started on the copy answers only what is new.
	// One new request per partition, so that anything answered again shows.
	lb := openDir(t, b)
	var keys []string
	for i, parts := 0, map[int]bool{}; len(parts) < 4; i++ {
		k := fmt.Sprintf("after-%d", i)
		if p := jetstream.Partition([]byte(k), 4); !parts[p] {
			parts[p] = true
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		env, err := event.New(event.OptimizationRequested, "atlas/test", "", json.RawMessage(`{"request_id":"`+k+`","model_id":"acme-mmm","constraints":{"total":100000}}`), "evt-"+k, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := event.Encode(env)
		if err := lb.Append(context.Background(), topics.Requests, streams.Record{Key: []byte(k), Value: raw}); err != nil {
			t.Fatal(err)
		}
	}
	answer(t, lb, topics, 60+len(keys))
	events := 0
	lb.Read(context.Background(), topics.Results, streams.Position{}, streams.Position{}, func(streams.Message) error {
		events++
		return nil
	})
	if events != 60+len(keys) {
		t.Fatalf("%d result events after the processor ran on the copy, want %d: it answered imported requests again", events, 60+len(keys))
	}
	lb.Close()

	// Another process holding the embedded log (atlas serve) gets a hint, not just an error.
	held := openDir(t, a)
	out, err := atlasCmd(t, "export", "--data-dir", a, "--out", filepath.Join(dir, "x.ndjson")).CombinedOutput()
	held.Close()
	if err == nil || !strings.Contains(string(out), "stop atlas serve") {
		t.Fatalf("export of a log in use: %v\n%s", err, out)
	}

	plain := filepath.Join(dir, "plain.ndjson")
	if code, _, errs := run(t, "", "export", "--data-dir", a, "--out", plain); code != 0 {
		t.Fatalf("export: exit %d\n%s", code, errs)
	}
	raw, _ := os.ReadFile(plain)
	os.WriteFile(plain, raw[:len(raw)-200], 0o644)
	code, _, errs = run(t, "", "import", "--check", plain)
	if code != 1 || !strings.Contains(errs, "truncated") {
		t.Fatalf("import --check of a truncated file: exit %d\n%s", code, errs)
	}
	if code, _, errs := run(t, "", "import", "--data-dir", filepath.Join(dir, "c"), plain); code != 1 || !strings.Contains(errs, "truncated") {
		t.Fatalf("import of a truncated file: exit %d\n%s", code, errs)
	}
}

// The group commit after an import reads the requests through the group, whose members
// are delivered only so many uncommitted messages (MaxAckPending per partition): it
// must commit as it reads, and stop reading a partition at its first unanswered request
// however much follows it. Here the limit is 8 messages, the log 40 requests per
// partition.
func TestImportGroupCommitBeyondAckPending(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := jetstream.Open(ctx, jetstream.Config{DataDir: t.TempDir(), MaxAckPending: 8, LeaseTTL: 5 * time.Second, RebalanceInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const topic, parts = "atlas.requests", 3
	if err := l.CreateTopic(ctx, topic, parts); err != nil {
		t.Fatal(err)
	}
	h := archive.Header{Topics: []archive.Topic{{Role: archive.RoleRequests, Name: topic, Partitions: parts}, {Role: archive.RoleResults, Name: "atlas.results", Partitions: parts}}}
	ans := newAnswerSet(h)
	// Every request answered but one: the 10th of partition 0.
	var recs []streams.Record
	perPart := map[int]int{}
	var unanswered string
	for i := 0; len(recs) < 40*parts; i++ {
		k := fmt.Sprintf("req-%d", i)
		p := jetstream.Partition([]byte(k), parts)
		if perPart[p] == 40 {
			continue
		}
		perPart[p]++
		recs = append(recs, streams.Record{Key: []byte(k), Value: []byte(`{}`)})
		ans.observe(streams.Message{Topic: topic, Partition: p, Key: []byte(k)})
		if p == 0 && perPart[p] == 10 {
			unanswered = k
			continue
		}
		ans.observe(streams.Message{Topic: "atlas.results", Key: []byte(k)})
	}
	if err := l.Append(ctx, topic, recs...); err != nil {
		t.Fatal(err)
	}
	n, err := ans.commit(ctx, l, topic, "atlas-processor")
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(40*parts - 31); n != want {
		t.Fatalf("committed past %d requests, want %d", n, want)
	}
	// A member of the group now starts at the unanswered request, and nowhere else.
	sub, err := l.Subscribe(ctx, topic, "atlas-processor")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	m, err := sub.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Key) != unanswered {
		t.Fatalf("the group resumes at %q (partition %d), want the unanswered %q", m.Key, m.Partition, unanswered)
	}
	fctx, fcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer fcancel()
	for {
		m, err := sub.Fetch(fctx)
		if err != nil {
			break
		}
		if m.Partition != 0 {
			t.Fatalf("partition %d delivered %q after the commit", m.Partition, m.Key)
		}
	}
}
