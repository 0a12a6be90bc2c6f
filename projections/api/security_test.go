package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

func TestSecurityHeaders(t *testing.T) {
	clk := newClock()
	for _, tls := range []bool{false, true} {
		e := newEnv(t, Security{Auth: keysAuth(t, clk.Now), Now: clk.Now}, tls)
		for _, c := range []struct {
			path, key string
			code      int
		}{{"/health", "", 200}, {"/api/v1/models", userKey, 200}, {"/api/v1/models", "", 401}, {"/nope", userKey, 404}} {
			resp, _ := e.do(t, "GET", c.path, "", "X-API-Key", c.key)
			if resp.StatusCode != c.code {
				t.Fatalf("%s: %d", c.path, resp.StatusCode)
			}
			for _, kv := range securityHeaders {
				if got := resp.Header.Get(kv[0]); got != kv[1] {
					t.Fatalf("tls=%v %s: %s = %q", tls, c.path, kv[0], got)
				}
			}
			if got := resp.Header.Get("Strict-Transport-Security"); (got == hsts) != tls {
				t.Fatalf("tls=%v: Strict-Transport-Security %q", tls, got)
			}
		}
	}
	// The guide's list is there (its FastAPI middleware).
	want := map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "X-XSS-Protection": "1; mode=block"}
	for _, kv := range securityHeaders {
		delete(want, kv[0])
	}
	if len(want) != 0 || hsts != "max-age=31536000" {
		t.Fatalf("missing from the guide's headers: %v", want)
	}
}

func TestCORS(t *testing.T) {
	clk := newClock()
	e := newEnv(t, Security{Auth: keysAuth(t, clk.Now), Now: clk.Now, CORSOrigins: []string{"https://app.example.com"}}, false)
	// a preflight carries no credentials and is answered before authentication
	resp, _ := e.do(t, "OPTIONS", "/api/v1/optimize", "", "Origin", "https://app.example.com",
		"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type,x-api-key")
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers")), "x-api-key") ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	// an origin not on the list gets no CORS headers
	resp, _ = e.do(t, "OPTIONS", "/api/v1/optimize", "", "Origin", "https://evil.example.com", "Access-Control-Request-Method", "POST")
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("evil origin allowed: %v", resp.Header)
	}
	resp, _ = e.do(t, "GET", "/api/v1/models", "", "Origin", "https://evil.example.com", "X-API-Key", userKey)
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("evil origin on GET: %v", resp.Header)
	}
	// the actual request: allowed origin, exposed headers
	resp, _ = e.do(t, "GET", "/api/v1/models", "", "Origin", "https://app.example.com", "X-API-Key", userKey)
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "X-Ratelimit-Remaining") {
		t.Fatalf("CORS GET: %d %v", resp.StatusCode, resp.Header)
	}
	// without a configured list, no CORS at all
	plain := newEnv(t, Security{}, false)
	resp, _ = plain.do(t, "GET", "/api/v1/models", "", "Origin", "https://app.example.com")
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS without configuration")
	}
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t, Security{}, false)
	big := `{"constraints": {"total": 1}, "request_id": "` + strings.Repeat("x", 10<<20) + `"}`
	for _, path := range []string{"/api/v1/optimize", "/api/v1/models", "/api/v1/whatif"} {
		resp, body := e.do(t, "POST", path, big)
		if resp.StatusCode != http.StatusRequestEntityTooLarge || body["error"] == nil {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, body)
		}
	}
	// a chunked body (no Content-Length) is cut while read
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/optimize", struct{ *strings.Reader }{strings.NewReader(big)})
	req.ContentLength = -1
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked: %d", resp.StatusCode)
	}
	if e.log.count("atlas.requests") != 0 {
		t.Fatal("an oversized request was published")
	}
}

func TestCountLimits(t *testing.T) {
	e := newEnv(t, Security{MaxChannels: 2, MaxAllocations: 2}, false)
	three := `{"a": {"curve": {"type": "linear", "beta": 1}}, "b": {"curve": {"type": "linear", "beta": 1}}, "c": {"curve": {"type": "linear", "beta": 1}}}`
	cases := []struct{ path, body, field string }{
		{"/api/v1/models", `{"model_id": "big", "channels": ` + three + `}`, "channels"},
		{"/api/v1/optimize?wait=0", `{"model": {"model_id": "big", "channels": ` + three + `}, "constraints": {"total": 1}}`, "model.channels"},
		{"/api/v1/optimize?wait=0", `{"budget": {"a": 1, "b": 1, "c": 1}, "constraints": {"total": 1}}`, "budget"},
		{"/api/v1/optimize?wait=0", `{"constraints": {"total": 1, "channels": {"a": {"min": 0}, "b": {"min": 0}, "c": {"min": 0}}}}`, "constraints.channels"},
		{"/api/v1/whatif", `{"model": {"model_id": "big", "channels": ` + three + `}, "allocations": [{"a": 1}]}`, "model.channels"},
		{"/api/v1/whatif", `{"model": ` + smallModel + `, "allocations": [{"tv": 1}, {"tv": 2}, {"tv": 3}]}`, "allocations"},
		{"/api/v1/whatif", `{"model": ` + smallModel + `, "allocations": [{"tv": 1, "radio": 1, "x": 1}]}`, "allocations[0]"},
	}
	for _, c := range cases {
		resp, body := e.do(t, "POST", c.path, c.body)
		if resp.StatusCode != http.StatusRequestEntityTooLarge || body["field"] != c.field {
			t.Fatalf("%s %s: %d %v", c.path, c.field, resp.StatusCode, body)
		}
	}
	// within the limits
	if resp, body := e.do(t, "POST", "/api/v1/models", smallModel); resp.StatusCode != 202 {
		t.Fatalf("small model: %d %v", resp.StatusCode, body)
	}
	if resp, body := e.do(t, "POST", "/api/v1/whatif", `{"model": `+smallModel+`, "allocations": [{"tv": 1}, {"radio": 2}]}`); resp.StatusCode != 200 {
		t.Fatalf("what-if: %d %v", resp.StatusCode, body)
	}
}

