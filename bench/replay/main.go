// Command replay benchmarks `atlas replay`: how fast the read models are rebuilt from
// the log, next to how fast the same log is merely read, in the same run.
//
//	go run ./bench/replay [-target sqlite|clickhouse|both] [-n 50000] [-cpuprofile FILE]
//
// For each target, on a fresh log (embedded JetStream for the embedded SQLite store,
// the local Kafka broker for ClickHouse, as deployed) holding n requests, n result
// events (10% rejections, the rest with 5 channels), 4 model events and a dead letter
// every 500 requests:
//
//  1. raw read: Log.Read of every topic from start to end, messages/s;
//  2. replay: replay.Replay.Build into a fresh generation (a new SQLite file, a new
//     ClickHouse database), messages/s of log events replayed, and rows/s written.
//
// The report is Markdown on stdout; progress goes to stderr. Services: ClickHouse at
// -clickhouse (default 127.0.0.1:19000), Kafka at -kafka (default 127.0.0.1:19092).
package main

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/atlas-mmm/atlas/projections/replay"
	"github.com/atlas-mmm/atlas/projections/replay/replaytest"
	"github.com/atlas-mmm/atlas/projections/store/clickhouse"
	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/jetstream"
	"github.com/atlas-mmm/atlas/streams/kafka"
	"github.com/atlas-mmm/atlas/streams/processor"
)

func main() {
	target := flag.String("target", "both", "sqlite, clickhouse or both")
	n := flag.Int("n", 50000, "requests (each with a result event)")
	chAddr := flag.String("clickhouse", "127.0.0.1:19000", "ClickHouse native address")
	brokers := flag.String("kafka", "127.0.0.1:19092", "Kafka brokers")
	batch := flag.Int("batch", 0, "rows per store write (default: atlas replay's, 20000 on SQLite, 50000 on ClickHouse)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the replays to FILE")
	flag.Parse()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400) // as the atlas binary does (cmd/atlas/main.go)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fail(err)
		}
		pprof.StartCPUProfile(f) //nolint:errcheck
		defer pprof.StopCPUProfile()
	}
	fmt.Printf("## Replay benchmark (%d requests, GOMAXPROCS %d, %s)\n\n", *n, runtime.GOMAXPROCS(0), time.Now().UTC().Format(time.RFC3339))
	fmt.Println("| target | log | messages | raw read (msg/s) | replay (msg/s) | rows written | rows/s | replay / read | CPU µs/msg: read, replay |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	if *target == "sqlite" || *target == "both" {
		if err := benchSQLite(ctx, *n, or(*batch, 20000)); err != nil {
			fail(err)
		}
	}
	if *target == "clickhouse" || *target == "both" {
		if err := benchClickHouse(ctx, *n, or(*batch, 50000), *chAddr, *brokers); err != nil {
			fail(err)
		}
	}
}

// deleteTopics removes the benchmark's topics (best effort: a run writes ~100 MB).
func deleteTopics(brokers string, t processor.Topics) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := &kafkago.Client{Addr: kafkago.TCP(strings.Split(brokers, ",")...)}
	c.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: []string{t.Models, t.Requests, t.Results, t.DeadLetters}}) //nolint:errcheck
}

// cpuTime is the CPU time this process has used (user and system); the services'
// own CPU (the broker, ClickHouse) is not in it.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func perMsg(d time.Duration, n int64) float64 {
	return float64(d.Microseconds()) / float64(n)
}

func or(n, def int) int {
	if n > 0 {
		return n
	}
	return def
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "replay bench:", err)
	os.Exit(1)
}

