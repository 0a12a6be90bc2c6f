package processor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/atlas-mmm/atlas/engine"
	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/event"
	"github.com/atlas-mmm/atlas/streams/jetstream"
	"github.com/atlas-mmm/atlas/streams/processor"
)

func openLog(t *testing.T, dir string) streams.Log {
	t.Helper()
	l, err := jetstream.Open(context.Background(), jetstream.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustEvent(t *testing.T, typ, id string, data any) []byte {
	t.Helper()
	e, err := event.New(typ, "test", "", data, id, time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	b, err := event.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func appendRaw(t *testing.T, l streams.Log, topic, key string, values ...[]byte) {
	t.Helper()
	recs := make([]streams.Record, len(values))
	for i, v := range values {
		recs[i] = streams.Record{Key: []byte(key), Value: v}
	}
	if err := l.Append(context.Background(), topic, recs...); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, l streams.Log, topic string) []streams.Message {
	t.Helper()
	var out []streams.Message
	if err := l.Read(context.Background(), topic, streams.Position{}, streams.Position{}, func(m streams.Message) error {
		out = append(out, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// runUntil runs a processor until cond holds on the log (or a deadline passes).
func runUntil(t *testing.T, cfg processor.Config, cond func() bool) *processor.Processor {
	t.Helper()
	p, err := processor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var runErr error
	wg.Add(1)
	go func() { defer wg.Done(); runErr = p.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			cancel()
			wg.Wait()
			t.Fatalf("condition not reached (run error: %v)", runErr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if runErr != nil {
		t.Fatalf("run: %v", runErr)
	}
	return p
}

func loadModel(t *testing.T) json.RawMessage {
	b, err := os.ReadFile("../../examples/acme-model.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestProcessorAnswersEveryRequest(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	defer l.Close()
	topics := processor.DefaultTopics()
	ctx := context.Background()
	if err := processor.CreateTopics(ctx, l, topics, 4); err != nil {
		t.Fatal(err)
	}
	appendRaw(t, l, topics.Models, "acme-mmm", mustEvent(t, event.ModelPublished, "m1", loadModel(t)))
	good := map[string]any{"request_id": "r-good", "model_id": "acme-mmm", "budget": map[string]float64{"tv": 100000}, "constraints": map[string]any{"total": 300000}}
	unknown := map[string]any{"request_id": "r-unknown", "model_id": "nope", "constraints": map[string]any{"total": 1000}}
	infeasible := map[string]any{"request_id": "r-infeasible", "model_id": "acme-mmm", "constraints": map[string]any{"total": 1000, "channels": map[string]any{"tv": map[string]any{"min": 5000}}}}
	invalid := map[string]any{"request_id": "r-invalid", "model_id": "acme-mmm", "budget": map[string]float64{"billboards": 5}, "constraints": map[string]any{"total": 1000}}
	appendRaw(t, l, topics.Requests, "r", mustEvent(t, event.OptimizationRequested, "e1", good),
		mustEvent(t, event.OptimizationRequested, "e2", unknown),
		mustEvent(t, event.OptimizationRequested, "e3", infeasible),
		mustEvent(t, event.OptimizationRequested, "e4", invalid),
		[]byte("\x00\x01 garbage"),
		[]byte(`{"hello": "world"}`),
		mustEvent(t, event.OptimizationRequested, "e1", good)) // a redelivery of the first

	cfg := processor.Config{Log: l, Topics: topics, ModelRefresh: time.Millisecond}
	runUntil(t, cfg, func() bool {
		return len(readAll(t, l, topics.Results)) >= 5 && len(readAll(t, l, topics.DeadLetters)) >= 2
	})
	results := map[string][]event.Envelope{}
	raws := map[string][][]byte{}
	for _, m := range readAll(t, l, topics.Results) {
		e, err := event.Decode(m.Value)
		if err != nil {
			t.Fatalf("result event does not decode: %v", err)
		}
		id := e.RequestID()
		results[id] = append(results[id], e)
		raws[id] = append(raws[id], m.Value)
	}
	check := func(id, typ, status string) {
		t.Helper()
		es := results[id]
		if len(es) == 0 {
			t.Fatalf("no result for %s", id)
		}
		if es[0].Type != typ {
			t.Fatalf("%s: type %s, want %s (%s)", id, es[0].Type, typ, es[0].Data)
		}
		if status != "" {
			var r engine.Result
			if err := json.Unmarshal(es[0].Data, &r); err != nil {
				t.Fatal(err)
			}
			if r.Status != status {
				t.Fatalf("%s: status %s, want %s", id, r.Status, status)
			}
			if r.ModelVersion != 1 || !strings.HasPrefix(r.ModelHash, "sha256:") {
				t.Fatalf("%s: model version %d hash %q", id, r.ModelVersion, r.ModelHash)
			}
		}
	}
	check("r-good", event.OptimizationCompleted, engine.StatusOptimal)
	check("r-infeasible", event.OptimizationCompleted, engine.StatusInfeasible)
	check("r-unknown", event.OptimizationRejected, "")
	check("r-invalid", event.OptimizationRejected, "")
	if !strings.Contains(string(results["r-unknown"][0].Data), "model_id") {
		t.Errorf("rejection does not name model_id: %s", results["r-unknown"][0].Data)
	}
	if !strings.Contains(string(results["r-invalid"][0].Data), "budget.billboards") {
		t.Errorf("rejection does not name the field: %s", results["r-invalid"][0].Data)
	}
	if len(raws["r-good"]) != 2 || !bytes.Equal(raws["r-good"][0], raws["r-good"][1]) {
		t.Errorf("a redelivered request must give a byte-identical event (%d events)", len(raws["r-good"]))
	}
	dead := readAll(t, l, topics.DeadLetters)
	if len(dead) != 2 {
		t.Fatalf("%d dead letters, want 2", len(dead))
	}
	for _, d := range dead {
		var dl processor.DeadLetter
		if err := json.Unmarshal(d.Value, &dl); err != nil || dl.Reason == "" {
			t.Fatalf("dead letter %s: %v", d.Value, err)
		}
		if dl.Value == "" && dl.ValueB64 == "" {
			t.Fatalf("dead letter lost the original bytes: %s", d.Value)
		}
	}
}

func TestRegistryRebuildsIdentically(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	topics := processor.DefaultTopics()
	ctx := context.Background()
	if err := processor.CreateTopics(ctx, l, topics, 4); err != nil {
		t.Fatal(err)
	}
	m := loadModel(t)
	var other map[string]any
	if err := json.Unmarshal(m, &other); err != nil {
		t.Fatal(err)
	}
	other["model_id"] = "other"
	appendRaw(t, l, topics.Models, "acme-mmm", mustEvent(t, event.ModelPublished, "m1", m), mustEvent(t, event.ModelPublished, "m2", m))
	appendRaw(t, l, topics.Models, "other", mustEvent(t, event.ModelPublished, "m3", other),
		mustEvent(t, event.ModelRetired, "m4", event.Retirement{ModelID: "other"}))
	appendRaw(t, l, topics.Models, "bad", []byte("not an event"))
	p1, _ := processor.New(processor.Config{Log: l, Topics: topics})
	if err := p1.SyncModels(ctx); err != nil {
		t.Fatal(err)
	}
	first, _ := json.Marshal(p1.Registry().Models())
	l.Close()
	l2 := openLog(t, dir)
	defer l2.Close()
	p2, _ := processor.New(processor.Config{Log: l2, Topics: topics})
	if err := p2.SyncModels(ctx); err != nil {
		t.Fatal(err)
	}
	second, _ := json.Marshal(p2.Registry().Models())
	if !bytes.Equal(first, second) {
		t.Fatalf("registry differs after a rebuild:\n%s\n%s", first, second)
	}
	v, err := p2.Registry().Resolve("acme-mmm")
	if err != nil || v.Version != 2 {
		t.Fatalf("acme-mmm resolves to %+v, %v; want version 2", v, err)
	}
	if _, err := p2.Registry().Resolve("other"); err == nil || !strings.Contains(err.Error(), "retired") {
		t.Fatalf("a retired model must not resolve: %v", err)
	}
	if d, err := p2.Registry().Resolve(""); err != nil || d.ModelID != "acme-mmm" {
		t.Fatalf("default model: %+v %v", d, err)
	}
}

func TestLiveNotification(t *testing.T) {
	dir := t.TempDir()
	jl, err := jetstream.Open(context.Background(), jetstream.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer jl.Close()
	topics := processor.DefaultTopics()
	if err := processor.CreateTopics(context.Background(), jl, topics, 2); err != nil {
		t.Fatal(err)
	}
	appendRaw(t, jl, topics.Models, "acme-mmm", mustEvent(t, event.ModelPublished, "m1", loadModel(t)))
	got := make(chan []byte, 1)
	sub, err := jl.Conn().Subscribe(processor.ResultSubject("live-1"), func(m *nats.Msg) { got <- m.Data })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	appendRaw(t, jl, topics.Requests, "live-1", mustEvent(t, event.OptimizationRequested, "e1",
		map[string]any{"request_id": "live-1", "constraints": map[string]any{"total": 200000}}))
	p, _ := processor.New(processor.Config{Log: jl, Topics: topics, Notifier: notifier{jl.Conn()}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case b := <-got:
		e, err := event.Decode(b)
		if err != nil || e.Type != event.OptimizationCompleted || e.RequestID() != "live-1" {
			t.Fatalf("notification %s: %v", b, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no live notification")
	}
}

type notifier struct{ nc *nats.Conn }

func (n notifier) Notify(_ context.Context, id string, ev []byte) error {
	return n.nc.Publish(processor.ResultSubject(id), ev)
}

// commitLog records the Commit calls of the subscriptions it hands out.
type commitLog struct {
	streams.Log
	mu      sync.Mutex
	commits [][]streams.Message
}

func (l *commitLog) Subscribe(ctx context.Context, topic, group string) (streams.Subscription, error) {
	s, err := l.Log.Subscribe(ctx, topic, group)
	if err != nil {
		return nil, err
	}
	return &commitSub{Subscription: s, log: l}, nil
}

type commitSub struct {
	streams.Subscription
	log *commitLog
}

func (s *commitSub) Commit(ctx context.Context, msgs ...streams.Message) error {
	s.log.mu.Lock()
	s.log.commits = append(s.log.commits, append([]streams.Message(nil), msgs...))
	s.log.mu.Unlock()
	return s.Subscription.Commit(ctx, msgs...)
}

// Requests whose results are appended wait up to CommitInterval to be committed
// together; stopping commits whatever is pending, so a restart has nothing to redo.
func TestStopCommitsPendingBatches(t *testing.T) {
	dir := t.TempDir()
	inner := openLog(t, dir)
	defer inner.Close()
	l := &commitLog{Log: inner}
	topics := processor.DefaultTopics()
	ctx := context.Background()
	if err := processor.CreateTopics(ctx, l, topics, 4); err != nil {
		t.Fatal(err)
	}
	appendRaw(t, l, topics.Models, "acme-mmm", mustEvent(t, event.ModelPublished, "m1", loadModel(t)))
	const n = 12
	for i := range n {
		id := "r-" + string(rune('a'+i))
		req := map[string]any{"request_id": id, "model_id": "acme-mmm", "constraints": map[string]any{"total": 300000}}
		appendRaw(t, l, topics.Requests, id, mustEvent(t, event.OptimizationRequested, "e-"+id, req))
	}
	// Batches of 2: six batches, each appended at once; an interval of an hour leaves
	// every commit to the stop.
	cfg := processor.Config{Log: l, Topics: topics, BatchSize: 2, CommitInterval: time.Hour}
	runUntil(t, cfg, func() bool { return len(readAll(t, l, topics.Results)) >= n })

	l.mu.Lock()
	commits := l.commits
	l.mu.Unlock()
	if len(commits) != 1 || len(commits[0]) != n {
		sizes := make([]int, len(commits))
		for i, c := range commits {
			sizes[i] = len(c)
		}
		t.Fatalf("commits of %v requests; want one commit of all %d at the stop", sizes, n)
	}

	// A restarted member of the group finds nothing left to do.
	sub, err := inner.Subscribe(ctx, topics.Requests, "atlas-processor")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	fctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if m, err := sub.Fetch(fctx); err == nil {
		t.Fatalf("request %s/%d delivered again after a graceful stop", m.Topic, m.Offset)
	}
}
