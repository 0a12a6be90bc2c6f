package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// serveForTest runs `atlas serve` (the production wiring) in this process.
func serveForTest(t *testing.T) (base string, stop func()) {
	t.Helper()
	addr := freePort(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out, errb bytes.Buffer
	go func() {
		done <- runServe(ctx, []string{"--data-dir", filepath.Join(dir, "data"), "--http-addr", addr,
			"--demo-model", "../../examples/demo-model.json"}, nil, &out, &errb)
	}()
	base = "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("atlas serve not ready\n%s", errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return base, func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("atlas serve exited with %d\n%s", code, errb.String())
		}
	}
}

// call does one HTTP request and checks the answer against the OpenAPI document: the
// route and status must be documented and the documented required fields present.
func call(t *testing.T, doc map[string]any, method, base, path string, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var v map[string]any
	json.Unmarshal(raw, &v) //nolint:errcheck // /metrics is text
	if doc != nil {
		checkAgainstDoc(t, doc, method, path, resp.StatusCode, v)
	}
	return resp.StatusCode, v
}

var pathParam = regexp.MustCompile(`\{[^}]+\}`)

func checkAgainstDoc(t *testing.T, doc map[string]any, method, path string, code int, body map[string]any) {
	t.Helper()
	path = strings.SplitN(path, "?", 2)[0]
	paths := doc["paths"].(map[string]any)
	var op map[string]any
	for tmpl, item := range paths {
		re := "^" + pathParam.ReplaceAllString(regexp.QuoteMeta(tmpl), `[^/]+`) + "$"
		re = strings.ReplaceAll(re, `\{`, "{")
		if ok, _ := regexp.MatchString("^"+pathParam.ReplaceAllString(tmpl, `[^/]+`)+"$", path); ok {
			if o, ok := item.(map[string]any)[strings.ToLower(method)]; ok {
				op = o.(map[string]any)
			}
		}
		_ = re
	}
	if op == nil {
		t.Errorf("%s %s is not in the OpenAPI document", method, path)
		return
	}
	r, ok := op["responses"].(map[string]any)[fmt.Sprint(code)]
	if !ok {
		t.Errorf("%s %s answered %d, which the OpenAPI document does not list", method, path, code)
		return
	}
	schema := resolve(doc, r.(map[string]any))
	if schema == nil || body == nil {
		return
	}
	if req, ok := schema["required"].([]any); ok {
		for _, f := range req {
			if _, ok := body[f.(string)]; !ok {
				t.Errorf("%s %s %d: required field %q missing from %v", method, path, code, f, body)
			}
		}
	}
}

func resolve(doc map[string]any, resp map[string]any) map[string]any {
	if ref, ok := resp["$ref"].(string); ok && strings.HasPrefix(ref, "#/components/responses/") {
		resp, _ = doc["components"].(map[string]any)["responses"].(map[string]any)[strings.TrimPrefix(ref, "#/components/responses/")].(map[string]any)
	}
	c, ok := resp["content"].(map[string]any)
	if !ok {
		return nil
	}
	j, ok := c["application/json"].(map[string]any)
	if !ok {
		return nil
	}
	s, _ := j["schema"].(map[string]any)
	if ref, ok := s["$ref"].(string); ok && strings.HasPrefix(ref, "#/components/schemas/") {
		s = doc["components"].(map[string]any)["schemas"].(map[string]any)[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any)
	}
	return s
}

