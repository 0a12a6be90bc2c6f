package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
)

// TestSmoke runs atlas smoke against a real atlas serve (with the demo model), through
// a proxy that demands the credentials, and against servers that fail.
func TestSmoke(t *testing.T) {
	base, stop := serveForTest(t)
	defer stop()

	t.Run("passes against atlas serve", func(t *testing.T) {
		code, out, errs := run(t, "", "smoke", "--url", base, "--timeout", "60s")
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, out, errs)
		}
		t.Logf("\n%s", out)
		for _, name := range []string{"health", "ready", "models", "optimize", "result"} {
			if !strings.Contains(out, "✓ "+name) {
				t.Errorf("no ✓ for %s:\n%s", name, out)
			}
		}
		if strings.Contains(out, "✗") || !strings.Contains(out, "using atlas-demo") || !strings.Contains(out, "Smoke tests: 5/5 passed") {
			t.Errorf("unexpected report:\n%s", out)
		}
	})

	target, _ := url.Parse(base)
	proxy := httputil.NewSingleHostReverseProxy(target)
	guarded := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Key") != "k-123" || r.Header.Get("Authorization") != "Bearer t-456" {
			http.Error(w, `{"error": "unauthorized"}`, http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer guarded.Close()
	t.Run("sends the credentials", func(t *testing.T) {
		code, out, errs := run(t, "", "smoke", "--url", guarded.URL, "--api-key", "k-123", "--jwt", "t-456", "--model", "atlas-demo")
		if code != 0 || !strings.Contains(out, "5/5 passed") {
			t.Fatalf("exit %d\n%s%s", code, out, errs)
		}
	})
	t.Run("fails without them", func(t *testing.T) {
		code, out, _ := run(t, "", "smoke", "--url", guarded.URL)
		if code != 1 || !strings.Contains(out, "✗ models") || !strings.Contains(out, "401") || !strings.Contains(out, "--api-key") {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})
	t.Run("unknown model", func(t *testing.T) {
		code, out, _ := run(t, "", "smoke", "--url", base, "--model", "no-such-model")
		if code != 1 || !strings.Contains(out, `✗ models`) || !strings.Contains(out, `"no-such-model" is not an active model`) ||
			!strings.Contains(out, "✗ optimize") || !strings.Contains(out, "skipped") || !strings.Contains(out, "✓ health") {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})

	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error": "boom"}`, http.StatusInternalServerError)
	}))
	defer broken.Close()
	t.Run("server answering 500", func(t *testing.T) {
		code, out, _ := run(t, "", "smoke", "--url", broken.URL)
		if code != 1 || !strings.Contains(out, "✗ health") || !strings.Contains(out, "500, want 200") || !strings.Contains(out, "0/5 passed") {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})
	t.Run("nothing listening", func(t *testing.T) {
		code, out, _ := run(t, "", "smoke", "--url", "http://"+freePort(t), "--timeout", "5s")
		if code != 1 || !strings.Contains(out, "✗ health") || !strings.Contains(out, "connection refused") {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})
	t.Run("bad URL", func(t *testing.T) {
		if code, _, errs := run(t, "", "smoke", "--url", "localhost:8000"); code != 2 || !strings.Contains(errs, "want http(s)://") {
			t.Fatalf("exit %d: %s", code, errs)
		}
	})
}
