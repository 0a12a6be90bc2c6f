package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"

	"github.com/atlas-mmm/atlas/projections/store/sqlite"
)

// The fuzz targets cover every decoder of untrusted HTTP input: request bodies, query
// parameters and cursors, the credentials headers, X-Forwarded-For, and the operator's
// rate-limit, key and proxy lists. `make fuzz` runs each for FUZZTIME; `go test`
// replays the seeds.

func FuzzParseRateSpec(f *testing.F) {
	for _, s := range []string{"10/s:20", "1/s:5", "60/m", "1000/h:1", "off", "", "0", "1/d", "9999999/s", "5/s:", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseRateSpec(text)
		if err != nil {
			return
		}
		if !s.Enabled() {
			return
		}
		if s.Count < 1 || s.Burst < 1 || s.Count > maxRateCount || s.Burst > maxRateCount || s.limit() <= 0 {
			t.Fatalf("%q gave %+v", text, s)
		}
		again, err := ParseRateSpec(s.String())
		if err != nil || again != s {
			t.Fatalf("%q: %+v does not round-trip (%v)", text, s, err)
		}
	})
}

func FuzzParseAPIKeys(f *testing.F) {
	for _, s := range []string{"ci:abcdefghijklmnop", "abcdefghijklmnop,qrstuvwxyz012345", "a:b:cdefghijklmnopqr", ",,", "x: y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		keys, err := ParseAPIKeys(list, false)
		if err != nil {
			for _, entry := range strings.Split(list, ",") {
				_, key, _ := strings.Cut(strings.TrimSpace(entry), ":")
				if len(key) >= minKeyLen && strings.Contains(err.Error(), key) {
					t.Fatalf("the error repeats a key: %v", err)
				}
			}
			return
		}
		for _, k := range keys {
			if !keyIDPattern.MatchString(k.ID) || len(k.Key) < minKeyLen || strings.ContainsAny(k.Key, " \t\r\n,") {
				t.Fatalf("%q gave %+v", list, k)
			}
		}
	})
}

func FuzzForwardedFor(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "6.6.6.6, 1.2.3.4, 10.0.0.7", "garbage", "::ffff:1.2.3.4", "", ",,,", "2001:db8::1%eth0"} {
		f.Add(s, "10.0.0.0/8")
	}
	f.Fuzz(func(t *testing.T, xff, proxies string) {
		pfx, err := ParseTrustedProxies(proxies)
		if err != nil {
			return
		}
		trusted := func(a netip.Addr) bool {
			for _, p := range pfx {
				if p.Contains(a) {
					return true
				}
			}
			return false
		}
		peer := netip.MustParseAddr("10.0.0.1")
		got := forwardedFor(peer, []string{xff}, trusted)
		// the answer is the peer or one of the listed hops
		if got == peer {
			return
		}
		for _, hop := range strings.Split(xff, ",") {
			if a, err := netip.ParseAddr(strings.TrimSpace(hop)); err == nil && a.Unmap() == got {
				return
			}
		}
		t.Fatalf("%q: %s is not in the chain", xff, got)
	})
}

// FuzzAuthenticate: no header pair authenticates unless it carries a configured key
// or a token the secret signed.
func FuzzAuthenticate(f *testing.F) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	keys, _ := ParseAPIKeys("alice:"+userKey, false)
	a, err := NewAuthenticator(AuthConfig{Keys: keys, JWTSecret: []byte(secret), Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "bob", "exp": now.Add(time.Hour).Unix()}).SignedString([]byte(secret))
	f.Add("", "Bearer "+good)
	f.Add(userKey, "")
	f.Add("", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJib2IiLCJleHAiOjk5OTk5OTk5OTl9.")
	f.Add("", "bearer x.y.z")
	f.Add("", "Basic abc")
	f.Fuzz(func(t *testing.T, apiKey, authz string) {
		r := httptest.NewRequest("GET", "/api/v1/models", nil)
		r.Header["X-Api-Key"] = []string{apiKey}
		r.Header["Authorization"] = []string{authz}
		p, err := a.Authenticate(r)
		if err != nil {
			var te *tokenError
			if errors.As(err, &te) && strings.Contains(te.reason, secret) {
				t.Fatal("a reason repeats the secret")
			}
			return
		}
		switch p.Method {
		case "api_key":
			if apiKey != userKey || p.ID != "alice" {
				t.Fatalf("key %q authenticated as %+v", apiKey, p)
			}
		case "jwt":
			// only a token the secret signed with HS256 gets here
			tok := strings.TrimSpace(authz[len("Bearer"):])
			parsed, err := jwt.Parse(tok, func(tk *jwt.Token) (any, error) { return []byte(secret), nil },
				jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(func() time.Time { return now }))
			if err != nil || !parsed.Valid || p.ID == "" {
				t.Fatalf("token %q authenticated as %+v (%v)", tok, p, err)
			}
		default:
			t.Fatalf("unknown method %+v", p)
		}
	})
}

