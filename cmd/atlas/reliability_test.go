package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/event"
	"github.com/atlas-mmm/atlas/streams/kafka"
	"github.com/atlas-mmm/atlas/streams/processor"
)

// The test binary doubles as the atlas binary: with ATLAS_TEST_MAIN=1 it runs the
// command line instead of the tests. The reliability tests start it as a real process
// and kill it.
func TestMain(m *testing.M) {
	if os.Getenv("ATLAS_TEST_MAIN") == "1" {
		ctx, stop := signalContext()
		code := dispatch(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func atlasCmd(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "ATLAS_TEST_MAIN=1")
	return cmd
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// answered reads optimization_requests_total from a processor's /metrics.
func answered(addr string) int {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	total := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "optimization_requests_total{") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			total += int(v)
		}
	}
	return total
}

// writeRequests writes n requests against the example model, a tenth of them
// infeasible, to an NDJSON file.
func writeRequests(t *testing.T, dir string, n int) string {
	t.Helper()
	path := filepath.Join(dir, "requests.ndjson")
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		total := 100000 + float64(i%50)*5000
		c := map[string]any{"total": total}
		if i%10 == 9 {
			c["channels"] = map[string]any{"tv": map[string]any{"min": total * 2}}
		}
		line, _ := json.Marshal(map[string]any{"request_id": fmt.Sprintf("rel-%05d", i), "model_id": "acme-mmm",
			"budget": map[string]float64{"tv": total / 2, "digital": total / 2}, "constraints": c})
		b.Write(line)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type procRun struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	addr   string
}

