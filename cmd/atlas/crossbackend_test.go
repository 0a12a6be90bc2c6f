package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/rs/zerolog"

	"github.com/atlas-mmm/atlas/projections"
	"github.com/atlas-mmm/atlas/projections/store"
	"github.com/atlas-mmm/atlas/projections/store/clickhouse"
	"github.com/atlas-mmm/atlas/projections/store/sqlite"
	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/kafka"
	"github.com/atlas-mmm/atlas/streams/processor"
)

// kafkaOrSkip returns the test brokers, skipping (failing with ATLAS_KAFKA_REQUIRED) when
// none answers.
func kafkaOrSkip(t *testing.T) string {
	t.Helper()
	brokers := envString("ATLAS_KAFKA_BROKERS", "127.0.0.1:19092")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := kafka.Open(ctx, kafka.Config{Brokers: strings.Split(brokers, ",")})
	if err != nil {
		if os.Getenv("ATLAS_KAFKA_REQUIRED") != "" {
			t.Fatalf("Kafka at %s is required: %v", brokers, err)
		}
		t.Skipf("no Kafka at %s (deploy/local/kafka.sh start): %v", brokers, err)
	}
	l.Close()
	return brokers
}

// project runs a projector over l into a fresh SQLite store until it has caught up.
func project(t *testing.T, l streams.Log, topics processor.Topics, path string) store.Store {
	t.Helper()
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	projectInto(t, l, topics, st)
	return st
}

// clickhouseOrSkip returns the ClickHouse address, skipping (failing with
// ATLAS_CLICKHOUSE_REQUIRED) when none answers.
func clickhouseOrSkip(t *testing.T) string {
	t.Helper()
	addr := envString("ATLAS_CLICKHOUSE_ADDR", "127.0.0.1:19000")
	conn, err := ch.Open(&ch.Options{Addr: []string{addr}, DialTimeout: 5 * time.Second})
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = conn.Ping(ctx)
		cancel()
		conn.Close()
	}
	if err != nil {
		if os.Getenv("ATLAS_CLICKHOUSE_REQUIRED") != "" {
			t.Fatalf("ClickHouse at %s is required: %v", addr, err)
		}
		t.Skipf("no ClickHouse at %s (deploy/local/clickhouse.sh start): %v", addr, err)
	}
	return addr
}

// projectClickHouse projects l into a fresh ClickHouse database, dropped after the test.
func projectClickHouse(t *testing.T, l streams.Log, topics processor.Topics, addr string) store.Store {
	t.Helper()
	db := "atlas_archive_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	st, err := clickhouse.Open(context.Background(), clickhouse.Config{Addr: []string{addr}, Database: db, Username: "default"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		st.Close()
		if conn, err := ch.Open(&ch.Options{Addr: []string{addr}}); err == nil {
			conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) //nolint:errcheck
			conn.Close()
		}
	})
	projectInto(t, l, topics, st)
	return st
}