func suffix() string {
	var b [4]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func benchSQLite(ctx context.Context, n, batch int) error {
	dir, err := os.MkdirTemp("", "atlas-replay-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	l, err := jetstream.Open(ctx, jetstream.Config{DataDir: filepath.Join(dir, "log")})
	if err != nil {
		return err
	}
	defer l.Close()
	topics := processor.DefaultTopics()
	tg, err := replay.NewSQLite(filepath.Join(dir, "store.db"))
	if err != nil {
		return err
	}
	return run(ctx, "SQLite (embedded)", "JetStream (embedded)", l, topics, tg, n, batch)
}

func benchClickHouse(ctx context.Context, n, batch int, addr, brokers string) error {
	l, err := kafka.Open(ctx, kafka.Config{Brokers: strings.Split(brokers, ","), Partitions: 4, ReplicationFactor: 1})
	if err != nil {
		return err
	}
	defer l.Close()
	s := suffix()
	topics := processor.Topics{Models: "bench-replay-models-" + s, Requests: "bench-replay-requests-" + s,
		Results: "bench-replay-results-" + s, DeadLetters: "bench-replay-dead-" + s}
	defer deleteTopics(brokers, topics)
	db := "atlas_bench_replay_" + s
	tg, err := replay.NewClickHouse(ctx, clickhouse.Config{Addr: []string{addr}, Database: db})
	if err != nil {
		return err
	}
	defer func() {
		// Best-effort cleanup: the generations, then the (empty) live database.
		names, _ := tg.Names(context.Background())
		for _, name := range names {
			tg.Drop(context.Background(), name) //nolint:errcheck
		}
		tg.Close()
		if admin, err := clickhouse.Open(context.Background(), clickhouse.Config{Addr: []string{addr}, Database: "default"}); err == nil {
			admin.DropDatabase(context.Background(), db) //nolint:errcheck
			admin.Close()
		}
	}()
	return run(ctx, "ClickHouse "+addr, "Kafka "+brokers, l, topics, tg, n, batch)
}

func run(ctx context.Context, target, logName string, l streams.Log, topics processor.Topics, tg replay.Target, n, batch int) error {
	if err := processor.CreateTopics(ctx, l, topics, 4); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%s: writing %d requests and their results to %s...\n", target, n, logName)
	start := time.Now()
	if _, err := replaytest.Write(ctx, l, topics, replaytest.Options{Requests: n, Batch: 2000}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "  written in %v\n", time.Since(start).Round(time.Millisecond))

	// 1. Raw read.
	cpu0 := cpuTime()
	start = time.Now()
	var msgs int64
	for _, t := range []string{topics.Models, topics.Requests, topics.Results, topics.DeadLetters} {
		if err := l.Read(ctx, t, streams.Position{}, streams.Position{}, func(streams.Message) error {
			msgs++
			return nil
		}); err != nil {
			return err
		}
	}
	read := time.Since(start)
	readCPU := cpuTime() - cpu0
	fmt.Fprintf(os.Stderr, "  raw read: %d messages in %v\n", msgs, read.Round(time.Millisecond))

	// 2. Replay.
	r := &replay.Replay{Log: l, Target: tg, Topics: topics, BatchRows: batch}
	cpu0 = cpuTime()
	start = time.Now()
	g, err := r.Build(ctx, "bench", replay.Spec{}, replay.Spec{})
	if err != nil {
		return err
	}
	took := time.Since(start)
	replayCPU := cpuTime() - cpu0
	fmt.Fprintf(os.Stderr, "  replay: %d messages in %v\n", g.Messages, took.Round(time.Millisecond))
	if g.Messages != msgs {
		return fmt.Errorf("replayed %d messages, read %d", g.Messages, msgs)
	}
	// Rows: per request an audit row for the request and the result; per completed
	// result a result row and one allocation per channel; per rejection a result row.
	completed := n - n/10
	rows := int64(2*n) + int64(n) + int64(completed*len(replaytest.Channels)) + int64(n/500) + 4 + 4
	readRate := float64(msgs) / read.Seconds()
	rate := float64(g.Messages) / took.Seconds()
	fmt.Printf("| %s | %s | %d | %.0f | %.0f | %d | %.0f | %.2f | %.1f, %.1f |\n", target, logName, msgs, readRate, rate, rows,
		float64(rows)/took.Seconds(), rate/readRate, perMsg(readCPU, msgs), perMsg(replayCPU, msgs))
	return nil
}