// fuzzServer is an API with authentication on an in-memory store, for the body and
// query fuzzers: requests carry the admin key so that every decoder is reached.
func fuzzServer(f *testing.F) *Server {
	st, err := sqlite.Open(":memory:")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		f.Fatal(err)
	}
	admins, _ := ParseAPIKeys("root:"+adminKey, true)
	auth, err := NewAuthenticator(AuthConfig{Keys: admins})
	if err != nil {
		f.Fatal(err)
	}
	return New(Config{Log: &memLog{}, Store: st, Logger: zerolog.Nop(), MaxBody: 1 << 20,
		Security: Security{Auth: auth, MaxChannels: 50, MaxAllocations: 50}})
}

// checkAnswer: a decoder never fails the server (5xx) on bad input, and errors are the
// JSON error body.
func checkAnswer(t *testing.T, w *httptest.ResponseRecorder, what string) {
	t.Helper()
	if w.Code >= 500 {
		t.Fatalf("%s: %d %s", what, w.Code, w.Body.String())
	}
	if w.Code >= 400 {
		var e apiError
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
			t.Fatalf("%s: %d with body %q", what, w.Code, w.Body.String())
		}
	}
}

var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/api/v1/models"},
	{"POST", "/api/v1/optimize?wait=0"},
	{"POST", "/api/v1/whatif"},
	{"PUT", "/admin/maintenance"},
}

func FuzzRequestBodies(f *testing.F) {
	s := fuzzServer(f)
	for i := range fuzzRoutes {
		for _, b := range []string{smallModel, `{"constraints": {"total": 100}, "budget": {"tv": 1}}`,
			`{"model": ` + smallModel + `, "allocations": [{"tv": 1}]}`, `{"enabled": true}`, `[]`, `{`, `null`, ""} {
			f.Add(uint8(i), b)
		}
	}
	f.Fuzz(func(t *testing.T, route uint8, body string) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		r := httptest.NewRequest(rt.method, rt.path, strings.NewReader(body))
		r.Header.Set("X-API-Key", adminKey)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		s.maint.set(false, "fuzz", time.Now()) // a body may switch maintenance on
		checkAnswer(t, w, rt.method+" "+rt.path+" "+body)
	})
}

func FuzzQueryParameters(f *testing.F) {
	s := fuzzServer(f)
	for _, q := range []string{"limit=10&status=optimal", "cursor=%25%25bad", "since=2026-11-26T12:00:00Z&until=x",
		"model_id=a&cursor=eyJ0IjoxfQ", "limit=-1", "wait=5s", "wait=1e308", "limit=99999999999999999999"} {
		f.Add(q, "")
		f.Add(q, "abc")
	}
	f.Fuzz(func(t *testing.T, query, id string) {
		if id == "" {
			id = "none" // an empty path segment only gets the mux's redirect to the clean path
		}
		// The raw query is set as received: malformed escapes included, as clients send them.
		for _, path := range []string{"/api/v1/results", "/api/v1/models/" + url.PathEscape(id),
			"/api/v1/results/" + url.PathEscape(id) + "/audit", "/admin/audit"} {
			r := httptest.NewRequest("GET", path, nil)
			r.URL.RawQuery = query
			r.Header.Set("X-API-Key", adminKey)
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			checkAnswer(t, w, path+"?"+query)
			// (a redirect is the mux cleaning a path such as /models/.)
			if w.Code != http.StatusOK && w.Code != http.StatusBadRequest && w.Code != http.StatusNotFound &&
				w.Code != http.StatusTemporaryRedirect && w.Code != http.StatusMovedPermanently {
				t.Fatalf("%s?%s: %d", path, query, w.Code)
			}
		}
		// ?wait= of POST /optimize
		r := httptest.NewRequest("POST", "/api/v1/optimize", strings.NewReader(`{"constraints": {"total": 1}}`))
		r.URL.RawQuery = query
		r.Header.Set("X-API-Key", adminKey)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		checkAnswer(t, w, "optimize?"+query)
	})
}