func projectInto(t *testing.T, l streams.Log, topics processor.Topics, st store.Store) {
	t.Helper()
	ctx := context.Background()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	p := &projections.Projector{Log: l, Store: st, Topics: topics, Name: "test", Logger: zerolog.Nop()}
	for {
		n, err := p.Step(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

// readModels is every row of every read-model query, with what legitimately differs
// between two logs holding the same history blanked out: log positions (partition and
// offset: the backends place keys with different hash functions and number offsets
// differently) and topic names (the target's, mapped back to their role). Everything
// else must be equal: ids, times to the nanosecond, hashes, raw events, allocations,
// dead letters (which record their original position inside their value).
type readModels struct {
	Models      []store.Model
	Versions    map[string][]store.Model
	Results     []store.Result
	One         map[string]store.Result
	Allocations map[string][]store.Allocation
	Audit       map[string][]store.AuditEvent
	DeadLetters []store.DeadLetter
}

func dumpReadModels(t *testing.T, st store.Store, topics processor.Topics) readModels {
	t.Helper()
	ctx := context.Background()
	role := map[string]string{topics.Models: "models", topics.Requests: "requests", topics.Results: "results", topics.DeadLetters: "deadletter"}
	var rm readModels
	var err error
	if rm.Models, err = st.Models(ctx); err != nil {
		t.Fatal(err)
	}
	rm.Versions = map[string][]store.Model{}
	for i := range rm.Models {
		m := &rm.Models[i]
		m.Partition, m.Offset = 0, 0
		if rm.Versions[m.ModelID] == nil {
			vs, err := st.ModelVersions(ctx, m.ModelID)
			if err != nil {
				t.Fatal(err)
			}
			for j := range vs {
				vs[j].Partition, vs[j].Offset = 0, 0
			}
			rm.Versions[m.ModelID] = vs
		}
	}
	rm.One, rm.Allocations, rm.Audit = map[string]store.Result{}, map[string][]store.Allocation{}, map[string][]store.AuditEvent{}
	cursor := ""
	for {
		rows, next, err := st.Results(ctx, store.ResultQuery{Limit: 7, Cursor: cursor}) // small pages: the cursors too
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			r.Partition, r.Offset = 0, 0
			rm.Results = append(rm.Results, r)
			one, ok, err := st.Result(ctx, r.RequestID)
			if err != nil || !ok {
				t.Fatalf("Result(%s): %v %v", r.RequestID, ok, err)
			}
			one.Partition, one.Offset = 0, 0
			rm.One[r.RequestID] = one
			if rm.Allocations[r.RequestID], err = st.Allocations(ctx, r.RequestID); err != nil {
				t.Fatal(err)
			}
			evs, err := st.Audit(ctx, r.RequestID)
			if err != nil {
				t.Fatal(err)
			}
			for i := range evs {
				evs[i].Topic, evs[i].Partition, evs[i].Offset = role[evs[i].Topic], 0, 0
			}
			rm.Audit[r.RequestID] = evs
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if rm.DeadLetters, err = st.DeadLetters(ctx, store.MaxLimit); err != nil {
		t.Fatal(err)
	}
	return rm
}

// Export from the embedded JetStream log, import into Kafka, project both, into SQLite
// and into ClickHouse: the read models come out identical (see readModels for what
// "identical" leaves out), and the Kafka copy audits clean; exported again and imported
// into a new embedded log, it still projects the same.
func TestExportJetStreamImportKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("real Kafka")
	}
	brokers := kafkaOrSkip(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	jsTopics := processor.DefaultTopics()
	chAddr := clickhouseOrSkip(t)
	js := openDir(t, data)
	n := history(t, js, jsTopics, 120)
	want := dumpReadModels(t, project(t, js, jsTopics, filepath.Join(dir, "js.db")), jsTopics)
	wantCH := dumpReadModels(t, projectClickHouse(t, js, jsTopics, chAddr), jsTopics)
	js.Close()
	if len(want.Results) != n || len(want.DeadLetters) != 1 || len(want.Models) != 2 || len(wantCH.Results) != n || len(wantCH.Audit) != n {
		t.Fatalf("source read models: %d results, %d dead letters, %d models", len(want.Results), len(want.DeadLetters), len(want.Models))
	}

	file := filepath.Join(dir, "history.ndjson.zst")
	if code, _, errs := run(t, "", "export", "--data-dir", data, "--out", file); code != 0 {
		t.Fatalf("export: exit %d\n%s", code, errs)
	}
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	kTopics := processor.Topics{Models: "arch.models." + suffix, Requests: "arch.requests." + suffix,
		Results: "arch.results." + suffix, DeadLetters: "arch.dead." + suffix}
	flags := []string{"--log", "kafka", "--kafka-brokers", brokers, "--topic-models", kTopics.Models,
		"--topic-requests", kTopics.Requests, "--topic-results", kTopics.Results, "--topic-deadletter", kTopics.DeadLetters}
	if code, _, errs := run(t, "", append(append([]string{"import"}, flags...), file)...); code != 0 {
		t.Fatalf("import into Kafka: exit %d\n%s", code, errs)
	}
	ctx := context.Background()
	kl, err := kafka.Open(ctx, kafka.Config{Brokers: strings.Split(brokers, ",")})
	if err != nil {
		t.Fatal(err)
	}
	defer kl.Close()
	for _, topic := range []string{kTopics.Models, kTopics.Requests, kTopics.Results, kTopics.DeadLetters} {
		ends, err := kl.EndOffsets(ctx, topic)
		if err != nil || len(ends) != 4 {
			t.Fatalf("%s: %v partitions (the archive's 4), %v", topic, len(ends), err)
		}
	}
	got := dumpReadModels(t, project(t, kl, kTopics, filepath.Join(dir, "kafka.db")), kTopics)
	compareReadModels(t, "SQLite", got, want)
	gotCH := dumpReadModels(t, projectClickHouse(t, kl, kTopics, chAddr), kTopics)
	compareReadModels(t, "ClickHouse", gotCH, wantCH)

	// And back: export the Kafka copy (partition after partition), import it into a
	// fresh embedded log, and the read models are the original's once more.
	back := filepath.Join(dir, "back.ndjson.gz")
	if code, _, errs := run(t, "", append([]string{"export", "--out", back}, flags...)...); code != 0 {
		t.Fatalf("export from Kafka: exit %d\n%s", code, errs)
	}
	data2 := filepath.Join(dir, "data2")
	if code, _, errs := run(t, "", "import", "--data-dir", data2, back); code != 0 {
		t.Fatalf("import into JetStream: exit %d\n%s", code, errs)
	}
	js2 := openDir(t, data2)
	compareReadModels(t, "SQLite (Kafka → JetStream)", dumpReadModels(t, project(t, js2, jsTopics, filepath.Join(dir, "js2.db")), jsTopics), want)
	js2.Close()
	if code, out, errs := run(t, "", "audit", "--data-dir", data2); code != 0 {
		t.Fatalf("audit of the JetStream copy of the Kafka copy: exit %d\n%s\n%s", code, out, errs)
	}

	// The copy audits clean, and a second import is refused.
	if code, out, errs := run(t, "", append([]string{"audit"}, flags...)...); code != 0 {
		t.Fatalf("audit of the Kafka copy: exit %d\n%s\n%s", code, out, errs)
	}
	code, _, errs := run(t, "", append(append([]string{"import"}, flags...), file)...)
	if code != 1 || !strings.Contains(errs, "not empty") {
		t.Fatalf("second import into Kafka: exit %d\n%s", code, errs)
	}
}

func compareReadModels(t *testing.T, kind string, got, want readModels) {
	t.Helper()
	g, w := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range g.NumField() {
		name := g.Type().Field(i).Name
		if !reflect.DeepEqual(g.Field(i).Interface(), w.Field(i).Interface()) {
			t.Errorf("%s read model %s differs:\n got %s\nwant %s", kind, name, abbrevDump(g.Field(i).Interface()), abbrevDump(w.Field(i).Interface()))
		}
	}
}

func abbrevDump(v any) string {
	s := fmt.Sprintf("%+v", v)
	if len(s) > 1500 {
		return s[:1500] + "…"
	}
	return s
}
