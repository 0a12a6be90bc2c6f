package replay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/atlas-mmm/atlas/projections"
	"github.com/atlas-mmm/atlas/projections/replay/replaytest"
	"github.com/atlas-mmm/atlas/projections/store"
	"github.com/atlas-mmm/atlas/projections/store/clickhouse"
	"github.com/atlas-mmm/atlas/projections/store/storetest"
	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/kafka"
	"github.com/atlas-mmm/atlas/streams/processor"
)

// The ClickHouse tests need the local server (ATLAS_CLICKHOUSE_ADDR, default
// 127.0.0.1:19000) and Kafka broker (ATLAS_KAFKA_BROKERS, default 127.0.0.1:19092),
// started by deploy/local/*.sh. They skip when either is unreachable, unless
// ATLAS_CLICKHOUSE_REQUIRED or ATLAS_KAFKA_REQUIRED is set. Databases and topics get
// fresh names; the databases are dropped afterwards.

func required(name string) bool { v := os.Getenv(name); return v != "" && v != "0" }

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// kafkaLog opens the broker with fresh topics, or skips.
func kafkaLog(t *testing.T) (streams.Log, processor.Topics) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := kafka.Open(ctx, kafka.Config{Brokers: strings.Split(env("ATLAS_KAFKA_BROKERS", "127.0.0.1:19092"), ","),
		Partitions: 4, ReplicationFactor: 1})
	if err == nil {
		if _, err = l.EndOffsets(ctx, "atlas-replay-probe-"+suffix()); err != nil && !strings.Contains(err.Error(), "nknown") {
			l.Close()
		} else {
			err = nil
		}
	}
	if err != nil {
		if required("ATLAS_KAFKA_REQUIRED") {
			t.Fatalf("Kafka unreachable and ATLAS_KAFKA_REQUIRED is set: %v", err)
		}
		t.Skipf("Kafka unreachable (deploy/local/kafka.sh start): %v", err)
	}
	t.Cleanup(func() { l.Close() })
	s := suffix()
	topics := processor.Topics{Models: "replay-models-" + s, Requests: "replay-requests-" + s,
		Results: "replay-results-" + s, DeadLetters: "replay-dead-" + s}
	if err := processor.CreateTopics(testCtx(t), l, topics, 4); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c := &kafkago.Client{Addr: kafkago.TCP(strings.Split(env("ATLAS_KAFKA_BROKERS", "127.0.0.1:19092"), ",")...)}
		if _, err := c.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: []string{topics.Models, topics.Requests,
			topics.Results, topics.DeadLetters}}); err != nil {
			t.Logf("deleting the test topics: %v", err)
		}
	})
	return l, topics
}

// clickHouseTarget is a target on a fresh live database, or skips.
func clickHouseTarget(t *testing.T) *ClickHouse {
	cfg := clickhouse.Config{Addr: []string{env("ATLAS_CLICKHOUSE_ADDR", "127.0.0.1:19000")}, Database: "atlas_rt_" + suffix()}
	tg, err := NewClickHouse(context.Background(), cfg)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = tg.live.Migrate(ctx)
		cancel()
	}
	if err != nil {
		if required("ATLAS_CLICKHOUSE_REQUIRED") {
			t.Fatalf("ClickHouse unreachable and ATLAS_CLICKHOUSE_REQUIRED is set: %v", err)
		}
		t.Skipf("ClickHouse unreachable (deploy/local/clickhouse.sh start): %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		names, _ := tg.Names(ctx)
		for _, n := range names {
			if err := tg.Drop(ctx, n); err != nil {
				t.Errorf("drop %s: %v", n, err)
			}
		}
		admin, err := NewClickHouse(ctx, clickhouse.Config{Addr: cfg.Addr, Database: "default"})
		if err == nil {
			err = admin.live.DropDatabase(ctx, cfg.Database)
			admin.Close()
		}
		if err != nil {
			t.Errorf("drop %s: %v", cfg.Database, err)
		}
		tg.Close()
	})
	return tg
}

// sizes are the row counts a snapshot shows per table, to tell generations apart.
func sizes(s storetest.Snapshot) [5]int {
	audit := 0
	for _, a := range s.Audit {
		audit += len(a)
	}
	cps := 0
	for _, parts := range s.Checkpoint {
		cps += len(parts)
	}
	allocs := 0
	for _, a := range s.Allocations {
		allocs += len(a)
	}
	return [5]int{len(s.Results), allocs, audit, len(s.DeadLetters), len(s.Models)}
}

