package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/atlas-mmm/atlas/projections"
	"github.com/atlas-mmm/atlas/projections/replay/replaytest"
	"github.com/atlas-mmm/atlas/projections/store"
	"github.com/atlas-mmm/atlas/projections/store/clickhouse"
	"github.com/atlas-mmm/atlas/projections/store/sqlite"
	"github.com/atlas-mmm/atlas/projections/store/storetest"
	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/jetstream"
	"github.com/atlas-mmm/atlas/streams/kafka"
	"github.com/atlas-mmm/atlas/streams/processor"
)

// embeddedHistory fills dir's embedded log with a history of n requests and projects
// it into the SQLite file at store (none if "").
func embeddedHistory(ctx context.Context, t *testing.T, dir string, n int, storePath string) {
	t.Helper()
	l, err := jetstream.Open(ctx, jetstream.Config{DataDir: filepath.Join(dir, "log")})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	topics := processor.DefaultTopics()
	if err := processor.CreateTopics(ctx, l, topics, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := replaytest.Write(ctx, l, topics, replaytest.Options{Requests: n, Duplicates: n / 20}); err != nil {
		t.Fatal(err)
	}
	if storePath != "" {
		replayProjectFile(ctx, t, l, storePath)
	}
}

// replayProjectFile brings the SQLite file at path up to the end of l.
func replayProjectFile(ctx context.Context, t *testing.T, l streams.Log, path string) {
	t.Helper()
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	p := &projections.Projector{Log: l, Store: st}
	for n := 1; n > 0; {
		if n, err = p.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// atlas replay on the embedded defaults: build (with periodic log lines), list,
// switch, list again, drop; and the usage errors.
func TestReplayCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	embeddedHistory(ctx, t, dir, 300, filepath.Join(dir, "store.db"))

	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := dispatch(ctx, append([]string{"replay"}, append(args, "--data-dir", dir)...), nil, &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, errs := run("--name", "g1", "--progress", "log", "--progress-every", "1ms")
	if code != 0 || !strings.Contains(out, "generation g1:") {
		t.Fatalf("replay: %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, `"stage done"`) || !strings.Contains(errs, `"messages_per_s"`) {
		t.Errorf("no progress lines in the log:\n%s", errs)
	}
	code, out, errs = run("list")
	if code != 0 || !strings.Contains(out, "- (live)") || !strings.Contains(out, "store.replay-g1.db") {
		t.Fatalf("list: %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = run("switch", "g1")
	if code != 0 || !strings.Contains(out, "generation g1 is live") {
		t.Fatalf("switch: %d\n%s\n%s", code, out, errs)
	}
	code, out, _ = run("list")
	if code != 0 || !strings.Contains(out, "g1 (live)") {
		t.Fatalf("list after the switch: %d\n%s", code, out)
	}
	if code, out, errs = run("drop", "g1"); code != 0 {
		t.Fatalf("drop: %d\n%s\n%s", code, out, errs)
	}
	for _, bad := range [][]string{{"switch"}, {"frobnicate"}, {"--from", "yesterday"}, {"--name", "Bad Name"}, {"list", "x"}} {
		if code, _, _ := run(bad...); code != 2 {
			t.Errorf("atlas replay %v: exit %d, want 2", bad, code)
		}
	}
	if code, _, _ := run("switch", "nosuch"); code != 1 {
		t.Errorf("switching a missing generation: exit %d, want 1", code)
	}
}

// atlas replay against Kafka and ClickHouse: build, switch, list, drop, with the
// store and log flags every role takes. Skips without the local services unless
// ATLAS_KAFKA_REQUIRED / ATLAS_CLICKHOUSE_REQUIRED are set.
func TestReplayCommandClickHouse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	chAddr := os.Getenv("ATLAS_CLICKHOUSE_ADDR")
	if chAddr == "" {
		chAddr = "127.0.0.1:19000"
	}
	brokers := os.Getenv("ATLAS_KAFKA_BROKERS")
	if brokers == "" {
		brokers = "127.0.0.1:19092"
	}
	admin, err := clickhouse.Open(ctx, clickhouse.Config{Addr: []string{chAddr}, Database: "default"})
	if err == nil {
		err = admin.Ping(ctx)
	}
	var l *kafka.Log
	if err == nil {
		l, err = kafka.Open(ctx, kafka.Config{Brokers: strings.Split(brokers, ","), Partitions: 4, ReplicationFactor: 1})
	}
	if err != nil {
		if os.Getenv("ATLAS_CLICKHOUSE_REQUIRED") != "" || os.Getenv("ATLAS_KAFKA_REQUIRED") != "" {
			t.Fatalf("services required: %v", err)
		}
		t.Skipf("Kafka or ClickHouse unreachable (deploy/local/*.sh start): %v", err)
	}
	defer admin.Close()
	defer l.Close()
	id := strings.TrimPrefix(newID(), "evt-")[:12]
	db := "atlas_cli_" + id
	defer func() {
		for _, d := range []string{db, db + "_replay_g1"} {
			if err := admin.DropDatabase(context.Background(), d); err != nil {
				t.Errorf("drop %s: %v", d, err)
			}
		}
	}()
	topics := processor.Topics{Models: "cli-models-" + id, Requests: "cli-requests-" + id, Results: "cli-results-" + id, DeadLetters: "cli-dead-" + id}
	if err := processor.CreateTopics(ctx, l, topics, 4); err != nil {
		t.Fatal(err)
	}
	defer func() {
		c := &kafkago.Client{Addr: kafkago.TCP(strings.Split(brokers, ",")...)}
		if _, err := c.DeleteTopics(context.Background(), &kafkago.DeleteTopicsRequest{Topics: []string{topics.Models,
			topics.Requests, topics.Results, topics.DeadLetters}}); err != nil {
			t.Logf("deleting the test topics: %v", err)
		}
	}()
	ids, err := replaytest.Write(ctx, l, topics, replaytest.Options{Requests: 200, Duplicates: 20})
	if err != nil {
		t.Fatal(err)
	}
	flags := []string{"--store", "clickhouse", "--clickhouse-addr", chAddr, "--clickhouse-database", db,
		"--log", "kafka", "--kafka-brokers", brokers, "--topic-models", topics.Models, "--topic-requests", topics.Requests,
		"--topic-results", topics.Results, "--topic-deadletter", topics.DeadLetters, "--progress", "log"}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := dispatch(ctx, append(append([]string{"replay"}, args...), flags...), nil, &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, errs := run("--name", "g1", "--switch"); code != 0 || !strings.Contains(out, "generation g1 is live") {
		t.Fatalf("replay --switch: %d\n%s\n%s", code, out, errs)
	}
	code, out, errs := run("list")
	if code != 0 || !strings.Contains(out, "g1 (live)") || !strings.Contains(out, db+"_replay_g1") {
		t.Fatalf("list: %d\n%s\n%s", code, out, errs)
	}
	live, err := clickhouse.Open(ctx, clickhouse.Config{Addr: []string{chAddr}, Database: db})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	rs, _, err := live.Results(ctx, store.ResultQuery{Limit: store.MaxLimit})
	if err != nil || len(rs) != len(ids) {
		t.Fatalf("%d live results after the switch (%v), want one per request: %d", len(rs), err, len(ids))
	}
	if code, out, errs := run("drop", "g1"); code != 0 {
		t.Fatalf("drop: %d\n%s\n%s", code, out, errs)
	}
}

// atlas replay killed with SIGKILL mid-build, then run again with the same name: it
// resumes from its checkpoint and ends with the read models a projection from scratch
// gives.
func TestReplayKilledResumes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	embeddedHistory(ctx, t, dir, 20000, "")
	args := []string{"replay", "--data-dir", dir, "--name", "k1", "--batch", "1000", "--progress", "log", "--progress-every", "10ms"}
	cmd := atlasCmd(t, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once it reports progress short of the end.
	sc := bufio.NewScanner(stderr)
	killed := false
	for sc.Scan() {
		var line struct {
			Stage    string  `json:"stage"`
			Messages int64   `json:"messages"`
			Done     float64 `json:"done_pct"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Stage == "build" && line.Messages > 0 && line.Done < 60 {
			cmd.Process.Kill() //nolint:errcheck
			killed = true
			break
		}
	}
	cmd.Wait() //nolint:errcheck // killed
	if !killed {
		t.Fatal("the replay finished before it could be killed mid-way")
	}

	var out, errb bytes.Buffer
	if code := dispatch(ctx, args, nil, &out, &errb); code != 0 {
		t.Fatalf("resumed replay: exit %d\n%s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "resuming an interrupted replay") {
		t.Errorf("the second run did not resume:\n%s", errb.String())
	}
	// A projection from scratch of the same log, to compare with.
	l, err := jetstream.Open(ctx, jetstream.Config{DataDir: filepath.Join(dir, "log")})
	if err != nil {
		t.Fatal(err)
	}
	scratch := filepath.Join(dir, "scratch.db")
	replayProjectFile(ctx, t, l, scratch)
	l.Close()
	snap := func(path string) storetest.Snapshot {
		st, err := sqlite.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		s, err := storetest.Take(ctx, st, "atlas-projector")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	want, got := snap(scratch), snap(filepath.Join(dir, "store.replay-k1.db"))
	if d := storetest.Diff(want, got); d != "" {
		t.Fatalf("resumed replay vs a projection from scratch:\n%s", d)
	}
	if len(got.Results) != 20000 {
		t.Errorf("%d results, want 20000", len(got.Results))
	}
}