func TestMaintenance(t *testing.T) {
	clk := newClock()
	e := newEnv(t, Security{Auth: keysAuth(t, clk.Now), Now: clk.Now, Maintenance: true}, false)
	resp, body := e.do(t, "GET", "/api/v1/models", "", "X-API-Key", userKey)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "3600" || body["retry_after"] != 3600.0 || body["error"] == nil {
		t.Fatalf("in maintenance: %d %v %v", resp.StatusCode, resp.Header, body)
	}
	for _, p := range []string{"/ready", "/openapi.json", "/api/v1/results"} {
		if resp, _ := e.do(t, "GET", p, "", "X-API-Key", userKey); resp.StatusCode != 503 {
			t.Fatalf("%s in maintenance: %d", p, resp.StatusCode)
		}
	}
	for _, p := range []string{"/health", "/metrics"} {
		if resp, _ := e.do(t, "GET", p, ""); resp.StatusCode != 200 {
			t.Fatalf("%s in maintenance: %d", p, resp.StatusCode)
		}
	}
	// only an admin may switch it
	if resp, _ := e.do(t, "PUT", "/admin/maintenance", `{"enabled": false}`, "X-API-Key", userKey); resp.StatusCode != 403 {
		t.Fatalf("user switched maintenance: %d", resp.StatusCode)
	}
	if resp, _ := e.do(t, "PUT", "/admin/maintenance", `{"enabled": false}`); resp.StatusCode != 401 {
		t.Fatalf("anonymous switched maintenance: %d", resp.StatusCode)
	}
	for _, bad := range []string{`{}`, `{"enabled": "no"}`, `{"enabled": false, "x": 1}`, `{"enabled": false} {}`} {
		if resp, _ := e.do(t, "PUT", "/admin/maintenance", bad, "X-API-Key", adminKey); resp.StatusCode/100 != 4 {
			t.Fatalf("%s: %d", bad, resp.StatusCode)
		}
	}
	resp, body = e.do(t, "PUT", "/admin/maintenance", `{"enabled": false}`, "X-API-Key", adminKey)
	if resp.StatusCode != 200 || body["enabled"] != false || body["by"] != "root" {
		t.Fatalf("admin switch: %d %v", resp.StatusCode, body)
	}
	if resp, _ := e.do(t, "GET", "/api/v1/models", "", "X-API-Key", userKey); resp.StatusCode != 200 {
		t.Fatalf("after maintenance: %d", resp.StatusCode)
	}
	if resp, body := e.do(t, "PUT", "/admin/maintenance", `{"enabled": true}`, "X-API-Key", adminKey); resp.StatusCode != 200 || body["enabled"] != true {
		t.Fatalf("switch on: %d %v", resp.StatusCode, body)
	}
	if resp, _ := e.do(t, "POST", "/api/v1/optimize?wait=0", `{"constraints": {"total": 1}}`, "X-API-Key", userKey); resp.StatusCode != 503 {
		t.Fatalf("optimize in maintenance: %d", resp.StatusCode)
	}
	if resp, body := e.do(t, "GET", "/admin/maintenance", "", "X-API-Key", adminKey); resp.StatusCode != 200 || body["enabled"] != true {
		t.Fatalf("GET /admin/maintenance: %d %v", resp.StatusCode, body)
	}

	// every admin action is audited: in the log (one "audit": true line each) and at /admin/audit
	var actions []string
	for _, line := range strings.Split(e.logs.String(), "\n") {
		var v map[string]any
		if json.Unmarshal([]byte(line), &v) == nil && v["audit"] == true {
			actions = append(actions, fmt.Sprint(v["action"], "/", v["actor"], "/", v["outcome"]))
		}
	}
	want := "admin.denied/alice/denied maintenance.disable/root/ok maintenance.enable/root/ok"
	if strings.Join(actions, " ") != want {
		t.Fatalf("audit log lines: %v, want %s", actions, want)
	}
	resp, body = e.do(t, "GET", "/admin/audit?limit=2", "", "X-API-Key", adminKey)
	entries, _ := body["entries"].([]any)
	if resp.StatusCode != 200 || len(entries) != 2 || entries[0].(map[string]any)["action"] != "maintenance.enable" ||
		entries[1].(map[string]any)["action"] != "maintenance.disable" {
		t.Fatalf("/admin/audit: %d %v", resp.StatusCode, body)
	}
}

