package api

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

func TestParseRateSpec(t *testing.T) {
	good := map[string]RateSpec{
		"10/s:20":  {10, time.Second, 20},
		"1/s:5":    {1, time.Second, 5},
		"60/m":     {60, time.Minute, 60},
		"1000/h:1": {1000, time.Hour, 1},
		" 5 / s ":  {5, time.Second, 5},
		"":         {},
		"off":      {},
		"0":        {},
	}
	for in, want := range good {
		got, err := ParseRateSpec(in)
		if err != nil || got != want {
			t.Fatalf("%q: %+v %v, want %+v", in, got, err, want)
		}
		if want.Enabled() {
			again, err := ParseRateSpec(got.String())
			if err != nil || again != got {
				t.Fatalf("%q does not round-trip through %q", in, got.String())
			}
		}
	}
	for _, bad := range []string{"10", "10/d", "0/s", "-1/s", "x/s", "10/s:0", "10/s:x", "10/s:", "2000000/s", "1.5/s", "10/s:20:30"} {
		if s, err := ParseRateSpec(bad); err == nil {
			t.Fatalf("%q accepted as %+v", bad, s)
		}
	}
}

// headerInt reads an integer header, failing the test when it is missing.
func headerInt(t *testing.T, resp *http.Response, name string) int {
	t.Helper()
	v, err := strconv.Atoi(resp.Header.Get(name))
	if err != nil {
		t.Fatalf("%s: %q", name, resp.Header.Get(name))
	}
	return v
}

func TestRateLimitPerClient(t *testing.T) {
	clk := newClock()
	e := newEnv(t, Security{Auth: keysAuth(t, clk.Now), Now: clk.Now,
		RateLimit: RateSpec{Count: 2, Per: time.Minute, Burst: 3}}, false)
	get := func(key string) *http.Response {
		resp, _ := e.do(t, "GET", "/api/v1/models", "", "X-API-Key", key)
		return resp
	}
	// the burst, with the headers counting down on successful answers
	for i := 0; i < 3; i++ {
		resp := get(userKey)
		if resp.StatusCode != 200 || headerInt(t, resp, "X-RateLimit-Limit") != 3 || headerInt(t, resp, "X-RateLimit-Remaining") != 2-i {
			t.Fatalf("request %d: %d %v", i, resp.StatusCode, resp.Header)
		}
		if resp.Header.Get("Retry-After") != "" {
			t.Fatal("Retry-After on a successful answer")
		}
	}
	resp, body := e.do(t, "GET", "/api/v1/models", "", "X-API-Key", userKey)
	if resp.StatusCode != http.StatusTooManyRequests || body["error"] == nil {
		t.Fatalf("over the limit: %d %v", resp.StatusCode, body)
	}
	// one token comes back every 30 s; the bucket is full after 90 s
	if headerInt(t, resp, "Retry-After") != 30 || headerInt(t, resp, "X-RateLimit-Remaining") != 0 || headerInt(t, resp, "X-RateLimit-Reset") != 90 {
		t.Fatalf("429 headers: %v", resp.Header)
	}
	// another client has its own bucket
	if resp := get(adminKey); resp.StatusCode != 200 {
		t.Fatalf("other client: %d", resp.StatusCode)
	}
	// /health is never limited
	for i := 0; i < 10; i++ {
		if resp, _ := e.do(t, "GET", "/health", ""); resp.StatusCode != 200 || resp.Header.Get("X-RateLimit-Limit") != "" {
			t.Fatalf("/health: %d %v", resp.StatusCode, resp.Header)
		}
	}
	clk.Advance(29 * time.Second)
	if resp := get(userKey); resp.StatusCode != 429 {
		t.Fatalf("before the refill: %d", resp.StatusCode)
	}
	clk.Advance(time.Second)
	if resp := get(userKey); resp.StatusCode != 200 {
		t.Fatalf("after the refill: %d", resp.StatusCode)
	}
}

func TestOptimizeRateLimitAndFailedAuth(t *testing.T) {
	clk := newClock()
	e := newEnv(t, Security{Auth: keysAuth(t, clk.Now), Now: clk.Now,
		RateLimit:         RateSpec{Count: 100, Per: time.Second, Burst: 100},
		OptimizeRateLimit: RateSpec{Count: 1, Per: time.Second, Burst: 2}}, false)
	codes := ""
	for i := 0; i < 4; i++ {
		resp, _ := e.do(t, "POST", "/api/v1/optimize?wait=0", `{"constraints": {"total": 10}}`, "X-API-Key", userKey)
		codes += fmt.Sprint(resp.StatusCode, " ")
	}
	if codes != "202 202 429 429 " {
		t.Fatalf("optimize burst: %s", codes)
	}
	if e.log.count("atlas.requests") != 2 {
		t.Fatalf("%d requests published", e.log.count("atlas.requests"))
	}
	// the general limit is not spent by optimize
	if resp, _ := e.do(t, "GET", "/api/v1/models", "", "X-API-Key", userKey); headerInt(t, resp, "X-RateLimit-Remaining") != 99 {
		t.Fatalf("general limit: %v", resp.Header)
	}
	// guessing keys is throttled by address: 100 failures, then 429
	var last int
	for i := 0; i < 101; i++ {
		resp, _ := e.do(t, "GET", "/api/v1/models", "", "X-API-Key", fmt.Sprintf("guess-%020d", i))
		last = resp.StatusCode
		if i < 100 && last != 401 {
			t.Fatalf("guess %d: %d", i, last)
		}
	}
	if last != 429 {
		t.Fatalf("guess 101: %d", last)
	}
}

