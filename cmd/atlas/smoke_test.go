package main

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// TestSmokeSecuredServe: atlas smoke against atlas serve over HTTPS with API keys
// required, as deployed: it passes with the CA and a key, and reports what is missing
// otherwise.
func TestSmokeSecuredServe(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	t.Setenv("ATLAS_API_KEYS", "ci:"+testUserKey)
	t.Setenv("ATLAS_REQUIRE_AUTH", "true")
	addr := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stdout, stderr lockedBuffer
	go func() {
		done <- runServe(ctx, []string{"--data-dir", filepath.Join(dir, "data"), "--http-addr", addr,
			"--demo-model", "../../examples/demo-model.json", "--tls-cert", certFile, "--tls-key", keyFile}, nil, &stdout, &stderr)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("atlas serve exited with %d\n%s", code, stderr.String())
		}
	}()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	base := "https://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := client.Get(base + "/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("atlas serve not ready\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, out, errs := run(t, "", "smoke", "--url", base, "--ca", certFile, "--api-key", testUserKey); code != 0 || !strings.Contains(out, "5/5 passed") {
		t.Fatalf("with the CA and a key: exit %d\n%s%s", code, out, errs)
	}
	if code, out, _ := run(t, "", "smoke", "--url", base, "--api-key", testUserKey); code != 1 || !strings.Contains(out, "✗ health") || !strings.Contains(out, "unknown authority") {
		t.Fatalf("without the CA: exit %d\n%s", code, out)
	}
	if code, out, _ := run(t, "", "smoke", "--url", base, "--ca", certFile); code != 1 || !strings.Contains(out, "✗ models") || !strings.Contains(out, "401") {
		t.Fatalf("without a key: exit %d\n%s", code, out)
	}
}