func TestAuditModelPublication(t *testing.T) {
	clk := newClock()
	e := newEnv(t, Security{Auth: keysAuth(t, clk.Now), Now: clk.Now}, false)
	resp, body := e.do(t, "POST", "/api/v1/models", smallModel, "X-API-Key", userKey)
	if resp.StatusCode != 202 {
		t.Fatalf("publish: %d %v", resp.StatusCode, body)
	}
	var line map[string]any
	for _, l := range strings.Split(e.logs.String(), "\n") {
		var v map[string]any
		if json.Unmarshal([]byte(l), &v) == nil && v["audit"] == true {
			line = v
		}
	}
	details, _ := line["details"].(map[string]any)
	if line["action"] != "model.publish" || line["actor"] != "alice" || line["auth_method"] != "api_key" ||
		line["remote"] != "127.0.0.1" || details["model_id"] != "m1" || details["event_id"] != body["event_id"] || details["hash"] != body["hash"] {
		t.Fatalf("audit line: %v", line)
	}
	if e.log.count("atlas.models") != 1 {
		t.Fatal("model not published")
	}
	_, list := e.do(t, "GET", "/admin/audit", "", "X-API-Key", adminKey)
	if entries, _ := list["entries"].([]any); len(entries) != 1 || entries[0].(map[string]any)["actor"] != "alice" {
		t.Fatalf("/admin/audit: %v", list)
	}
}

func TestDebugStatus(t *testing.T) {
	off := newEnv(t, Security{}, false)
	if resp, _ := off.do(t, "GET", "/debug/status", ""); resp.StatusCode != 404 {
		t.Fatalf("debug off: %d", resp.StatusCode)
	}
	on := newEnv(t, Security{Debug: true}, false)
	resp, body := on.do(t, "GET", "/debug/status", "")
	mem, _ := body["memory"].(map[string]any)
	gc, _ := body["gc"].(map[string]any)
	if resp.StatusCode != 200 || body["version"] != "test" || body["goroutines"].(float64) < 1 || mem["heap_alloc_bytes"].(float64) <= 0 ||
		gc["num_gc"] == nil || body["uptime_seconds"] == nil {
		t.Fatalf("debug status: %d %v", resp.StatusCode, body)
	}
	if _, ok := openFiles(); ok && body["open_files"].(float64) < 1 {
		t.Fatalf("open files: %v", body["open_files"])
	}
	// with authentication on, it is an admin route
	clk := newClock()
	authed := newEnv(t, Security{Debug: true, Auth: keysAuth(t, clk.Now), Now: clk.Now}, false)
	if resp, _ := authed.do(t, "GET", "/debug/status", "", "X-API-Key", userKey); resp.StatusCode != 403 {
		t.Fatalf("debug for a user: %d", resp.StatusCode)
	}
	if resp, _ := authed.do(t, "GET", "/debug/status", "", "X-API-Key", adminKey); resp.StatusCode != 200 {
		t.Fatalf("debug for an admin: %d", resp.StatusCode)
	}
}

func TestHTTPMetrics(t *testing.T) {
	clk := newClock()
	e := newEnv(t, Security{Auth: keysAuth(t, clk.Now), Now: clk.Now}, false)
	for i := 0; i < 3; i++ {
		e.do(t, "GET", "/health", "")
	}
	e.do(t, "GET", "/api/v1/models", "")
	e.do(t, "GET", "/api/v1/models", "", "X-API-Key", userKey)
	e.do(t, "GET", "/whatever", "", "X-API-Key", userKey)
	// Small answers reach the client only once ServeHTTP has returned, after observe.
	families, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	histos := map[string]uint64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := labels(m)
			switch f.GetName() {
			case "atlas_http_requests_total":
				counts[key] = m.GetCounter().GetValue()
			case "atlas_http_request_duration_seconds":
				histos[key] = m.GetHistogram().GetSampleCount()
			}
		}
	}
	want := map[string]float64{"GET /health 200": 3, "GET /api/v1/models 401": 1, "GET /api/v1/models 200": 1, "unmatched 404": 1}
	for k, n := range want {
		if counts[k] != n || histos[k] != uint64(n) {
			t.Fatalf("%s: counter %v, histogram %v (all: %v)", k, counts[k], histos[k], counts)
		}
	}
}

func labels(m *dto.Metric) string {
	var route, code string
	for _, l := range m.GetLabel() {
		switch l.GetName() {
		case "route":
			route = l.GetValue()
		case "code":
			code = l.GetValue()
		}
	}
	return route + " " + code
}
