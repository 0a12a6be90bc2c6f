package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/atlas-mmm/atlas/projections/store/sqlite"
	"github.com/atlas-mmm/atlas/streams"
)

// memLog is an in-memory event log: it keeps what the API appends.
type memLog struct {
	mu   sync.Mutex
	recs map[string][]streams.Record
}

func (m *memLog) Append(_ context.Context, topic string, recs ...streams.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.recs == nil {
		m.recs = map[string][]streams.Record{}
	}
	m.recs[topic] = append(m.recs[topic], recs...)
	return nil
}

func (m *memLog) count(topic string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.recs[topic])
}

// syncBuffer is a log destination safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// clock is a settable time source for rate limits and token expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a Server with its real wiring over HTTP, and what it wrote.
type env struct {
	srv  *httptest.Server
	api  *Server
	log  *memLog
	logs *syncBuffer
	reg  *prometheus.Registry
}

// newEnv starts the API on an in-memory SQLite store with sec; tls serves HTTPS.
func newEnv(t *testing.T, sec Security, tls bool) *env {
	t.Helper()
	st, err := sqlite.Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	e := &env{log: &memLog{}, logs: &syncBuffer{}, reg: prometheus.NewRegistry()}
	e.api = New(Config{Log: e.log, Store: st, Logger: zerolog.New(e.logs).Level(zerolog.DebugLevel),
		Metrics: promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{}), Registry: e.reg, OpenAPI: []byte(`{}`),
		Security: sec, Version: "test"})
	if tls {
		e.srv = httptest.NewTLSServer(e.api)
	} else {
		e.srv = httptest.NewServer(e.api)
	}
	t.Cleanup(e.srv.Close)
	return e
}

// do sends one request; headers are name, value pairs.
func (e *env) do(t *testing.T, method, path, body string, headers ...string) (*http.Response, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var v map[string]any
	json.Unmarshal(raw, &v) //nolint:errcheck // some answers are not JSON objects
	return resp, v
}

const (
	userKey  = "user-key-0123456789abcdef"
	adminKey = "admin-key-0123456789abcdef"
	secret   = "0123456789abcdef0123456789abcdef-test-secret"
)

// keysAuth accepts userKey (id "alice") and adminKey (id "root", admin).
func keysAuth(t *testing.T, now func() time.Time) *Authenticator {
	t.Helper()
	users, err := ParseAPIKeys("alice:"+userKey, false)
	if err != nil {
		t.Fatal(err)
	}
	admins, err := ParseAPIKeys("root:"+adminKey, true)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAuthenticator(AuthConfig{Keys: append(users, admins...), JWTSecret: []byte(secret), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

const smallModel = `{"model_id": "m1", "channels": {"tv": {"curve": {"type": "linear", "beta": 1.5}}, "radio": {"curve": {"type": "linear", "beta": 1.2}}}}`
