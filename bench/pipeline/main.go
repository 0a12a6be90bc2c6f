// Command pipeline benchmarks Atlas's request → result pipeline end to end: the stateful
// processor (streams/processor) on a real log, embedded NATS JetStream and/or the local
// Kafka broker, with the broker on the same machine. See README.md.
//
//	go run ./bench/pipeline [-backend jetstream|kafka|both] [-n 20000] [-rate 10000] [-cpuprofile FILE]
//
// Once per run:
//
//  0. Per-request CPU cost without the log: the processor's per-request steps on 2,000
//     requests in one goroutine, each charged in process CPU time.
//
// Then for each backend, on fresh topics:
//
//  1. Raw log ceiling: append n request-sized records (batches of -batch, -appenders
//     concurrent appenders), then consume them through a consumer group, Fetch + Commit
//     per batch. Reports appended/s, consumed/s and n / (append time + consume time).
//  2. Throughput: publish a 10-channel model (model10.json), pre-append n optimization
//     requests, start an in-process processor and time it until n results are on the
//     result topic (polled: Kafka end offsets of a fresh topic, JetStream's stream
//     message count; never offset arithmetic on JetStream sequences). -cpuprofile
//     profiles this phase and the report summarises it with go tool pprof.
//  3. Latency: with the processor running, append requests at -rate per second for
//     -duration (paced every millisecond) while a consumer group reads the result
//     topic; report latency percentiles (log time to log time, and wall clock from the
//     scheduled send to the consumer). With -halfrate it is repeated at half the
//     throughput measured in phase 2.
//
// The report is Markdown on stdout; progress goes to stderr.
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	crand "crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/atlas-mmm/atlas/engine"
	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/event"
	"github.com/atlas-mmm/atlas/streams/jetstream"
	"github.com/atlas-mmm/atlas/streams/kafka"
	"github.com/atlas-mmm/atlas/streams/processor"
)

//go:embed model10.json
var modelJSON []byte

const source = "atlas/bench-pipeline"

type options struct {
	backends   []string
	backend    string
	n          int
	rate       float64
	duration   time.Duration
	halfRate   bool
	cpuprofile string
	brokers    []string
	appenders  int
	batch      int
	partitions int
	workers    int
	timeout    time.Duration
	stall      time.Duration
	brokerPID  int
	keep       bool
	seed       int64
	pprofTop   bool
	latCSV     string
	latency    bool
	procBatch  int
	commitIvl  time.Duration
}

func main() {
	os.Exit(run())
}

func run() int {
	var o options
	backend := flag.String("backend", "both", "jetstream, kafka or both")
	flag.IntVar(&o.n, "n", 20000, "requests (and raw records) per backend for the ceiling and throughput phases")
	flag.Float64Var(&o.rate, "rate", 10000, "requests/s offered in the latency phase (half the 20,000/s target)")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "how long the latency phase appends requests")
	flag.BoolVar(&o.halfRate, "halfrate", true, "also measure latency at half the throughput measured in phase 2, when that is below -rate")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the throughput phase to this file (with -backend both: FILE with the backend name inserted before the extension)")
	brokers := flag.String("brokers", "127.0.0.1:19092", "Kafka bootstrap brokers, comma-separated")
	flag.IntVar(&o.appenders, "appenders", 4, "concurrent appenders (pre-loading topics, and the latency phase's producer)")
	flag.IntVar(&o.batch, "batch", 500, "records per Append when pre-loading (at most, in the latency phase), and per Commit in the raw consume")
	flag.IntVar(&o.partitions, "partitions", 4, "partitions of every topic (the processor's default)")
	flag.IntVar(&o.workers, "workers", 0, "processor workers (0: GOMAXPROCS)")
	flag.IntVar(&o.procBatch, "procbatch", 0, "processor batch size (0: the processor's default)")
	flag.DurationVar(&o.commitIvl, "commitinterval", 0, "processor CommitInterval (0: the processor's default; negative: commit every batch)")
	flag.DurationVar(&o.timeout, "timeout", 15*time.Minute, "overall deadline")
	flag.DurationVar(&o.stall, "stall", 60*time.Second, "give up a phase when no progress is seen for this long")
	flag.IntVar(&o.brokerPID, "broker-pid", 0, "pid of the Kafka broker, for its CPU use (0: read .local/kafka/kafka.pid)")
	flag.BoolVar(&o.keep, "keep", false, "keep the Kafka topics and groups (and the JetStream data dir) instead of deleting them")
	flag.Int64Var(&o.seed, "seed", 1, "seed of the request generator")
	flag.StringVar(&o.latCSV, "latcsv", "", "write every latency-phase request (scheduled offset, append, log and end-to-end latency) to DIR/<backend>-<rate>.csv")
	flag.BoolVar(&o.pprofTop, "pprof", true, "with -cpuprofile, summarise the profile by running go tool pprof")
	flag.BoolVar(&o.latency, "latency", true, "run the latency phase (false: ceiling and throughput only, for quick CPU comparisons)")
	flag.Parse()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400) // as the atlas binary does (cmd/atlas/main.go)
	}
	o.backend = *backend
	switch *backend {
	case "both":
		o.backends = []string{"jetstream", "kafka"}
	case "jetstream", "kafka":
		o.backends = []string{*backend}
	default:
		fmt.Fprintf(os.Stderr, "pipeline: -backend %q: want jetstream, kafka or both\n", *backend)
		return 2
	}
	if o.n <= 0 || o.rate <= 0 || o.duration <= 0 || o.appenders <= 0 || o.batch <= 0 || o.partitions <= 0 {
		fmt.Fprintln(os.Stderr, "pipeline: -n, -rate, -duration, -appenders, -batch and -partitions must be positive")
		return 2
	}
	if o.workers <= 0 {
		o.workers = runtime.GOMAXPROCS(0)
	}
	for _, b := range strings.Split(*brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			o.brokers = append(o.brokers, b)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	model, err := engine.DecodeModel(modelJSON)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pipeline: model10.json: %v\n", err)
		return 1
	}
	gen := newGenerator(&model, o.seed)
	runID := time.Now().UTC().Format("0102-150405") + "-" + randHex(2)

	rep := &report{opts: o, runID: runID, started: time.Now(), model: &model}
	progress("measuring the machine's load for 1 s before starting")
	idle0 := snapshotAll(0)
	time.Sleep(time.Second)
	rep.idle = idle0.to(snapshotAll(0), 0)
	failed := false
	k := min(o.n, 2000)
	progress("per-request CPU cost without the log, %d requests", k)
	costRecs, err := gen.records(runID, "cost", k)
	if err == nil {
		rep.cost, err = perRequestCost(&model, costRecs)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pipeline: per-request cost: %v\n", err)
		return 1
	}
	for _, b := range o.backends {
		progress("=== %s (run %s) ===", b, runID)
		br, err := runBackend(ctx, o, b, runID, gen)
		if br != nil {
			rep.backends = append(rep.backends, br)
		}
		if err != nil {
			failed = true
			progress("%s: FAILED: %v", b, err)
			if br == nil {
				rep.backends = append(rep.backends, &backendReport{name: b})
			}
			rep.backends[len(rep.backends)-1].err = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	if o.pprofTop {
		for _, br := range rep.backends {
			if br.profile != "" {
				progress("summarising %s with go tool pprof", br.profile)
				br.prof = summariseProfile(br.profile)
			}
		}
	}
	rep.print(os.Stdout)
	if failed {
		return 1
	}
	return 0
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}

// ---------------------------------------------------------------- requests ---

// generator builds optimization-request events for the 10-channel model: an exact total
// of 0.5–2 × the sum of the channels' effective half-saturation points (kappa·(1−decay)
// under adstock), so that S-curves sit on both sides of their inflection at the
// optimum, the current plan (budget: a random split of the total), and bounds on every channel (a max of 1.5–4 × the average spend, and on
// about half of them a min of 0.05–0.5 × the average), so that every solve differs.
type generator struct {
	modelID  string
	names    []string
	effKappa float64
	seed     int64
}

func newGenerator(m *engine.Model, seed int64) *generator {
	g := &generator{modelID: m.ModelID, seed: seed}
	for name, ch := range m.Channels {
		g.names = append(g.names, name)
		k := 0.0
		if ch.Curve.Kappa != nil {
			k = *ch.Curve.Kappa
		}
		if ch.Adstock != nil && ch.Adstock.Decay != nil {
			k *= 1 - *ch.Adstock.Decay
		}
		g.effKappa += k
	}
	slices.Sort(g.names)
	return g
}

func round(v, to float64) float64 { return math.Round(v/to) * to }

// records returns count request events with ids "req-<run>-<phase>-<i>" (keys = ids).
func (g *generator) records(runID, phase string, count int) ([]streams.Record, error) {
	h := fnv.New64a()
	h.Write([]byte(phase))
	rng := rand.New(rand.NewSource(g.seed ^ int64(h.Sum64())))
	now := time.Now()
	out := make([]streams.Record, count)
	for i := range out {
		id := requestID(runID, phase, i)
		total := round((0.5+1.5*rng.Float64())*g.effKappa, 100)
		avg := total / float64(len(g.names))
		cons := engine.Constraints{Total: &engine.Total{Exact: &total}, Channels: map[string]engine.ChannelBounds{}}
		for _, name := range g.names {
			hi := round((1.5+2.5*rng.Float64())*avg, 100)
			b := engine.ChannelBounds{Max: &hi}
			if rng.Intn(2) == 0 {
				lo := round((0.05+0.45*rng.Float64())*avg, 100)
				b.Min = &lo
			}
			cons.Channels[name] = b
		}
		// The current plan: a random split of the total (the result compares against it).
		budget := make(map[string]float64, len(g.names))
		w := make([]float64, len(g.names))
		ws := 0.0
		for j := range w {
			w[j] = 0.5 + rng.Float64()
			ws += w[j]
		}
		for j, name := range g.names {
			budget[name] = round(total*w[j]/ws, 100)
		}
		req := engine.Request{RequestID: id, ModelID: g.modelID, Budget: budget, Constraints: cons,
			Objective: engine.Objective{Type: engine.ObjMaxKPI}}
		env, err := event.New(event.OptimizationRequested, source, "", req, "evt-"+id, now)
		if err != nil {
			return nil, fmt.Errorf("building request %s: %w", id, err)
		}
		b, err := event.Encode(env)
		if err != nil {
			return nil, fmt.Errorf("encoding request %s: %w", id, err)
		}
		out[i] = streams.Record{Key: []byte(id), Value: b}
	}
	return out, nil
}

func requestID(runID, phase string, i int) string {
	return fmt.Sprintf("req-%s-%s-%07d", runID, phase, i)
}

// requestIndex parses i out of requestID(runID, phase, i), or returns -1.
func requestIndex(prefix, id string) int {
	if !strings.HasPrefix(id, prefix) {
		return -1
	}
	i, err := strconv.Atoi(id[len(prefix):])
	if err != nil {
		return -1
	}
	return i
}

func avgSize(recs []streams.Record) float64 {
	if len(recs) == 0 {
		return 0
	}
	s := 0
	for _, r := range recs {
		s += len(r.Value)
	}
	return float64(s) / float64(len(recs))
}

// ---------------------------------------------------------------- backends ---

type backendEnv struct {
	name      string
	dir       string // JetStream data dir
	brokers   []string
	brokerPID int // the Kafka broker process, 0 when unknown or in-process
	topics    []string
	groups    []string
	keep      bool
}

func (e *backendEnv) open(ctx context.Context) (streams.Log, error) {
	octx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	switch e.name {
	case "jetstream":
		return jetstream.Open(octx, jetstream.Config{DataDir: e.dir})
	default:
		l, err := kafka.Open(octx, kafka.Config{Brokers: e.brokers})
		if err != nil {
			return nil, fmt.Errorf("%w (is the broker up? deploy/local/kafka.sh start)", err)
		}
		return l, nil
	}
}

// counter returns a function counting the messages of a topic that only grows.
// Kafka: the sum of the partitions' end offsets, exact on a fresh topic (kafka-go
// writes no transaction markers). JetStream: the stream's message count (offsets are
// stream sequences, with gaps within a partition, so they are never subtracted).
func (e *backendEnv) counter(ctx context.Context, l streams.Log, topic string) (func(context.Context) (int64, error), error) {
	if jl, ok := l.(*jetstream.Log); ok {
		if !validStreamName.MatchString(topic) {
			return nil, fmt.Errorf("topic %q is not a plain stream name", topic)
		}
		st, err := jl.JetStream().Stream(ctx, topic)
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", topic, err)
		}
		return func(ctx context.Context) (int64, error) {
			info, err := st.Info(ctx)
			if err != nil {
				return 0, err
			}
			return int64(info.State.Msgs), nil
		}, nil
	}
	return func(ctx context.Context) (int64, error) {
		ends, err := l.EndOffsets(ctx, topic)
		if err != nil {
			return 0, err
		}
		var s int64
		for _, v := range ends {
			s += v
		}
		return s, nil
	}, nil
}