// On Kafka and ClickHouse: a replay with redelivered duplicates equals the live read
// models; a switch interrupted before or after the RENAME leaves the live tables all
// old or all new; a switch while the live projector runs and an API store is open
// serves the new tables at once, and the projector continues from the replay's
// checkpoint to the same read models as a projection from scratch.
func TestReplayAndSwitchClickHouse(t *testing.T) {
	tg := clickHouseTarget(t)
	l, topics := kafkaLog(t)
	ctx := testCtx(t)
	ids := write(t, l, topics, replaytest.Options{Requests: 400, Duplicates: 60})

	live := open(t, tg, "")
	defer live.Close()
	catchUp(t, l, topics, live)
	liveSnap := snapshot(t, live)
	checkOnePerRequest(t, liveSnap, ids)

	// Batches held back and committed every 3,000 rows, as atlas replay does on
	// ClickHouse (ClickHouseCommitRows), at a scale that makes both commits happen.
	r := &Replay{Log: l, Target: tg, Topics: topics, BatchRows: 1000, CommitRows: 3000}
	if _, err := r.Build(ctx, "g1", Spec{}, Spec{}); err != nil {
		t.Fatal(err)
	}
	gen := open(t, tg, "g1")
	sameSnapshots(t, "replayed read models vs live ones", liveSnap, snapshot(t, gen))
	gen.Close()

	// More history, which the switch's catch-up brings into g1 only: the two sides now
	// differ in every table.
	more := write(t, l, topics, replaytest.Options{Requests: 100, Prefix: "more"})
	oldSizes := sizes(liveSnap)
	crash := errors.New("crash")
	r.failAt = func(step string) error {
		if step == "caught-up" {
			return crash
		}
		return nil
	}
	if err := r.Switch(ctx, "g1", false); !errors.Is(err, crash) {
		t.Fatalf("switch: %v", err)
	}
	if got := sizes(snapshot(t, live)); got != oldSizes || generation(t, live).Name != "" {
		t.Fatalf("after a crash before the RENAME the live tables show %v (%+v), want all old %v", got, generation(t, live), oldSizes)
	}
	gen = open(t, tg, "g1")
	newSnap := snapshot(t, gen)
	gen.Close()
	if sizes(newSnap) == oldSizes {
		t.Fatal("the generation does not differ from the live tables")
	}

	// The live projector keeps running through the switch; an API's store is open.
	liveProj := &projections.Projector{Log: l, Store: live, Topics: topics, Name: projector, BatchRows: 300, Poll: 10 * time.Millisecond}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); liveProj.Run(runCtx) }()
	defer func() { stop(); wg.Wait() }()
	apiStore, err := tg.OpenLive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer apiStore.Close()

	r.failAt = func(step string) error {
		if step == "swapped" {
			return crash
		}
		return nil
	}
	if err := r.Switch(ctx, "g1", false); !errors.Is(err, crash) {
		t.Fatalf("switch: %v", err)
	}
	r.failAt = nil
	if g := generation(t, apiStore); g.Name != "g1" {
		t.Fatalf("the API's store serves generation %q after the RENAME, want g1", g.Name)
	}
	old := open(t, tg, "g1")
	if g := generation(t, old); g.Name != "" {
		t.Errorf("the previous live tables record %+v, want the projector's", g)
	}
	old.Close()

	// Yet more history while the live projector runs on the switched tables.
	after := write(t, l, topics, replaytest.Options{Requests: 100, Prefix: "after"})
	want := len(newSnap.Results) + len(after)
	// Caught up: every result there, and the checkpoint at the end of the log (a
	// result's rows are visible a moment before the checkpoint that covers them).
	var ends []map[int]int64
	for _, topic := range []string{topics.Models, topics.Requests, topics.Results, topics.DeadLetters} {
		e, err := l.EndOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		ends = append(ends, e)
	}
	atEnd := func() bool {
		cp, err := apiStore.Checkpoint(ctx, projector)
		if err != nil {
			t.Fatal(err)
		}
		for i, topic := range []string{topics.Models, topics.Requests, topics.Results, topics.DeadLetters} {
			for p, end := range ends[i] {
				if end > 0 && cp[topic][p] != end {
					return false
				}
			}
		}
		return true
	}
	deadline := time.Now().Add(time.Minute)
	for {
		rs, _, err := apiStore.Results(ctx, store.ResultQuery{Limit: store.MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == want && atEnd() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the live projector did not catch up after the switch: %d results, want %d", len(rs), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	wg.Wait()

	// The same read models as a projection from scratch.
	plain, _, err := tg.Open(ctx, "plain", true)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	catchUp(t, l, topics, plain)
	scratch, got := snapshot(t, plain), snapshot(t, apiStore)
	sameSnapshots(t, "live read models after the switch vs a projection from scratch", scratch, got)
	checkOnePerRequest(t, got, append(append(ids, after...), more...))

	// Switching back (the previous tables were never recorded: the crash came first).
	if err := r.Switch(ctx, "g1", false); err != nil {
		t.Fatal(err)
	}
	sameSnapshots(t, "switched back and caught up", scratch, snapshot(t, apiStore))
	infos, err := r.List(ctx)
	if err != nil || len(infos) != 3 {
		t.Fatalf("List = %+v, %v", infos, err)
	}
}

// failingOnce fails its nth Apply, as a lost connection would.
type failingOnce struct {
	store.Store
	store.Generations
	n int
}

func (f *failingOnce) Apply(ctx context.Context, b store.Batch) error {
	if f.n--; f.n == 0 {
		return errors.New("connection reset by peer")
	}
	return f.Store.Apply(ctx, b)
}

// On ClickHouse, with rows held back between commits: a replay interrupted while it
// holds rows resumes from its last commit, and one whose write fails is retried from
// there; both end equal to the live read models.
func TestInterruptedReplayResumesClickHouse(t *testing.T) {
	tg := clickHouseTarget(t)
	l, topics := kafkaLog(t)
	write(t, l, topics, replaytest.Options{Requests: 300, Duplicates: 20})
	live := open(t, tg, "")
	defer live.Close()
	catchUp(t, l, topics, live)
	liveSnap := snapshot(t, live)

	// Batches of 100 rows: the models (Apply 1), the requests (2-5, the last one
	// empty), then the results, whose first batch brings the held rows to 400 and
	// commits them (6); the cancel comes with rows held again (7).
	ctx, cancel := context.WithCancel(testCtx(t))
	wt := wrapTarget{tg, func(s store.Store) store.Store {
		return &cancelling{Store: s, Generations: s.(store.Generations), n: 7, cancel: cancel}
	}}
	r := &Replay{Log: l, Target: wt, Topics: topics, BatchRows: 100, CommitRows: 400}
	if _, err := r.Build(ctx, "g1", Spec{}, Spec{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted build: %v", err)
	}
	half := open(t, tg, "g1")
	cp, _ := half.Checkpoint(testCtx(t), projector)
	half.Close()
	var results int64
	for _, o := range cp[topics.Results] {
		results += o
	}
	if len(cp[topics.Models]) == 0 || len(cp[topics.Requests]) == 0 || results == 0 || results >= 320 {
		t.Errorf("checkpoint of the interrupted build: %v, want the models and requests and part of the results", cp)
	}
	r.Target = tg
	if _, err := r.Build(testCtx(t), "g1", Spec{}, Spec{}); err != nil {
		t.Fatal(err)
	}
	gen := open(t, tg, "g1")
	sameSnapshots(t, "resumed replay vs live", liveSnap, snapshot(t, gen))
	gen.Close()

	// A failed write (the first carries the models, the sixth commits) makes the
	// replay retry from the checkpoint, the models included.
	for _, n := range []int{1, 6} {
		name := fmt.Sprint("fail", n)
		r.Target = wrapTarget{tg, func(s store.Store) store.Store {
			return &failingOnce{Store: s, Generations: s.(store.Generations), n: n}
		}}
		if _, err := r.Build(testCtx(t), name, Spec{}, Spec{}); err != nil {
			t.Fatalf("a build whose write %d failed: %v", n, err)
		}
		gen = open(t, tg, name)
		sameSnapshots(t, fmt.Sprintf("replay retried after write %d failed vs live", n), liveSnap, snapshot(t, gen))
		gen.Close()
	}
}
