// Command apiload measures the query API of `atlas serve` from a second process:
//
//	go run ./bench/apiload [-atlas bin/atlas] [-rate 1000] [-duration 10s] [-concurrency 16]
//
// It starts `atlas serve` on the embedded defaults in a temporary directory, then
//  1. posts requests with ?wait (the one-call path: publish, solve, answer over NATS) from
//     -concurrency clients for -duration, reporting throughput and latency percentiles;
//  2. reads single results (GET /api/v1/results/{id}) at a fixed -rate (open loop: a
//     request is sent on schedule whether or not earlier ones have returned), reporting
//     latency percentiles.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("atlas", "bin/atlas", "the atlas binary (make build)")
	rate := flag.Int("rate", 1000, "GET /results/{id} per second")
	duration := flag.Duration("duration", 10*time.Second, "length of each phase")
	conc := flag.Int("concurrency", 16, "clients posting /optimize with wait")
	model := flag.String("model", "examples/demo-model.json", "demo model")
	flag.Parse()

	dir, err := os.MkdirTemp("", "atlas-apiload-")
	must(err)
	defer os.RemoveAll(dir)
	addr := freePort()
	cmd := exec.Command(*bin, "serve", "--data-dir", dir, "--http-addr", addr, "--demo-model", *model, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	must(cmd.Start())
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	base := "http://" + addr
	waitReady(base)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second}

	// Phase 1: POST /optimize?wait=5s, closed loop.
	var ids []string
	var mu sync.Mutex
	var lat []time.Duration
	var n, fails atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	var wg sync.WaitGroup
	for c := 0; c < *conc; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				body := fmt.Sprintf(`{"request_id": "load-%d-%d", "budget": {"tv": 100000, "digital": 200000}, "constraints": {"total": %d}}`, c, i, 200000+(i%100)*1000)
				t0 := time.Now()
				resp, err := client.Post(base+"/api/v1/optimize?wait=5s", "application/json", bytes.NewBufferString(body))
				if err != nil {
					fails.Add(1)
					continue
				}
				var r struct {
					RequestID string `json:"request_id"`
				}
				json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
				d := time.Since(t0)
				if resp.StatusCode != 200 {
					fails.Add(1)
					continue
				}
				n.Add(1)
				mu.Lock()
				lat = append(lat, d)
				ids = append(ids, r.RequestID)
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	cancel()
	fmt.Printf("## atlas serve (embedded JetStream + SQLite), measured from a second process\n\n")
	fmt.Printf("| phase | requests | rate | p50 | p95 | p99 | max | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	row("POST /api/v1/optimize with wait, "+fmt.Sprint(*conc)+" clients", lat, *duration, fails.Load())

	// Let the projector catch up, then read single results at a fixed rate.
	time.Sleep(2 * time.Second)
	lat = lat[:0]
	fails.Store(0)
	interval := time.Second / time.Duration(*rate)
	total := int(duration.Seconds() * float64(*rate))
	results := make([]time.Duration, total)
	var wg2 sync.WaitGroup
	start := time.Now()
	for i := 0; i < total; i++ {
		due := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(due))
		wg2.Add(1)
		go func(i int) {
			defer wg2.Done()
			id := ids[i%len(ids)]
			resp, err := client.Get(base + "/api/v1/results/" + id)
			if err != nil {
				fails.Add(1)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				fails.Add(1)
				return
			}
			results[i] = time.Since(due) // open loop: latency counts from the scheduled send
		}(i)
	}
	wg2.Wait()
	var ok []time.Duration
	for _, d := range results {
		if d > 0 {
			ok = append(ok, d)
		}
	}
	row(fmt.Sprintf("GET /api/v1/results/{id} at %d/s", *rate), ok, time.Since(start), fails.Load())
}

func row(name string, lat []time.Duration, over time.Duration, fails int64) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) string {
		if len(lat) == 0 {
			return "—"
		}
		return fmtDur(lat[min(len(lat)-1, int(q*float64(len(lat))))])
	}
	mx := "—"
	if len(lat) > 0 {
		mx = fmtDur(lat[len(lat)-1])
	}
	fmt.Printf("| %s | %d | %.0f/s | %s | %s | %s | %s | %d |\n", name, len(lat), float64(len(lat))/over.Seconds(), p(0.50), p(0.95), p(0.99), mx, fails)
}

func fmtDur(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func waitReady(base string) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Fprintln(os.Stderr, "atlas serve did not become ready")
	os.Exit(1)
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	defer ln.Close()
	return ln.Addr().String()
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "apiload:", err)
		os.Exit(1)
	}
}