var validStreamName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (e *backendEnv) cleanup() {
	if e.keep {
		if e.dir != "" {
			progress("keeping JetStream data in %s", e.dir)
		} else {
			progress("keeping Kafka topics %v and groups %v", e.topics, e.groups)
		}
		return
	}
	if e.dir != "" {
		if err := os.RemoveAll(e.dir); err != nil {
			progress("warning: removing %s: %v", e.dir, err)
		}
		return
	}
	if len(e.topics) == 0 && len(e.groups) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &kafkago.Client{Addr: kafkago.TCP(e.brokers...), Timeout: 20 * time.Second}
	if len(e.groups) > 0 {
		res, err := c.DeleteGroups(ctx, &kafkago.DeleteGroupsRequest{GroupIDs: e.groups})
		if err != nil {
			progress("warning: deleting groups: %v", err)
		} else {
			for g, err := range res.Errors {
				if err != nil {
					progress("warning: deleting group %s: %v", g, err)
				}
			}
		}
	}
	if len(e.topics) > 0 {
		res, err := c.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: e.topics})
		if err != nil {
			progress("warning: deleting topics: %v", err)
		} else {
			for t, err := range res.Errors {
				if err != nil {
					progress("warning: deleting topic %s: %v", t, err)
				}
			}
		}
	}
}

// kafkaBrokerPID reads the pid file of deploy/local/kafka.sh.
func kafkaBrokerPID() int {
	dir := os.Getenv("ATLAS_LOCAL_DIR")
	if dir == "" {
		root := moduleRoot()
		if root == "" {
			return 0
		}
		dir = filepath.Join(root, ".local")
	}
	b, err := os.ReadFile(filepath.Join(dir, "kafka", "kafka.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", pid)); err != nil {
		return 0
	}
	return pid
}

func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// ---------------------------------------------------------------- CPU use ---

type cpuSnap struct {
	t              time.Time
	brokerPID      int
	self           time.Duration
	broker         time.Duration
	brokerOK       bool
	busy, total    uint64
	machOK         bool
	gcCount        uint32
	heapAllocBytes uint64
	procs          map[int]procTime // every process, when taken by snapshotAll
}

type procTime struct {
	name  string
	ticks uint64
}

type cpuUse struct {
	wall              time.Duration
	self, broker      float64 // cores
	brokerOK          bool
	machine           float64 // % of all cores busy
	machOK            bool
	others            float64 // cores used by other processes (machine − this process − broker)
	busiest           string  // the other processes that used the most CPU
	gcs               uint32
	allocMBperSec     float64
	selfPerReqMicro   float64
	brokerPerReqMicro float64
}

// projected is the rate GOMAXPROCS otherwise idle cores would sustain at this CPU cost
// per request (this process + the Kafka broker).
func (u cpuUse) projected() float64 {
	c := u.selfPerReqMicro + u.brokerPerReqMicro
	if c <= 0 {
		return 0
	}
	return float64(runtime.GOMAXPROCS(0)) * 1e6 / c
}