func TestRateLimitByAddress(t *testing.T) {
	clk := newClock()
	proxies, err := ParseTrustedProxies("127.0.0.1, 10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	spec := RateSpec{Count: 1, Per: time.Hour, Burst: 1}
	// Untrusted: X-Forwarded-For is ignored, so changing it does not escape the limit.
	e := newEnv(t, Security{Now: clk.Now, RateLimit: spec}, false)
	if resp, _ := e.do(t, "GET", "/api/v1/models", "", "X-Forwarded-For", "1.1.1.1"); resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	if resp, _ := e.do(t, "GET", "/api/v1/models", "", "X-Forwarded-For", "2.2.2.2"); resp.StatusCode != 429 {
		t.Fatalf("spoofed X-Forwarded-For escaped the limit: %d", resp.StatusCode)
	}
	// Trusted: each forwarded client has its own bucket.
	e = newEnv(t, Security{Now: clk.Now, RateLimit: spec, TrustedProxies: proxies}, false)
	for _, xff := range []string{"1.1.1.1", "9.9.9.9, 3.3.3.3", "2.2.2.2, 10.1.2.3"} {
		if resp, _ := e.do(t, "GET", "/api/v1/models", "", "X-Forwarded-For", xff); resp.StatusCode != 200 {
			t.Fatalf("%s: %d", xff, resp.StatusCode)
		}
	}
	// 2.2.2.2 again, behind two trusted hops: over its limit
	if resp, _ := e.do(t, "GET", "/api/v1/models", "", "X-Forwarded-For", "2.2.2.2, 10.9.9.9"); resp.StatusCode != 429 {
		t.Fatalf("second request of 2.2.2.2: %d", resp.StatusCode)
	}
}

func TestForwardedFor(t *testing.T) {
	proxies, _ := ParseTrustedProxies("10.0.0.0/8,::1")
	trusted := func(a netip.Addr) bool {
		for _, p := range proxies {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	peer := netip.MustParseAddr("10.0.0.1")
	cases := []struct {
		headers []string
		want    string
	}{
		{nil, "10.0.0.1"},
		{[]string{"1.2.3.4"}, "1.2.3.4"},
		{[]string{"6.6.6.6, 1.2.3.4"}, "1.2.3.4"},      // the client's own claim is ignored
		{[]string{"1.2.3.4, 10.0.0.7"}, "1.2.3.4"},     // past a second trusted hop
		{[]string{"1.2.3.4", "10.0.0.7"}, "1.2.3.4"},   // across repeated headers
		{[]string{"garbage, 10.0.0.7"}, "10.0.0.7"},    // stops at what it cannot read
		{[]string{"::ffff:1.2.3.4"}, "1.2.3.4"},        // mapped addresses are unmapped
		{[]string{"10.0.0.2, 10.0.0.3"}, "10.0.0.2"},   // all trusted: the leftmost
		{[]string{"2001:db8::1 , ::1"}, "2001:db8::1"}, // IPv6
	}
	for _, c := range cases {
		if got := forwardedFor(peer, c.headers, trusted).String(); got != c.want {
			t.Fatalf("%q: %s, want %s", c.headers, got, c.want)
		}
	}
	if _, err := ParseTrustedProxies("10.0.0.0/8,nonsense"); err == nil {
		t.Fatal("nonsense accepted")
	}
}

// TestLimiterMemoryIsBounded: many clients never hold more than the cap, and clients
// whose bucket has refilled are forgotten.
func TestLimiterMemoryIsBounded(t *testing.T) {
	now := newClock().Now()
	l := newLimiter(RateSpec{Count: 1, Per: time.Second, Burst: 1}, 50)
	for i := 0; i < 1000; i++ {
		l.take(fmt.Sprintf("ip:%d", i), now)
		if n := l.len(); n > 50 {
			t.Fatalf("%d clients held", n)
		}
	}
	// After the refill time every bucket is full: later requests sweep them away.
	later := now.Add(time.Hour)
	for i := 0; i < 30; i++ {
		l.take(fmt.Sprintf("new:%d", i), later)
	}
	if n := l.len(); n != 30 {
		t.Fatalf("%d clients held, want only the 30 active ones", n)
	}
	// A client forgotten while its bucket was full starts full again: nothing is lost.
	if v := l.take("ip:999", later); !v.allowed {
		t.Fatal("a refilled client was refused")
	}
}
