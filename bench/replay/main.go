// Command replay benchmarks `atlas replay`: how fast the read models are rebuilt from
// the log, next to how fast the same log is merely read, in the same run.
//
//	go run ./bench/replay [-target sqlite|clickhouse|both] [-n 50000] [-count 1] [-cpuprofile FILE] [-watch NAME=PID,...]
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
// Besides the process's CPU per message, the report gives the time spent in the store's
// writes (Store.Apply, one at a time: the replay's critical path while the projector
// reads and decodes the next batch beside it), wall and, on Linux, the CPU of the
// thread that made them. On a shared machine these say what two idle cores would do:
// at most 1e6 / max(writes' wall, CPU per message / 2) messages/s, with the writes'
// wall measured idle, or taken as their CPU plus their waits for the disk.
//
// -count repeats the raw read and the replay on the same log (the generation dropped
// in between), a report line each: on a shared machine the spread shows what the load
// did. -cpuprofile profiles the first replay phase only. -watch reports, on stderr, the CPU that
// local services (the ClickHouse server, the Kafka broker) spent during the replay, per
// message: on a machine they share, their work and the replay process's add up.
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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/atlas-mmm/atlas/projections/replay"
	"github.com/atlas-mmm/atlas/projections/replay/replaytest"
	"github.com/atlas-mmm/atlas/projections/store"
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
	count := flag.Int("count", 1, "runs (raw read, then replay into a fresh generation) on the same log, a report line each")
	batch := flag.Int("batch", 0, "rows per store write (default: atlas replay's, 20000 on SQLite, 50000 on ClickHouse)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the replay phase only (not the writing of the log nor the raw read) to FILE; FILE.sqlite and FILE.clickhouse with -target both")
	var watch pidList
	flag.Var(&watch, "watch", "NAME=PID of a local service (e.g. clickhouse=123,kafka=456) whose CPU during the replay to report per message (Linux /proc)")
	flag.Parse()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400) // as the atlas binary does (cmd/atlas/main.go)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	profile := func(kind string) string {
		if *cpuprofile == "" || *target != "both" {
			return *cpuprofile
		}
		return *cpuprofile + "." + kind
	}
	fmt.Printf("## Replay benchmark (%d requests, GOMAXPROCS %d, %s)\n\n", *n, runtime.GOMAXPROCS(0), time.Now().UTC().Format(time.RFC3339))
	fmt.Println("| target | log | messages | raw read (msg/s) | replay (msg/s) | rows written | rows/s | replay / read | CPU µs/msg: read, replay | writes µs/msg: wall, CPU |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	if *target == "sqlite" || *target == "both" {
		if err := benchSQLite(ctx, *n, or(*batch, 20000), *count, profile("sqlite"), watch); err != nil {
			fail(err)
		}
	}
	if *target == "clickhouse" || *target == "both" {
		if err := benchClickHouse(ctx, *n, or(*batch, 50000), *count, *chAddr, *brokers, profile("clickhouse"), watch); err != nil {
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

func benchSQLite(ctx context.Context, n, batch, count int, prof string, watch pidList) error {
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
	return run(ctx, "SQLite (embedded)", "JetStream (embedded)", l, topics, tg, n, batch, count, prof, watch)
}

func benchClickHouse(ctx context.Context, n, batch, count int, addr, brokers, prof string, watch pidList) error {
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
	return run(ctx, "ClickHouse "+addr, "Kafka "+brokers, l, topics, tg, n, batch, count, prof, watch)
}

func run(ctx context.Context, target, logName string, l streams.Log, topics processor.Topics, tg replay.Target, n, batch, count int, prof string, watch pidList) error {
	if err := processor.CreateTopics(ctx, l, topics, 4); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%s: writing %d requests and their results to %s...\n", target, n, logName)
	start := time.Now()
	if _, err := replaytest.Write(ctx, l, topics, replaytest.Options{Requests: n, Batch: 2000}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "  written in %v\n", time.Since(start).Round(time.Millisecond))
	for i := range count {
		if i > 0 {
			if err := tg.Drop(ctx, "bench"); err != nil {
				return err
			}
		}
		if err := once(ctx, target, logName, l, topics, tg, n, batch, prof, watch); err != nil {
			return err
		}
		prof = "" // the first run's profile only
	}
	return nil
}

// once reads the log raw, replays it into generation "bench" and prints a report line.
func once(ctx context.Context, target, logName string, l streams.Log, topics processor.Topics, tg replay.Target, n, batch int, prof string, watch pidList) error {
	// 1. Raw read.
	cpu0 := cpuTime()
	start := time.Now()
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
	w := &writes{}
	r := &replay.Replay{Log: l, Target: timedTarget{tg, w}, Topics: topics, BatchRows: batch}
	if _, ok := tg.(*replay.ClickHouse); ok {
		r.CommitRows = replay.ClickHouseCommitRows // as atlas replay
	}
	if prof != "" {
		f, err := os.Create(prof)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	srv0 := watch.cpu()
	cpu0 = cpuTime()
	start = time.Now()
	g, err := r.Build(ctx, "bench", replay.Spec{}, replay.Spec{})
	took := time.Since(start)
	replayCPU := cpuTime() - cpu0
	srv := watch.cpu()
	if prof != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return err
	}
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
	writesCPU := "n/a"
	if w.cpuOK {
		writesCPU = fmt.Sprintf("%.1f", perMsg(w.cpu, msgs))
	}
	fmt.Printf("| %s | %s | %d | %.0f | %.0f | %d | %.0f | %.2f | %.1f, %.1f | %.1f, %s |\n", target, logName, msgs, readRate, rate, rows,
		float64(rows)/took.Seconds(), rate/readRate, perMsg(readCPU, msgs), perMsg(replayCPU, msgs), perMsg(w.wall, msgs), writesCPU)
	for i, w := range watch {
		fmt.Fprintf(os.Stderr, "  %s (pid %d) during the replay: %.1f µs of CPU per message\n", w.name, w.pid, perMsg(srv[i]-srv0[i], msgs))
	}
	return nil
}

// writes sums the time the stores of a timedTarget spend in Apply.
type writes struct {
	mu    sync.Mutex
	wall  time.Duration
	cpu   time.Duration
	cpuOK bool
}

// timedTarget is a replay.Target whose generations' Apply is timed into w.
type timedTarget struct {
	replay.Target
	w *writes
}

func (t timedTarget) Open(ctx context.Context, name string, create bool) (store.Store, bool, error) {
	s, existed, err := t.Target.Open(ctx, name, create)
	if err != nil {
		return nil, false, err
	}
	gs, ok := s.(store.Generations)
	if !ok {
		return nil, false, fmt.Errorf("%T records no generations", s)
	}
	return timedStore{s, gs, t.w}, existed, nil
}

type timedStore struct {
	store.Store
	store.Generations
	w *writes
}

// Apply is timed on a thread of its own (the goroutine locked to it), so that the
// thread's CPU time is the Apply's.
func (s timedStore) Apply(ctx context.Context, b store.Batch) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0, ok0 := threadCPU()
	start := time.Now()
	err := s.Store.Apply(ctx, b)
	wall := time.Since(start)
	cpu1, ok1 := threadCPU()
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	s.w.wall += wall
	s.w.cpu += cpu1 - cpu0
	s.w.cpuOK = ok0 && ok1
	return err
}

// pidList is the -watch flag: services whose CPU time the run reports.
type pidList []struct {
	name string
	pid  int
}

func (l *pidList) String() string {
	var parts []string
	for _, w := range *l {
		parts = append(parts, fmt.Sprintf("%s=%d", w.name, w.pid))
	}
	return strings.Join(parts, ",")
}

func (l *pidList) Set(v string) error {
	for item := range strings.SplitSeq(v, ",") {
		name, pid, ok := strings.Cut(item, "=")
		n, err := strconv.Atoi(pid)
		if !ok || err != nil || n <= 0 {
			return fmt.Errorf("want NAME=PID, got %q", item)
		}
		*l = append(*l, struct {
			name string
			pid  int
		}{name, n})
	}
	return nil
}

// cpu returns each process's CPU time so far (user and system, from /proc/PID/stat;
// 0 when unreadable).
func (l pidList) cpu() []time.Duration {
	out := make([]time.Duration, len(l))
	for i, w := range l {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", w.pid))
		if err != nil {
			continue
		}
		// Fields after the command (which may hold spaces) start after the last ')'.
		f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		out[i] = time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
	}
	return out
}