func snapshot(brokerPID int) cpuSnap {
	s := cpuSnap{t: time.Now(), brokerPID: brokerPID}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if brokerPID > 0 {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", brokerPID)); err == nil {
			if i := bytes.LastIndexByte(b, ')'); i >= 0 {
				f := strings.Fields(string(b[i+1:]))
				if len(f) > 12 {
					u, e1 := strconv.ParseUint(f[11], 10, 64)
					k, e2 := strconv.ParseUint(f[12], 10, 64)
					if e1 == nil && e2 == nil {
						s.broker = time.Duration(u+k) * 10 * time.Millisecond // USER_HZ = 100
						s.brokerOK = true
					}
				}
			}
		}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := bytes.Cut(b, []byte("\n"))
		f := strings.Fields(string(line))
		if len(f) > 5 && f[0] == "cpu" {
			var sum uint64
			vals := make([]uint64, len(f)-1)
			for i, x := range f[1:] {
				vals[i], _ = strconv.ParseUint(x, 10, 64)
				if i < 8 { // user nice system idle iowait irq softirq steal (guest is in user)
					sum += vals[i]
				}
			}
			s.total = sum
			s.busy = sum - vals[3] - vals[4]
			s.machOK = true
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.gcCount, s.heapAllocBytes = ms.NumGC, ms.TotalAlloc
	return s
}

// snapshotAll is snapshot plus the CPU time of every process, to name the other load.
func snapshotAll(brokerPID int) cpuSnap {
	s := snapshot(brokerPID)
	s.procs = map[int]procTime{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return s
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i, j := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if i < 0 || j < i {
			continue
		}
		f := strings.Fields(string(b[j+1:]))
		if len(f) <= 12 {
			continue
		}
		u, _ := strconv.ParseUint(f[11], 10, 64)
		k, _ := strconv.ParseUint(f[12], 10, 64)
		name := string(b[i+1 : j])
		if cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && len(cmd) > 0 {
			name = strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
			if len(name) > 60 {
				name = name[:57] + "..."
			}
		}
		s.procs[pid] = procTime{name: name, ticks: u + k}
	}
	return s
}

func (a cpuSnap) to(b cpuSnap, requests int) cpuUse {
	u := cpuUse{wall: b.t.Sub(a.t)}
	w := u.wall.Seconds()
	if w <= 0 {
		return u
	}
	u.self = (b.self - a.self).Seconds() / w
	if a.brokerOK && b.brokerOK {
		u.brokerOK = true
		u.broker = (b.broker - a.broker).Seconds() / w
	}
	if a.machOK && b.machOK && b.total > a.total {
		u.machOK = true
		u.machine = 100 * float64(b.busy-a.busy) / float64(b.total-a.total)
		u.others = max(0, u.machine/100*float64(runtime.NumCPU())-u.self-u.broker)
	}
	if a.procs != nil && b.procs != nil {
		type busy struct {
			pid   int
			name  string
			cores float64
		}
		var list []busy
		self := os.Getpid()
		for pid, pb := range b.procs {
			pa, ok := a.procs[pid]
			if !ok || pid == self || pid == a.brokerPID || pb.ticks <= pa.ticks {
				continue
			}
			list = append(list, busy{pid, pb.name, float64(pb.ticks-pa.ticks) / 100 / w})
		}
		slices.SortFunc(list, func(x, y busy) int { return cmp.Compare(y.cores, x.cores) })
		var parts []string
		for _, x := range list[:min(3, len(list))] {
			if x.cores >= 0.05 {
				parts = append(parts, fmt.Sprintf("`%s` (pid %d) %.2f", x.name, x.pid, x.cores))
			}
		}
		u.busiest = strings.Join(parts, ", ")
	}
	u.gcs = b.gcCount - a.gcCount
	u.allocMBperSec = float64(b.heapAllocBytes-a.heapAllocBytes) / 1e6 / w
	if requests > 0 {
		u.selfPerReqMicro = float64(b.self-a.self) / 1e3 / float64(requests)
		if u.brokerOK {
			u.brokerPerReqMicro = float64(b.broker-a.broker) / 1e3 / float64(requests)
		}
	}
	return u
}

// ---------------------------------------------------------------- reports ---

type rawReport struct {
	n          int
	valueBytes float64
	appendDur  time.Duration
	firstFetch time.Duration // Subscribe → first message (group join)
	consumeDur time.Duration // Subscribe → last Commit
	appendCPU  cpuUse
	consumeCPU cpuUse
}

func (r *rawReport) appendRate() float64  { return ratePer(r.n, r.appendDur) }
func (r *rawReport) consumeRate() float64 { return ratePer(r.n, r.consumeDur) }
func (r *rawReport) ceiling() float64     { return ratePer(r.n, r.appendDur+r.consumeDur) }

// steadyCeiling leaves out the group join (Subscribe → first message).
func (r *rawReport) steadyCeiling() float64 {
	return ratePer(r.n, r.appendDur+r.consumeDur-r.firstFetch)
}

type tputReport struct {
	n           int
	preload     time.Duration
	firstResult time.Duration // processor start → first result visible
	total       time.Duration // processor start → n results visible
	firstCount  int64
	steady      time.Duration // first result visible → n results visible
	cpu         cpuUse
	resultBytes float64
	distinct    int
	types       map[string]int
	statuses    map[string]int
	dead        int64
	batches     string
}

func (t *tputReport) rate() float64 { return ratePer(t.n, t.total) }
func (t *tputReport) steadyRate() float64 {
	return ratePer(t.n-int(t.firstCount), t.steady)
}

type dist struct {
	n                  int
	p50, p95, p99, max time.Duration
}

func newDist(ds []time.Duration) dist {
	if len(ds) == 0 {
		return dist{}
	}
	slices.Sort(ds)
	q := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(ds)))) - 1
		return ds[max(0, min(i, len(ds)-1))]
	}
	return dist{n: len(ds), p50: q(0.5), p95: q(0.95), p99: q(0.99), max: ds[len(ds)-1]}
}

type latReport struct {
	label      string
	target     float64
	count      int
	offered    float64 // requests/s actually scheduled
	completed  float64 // requests/s from the first scheduled to the last result received
	sendDur    time.Duration
	drainAfter time.Duration // after the last request was appended, until the last result
	logLat     dist          // result Message.Time − request Message.Time
	e2e        dist          // result received by the sink − request scheduled (wall clock)
	appendLat  dist          // Append returned − request scheduled
	cpu        cpuUse
	notOK      int // results that are not completed/optimal
	missing    int // requests whose log times could not be paired
}

type backendReport struct {
	name      string
	raw       *rawReport
	tput      *tputReport
	lat       []*latReport
	profile   string
	prof      *profSummary
	err       error
	reqBytes  float64
	brokerPID int
}

