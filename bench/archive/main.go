// Command archive benchmarks export, import and audit (streams/archive, streams/audit)
// against the raw rate of the same log, measured in the same run:
//
//	go run ./bench/archive [-backend jetstream|kafka|both] [-n 100000] [-curves concave|hill]
//
// For each backend it builds a history on fresh topics (a 10-channel model, n requests
// answered by the real processor), then times:
//
//  1. raw read: every message of the four topics through streams.Log.Read, nothing else;
//  2. raw append: the same records appended to fresh topics, nothing else;
//  3. export of the whole log to a zstd archive (events/s, bytes);
//  4. import of that archive into fresh topics (events/s);
//  5. audit of the source (requests/s): every request re-solved on all cores.
//
// The report is Markdown on stdout; progress goes to stderr.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/rs/zerolog"

	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/archive"
	"github.com/atlas-mmm/atlas/streams/audit"
	"github.com/atlas-mmm/atlas/streams/event"
	"github.com/atlas-mmm/atlas/streams/jetstream"
	"github.com/atlas-mmm/atlas/streams/kafka"
	"github.com/atlas-mmm/atlas/streams/processor"
)

func main() {
	backend := flag.String("backend", "jetstream", "jetstream, kafka or both")
	n := flag.Int("n", 100000, "requests in the history")
	curves := flag.String("curves", "concave", "channel curves of the 10-channel model: concave or hill (S-shaped)")
	profile = flag.String("cpuprofile", "", "write a CPU profile of the export, import and audit phases to FILE.export, FILE.import and FILE.audit")
	brokers := flag.String("brokers", envOr("ATLAS_KAFKA_BROKERS", "127.0.0.1:19092"), "Kafka brokers")
	flag.Parse()
	// As the atlas binary does (cmd/atlas/main.go), unless GOGC says otherwise.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	ctx := context.Background()
	fmt.Printf("## Archive and audit, %d requests, 10 %s channels (GOMAXPROCS %d)\n\n", *n, *curves, runtime.GOMAXPROCS(0))
	fmt.Println("| backend | raw read (events) | raw append (events) | export to .zst (events) | import (events) | audit (requests) |")
	fmt.Println("|---|---|---|---|---|---|")
	backends := []string{*backend}
	if *backend == "both" {
		backends = []string{"jetstream", "kafka"}
	}
	for _, b := range backends {
		if err := bench(ctx, b, *brokers, *n, *curves); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", b, err)
			os.Exit(1)
		}
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// logs opens fresh logs on one backend: each call a new set of topics (Kafka) or a
// new data directory (JetStream).
type logs struct {
	backend, brokers, dir string
	suffix                int
	cleanup               []func()
}

func (ls *logs) open(ctx context.Context) (streams.Log, processor.Topics, error) {
	ls.suffix++
	if ls.backend == "kafka" {
		l, err := kafka.Open(ctx, kafka.Config{Brokers: strings.Split(ls.brokers, ","), BatchSize: 4096})
		if err != nil {
			return nil, processor.Topics{}, err
		}
		s := strconv.FormatInt(time.Now().UnixNano(), 36) + "." + strconv.Itoa(ls.suffix)
		t := processor.Topics{Models: "bench.models." + s, Requests: "bench.requests." + s, Results: "bench.results." + s, DeadLetters: "bench.dead." + s}
		ls.cleanup = append(ls.cleanup, func() {
			c := &kafkago.Client{Addr: kafkago.TCP(strings.Split(ls.brokers, ",")...)}
			c.DeleteTopics(context.Background(), &kafkago.DeleteTopicsRequest{Topics: []string{t.Models, t.Requests, t.Results, t.DeadLetters}}) //nolint:errcheck
		})
		return l, t, nil
	}
	l, err := jetstream.Open(ctx, jetstream.Config{DataDir: filepath.Join(ls.dir, strconv.Itoa(ls.suffix))})
	return l, processor.DefaultTopics(), err
}

func bench(ctx context.Context, backend, brokers string, n int, curves string) error {
	dir, err := os.MkdirTemp("", "atlas-bench-archive-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ls := &logs{backend: backend, brokers: brokers, dir: dir}
	defer func() {
		for _, f := range ls.cleanup {
			f()
		}
	}()
	src, topics, err := ls.open(ctx)
	if err != nil {
		return err
	}
	defer src.Close()
	progress("%s: building a history of %d requests", backend, n)
	if err := build(ctx, src, topics, n, curves); err != nil {
		return err
	}
	roles := []archive.Topic{{Role: archive.RoleModels, Name: topics.Models}, {Role: archive.RoleRequests, Name: topics.Requests},
		{Role: archive.RoleResults, Name: topics.Results}, {Role: archive.RoleDeadLetter, Name: topics.DeadLetters}}

	// 1. Raw read.
	var recs map[string][]streams.Record
	var events int
	readTime := timed("read", func() error {
		recs = map[string][]streams.Record{}
		for _, t := range roles {
			if err := src.Read(ctx, t.Name, streams.Position{}, streams.Position{}, func(m streams.Message) error {
				recs[t.Name] = append(recs[t.Name], streams.Record{Key: m.Key, Value: m.Value, Time: m.Time})
				events++
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	}, &err)
	if err != nil {
		return err
	}
	progress("%s: raw read %d events in %v", backend, events, readTime.wall)

	// 2. Raw append of the same records.
	dst, dtopics, err := ls.open(ctx)
	if err != nil {
		return err
	}
	if err := processor.CreateTopics(ctx, dst, dtopics, 4); err != nil {
		return err
	}
	appendTime := timed("append", func() error {
		for i, t := range roles {
			name := []string{dtopics.Models, dtopics.Requests, dtopics.Results, dtopics.DeadLetters}[i]
			rs := recs[t.Name]
			for len(rs) > 0 {
				k := min(len(rs), 8192)
				if err := dst.Append(ctx, name, rs[:k]...); err != nil {
					return err
				}
				rs = rs[k:]
			}
		}
		return nil
	}, &err)
	dst.Close()
	if err != nil {
		return err
	}
	recs = nil
	progress("%s: raw append in %v", backend, appendTime.wall)

	// 3. Export.
	file := filepath.Join(dir, "history.ndjson.zst")
	var size int64
	exportTime := timed("export", func() error {
		f, err := archive.Create(file)
		if err != nil {
			return err
		}
		if _, err := archive.Export(ctx, src, roles, f, archive.ExportOptions{Source: backend}); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		fi, err := os.Stat(file)
		size = fi.Size()
		return err
	}, &err)
	if err != nil {
		return err
	}
	progress("%s: export in %v, %d bytes", backend, exportTime.wall, size)

	// 4. Import.
	imp, itopics, err := ls.open(ctx)
	if err != nil {
		return err
	}
	importTime := timed("import", func() error {
		f, err := archive.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		r, err := archive.NewReader(f)
		if err != nil {
			return err
		}
		_, err = archive.Import(ctx, imp, r, archive.ImportOptions{Topics: map[string]string{archive.RoleModels: itopics.Models,
			archive.RoleRequests: itopics.Requests, archive.RoleResults: itopics.Results, archive.RoleDeadLetter: itopics.DeadLetters}})
		return err
	}, &err)
	imp.Close()
	if err != nil {
		return err
	}
	progress("%s: import in %v", backend, importTime.wall)

	// 5. Audit.
	var rep *audit.Report
	auditTime := timed("audit", func() error {
		rep, err = audit.Run(ctx, src, audit.Options{Topics: topics})
		return err
	}, &err)
	if err != nil {
		return err
	}
	if !rep.OK || rep.Counts.Requests != int64(n) {
		return fmt.Errorf("audit: ok %v, %d requests of %d: %+v", rep.OK, rep.Counts.Requests, n, rep.Divergences[:min(3, len(rep.Divergences))])
	}
	progress("%s: audit in %v", backend, auditTime.wall)
	// Wall-clock rate, and the CPU time per item: on a machine shared with other work
	// the wall rate understates what the code does with its cores.
	rate := func(k int, p phase) string {
		return fmt.Sprintf("%.0f/s (%.1f µs CPU each)", float64(k)/p.wall.Seconds(), float64(p.cpu.Microseconds())/float64(k))
	}
	fmt.Printf("| %s | %s | %s | %s, %.0f B/event | %s | %s |\n", backend,
		rate(events, readTime), rate(events, appendTime), rate(events, exportTime), float64(size)/float64(events),
		rate(events, importTime), rate(n, auditTime))
	return nil
}

var profile *string

// phase is a timed phase: wall time and the CPU time of this process (which includes
// the embedded NATS server; not a Kafka broker).
type phase struct {
	wall, cpu time.Duration
}

func timed(name string, f func() error, err *error) phase {
	if *profile != "" && (name == "audit" || name == "export" || name == "import") {
		pf, perr := os.Create(*profile + "." + name)
		if perr == nil {
			pprof.StartCPUProfile(pf)
			defer func() { pprof.StopCPUProfile(); pf.Close() }()
		}
	}
	// Each phase starts from a collected heap: the previous phase's garbage (the raw
	// read holds the whole history in memory) is not swept on this one's time.
	runtime.GC()
	c0 := cpuTime()
	start := time.Now()
	*err = f()
	return phase{wall: time.Since(start), cpu: cpuTime() - c0}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

// model10 is a 10-channel model: concave curves (saturation, exponential, log, power),
// or S-shaped Hill curves.
func model10(curves string) []byte {
	ch := map[string]any{}
	for i := range 10 {
		beta := 200000 + float64(i)*40000
		var c map[string]any
		switch {
		case curves == "hill":
			c = map[string]any{"type": "hill", "beta": beta, "alpha": 1.5 + 0.1*float64(i), "kappa": 50000 + 5000*float64(i)}
		case i%4 == 0:
			c = map[string]any{"type": "saturation", "beta": beta, "kappa": 60000 + 4000*float64(i)}
		case i%4 == 1:
			c = map[string]any{"type": "exponential", "beta": beta, "kappa": 70000 + 3000*float64(i)}
		case i%4 == 2:
			c = map[string]any{"type": "log", "beta": beta / 5, "kappa": 20000 + 1000*float64(i)}
		default:
			c = map[string]any{"type": "power", "beta": 30 + float64(i), "alpha": 0.5 + 0.02*float64(i)}
		}
		ch[fmt.Sprintf("ch%02d", i)] = map[string]any{"curve": c}
	}
	b, _ := json.Marshal(map[string]any{"model_id": "bench-10", "kpi": "revenue", "baseline": 100000, "channels": ch})
	return b
}

// build publishes the model and n requests and runs the processor until every request
// has its result.
func build(ctx context.Context, l streams.Log, topics processor.Topics, n int, curves string) error {
	if err := processor.CreateTopics(ctx, l, topics, 4); err != nil {
		return err
	}
	now := time.Now()
	env, err := event.New(event.ModelPublished, "bench", "", json.RawMessage(model10(curves)), "model-1", now)
	if err != nil {
		return err
	}
	raw, _ := event.Encode(env)
	if err := l.Append(ctx, topics.Models, streams.Record{Key: []byte("bench-10"), Value: raw}); err != nil {
		return err
	}
	var batch []streams.Record
	for i := range n {
		budget := map[string]float64{}
		for c := range 10 {
			budget[fmt.Sprintf("ch%02d", c)] = 50000 + float64((i*7+c*13)%40)*1000
		}
		req, _ := json.Marshal(map[string]any{"request_id": fmt.Sprintf("r%07d", i), "model_id": "bench-10", "budget": budget,
			"constraints": map[string]any{"total": 600000 + float64(i%100)*2000, "max_change": 0.5}})
		env, err := event.New(event.OptimizationRequested, "bench", "", json.RawMessage(req), fmt.Sprintf("e%07d", i), now.Add(time.Duration(i)))
		if err != nil {
			return err
		}
		raw, _ := event.Encode(env)
		batch = append(batch, streams.Record{Key: []byte(env.Key()), Value: raw})
		if len(batch) == 8192 || i == n-1 {
			if err := l.Append(ctx, topics.Requests, batch...); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	p, err := processor.New(processor.Config{Log: l, Topics: topics, Group: "bench", Logger: zerolog.Nop()})
	if err != nil {
		return err
	}
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(pctx) }()
	defer func() { cancel(); <-done }()
	start := time.Now()
	for {
		time.Sleep(200 * time.Millisecond)
		count := 0
		if err := l.Read(ctx, topics.Results, streams.Position{}, streams.Position{}, func(streams.Message) error {
			count++
			return nil
		}); err != nil && err != io.EOF {
			return err
		}
		if count >= n {
			progress("processor: %d results in %v", count, time.Since(start).Round(time.Millisecond))
			return nil
		}
	}
}