func TestServeAPI(t *testing.T) {
	base, stop := serveForTest(t)
	defer stop()
	_, doc := call(t, nil, "GET", base, "/openapi.json", "")
	if doc["openapi"] == nil {
		t.Fatal("no OpenAPI document")
	}

	// The deployment guide's smoke test, verbatim.
	if code, _ := call(t, doc, "GET", base, "/health", ""); code != 200 {
		t.Fatalf("/health: %d", code)
	}
	if code, _ := call(t, doc, "GET", base, "/api/v1/models", ""); code != 200 {
		t.Fatalf("/api/v1/models: %d", code)
	}
	code, res := call(t, doc, "POST", base, "/api/v1/optimize", `{"budget": {"tv": 100000, "digital": 200000}, "constraints": {"total": 300000}}`)
	if code != 200 && code != 201 {
		t.Fatalf("/api/v1/optimize: %d %v", code, res)
	}
	if res["status"] != "optimal" || res["model_id"] != "atlas-demo" {
		t.Fatalf("smoke optimize: %v", res)
	}
	id := res["request_id"].(string)

	if code, _ := call(t, doc, "GET", base, "/ready", ""); code != 200 {
		t.Fatalf("/ready: %d", code)
	}
	if code, _ := call(t, doc, "GET", base, "/metrics", ""); code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	// the projection lag gauges the dashboards read
	if resp, err := http.Get(base + "/metrics"); err == nil {
		text, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, name := range []string{`atlas_projection_lag{topic="atlas.results"}`, `atlas_projection_lag_seconds{topic="atlas.results"}`} {
			if !strings.Contains(string(text), name) {
				t.Errorf("/metrics has no %s", name)
			}
		}
	} else {
		t.Fatal(err)
	}
	// the result reaches the read model, with its audit trail
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, got := call(t, doc, "GET", base, "/api/v1/results/"+id, "")
		if code == 200 {
			if got["request_id"] != id {
				t.Fatalf("result: %v", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("result never projected (%d)", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	code, audit := call(t, doc, "GET", base, "/api/v1/results/"+id+"/audit", "")
	checks, _ := audit["checks"].(map[string]any)
	if code != 200 || checks["model_hash_matches"] != true || checks["has_request"] != true || checks["has_result"] != true {
		t.Fatalf("audit: %d %v", code, audit)
	}
	code, m := call(t, doc, "GET", base, "/api/v1/models/atlas-demo", "")
	if code != 200 || m["latest_version"].(float64) != 1 {
		t.Fatalf("model: %d %v", code, m)
	}
	if code, _ := call(t, doc, "GET", base, "/api/v1/models/nope", ""); code != 404 {
		t.Fatalf("unknown model: %d", code)
	}
	code, wi := call(t, doc, "POST", base, "/api/v1/whatif", `{"allocations": [{"tv": 100000}, {"digital": 5}]}`)
	if code != 200 || len(wi["results"].([]any)) != 2 {
		t.Fatalf("whatif: %d %v", code, wi)
	}

	// errors name the field
	code, e := call(t, doc, "POST", base, "/api/v1/optimize", `{"budget": {"billboards": 1}, "constraints": {"total": 10}}`)
	if code != 422 || e["field"] != "budget.billboards" {
		t.Fatalf("unknown channel: %d %v", code, e)
	}
	if code, e := call(t, doc, "POST", base, "/api/v1/optimize", `{"constraints": `); code != 400 || e["error"] == nil {
		t.Fatalf("bad JSON: %d %v", code, e)
	}
	if code, _ := call(t, doc, "POST", base, "/api/v1/optimize?wait=abc", `{}`); code != 400 {
		t.Fatalf("bad wait: %d", code)
	}
	big := `{"constraints": {"total": 1}, "request_id": "` + strings.Repeat("x", 11<<20) + `"}`
	if code, _ := call(t, doc, "POST", base, "/api/v1/optimize", big); code != 413 {
		t.Fatalf("big body: %d", code)
	}
	if code, _ := call(t, doc, "GET", base, "/api/v1/results/none-such", ""); code != 404 {
		t.Fatalf("unknown result: %d", code)
	}
	if code, _ := call(t, doc, "GET", base, "/api/v1/results?limit=0", ""); code != 400 {
		t.Fatalf("bad limit: %d", code)
	}
	if code, _ := call(t, doc, "GET", base, "/api/v1/results?cursor=%25%25bad", ""); code != 400 {
		t.Fatalf("bad cursor: %d", code)
	}

	// accepted without waiting, then listed with pagination
	const n = 120
	for i := 0; i < n; i++ {
		code, acc := call(t, doc, "POST", base, "/api/v1/optimize?wait=0",
			fmt.Sprintf(`{"request_id": "page-%03d", "constraints": {"total": %d}}`, i, 100000+i*1000))
		if code != 202 || acc["request_id"] != fmt.Sprintf("page-%03d", i) {
			t.Fatalf("accepted: %d %v", code, acc)
		}
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		seen := map[string]bool{}
		cursor, pages := "", 0
		for {
			q := "/api/v1/results?limit=50"
			if cursor != "" {
				q += "&cursor=" + cursor
			}
			code, page := call(t, doc, "GET", base, q, "")
			if code != 200 {
				t.Fatalf("results page: %d %v", code, page)
			}
			pages++
			for _, r := range page["results"].([]any) {
				rid := r.(map[string]any)["request_id"].(string)
				if seen[rid] {
					t.Fatalf("%s listed twice", rid)
				}
				seen[rid] = true
			}
			next, _ := page["next_cursor"].(string)
			if next == "" {
				break
			}
			cursor = next
		}
		if len(seen) == n+2 { // the smoke request, the rejected one, and these
			if pages != 3 {
				t.Fatalf("%d pages for %d results of 50", pages, n+2)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d results listed", len(seen), n+2)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestKillServeDuringBurst: SIGKILL `atlas serve` while thousands of requests are being
// accepted; after a restart every accepted (202) request has exactly one result row.
func TestKillServeDuringBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("reliability test with real processes")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	start := func() (*exec.Cmd, string) {
		addr := freePort(t)
		cmd := atlasCmd(t, "serve", "--data-dir", data, "--http-addr", addr, "--demo-model", "../../examples/demo-model.json")
		cmd.Stdout = io.Discard
		cmd.Stderr = io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		base := "http://" + addr
		deadline := time.Now().Add(30 * time.Second)
		for {
			if resp, err := http.Get(base + "/ready"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return cmd, base
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("atlas serve not ready")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	cmd, base := start()
	var mu sync.Mutex
	accepted := map[string]bool{}
	var wg sync.WaitGroup
	stopBurst := make(chan struct{})
	client := &http.Client{Timeout: 5 * time.Second}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stopBurst:
					return
				default:
				}
				id := fmt.Sprintf("burst-%d-%05d", w, i)
				body := fmt.Sprintf(`{"request_id": %q, "constraints": {"total": %d}}`, id, 100000+i*100)
				resp, err := client.Post(base+"/api/v1/optimize?wait=0", "application/json", strings.NewReader(body))
				if err != nil {
					return // the server is gone
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					mu.Lock()
					accepted[id] = true
					mu.Unlock()
				}
			}
		}(w)
	}
	for {
		mu.Lock()
		n := len(accepted)
		mu.Unlock()
		if n >= 2000 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	close(stopBurst)
	wg.Wait()
	t.Logf("%d requests accepted before the kill", len(accepted))

	cmd2, base2 := start()
	defer func() { cmd2.Process.Signal(syscall.SIGTERM); cmd2.Wait() }()
	deadline := time.Now().Add(90 * time.Second)
	for {
		seen := map[string]int{}
		cursor := ""
		for {
			q := base2 + "/api/v1/results?limit=1000"
			if cursor != "" {
				q += "&cursor=" + cursor
			}
			resp, err := http.Get(q)
			if err != nil {
				t.Fatal(err)
			}
			var page struct {
				Results []struct {
					RequestID string `json:"request_id"`
				} `json:"results"`
				NextCursor string `json:"next_cursor"`
			}
			json.NewDecoder(resp.Body).Decode(&page)
			resp.Body.Close()
			for _, r := range page.Results {
				seen[r.RequestID]++
			}
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
		missing := 0
		for id := range accepted {
			if seen[id] == 0 {
				missing++
			}
		}
		for id, c := range seen {
			if c != 1 {
				t.Fatalf("%s has %d result rows", id, c)
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d accepted requests have no result row", missing)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