func ratePer(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// ---------------------------------------------------------------- one backend ---

func runBackend(ctx context.Context, o options, name, runID string, gen *generator) (br *backendReport, err error) {
	br = &backendReport{name: name}
	env := &backendEnv{name: name, brokers: o.brokers, keep: o.keep}
	if name == "jetstream" {
		if env.dir, err = os.MkdirTemp("", "atlas-bench-js-"); err != nil {
			return br, err
		}
	} else {
		env.brokerPID = o.brokerPID
		if env.brokerPID == 0 {
			env.brokerPID = kafkaBrokerPID()
		}
	}
	br.brokerPID = env.brokerPID
	defer env.cleanup()

	progress("%s: opening two clients (bench side, processor side)", name)
	benchLog, err := env.open(ctx)
	if err != nil {
		return br, fmt.Errorf("opening %s: %w", name, err)
	}
	defer benchLog.Close()
	procLog, err := env.open(ctx)
	if err != nil {
		return br, fmt.Errorf("opening %s: %w", name, err)
	}
	defer procLog.Close()

	prefix := "ab-" + runID
	progress("%s: generating %d request events", name, o.n)
	tpRecs, err := gen.records(runID, "tp", o.n)
	if err != nil {
		return br, err
	}
	br.reqBytes = avgSize(tpRecs)

	// Phase 1: the raw log's own produce-and-consume rate.
	if br.raw, err = rawCeiling(ctx, o, env, benchLog, procLog, prefix, tpRecs); err != nil {
		return br, fmt.Errorf("raw ceiling: %w", err)
	}

	// Phase 2: throughput of the processor.
	topics := processor.Topics{Models: prefix + "-models", Requests: prefix + "-requests",
		Results: prefix + "-results", DeadLetters: prefix + "-deadletter"}
	env.topics = append(env.topics, topics.Models, topics.Requests, topics.Results, topics.DeadLetters)
	group := prefix + "-processor"
	env.groups = append(env.groups, group)
	if err := processor.CreateTopics(ctx, benchLog, topics, o.partitions); err != nil {
		return br, err
	}
	modelEvt, err := event.New(event.ModelPublished, source, "", json.RawMessage(modelJSON), "evt-model-"+runID, time.Now())
	if err != nil {
		return br, fmt.Errorf("model event: %w", err)
	}
	mb, err := event.Encode(modelEvt)
	if err != nil {
		return br, fmt.Errorf("model event: %w", err)
	}
	if err := benchLog.Append(ctx, topics.Models, streams.Record{Key: []byte(modelEvt.Key()), Value: mb}); err != nil {
		return br, fmt.Errorf("publishing the model: %w", err)
	}
	progress("%s: pre-appending %d requests to %s", name, o.n, topics.Requests)
	preload, err := appendAll(ctx, benchLog, topics.Requests, tpRecs, o.appenders, o.batch)
	if err != nil {
		return br, fmt.Errorf("pre-appending requests: %w", err)
	}
	countResults, err := env.counter(ctx, benchLog, topics.Results)
	if err != nil {
		return br, err
	}
	countDead, err := env.counter(ctx, benchLog, topics.DeadLetters)
	if err != nil {
		return br, err
	}

	metrics := processor.NewMetrics(nil)
	p, err := processor.New(processor.Config{Log: procLog, Topics: topics, Group: group, Partitions: o.partitions,
		Workers: o.workers, BatchSize: o.procBatch, CommitInterval: o.commitIvl, Source: "atlas/processor", Logger: zerolog.Nop(), Metrics: metrics})
	if err != nil {
		return br, err
	}
	profFile := ""
	if o.cpuprofile != "" {
		profFile = o.cpuprofile
		if len(o.backends) > 1 {
			ext := filepath.Ext(profFile)
			profFile = strings.TrimSuffix(profFile, ext) + "-" + name + ext
		}
	}
	var pf *os.File
	if profFile != "" {
		if dir := filepath.Dir(profFile); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return br, err
			}
		}
		if pf, err = os.Create(profFile); err != nil {
			return br, err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			pf.Close()
			return br, err
		}
	}
	stopProfile := func() {
		if pf != nil {
			pprof.StopCPUProfile()
			pf.Close()
			pf = nil
			br.profile = profFile
		}
	}
	defer stopProfile()

	progress("%s: starting the processor (workers %d, batch size %s)", name, o.workers, procBatchText(o.procBatch))
	runCtx, stopProc := context.WithCancel(ctx)
	procDone := make(chan error, 1)
	before := snapshotAll(env.brokerPID)
	start := time.Now()
	go func() { procDone <- p.Run(runCtx) }()
	var procErr error
	procStopped := false
	stopProcessor := func() error {
		if procStopped {
			return procErr
		}
		stopProc()
		select {
		case procErr = <-procDone:
		case <-time.After(40 * time.Second):
			procErr = errors.New("processor did not stop within 40 s")
		}
		procStopped = true
		return procErr
	}
	defer stopProcessor()

	tp := &tputReport{n: o.n, preload: preload}
	var firstAt time.Time
	doneAt, err := waitCount(ctx, countResults, int64(o.n), o.stall, procDone, func(c int64, at time.Time) {
		if firstAt.IsZero() {
			firstAt, tp.firstCount = at, c
		}
	})
	after := snapshotAll(env.brokerPID)
	stopProfile()
	if err != nil {
		return br, fmt.Errorf("throughput phase: %w", err)
	}
	tp.total = doneAt.Sub(start)
	tp.firstResult = firstAt.Sub(start)
	tp.steady = doneAt.Sub(firstAt)
	tp.cpu = before.to(after, o.n)
	br.tput = tp
	progress("%s: %d results in %v (%.0f/s; steady %.0f/s)", name, o.n, tp.total.Round(time.Millisecond), tp.rate(), tp.steadyRate())

	// Check what the processor wrote (outside the timed part).
	if err := verifyResults(ctx, benchLog, topics.Results, "req-"+runID+"-tp-", o.n, tp); err != nil {
		return br, err
	}
	if tp.dead, err = countDead(ctx); err != nil {
		return br, err
	}
	tp.batches = batchSummary(metrics)

	// Phase 3: latency at fixed rates.
	rates := []struct {
		label string
		rate  float64
	}{{"-rate", o.rate}}
	if !o.latency {
		rates = nil
	}
	if half := tp.steadyRate() / 2; o.latency && o.halfRate && half < 0.9*o.rate {
		rates = append(rates, struct {
			label string
			rate  float64
		}{"½ measured throughput", math.Round(half/100) * 100})
	}
	for i, r := range rates {
		if r.rate < 1 {
			continue
		}
		lr, err := latencyRun(ctx, o, env, benchLog, topics, countResults, procDone, runID, fmt.Sprintf("lat%d", i+1), r.label, r.rate, gen)
		if lr != nil {
			br.lat = append(br.lat, lr)
		}
		if err != nil {
			return br, fmt.Errorf("latency phase at %.0f/s: %w", r.rate, err)
		}
	}
	if err := stopProcessor(); err != nil {
		return br, fmt.Errorf("processor: %w", err)
	}
	return br, nil
}

// waitCount polls count every 5 ms until it reaches target. onProgress sees every
// value that grew. It fails if the processor stops or nothing moves for `stall`.
func waitCount(ctx context.Context, count func(context.Context) (int64, error), target int64, stall time.Duration,
	procDone chan error, onProgress func(int64, time.Time)) (time.Time, error) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	last, lastMove := int64(-1), time.Now()
	for {
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case err := <-procDone:
			procDone <- err // for whoever stops the processor
			return time.Time{}, fmt.Errorf("the processor stopped: %v", err)
		case <-tick.C:
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := count(cctx)
		cancel()
		now := time.Now()
		if err != nil {
			if ctx.Err() != nil {
				return time.Time{}, ctx.Err()
			}
			progress("warning: counting results: %v", err)
			continue
		}
		if c > last {
			if c > 0 && onProgress != nil {
				onProgress(c, now)
			}
			last, lastMove = c, now
		}
		if c >= target {
			return now, nil
		}
		if now.Sub(lastMove) > stall {
			return time.Time{}, fmt.Errorf("stalled at %d of %d results for %v", c, target, stall)
		}
	}
}

// appendAll appends recs in batches with `workers` concurrent appenders.
func appendAll(ctx context.Context, l streams.Log, topic string, recs []streams.Record, workers, batch int) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				lo := int(next.Add(int64(batch))) - batch
				if lo >= len(recs) || ctx.Err() != nil {
					return
				}
				hi := min(lo+batch, len(recs))
				actx, acancel := context.WithTimeout(ctx, 60*time.Second)
				err := l.Append(actx, topic, recs[lo:hi]...)
				acancel()
				if err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), firstErr
}

// rawCeiling is phase 1.
func rawCeiling(ctx context.Context, o options, env *backendEnv, benchLog, procLog streams.Log, prefix string, recs []streams.Record) (*rawReport, error) {
	topic, group := prefix+"-raw", prefix+"-raw-group"
	env.topics = append(env.topics, topic)
	env.groups = append(env.groups, group)
	if err := benchLog.CreateTopic(ctx, topic, o.partitions); err != nil {
		return nil, err
	}
	r := &rawReport{n: len(recs), valueBytes: avgSize(recs)}
	progress("%s: raw: appending %d records of %.0f B (%d appenders × %d per Append)", env.name, len(recs), r.valueBytes, o.appenders, o.batch)
	s0 := snapshot(env.brokerPID)
	d, err := appendAll(ctx, benchLog, topic, recs, o.appenders, o.batch)
	if err != nil {
		return nil, err
	}
	s1 := snapshot(env.brokerPID)
	r.appendDur, r.appendCPU = d, s0.to(s1, len(recs))

	progress("%s: raw: consuming them with group %s (Commit every %d)", env.name, group, o.batch)
	start := time.Now()
	sub, err := procLog.Subscribe(ctx, topic, group)
	if err != nil {
		return nil, err
	}
	defer sub.Close()
	seen := make(map[[2]int64]bool, len(recs))
	pending := make([]streams.Message, 0, o.batch)
	for len(seen) < len(recs) {
		fctx, cancel := context.WithTimeout(ctx, o.stall)
		m, err := sub.Fetch(fctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("fetch after %d of %d messages: %w", len(seen), len(recs), err)
		}
		if len(seen) == 0 {
			r.firstFetch = time.Since(start)
		}
		seen[[2]int64{int64(m.Partition), m.Offset}] = true
		pending = append(pending, m)
		if len(pending) >= o.batch || len(seen) == len(recs) {
			if err := sub.Commit(ctx, pending...); err != nil {
				return nil, fmt.Errorf("commit: %w", err)
			}
			pending = pending[:0]
		}
	}
	r.consumeDur = time.Since(start)
	r.consumeCPU = s1.to(snapshot(env.brokerPID), len(recs))
	progress("%s: raw: append %.0f/s, consume %.0f/s, ceiling %.0f/s", env.name, r.appendRate(), r.consumeRate(), r.ceiling())
	return r, nil
}