func startProcessor(t *testing.T, args ...string) *procRun {
	t.Helper()
	addr := freePort(t)
	cmd := atlasCmd(t, append([]string{"process", "--metrics-addr", addr}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return &procRun{cmd: cmd, stderr: &stderr, addr: addr}
}

func (p *procRun) waitAnswered(t *testing.T, atLeast int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for answered(p.addr) < atLeast {
		if time.Now().After(deadline) {
			t.Fatalf("processor answered %d < %d requests in %v\n%s", answered(p.addr), atLeast, timeout, tailOf(p.stderr))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func tailOf(b *bytes.Buffer) string {
	s := b.String()
	if len(s) > 3000 {
		s = s[len(s)-3000:]
	}
	return s
}

// checkResults verifies that every request has a result, that repeated results are
// byte-identical, and returns how many events there were in all.
func checkResults(t *testing.T, l streams.Log, topics processor.Topics, n int) int {
	t.Helper()
	seen := map[string][]byte{}
	events := 0
	err := l.Read(context.Background(), topics.Results, streams.Position{}, streams.Position{}, func(m streams.Message) error {
		events++
		e, err := event.Decode(m.Value)
		if err != nil {
			return fmt.Errorf("result does not decode: %w", err)
		}
		id := e.RequestID()
		if prev, ok := seen[id]; ok && !bytes.Equal(prev, m.Value) {
			return fmt.Errorf("request %s has two different results:\n%s\n%s", id, prev, m.Value)
		}
		seen[id] = m.Value
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, ok := seen[fmt.Sprintf("rel-%05d", i)]; !ok {
			t.Fatalf("request rel-%05d has no result (%d results for %d requests)", i, len(seen), n)
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct results for %d requests", len(seen), n)
	}
	return events
}

// waitResults waits until the results topic holds a result for each of n requests, or
// the deadline passes (checkResults then names what is missing).
func waitResults(t *testing.T, l streams.Log, topics processor.Topics, n int, deadline time.Time) {
	t.Helper()
	for {
		seen := map[string]bool{}
		err := l.Read(context.Background(), topics.Results, streams.Position{}, streams.Position{}, func(m streams.Message) error {
			if e, err := event.Decode(m.Value); err == nil {
				seen[e.RequestID()] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) >= n || time.Now().After(deadline) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func registryJSON(t *testing.T, l streams.Log, topics processor.Topics) []byte {
	t.Helper()
	p, err := processor.New(processor.Config{Log: l, Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SyncModels(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(p.Registry().Models())
	return b
}

const reliabilityRequests = 10000

func TestKillProcessorJetStream(t *testing.T) {
	if testing.Short() {
		t.Skip("reliability test with real processes")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	reqs := writeRequests(t, dir, reliabilityRequests)
	for _, f := range []string{"../../examples/acme-model.json", reqs} {
		if out, err := atlasCmd(t, "produce", "--data-dir", data, f).CombinedOutput(); err != nil {
			t.Fatalf("produce %s: %v\n%s", f, err, out)
		}
	}
	// Kill the processor with SIGKILL a third of the way through, then restart it.
	p := startProcessor(t, "--data-dir", data)
	p.waitAnswered(t, reliabilityRequests/3, 60*time.Second)
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	// The embedded log is this process's to read once the processor is gone.
	topics := processor.DefaultTopics()
	before := registryFromDir(t, data, topics)

	p2 := startProcessor(t, "--data-dir", data)
	deadline := time.Now().Add(120 * time.Second)
	for last, stable := -1, 0; ; {
		time.Sleep(250 * time.Millisecond)
		n := answered(p2.addr)
		if n > 0 && n == last && lagOf(p2.addr) == 0 {
			stable++
		} else {
			stable = 0
		}
		last = n
		if stable >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted processor did not catch up (%d answered, lag %d)\n%s", n, lagOf(p2.addr), tailOf(p2.stderr))
		}
	}
	// SIGTERM: a graceful stop finishes and commits what is in flight.
	p2.cmd.Process.Signal(syscall.SIGTERM)
	if err := p2.cmd.Wait(); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, tailOf(p2.stderr))
	}
	l := openDir(t, data)
	defer l.Close()
	events := checkResults(t, l, topics, reliabilityRequests)
	t.Logf("%d result events for %d requests (%d redelivered after SIGKILL)", events, reliabilityRequests, events-reliabilityRequests)
	if after := registryJSON(t, l, topics); !bytes.Equal(before, after) {
		t.Fatalf("model registry changed across the crash:\n%s\n%s", before, after)
	}
	// A third run finds nothing left to do: the graceful stop committed everything.
	l.Close()
	p3 := startProcessor(t, "--data-dir", data)
	time.Sleep(1500 * time.Millisecond)
	p3.cmd.Process.Signal(syscall.SIGTERM)
	p3.cmd.Wait()
	l2 := openDir(t, data)
	defer l2.Close()
	if again := checkResults(t, l2, topics, reliabilityRequests); again != events {
		t.Fatalf("a restart after a graceful stop answered %d requests again", again-events)
	}
}

// lagOf reads atlas_consumer_lag for the request topic (−1 when absent).
func lagOf(addr string) int {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "atlas_consumer_lag{") {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			return int(v)
		}
	}
	return -1
}

func TestKillProcessorKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("reliability test with real processes")
	}
	brokers := envString("ATLAS_KAFKA_BROKERS", "127.0.0.1:19092")
	ctx := context.Background()
	l, err := kafka.Open(ctx, kafka.Config{Brokers: strings.Split(brokers, ",")})
	if err == nil {
		_, err = l.EndOffsets(ctx, "__atlas_probe_missing")
		if err != nil && !strings.Contains(err.Error(), "unknown") && !strings.Contains(strings.ToLower(err.Error()), "not exist") {
			l.Close()
			l = nil
		} else {
			err = nil
		}
	}
	if err != nil || l == nil {
		if os.Getenv("ATLAS_KAFKA_REQUIRED") != "" {
			t.Fatalf("Kafka at %s is required: %v", brokers, err)
		}
		t.Skipf("no Kafka at %s (deploy/local/kafka.sh start): %v", brokers, err)
	}
	defer l.Close()
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	topics := processor.Topics{Models: "rel.models." + suffix, Requests: "rel.requests." + suffix,
		Results: "rel.results." + suffix, DeadLetters: "rel.dead." + suffix}
	flags := []string{"--log", "kafka", "--kafka-brokers", brokers, "--topic-models", topics.Models,
		"--topic-requests", topics.Requests, "--topic-results", topics.Results, "--topic-deadletter", topics.DeadLetters}
	dir := t.TempDir()
	reqs := writeRequests(t, dir, reliabilityRequests)
	for _, f := range []string{"../../examples/acme-model.json", reqs} {
		if out, err := atlasCmd(t, append(append([]string{"produce"}, flags...), f)...).CombinedOutput(); err != nil {
			t.Fatalf("produce %s: %v\n%s", f, err, out)
		}
	}
	before := registryJSON(t, l, topics)
	group := "rel-" + suffix
	p := startProcessor(t, append(flags, "--group", group)...)
	p.waitAnswered(t, reliabilityRequests/3, 90*time.Second)
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	p2 := startProcessor(t, append(flags, "--group", group)...)
	deadline := time.Now().Add(180 * time.Second)
	for {
		seen := map[string]bool{}
		l.Read(ctx, topics.Results, streams.Position{}, streams.Position{}, func(m streams.Message) error {
			seen[string(m.Key)] = true
			return nil
		})
		if len(seen) >= reliabilityRequests {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests answered after the restart\n%s", len(seen), reliabilityRequests, tailOf(p2.stderr))
		}
		time.Sleep(500 * time.Millisecond)
	}
	p2.cmd.Process.Signal(syscall.SIGTERM)
	if err := p2.cmd.Wait(); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, tailOf(p2.stderr))
	}
	events := checkResults(t, l, topics, reliabilityRequests)
	t.Logf("%d result events for %d requests (%d redelivered after SIGKILL)", events, reliabilityRequests, events-reliabilityRequests)
	if after := registryJSON(t, l, topics); !bytes.Equal(before, after) {
		t.Fatalf("model registry differs:\n%s\n%s", before, after)
	}
}

func openDir(t *testing.T, data string) streams.Log {
	t.Helper()
	lc := logConfig{backend: "jetstream", dataDir: data, partitions: 4, topics: processor.DefaultTopics()}
	o, err := lc.open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return o.log
}

func registryFromDir(t *testing.T, data string, topics processor.Topics) []byte {
	t.Helper()
	l := openDir(t, data)
	defer l.Close()
	return registryJSON(t, l, topics)
}

// TestTwoProcessorsShareKafka: two processors in one consumer group split the request
// partitions between them; together they answer every request exactly once (no crash,
// so no redelivery).
func TestTwoProcessorsShareKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	brokers := envString("ATLAS_KAFKA_BROKERS", "127.0.0.1:19092")
	ctx := context.Background()
	l, err := kafka.Open(ctx, kafka.Config{Brokers: strings.Split(brokers, ",")})
	if err != nil {
		if os.Getenv("ATLAS_KAFKA_REQUIRED") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	defer l.Close()
	if _, err := l.EndOffsets(ctx, "__atlas_probe"); err != nil && !strings.Contains(strings.ToLower(err.Error()), "unknown") && !strings.Contains(strings.ToLower(err.Error()), "not exist") {
		if os.Getenv("ATLAS_KAFKA_REQUIRED") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	topics := processor.Topics{Models: "two.models." + suffix, Requests: "two.requests." + suffix,
		Results: "two.results." + suffix, DeadLetters: "two.dead." + suffix}
	flags := []string{"--log", "kafka", "--kafka-brokers", brokers, "--topic-models", topics.Models,
		"--topic-requests", topics.Requests, "--topic-results", topics.Results, "--topic-deadletter", topics.DeadLetters}
	const n = 4000
	reqs := writeRequests(t, t.TempDir(), n)
	produce := func(f string) {
		if out, err := atlasCmd(t, append(append([]string{"produce"}, flags...), f)...).CombinedOutput(); err != nil {
			t.Fatalf("produce %s: %v\n%s", f, err, out)
		}
	}
	produce("../../examples/acme-model.json")
	group := "two-" + suffix
	a := startProcessor(t, append(flags, "--group", group)...)
	b := startProcessor(t, append(flags, "--group", group)...)
	defer func() {
		for _, p := range []*procRun{a, b} {
			p.cmd.Process.Signal(syscall.SIGTERM)
			p.cmd.Wait()
		}
	}()
	// Both members must be in the group before the requests arrive, or the first may
	// answer them all before the group rebalances (that is allowed, but not this test).
	for _, p := range []*procRun{a, b} {
		for deadline := time.Now().Add(60 * time.Second); ; {
			resp, err := http.Get("http://" + p.addr + "/ready")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("processor not ready\n%s", tailOf(p.stderr))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	time.Sleep(8 * time.Second) // the group's rebalance (session and rebalance timeouts)
	produce(reqs)
	deadline := time.Now().Add(120 * time.Second)
	for answered(a.addr)+answered(b.addr) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d + %d of %d answered\n%s\n%s", answered(a.addr), answered(b.addr), n, tailOf(a.stderr), tailOf(b.stderr))
		}
		time.Sleep(100 * time.Millisecond)
	}
	na, nb := answered(a.addr), answered(b.addr)
	if na == 0 || nb == 0 {
		t.Fatalf("one processor did all the work (%d / %d): the group did not share the partitions", na, nb)
	}
	// The counter goes up when a request is solved, before its result is acknowledged
	// by the log: wait for the results themselves.
	waitResults(t, l, topics, n, time.Now().Add(60*time.Second))
	// A rebalance while the second member joins may redeliver uncommitted requests
	// (at least once): repeats are allowed, but must be byte-identical (checkResults).
	events := checkResults(t, l, topics, n)
	t.Logf("processors answered %d and %d requests; %d result events", na, nb, events)
}
