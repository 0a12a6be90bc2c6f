package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{"status":"ok"}`)) })
	mux.HandleFunc("/created", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/health", http.StatusFound) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	closed := httptest.NewServer(mux)
	closed.Close() // a port nothing listens on any more

	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"2xx is healthy", []string{"--url", srv.URL + "/health"}, 0, ""},
		{"any 2xx", []string{"--url", srv.URL + "/created"}, 0, ""},
		{"503 is not", []string{"--url", srv.URL + "/ready"}, 1, "503"},
		{"redirects are not followed", []string{"--url", srv.URL + "/moved"}, 1, "302"},
		{"refused", []string{"--url", closed.URL + "/health"}, 1, "GET " + closed.URL},
		{"bad URL", []string{"--url", "::nope"}, 1, "bad URL"},
		{"stray argument", []string{"--url", srv.URL, "extra"}, 2, "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := run(t, "", append([]string{"healthcheck"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errs, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errs, tc.code, tc.stderr)
			}
		})
	}
}

func TestHealthcheckURLFromEnvironment(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	t.Setenv("ATLAS_HEALTHCHECK_URL", srv.URL)
	if code, _, errs := run(t, "", "healthcheck"); code != 1 || !strings.Contains(errs, "500") {
		t.Errorf("exit %d, stderr %q: the variable's URL (answering 500) was not the one checked", code, errs)
	}
}
