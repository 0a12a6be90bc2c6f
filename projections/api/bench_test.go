package api

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// BenchmarkGuard measures what the protections add to a request: the bare routes
// against the full chain with an API key, rate limits, CORS and metrics.
func BenchmarkGuard(b *testing.B) {
	keys, _ := ParseAPIKeys("alice:"+userKey, false)
	auth, err := NewAuthenticator(AuthConfig{Keys: keys})
	if err != nil {
		b.Fatal(err)
	}
	s := New(Config{Logger: zerolog.Nop(), Registry: prometheus.NewRegistry(), OpenAPI: []byte(`{}`),
		Security: Security{Auth: auth, CORSOrigins: []string{"https://app.example.com"},
			RateLimit: RateSpec{Count: 1_000_000, Per: time.Second, Burst: 1_000_000}}})
	for name, h := range map[string]http.Handler{"bare": s.mux, "secured": s} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest("GET", "/openapi.json", nil)
				r.Header.Set("X-API-Key", userKey)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatal(w.Code)
				}
			}
		})
	}
}