// verifyResults reads the result topic back and checks that every request got exactly
// one answer.
func verifyResults(ctx context.Context, l streams.Log, topic, prefix string, n int, tp *tputReport) error {
	seen := make([]bool, n)
	tp.types, tp.statuses = map[string]int{}, map[string]int{}
	var bytesSum int
	msgs := 0
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	err := l.Read(rctx, topic, streams.Position{}, streams.Position{}, func(m streams.Message) error {
		i := requestIndex(prefix, string(m.Key))
		if i < 0 || i >= n {
			return nil
		}
		msgs++
		bytesSum += len(m.Value)
		if !seen[i] {
			seen[i] = true
			tp.distinct++
		}
		var e struct {
			Type string `json:"type"`
			Data struct {
				Status string `json:"status"`
			} `json:"data"`
		}
		if json.Unmarshal(m.Value, &e) == nil {
			tp.types[strings.TrimSuffix(strings.TrimPrefix(e.Type, "atlas.optimization."), ".v1")]++
			if e.Data.Status != "" {
				tp.statuses[e.Data.Status]++
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading results back: %w", err)
	}
	if msgs > 0 {
		tp.resultBytes = float64(bytesSum) / float64(msgs)
	}
	if tp.distinct != n {
		return fmt.Errorf("results cover %d of %d requests", tp.distinct, n)
	}
	if msgs != n {
		progress("note: %d result messages for %d requests (redeliveries)", msgs, n)
	}
	return nil
}

// batchSummary reads the processor's batch-size histogram: how many batches, how big.
func batchSummary(m *processor.Metrics) string {
	var d dto.Metric
	if err := m.BatchSize.Write(&d); err != nil || d.Histogram == nil {
		return ""
	}
	n := d.Histogram.GetSampleCount()
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d batches, %.0f requests on average", n, d.Histogram.GetSampleSum()/float64(n))
}

// ---------------------------------------------------------------- latency ---

// latencyRun is phase 3 at one rate: requests are scheduled at rate/s (their scheduled
// time is start + i/rate, so a producer that falls behind shows up as latency), handed
// each millisecond to -appenders appenders (which merge what is queued, up to -batch
// per Append), while a consumer group ("the sink") reads the result topic.
func latencyRun(ctx context.Context, o options, env *backendEnv, benchLog streams.Log, topics processor.Topics,
	countResults func(context.Context) (int64, error), procDone chan error,
	runID, phase, label string, rate float64, gen *generator) (*latReport, error) {
	m := max(1, int(math.Round(rate*o.duration.Seconds())))
	progress("%s: latency at %.0f/s (%s): generating %d requests", env.name, rate, label, m)
	recs, err := gen.records(runID, phase, m)
	if err != nil {
		return nil, err
	}
	prefix := "req-" + runID + "-" + phase + "-"
	lr := &latReport{label: label, target: rate, count: m}

	// The sink: a consumer group on the result topic that first skips the results
	// already there.
	old, err := countResults(ctx)
	if err != nil {
		return nil, fmt.Errorf("counting results: %w", err)
	}
	group := "ab-" + runID + "-sink-" + phase
	env.groups = append(env.groups, group)
	sub, err := benchLog.Subscribe(ctx, topics.Results, group)
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	defer sub.Close()
	recv := make([]time.Time, m)
	var got, oldSeen atomic.Int64
	sinkCtx, stopSink := context.WithCancel(ctx)
	defer stopSink()
	sinkDone := make(chan error, 1)
	go func() {
		pending := make([]streams.Message, 0, 256)
		for {
			msg, err := sub.Fetch(sinkCtx)
			if err != nil {
				sinkDone <- fmt.Errorf("sink fetch: %w", err)
				return
			}
			now := time.Now()
			if i := requestIndex(prefix, string(msg.Key)); i >= 0 && i < m {
				if recv[i].IsZero() {
					recv[i] = now
					got.Add(1)
				}
			} else {
				oldSeen.Add(1)
			}
			pending = append(pending, msg)
			done := got.Load() == int64(m)
			if len(pending) >= 256 || done {
				if err := sub.Commit(sinkCtx, pending...); err != nil {
					sinkDone <- fmt.Errorf("sink commit: %w", err)
					return
				}
				pending = pending[:0]
			}
			if done {
				sinkDone <- nil
				return
			}
		}
	}()
	progress("%s: sink skipping %d earlier results", env.name, old)
	if err := waitFor(ctx, o.stall, procDone, sinkDone, func() int64 { return oldSeen.Load() }, old); err != nil {
		return nil, fmt.Errorf("sink catching up: %w", err)
	}

	// The producer.
	progress("%s: appending %d requests at %.0f/s for %v", env.name, m, rate, o.duration)
	sched := make([]time.Time, m)
	acked := make([]time.Time, m)
	type span struct{ lo, hi int }
	queue := make(chan span, m+1)
	pctx, cancelP := context.WithCancel(ctx)
	defer cancelP()
	var wg sync.WaitGroup
	var once sync.Once
	var appendErr error
	for w := 0; w < o.appenders; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var spans []span
			var batch []streams.Record
			for s := range queue {
				if pctx.Err() != nil {
					continue // drain
				}
				spans = append(spans[:0], s)
				n := s.hi - s.lo
			merge:
				for n < o.batch {
					select {
					case s2, ok := <-queue:
						if !ok {
							break merge
						}
						spans = append(spans, s2)
						n += s2.hi - s2.lo
					default:
						break merge
					}
				}
				batch = batch[:0]
				for _, sp := range spans {
					batch = append(batch, recs[sp.lo:sp.hi]...)
				}
				actx, cancel := context.WithTimeout(pctx, 60*time.Second)
				err := benchLog.Append(actx, topics.Requests, batch...)
				cancel()
				t := time.Now()
				if err != nil {
					once.Do(func() { appendErr = err; cancelP() })
					continue
				}
				for _, sp := range spans {
					for i := sp.lo; i < sp.hi; i++ {
						acked[i] = t
					}
				}
			}
		}()
	}
	before := snapshotAll(env.brokerPID)
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	sent := 0
	for sent < m && pctx.Err() == nil {
		select {
		case <-tick.C:
		case <-pctx.Done():
		}
		due := min(m, int(rate*time.Since(start).Seconds())+1)
		for sent < due {
			hi := min(due, sent+o.batch)
			for i := sent; i < hi; i++ {
				sched[i] = start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			}
			queue <- span{sent, hi}
			sent = hi
		}
	}
	tick.Stop()
	close(queue)
	wg.Wait()
	sendEnd := time.Now()
	if appendErr != nil {
		return nil, fmt.Errorf("appending requests: %w", appendErr)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	lr.sendDur = sendEnd.Sub(start)
	lr.offered = ratePer(m, lr.sendDur)
	progress("%s: all %d appended in %v; waiting for their results", env.name, m, lr.sendDur.Round(time.Millisecond))
	if err := waitFor(ctx, o.stall, procDone, sinkDone, func() int64 { return got.Load() }, int64(m)); err != nil {
		return nil, fmt.Errorf("waiting for results: %w (%d of %d received)", err, got.Load(), m)
	}
	// The sink reports nil once it has everything; waitFor may have seen the count first.
	select {
	case err := <-sinkDone:
		if err != nil {
			return nil, err
		}
	case <-time.After(10 * time.Second):
		return nil, errors.New("sink did not finish")
	}
	after := snapshotAll(env.brokerPID)
	lastRecv := slices.MaxFunc(recv, func(a, b time.Time) int { return a.Compare(b) })
	lr.completed = ratePer(m, lastRecv.Sub(start))
	lr.drainAfter = max(0, lastRecv.Sub(sendEnd))
	lr.cpu = before.to(after, m)
	e2e := make([]time.Duration, m)
	app := make([]time.Duration, m)
	for i := range recv {
		e2e[i] = recv[i].Sub(sched[i])
		app[i] = acked[i].Sub(sched[i])
	}
	lr.e2e, lr.appendLat = newDist(e2e), newDist(app)

	// Log times, read back from both topics.
	reqT := make([]time.Time, m)
	resT := make([]time.Time, m)
	from := streams.Position{Time: start.Add(-2 * time.Second)}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	err = benchLog.Read(rctx, topics.Requests, from, streams.Position{}, func(msg streams.Message) error {
		if i := requestIndex(prefix, string(msg.Key)); i >= 0 && i < m && reqT[i].IsZero() {
			reqT[i] = msg.Time
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading requests back: %w", err)
	}
	err = benchLog.Read(rctx, topics.Results, from, streams.Position{}, func(msg streams.Message) error {
		i := requestIndex(prefix, string(msg.Key))
		if i < 0 || i >= m || !resT[i].IsZero() {
			return nil
		}
		resT[i] = msg.Time
		var e struct {
			Type string `json:"type"`
			Data struct {
				Status string `json:"status"`
			} `json:"data"`
		}
		if json.Unmarshal(msg.Value, &e) != nil || e.Type != event.OptimizationCompleted || e.Data.Status != engine.StatusOptimal {
			lr.notOK++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading results back: %w", err)
	}
	logLat := make([]time.Duration, 0, m)
	for i := range reqT {
		if reqT[i].IsZero() || resT[i].IsZero() {
			lr.missing++
			continue
		}
		logLat = append(logLat, resT[i].Sub(reqT[i]))
	}
	lr.logLat = newDist(slices.Clone(logLat))
	if o.latCSV != "" {
		if err := writeLatCSV(filepath.Join(o.latCSV, fmt.Sprintf("%s-%.0f.csv", env.name, rate)), start, sched, acked, recv, reqT, resT); err != nil {
			progress("warning: %v", err)
		}
	}
	progress("%s: latency at %.0f/s: log p50 %v p99 %v; end-to-end p50 %v p99 %v", env.name, rate,
		lr.logLat.p50, lr.logLat.p99, lr.e2e.p50.Round(10*time.Microsecond), lr.e2e.p99.Round(10*time.Microsecond))
	return lr, nil
}

// waitFor polls get until it reaches target, failing on a stall, a stopped processor or
// an error from the sink.
func waitFor(ctx context.Context, stall time.Duration, procDone chan error, sinkDone chan error, get func() int64, target int64) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	last, lastMove := int64(-1), time.Now()
	for {
		if v := get(); v >= target {
			return nil
		} else if v > last {
			last, lastMove = v, time.Now()
		} else if time.Since(lastMove) > stall {
			return fmt.Errorf("stalled at %d of %d for %v", v, target, stall)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-procDone:
			procDone <- err // for whoever stops the processor
			return fmt.Errorf("the processor stopped: %v", err)
		case err := <-sinkDone:
			if err == nil && get() >= target {
				sinkDone <- nil // leave it for the caller
				return nil
			}
			if err == nil {
				err = errors.New("sink finished early")
			}
			return err
		case <-tick.C:
		}
	}
}

// ---------------------------------------------------------------- profile ---

type profCat struct {
	name, focus string
	pct         float64
	value       string
}

type profSummary struct {
	duration, total string
	cats            []profCat
	top             string
	err             error
}

// profileCategories are matched against every frame of a sample (pprof -focus), so they
// overlap: a sample in schema validation under event.Decode counts for both.
var profileCategories = []profCat{
	{name: "processor: per-request work (Processor.handle)", focus: `processor\.\(\*Processor\)\.handle$`},
	{name: "  engine solve (Prepared.Solve)", focus: `engine\.\(\*Prepared\)\.Solve$`},
	{name: "  request decode: event.Decode (JSON + schema)", focus: `event\.Decode$`},
	{name: "  request data decode: engine.DecodeRequest", focus: `engine\.DecodeRequest$`},
	{name: "  result encode: Processor.emit (event.New + Encode)", focus: `processor\.\(\*Processor\)\.emit$`},
	{name: "  metrics (prometheus)", focus: `prometheus`},
	{name: "JSON schema validation, all (schemas.ValidateEvent)", focus: `schemas\.ValidateEvent$`},
	{name: "&nbsp;&nbsp;JSON → any for the validator (schemas.decode, json.Decoder.Token)", focus: `schemas\.decode$`},
	{name: "&nbsp;&nbsp;&nbsp;&nbsp;encoding/json building a SyntaxError per scalar token (Decoder.Token quirk)", focus: `json\.\(\*scanner\)\.error$`},
	{name: "&nbsp;&nbsp;the validator proper (jsonschema Schema.Validate)", focus: `jsonschema/v6\.\(\*Schema\)\.Validate$`},
	{name: "Envelope.consistent (re-parses data for the request id)", focus: `event\.Envelope\.consistent$`},
	{name: "json.Compact", focus: `^encoding/json\.Compact$`},
	{name: "encoding/json, all", focus: `^encoding/json\.`},
	{name: "processor: fetch (Processor.fetchBatch)", focus: `processor\.\(\*Processor\)\.fetchBatch$`},
	{name: "processor goroutine itself (handleBatch: model sync, Append, Commit)", focus: `processor\.\(\*Processor\)\.handleBatch$`},
	{name: "log client library (kafka-go / nats.go)", focus: `segmentio/kafka-go|nats-io/nats\.go`},
	{name: "in-process broker (nats-server)", focus: `nats-io/nats-server`},
	{name: "syscalls", focus: `^syscall\.|^internal/runtime/syscall\.`},
	{name: "GC background marking (gcBgMarkWorker)", focus: `runtime\.gcBgMarkWorker$`},
	{name: "allocation (mallocgc)", focus: `runtime\.mallocgc$`},
	{name: "bench harness (result polling)", focus: `^main\.`},
}

var (
	reShowing  = regexp.MustCompile(`Showing nodes accounting for ([^,]+), ([\d.]+)% of ([^ ]+) total`)
	reDuration = regexp.MustCompile(`Duration: ([^,]+), Total samples = ([^ ]+) \(([\d.]+)%\)`)
)

func goBinary() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

func summariseProfile(file string) *profSummary {
	s := &profSummary{}
	goBin := goBinary()
	out, err := exec.Command(goBin, "tool", "pprof", "-top", "-nodecount=20", file).CombinedOutput()
	if err != nil {
		s.err = fmt.Errorf("go tool pprof: %v: %s", err, firstLine(out))
		return s
	}
	if m := reDuration.FindSubmatch(out); m != nil {
		s.duration, s.total = string(m[1]), string(m[2])
	}
	var top []string
	in := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "flat%") {
			in = true
		}
		if in {
			top = append(top, line)
		}
	}
	s.top = strings.Join(top, "\n")
	for _, c := range profileCategories {
		out, err := exec.Command(goBin, "tool", "pprof", "-top", "-nodecount=1000000", "-nodefraction=0",
			"-edgefraction=0", "-focus="+c.focus, file).CombinedOutput()
		if m := reShowing.FindSubmatch(out); err == nil && m != nil {
			c.value = string(m[1])
			c.pct, _ = strconv.ParseFloat(string(m[2]), 64)
		} else {
			c.value = "0"
		}
		s.cats = append(s.cats, c)
	}
	return s
}

func firstLine(b []byte) string {
	l, _, _ := bytes.Cut(bytes.TrimSpace(b), []byte("\n"))
	return string(l)
}

// ---------------------------------------------------------------- output ---

type report struct {
	opts     options
	runID    string
	started  time.Time
	model    *engine.Model
	cost     *costReport
	idle     cpuUse // the machine before the run
	backends []*backendReport
}

func commas(v int64) string {
	s := strconv.FormatInt(v, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func perSec(v float64) string { return commas(int64(math.Round(v))) + "/s" }

func dur(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
}

func (u cpuUse) brokerStr() string {
	if !u.brokerOK {
		return "in-process"
	}
	return fmt.Sprintf("%.2f", u.broker)
}

func (u cpuUse) machineStr() string {
	if !u.machOK {
		return "n/a"
	}
	return fmt.Sprintf("%.0f %% (other processes %.2f cores)", u.machine, u.others)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func (r *report) print(w *os.File) {
	o := r.opts
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	kinds := map[string]int{}
	adstock := 0
	for _, ch := range r.model.Channels {
		kinds[ch.Curve.Type]++
		if ch.Adstock != nil {
			adstock++
		}
	}
	var kindList []string
	for k, v := range kinds {
		kindList = append(kindList, fmt.Sprintf("%d %s", v, k))
	}
	slices.Sort(kindList)
	reqBytes, resBytes := 0.0, 0.0
	for _, b := range r.backends {
		if b.reqBytes > 0 {
			reqBytes = b.reqBytes
		}
		if b.tput != nil && b.tput.resultBytes > 0 {
			resBytes = b.tput.resultBytes
		}
	}

	p("# Atlas pipeline benchmark")
	p("")
	p("Run `%s`, %s. %s, %d CPUs, GOMAXPROCS %d, %s %s/%s.", r.runID, r.started.Format("2006-01-02 15:04 MST"),
		cpuModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	p("Brokers on this machine: JetStream embedded in this process (file storage, temp dir); Kafka at %s (separate JVM).", strings.Join(o.brokers, ","))
	if r.idle.machOK {
		p("Load before the run (1 s): machine %.0f %% busy", r.idle.machine)
		if r.idle.busiest != "" {
			p("(%s).", r.idle.busiest)
		}
		if r.idle.machine > 15 {
			p("**The machine was not idle: the figures below had correspondingly less CPU than the 2 cores; the per-request CPU costs and the \"projected\" rates do not depend on it.**")
		}
	}
	p("Model `%s` (bench/pipeline/model10.json): %d channels (%s), geometric adstock on %d. Requests: exact total + bounds on every channel; "+
		"request event %.0f B, result event %.0f B on average. %d partitions per topic; processor: %d workers, batch size %s, batch wait 2 ms and commits every 50 ms (defaults).",
		r.model.ModelID, len(r.model.Channels), strings.Join(kindList, ", "), adstock, reqBytes, resBytes, o.partitions, o.workers, procBatchText(o.procBatch))
	p("")
	p("## Summary")
	p("")
	p("n = %s; latency phase %v per rate. Targets: ≥ 20,000 requests/s; p99 append → result ≤ 50 ms at 10,000/s.", commas(int64(o.n)), o.duration)
	p("")
	p("| backend | raw ceiling: produce + consume (excl. group join) | pipeline requests/s: start → n-th result (first → n-th) | ratio to ceiling (steady / steady) | CPU per request: process + broker → projected on %d idle cores | ≥ 20,000/s | latency runs: rate → p99 log / p99 end-to-end | p99 ≤ 50 ms at 10,000/s |", runtime.GOMAXPROCS(0))
	p("|---|---:|---:|---:|---:|:-:|---|:-:|")
	for _, b := range r.backends {
		if b.raw == nil || b.tput == nil {
			p("| %s | failed: %v | | | | | | |", b.name, b.err)
			continue
		}
		var runs []string
		ok := "—"
		for _, l := range b.lat {
			runs = append(runs, fmt.Sprintf("%s → %s / %s", perSec(l.target), dur(l.logLat.p99), dur(l.e2e.p99)))
			if l.target == 10000 {
				ok = yesNo(l.logLat.p99 <= 50*time.Millisecond && l.e2e.p99 <= 50*time.Millisecond)
			}
		}
		if b.err != nil {
			runs = append(runs, "failed: "+b.err.Error())
		}
		p("| %s | %s (%s) | **%s** (%s) | %.2f (%.2f) | %.0f + %.0f µs → %s | %s | %s | %s |", b.name, perSec(b.raw.ceiling()), perSec(b.raw.steadyCeiling()),
			perSec(b.tput.rate()), perSec(b.tput.steadyRate()), b.tput.rate()/b.raw.ceiling(), b.tput.steadyRate()/b.raw.steadyCeiling(),
			b.tput.cpu.selfPerReqMicro, b.tput.cpu.brokerPerReqMicro, perSec(b.tput.cpu.projected()),
			yesNo(b.tput.rate() >= 20000), strings.Join(runs, "; "), ok)
	}
	if c := r.cost; c != nil {
		cores := float64(runtime.GOMAXPROCS(0))
		p("")
		p("## Per-request CPU cost without the log")
		p("")
		p("The processor's per-request steps (what `processor.handle` does), run on %s generated requests in one goroutine with no log, "+
			"each step timed in process CPU (getrusage: GC threads included; other processes' load excluded). "+
			"At %.0f µs per request, %d cores can answer at most **%s** requests/s before any log I/O.",
			commas(int64(c.k)), float64(c.total)/1e3, runtime.GOMAXPROCS(0), perSec(cores*1e6/(float64(c.total)/1e3)))
		p("")
		p("| step | CPU µs / request | share | allocated KB / request |")
		p("|---|---:|---:|---:|")
		for _, st := range c.steps {
			if st.kind == stepAlt {
				continue
			}
			name := st.name
			if st.kind == stepPart {
				name = "&nbsp;&nbsp;" + name
			}
			p("| %s | %.1f | %.0f %% | %.1f |", name, float64(st.cpu)/1e3, 100*float64(st.cpu)/float64(c.total), st.alloc/1024)
		}
		p("| **total** | **%.1f** | 100 %% | %.1f |", float64(c.total)/1e3, c.alloc/1024)
		p("")
		p("Other paths, from the same measurements (pieces not on the hot path: %s):", func() string {
			var parts []string
			for _, st := range c.steps {
				if st.kind == stepAlt {
					parts = append(parts, fmt.Sprintf("%s %.1f µs", st.name, float64(st.cpu)/1e3))
				}
			}
			return strings.Join(parts, "; ")
		}())
		p("")
		p("| per-request path | CPU µs / request | %d cores could answer (no log, no broker) |", runtime.GOMAXPROCS(0))
		p("|---|---:|---:|")
		for _, sc := range c.scenarios() {
			p("| %s | %.0f | %s |", sc.name, float64(sc.cpu)/1e3, perSec(cores*1e6/(float64(sc.cpu)/1e3)))
		}
	}
	for _, b := range r.backends {
		p("")
		p("## %s", b.name)
		if b.err != nil {
			p("")
			p("**Error:** %v", b.err)
		}
		if raw := b.raw; raw != nil {
			p("")
			p("### 1. Raw log ceiling")
			p("")
			p("%s records of %.0f B (the request events themselves), %d appenders × %d records per Append; then one consumer-group member, Fetch one by one, Commit every %d.",
				commas(int64(raw.n)), raw.valueBytes, o.appenders, o.batch, o.batch)
			p("")
			p("| step | time | rate | this process (cores) | broker (cores) | machine busy |")
			p("|---|---:|---:|---:|---:|---:|")
			p("| append | %s | %s | %.2f | %s | %s |", dur(raw.appendDur), perSec(raw.appendRate()), raw.appendCPU.self, raw.appendCPU.brokerStr(), raw.appendCPU.machineStr())
			p("| consume + commit (first message after %s: group join) | %s | %s | %.2f | %s | %s |", dur(raw.firstFetch), dur(raw.consumeDur), perSec(raw.consumeRate()), raw.consumeCPU.self, raw.consumeCPU.brokerStr(), raw.consumeCPU.machineStr())
			p("| **produce + consume (ceiling)** | %s | **%s** | | | |", dur(raw.appendDur+raw.consumeDur), perSec(raw.ceiling()))
			p("| produce + consume, group join left out | %s | %s | | | |", dur(raw.appendDur+raw.consumeDur-raw.firstFetch), perSec(raw.steadyCeiling()))
		}
		if t := b.tput; t != nil {
			p("")
			p("### 2. Throughput")
			p("")
			p("| | |")
			p("|---|---:|")
			p("| requests pre-appended | %s (in %s) |", commas(int64(t.n)), dur(t.preload))
			p("| processor start → first result visible | %s (%s results then) |", dur(t.firstResult), commas(t.firstCount))
			p("| processor start → %s-th result visible | %s |", commas(int64(t.n)), dur(t.total))
			p("| **requests/s, start → last** | **%s** |", perSec(t.rate()))
			p("| requests/s, first → last result | %s |", perSec(t.steadyRate()))
			if b.raw != nil {
				p("| ratio to the raw ceiling (%s; first → n-th vs the ceiling without the join: %s) | %.2f (%.2f) |", perSec(b.raw.ceiling()), perSec(b.raw.steadyCeiling()), t.rate()/b.raw.ceiling(), t.steadyRate()/b.raw.steadyCeiling())
			}
			if t.batches != "" {
				p("| processor batches | %s |", t.batches)
			}
			p("| results | %s; statuses %s; dead letters %d |", mapString(t.types), mapString(t.statuses), t.dead)
			p("| CPU: this process (processor + embedded broker, if any) | %.2f cores, %.0f µs per request |", t.cpu.self, t.cpu.selfPerReqMicro)
			if t.cpu.brokerOK {
				p("| CPU: Kafka broker | %.2f cores, %.0f µs per request |", t.cpu.broker, t.cpu.brokerPerReqMicro)
			} else {
				p("| CPU: Kafka broker | n/a |")
			}
			p("| projected on %d otherwise idle cores (%d × 10⁶ / CPU µs per request) | %s |", runtime.GOMAXPROCS(0), runtime.GOMAXPROCS(0), perSec(t.cpu.projected()))
			p("| machine busy | %s |", t.cpu.machineStr())
			if t.cpu.busiest != "" {
				p("| busiest other processes (cores) | %s |", t.cpu.busiest)
			}
			p("| GC | %d cycles, %.0f MB/s allocated |", t.cpu.gcs, t.cpu.allocMBperSec)
		}
		if len(b.lat) > 0 {
			p("")
			p("### 3. Latency at a fixed rate")
			p("")
			p("*log*: result Message.Time − request Message.Time (when the log accepted each; Kafka: the records' CreateTime, ms resolution). " +
				"*end-to-end*: a consumer group on the result topic received the result − the request's scheduled send time (start + i/rate; includes producer queueing, the Append, the processor, the result Append and the delivery to the consumer). " +
				"*append*: the producer's Append returned − scheduled time.")
			p("")
			p("| rate | requests | sent in (achieved rate) | completed at | backlog drained after last append | CPU process / broker / machine | definition | p50 | p95 | p99 | max |")
			p("|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|")
			for _, l := range b.lat {
				head := fmt.Sprintf("| %s (%s) | %s | %s (%s) | %s | %s | %.2f / %s / %s |", perSec(l.target), l.label, commas(int64(l.count)),
					dur(l.sendDur), perSec(l.offered), perSec(l.completed), dur(l.drainAfter), l.cpu.self, brokerCores(l.cpu), l.cpu.machineStr())
				blank := "| | | | | | |"
				p("%s log | %s | %s | %s | %s |", head, dur(l.logLat.p50), dur(l.logLat.p95), dur(l.logLat.p99), dur(l.logLat.max))
				p("%s end-to-end | %s | %s | %s | %s |", blank, dur(l.e2e.p50), dur(l.e2e.p95), dur(l.e2e.p99), dur(l.e2e.max))
				p("%s append | %s | %s | %s | %s |", blank, dur(l.appendLat.p50), dur(l.appendLat.p95), dur(l.appendLat.p99), dur(l.appendLat.max))
				if l.cpu.busiest != "" {
					p("%s other load | %s | | | |", blank, l.cpu.busiest)
				}
				if l.notOK > 0 || l.missing > 0 {
					p("")
					p("(%d results not optimal, %d requests not paired with a result by log time)", l.notOK, l.missing)
				}
			}
		}
		if b.profile != "" {
			p("")
			p("### CPU profile of phase 2 (`%s`)", b.profile)
			s := b.prof
			switch {
			case s == nil:
				p("")
				p("Summarise with `go tool pprof -top %s`.", b.profile)
			case s.err != nil:
				p("")
				p("(%v)", s.err)
			default:
				p("")
				p("Duration %s, %s of samples in this process (2 cores = 2 × duration). Shares are of all samples; categories overlap (a sample counts for every category with a frame on its stack).", s.duration, s.total)
				if b.name == "kafka" {
					p("The Kafka broker runs in its own JVM: its CPU is not in this profile (see \"CPU: Kafka broker\" above).")
				}
				p("")
				p("| where (frames on the stack) | CPU | share |")
				p("|---|---:|---:|")
				for _, c := range s.cats {
					p("| %s | %s | %.1f %% |", strings.ReplaceAll(c.name, "  ", "&nbsp;&nbsp;"), c.value, c.pct)
				}
				p("")
				p("Top functions by flat time:")
				p("")
				p("```")
				p("%s", s.top)
				p("```")
			}
		}
	}
	p("")
	p("Reproduce: `go run ./bench/pipeline -backend %s -n %d -rate %.0f -duration %v%s` (Kafka: `deploy/local/kafka.sh start` first).",
		o.backend, o.n, o.rate, o.duration, func() string {
			if o.cpuprofile != "" {
				return " -cpuprofile " + o.cpuprofile
			}
			return ""
		}())
}

func brokerCores(u cpuUse) string {
	if !u.brokerOK {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", u.broker)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}

func mapString(m map[string]int) string {
	if len(m) == 0 {
		return "—"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %s", k, commas(int64(m[k])))
	}
	return strings.Join(parts, ", ")
}

// ---------------------------------------------------------------- phase 0 ---

type stepCost struct {
	key   string
	name  string
	cpu   time.Duration // process CPU per request
	wall  time.Duration // wall time per request
	alloc float64       // bytes allocated per request
	kind  int           // stepMain, stepPart (of the step above) or stepAlt (not done today)
}

const (
	stepMain = iota
	stepPart
	stepAlt
)

type costReport struct {
	k     int
	steps []stepCost
	total time.Duration // CPU per request, sum of the top-level steps
	alloc float64
	by    map[string]time.Duration
}

// scenario is a variant of the per-request path, costed from measured steps.
type scenario struct {
	name string
	cpu  time.Duration
}

func (c *costReport) scenarios() []scenario {
	b := c.by
	today := b["decode"] + b["decodereq"] + b["solve"] + b["encode"]
	validated := b["alt.decode"] + b["decodereq"] + b["solve"] + b["alt.new"]
	return []scenario{
		{"today (processor.handle)", today},
		{"with schema validation of every request and result (the processor's slow path)", validated},
		{"Prepared.Solve alone", b["solve"]},
	}
}

// perRequestCost runs the processor's per-request steps (processor.handle) on k request
// events in this goroutine alone, with no log, step by step, and charges each step the
// process CPU time (getrusage, so GC work on other threads counts) it took. The
// machine's other load does not inflate CPU time the way it does wall time.
func perRequestCost(m *engine.Model, recs []streams.Record) (*costReport, error) {
	pm, err := engine.Prepare(m)
	if err != nil {
		return nil, err
	}
	k := len(recs)
	r := &costReport{k: k}
	r.by = map[string]time.Duration{}
	measure := func(key, name string, kind int, f func(i int) error) error {
		runtime.GC()
		s0 := snapshot(0)
		for i := 0; i < k; i++ {
			if err := f(i); err != nil {
				return fmt.Errorf("%s: request %d: %w", name, i, err)
			}
		}
		s1 := snapshot(0)
		c := stepCost{key: key, name: name, kind: kind,
			cpu: (s1.self - s0.self) / time.Duration(k), wall: s1.t.Sub(s0.t) / time.Duration(k),
			alloc: float64(s1.heapAllocBytes-s0.heapAllocBytes) / float64(k)}
		r.steps = append(r.steps, c)
		r.by[key] = c.cpu
		if kind == stepMain {
			r.total += c.cpu
			r.alloc += c.alloc
		}
		return nil
	}
	envs := make([]event.Envelope, k)
	reqs := make([]engine.Request, k)
	ids := make([]string, k)
	res := make([]engine.Result, k)
	trusted := make([][]byte, k)
	steps := []struct {
		key, name string
		kind      int
		f         func(i int) error
	}{
		// What processor.handle does today: the envelope by DecodeTrusted, the request by
		// the engine's strict decoder, the result by EncodeTrusted (no schema validation on
		// the hot path; the tests hold both to the schemas).
		{"decode", "event.DecodeTrusted (request envelope, one pass)", stepMain, func(i int) (err error) {
			envs[i], err = event.DecodeTrusted(recs[i].Value)
			return
		}},
		{"decodereq", "engine.DecodeRequest (strict, field paths)", stepMain, func(i int) (err error) {
			reqs[i], err = engine.DecodeRequest(envs[i].Data)
			ids[i] = reqs[i].RequestID
			if ids[i] == "" {
				ids[i] = envs[i].ID
			}
			reqs[i].RequestID = ids[i]
			return
		}},
		{"solve", "Prepared.Solve", stepMain, func(i int) error {
			res[i] = pm.Solve(&reqs[i])
			if res[i].Status != engine.StatusOptimal {
				return fmt.Errorf("status %s", res[i].Status)
			}
			res[i].Engine.ElapsedMicros = 0
			return nil
		}},
		{"encode", "event.EncodeTrusted (result event)", stepMain, func(i int) (err error) {
			trusted[i], err = event.EncodeTrusted(event.OptimizationCompleted, "atlas/processor", ids[i],
				event.ResultID(ids[i], event.OptimizationCompleted), envs[i].Time, res[i])
			return
		}},
		// The fully validated path the processor took before (and still takes for what
		// DecodeTrusted refuses): what skipping the schemas saves.
		{"alt.decode", "event.Decode with schema validation", stepAlt, func(i int) (err error) {
			_, err = event.Decode(recs[i].Value)
			return
		}},
		{"alt.new", "event.New + event.Encode with schema validation", stepAlt, func(i int) error {
			out, err := event.New(event.OptimizationCompleted, "atlas/processor", ids[i], res[i],
				event.ResultID(ids[i], event.OptimizationCompleted), envs[i].Time)
			if err != nil {
				return err
			}
			_, err = event.Encode(out)
			return err
		}},
	}
	for _, st := range steps {
		if err := measure(st.key, st.name, st.kind, st.f); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func writeLatCSV(file string, start time.Time, sched, acked, recv, reqT, resT []time.Time) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "i,scheduled_ms,append_ms,log_ms,e2e_ms")
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 3, 64) }
	for i := range sched {
		logMs := ""
		if !reqT[i].IsZero() && !resT[i].IsZero() {
			logMs = ms(resT[i].Sub(reqT[i]))
		}
		fmt.Fprintf(w, "%d,%s,%s,%s,%s\n", i, ms(sched[i].Sub(start)), ms(acked[i].Sub(sched[i])), logMs, ms(recv[i].Sub(sched[i])))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// procBatchText names the processor's batch size for the report.
func procBatchText(n int) string {
	if n <= 0 {
		return "512 (default)"
	}
	return strconv.Itoa(n)
}
