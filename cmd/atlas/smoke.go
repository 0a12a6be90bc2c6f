package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// runSmoke is `atlas smoke --url URL`: the deployment guide's smoke tests against a
// running API (health, readiness, the model list, one optimization, its result in the
// read model), one line per test with ✓ or ✗ and its duration; exit code 1 if any fails.
//
// It uses a model that exists (--model, else the first active one listed) rather than
// publishing one: a published model would become the default model of production
// requests that name none.
func runSmoke(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("smoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", envString("ATLAS_SMOKE_URL", "http://localhost:8000"), "base URL of the Atlas API [ATLAS_SMOKE_URL]")
	apiKey := fs.String("api-key", envString("ATLAS_SMOKE_API_KEY", ""), "API key, sent as X-API-Key [ATLAS_SMOKE_API_KEY]")
	jwt := fs.String("jwt", envString("ATLAS_SMOKE_JWT", ""), "JWT, sent as Authorization: Bearer [ATLAS_SMOKE_JWT]")
	model := fs.String("model", envString("ATLAS_SMOKE_MODEL", ""), "model to optimize against (default: the first active model listed) [ATLAS_SMOKE_MODEL]")
	budget := fs.Float64("total", 100000, "total budget of the test optimization")
	timeout := fs.Duration("timeout", 30*time.Second, "time allowed for all the tests together")
	var tf tlsFlags
	fs.StringVar(&tf.ca, "ca", envString("ATLAS_SMOKE_CA", ""), "PEM file of the CAs that sign the API's certificate (default: the system's) [ATLAS_SMOKE_CA]")
	fs.BoolVar(&tf.insecure, "insecure", envBool("ATLAS_SMOKE_INSECURE", false), "do not verify the API's certificate [ATLAS_SMOKE_INSECURE]")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: atlas smoke --url URL [--api-key KEY] [--jwt TOKEN] [--ca FILE] [--timeout 30s]\n\nRuns the deployment smoke tests against a running Atlas API.")
		fs.PrintDefaults()
	}
	if err := parseFlags(ctx, fs, args); err != nil {
		return 2
	}
	u, err := url.Parse(*base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fmt.Fprintf(stderr, "atlas smoke: --url %q: want http(s)://host[:port]\n", *base)
		return 2
	}
	tlsCfg, err := tf.config()
	if err != nil {
		fmt.Fprintf(stderr, "atlas smoke: %v\n", err)
		return 2
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if tlsCfg != nil {
		transport.TLSClientConfig = tlsCfg
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	s := &smoke{base: strings.TrimSuffix(*base, "/"), apiKey: *apiKey, jwt: *jwt, model: *model, total: *budget,
		client: &http.Client{Transport: transport}, out: stdout}
	return s.run(ctx)
}

// smoke holds what the tests share: the client and what earlier tests found.
type smoke struct {
	base, apiKey, jwt string
	model             string // the model to use; found by the models test if not given
	total             float64
	requestID         string // the optimization sent, whose result is fetched last
	client            *http.Client
	out               io.Writer
}

func (s *smoke) run(ctx context.Context) int {
	tests := []struct {
		name string
		run  func(context.Context) (string, error)
	}{
		{"health", s.health},
		{"ready", s.ready},
		{"models", s.models},
		{"optimize", s.optimize},
		{"result", s.result},
	}
	passed := 0
	for _, tc := range tests {
		start := time.Now()
		note, err := tc.run(ctx)
		took := time.Since(start).Round(100 * time.Microsecond)
		mark := "✓"
		if err != nil {
			mark, note = "✗", err.Error()
		} else {
			passed++
		}
		line := fmt.Sprintf("%s %-9s %9s", mark, tc.name, took)
		if note != "" {
			line += "  " + note
		}
		fmt.Fprintln(s.out, line)
	}
	fmt.Fprintf(s.out, "Smoke tests: %d/%d passed against %s\n", passed, len(tests), s.base)
	if passed != len(tests) {
		return 1
	}
	return 0
}

// do sends one request with the credentials and returns the status and the body.
func (s *smoke) do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.apiKey != "" {
		req.Header.Set("X-API-Key", s.apiKey)
	}
	if s.jwt != "" {
		req.Header.Set("Authorization", "Bearer "+s.jwt)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	return resp.StatusCode, b, nil
}

// expect fails unless the answer has the wanted status, showing what came instead.
func expect(method, path string, code int, body []byte, want int) error {
	if code == want {
		return nil
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	hint := ""
	if code == http.StatusUnauthorized || code == http.StatusForbidden {
		hint = " (give --api-key or --jwt)"
	}
	return fmt.Errorf("%s %s: %d, want %d%s: %s", method, path, code, want, hint, msg)
}

func (s *smoke) health(ctx context.Context) (string, error) {
	code, body, err := s.do(ctx, "GET", "/health", nil)
	if err != nil {
		return "", err
	}
	return "", expect("GET", "/health", code, body, http.StatusOK)
}

func (s *smoke) ready(ctx context.Context) (string, error) {
	code, body, err := s.do(ctx, "GET", "/ready", nil)
	if err != nil {
		return "", err
	}
	if code == http.StatusServiceUnavailable {
		var r struct {
			Checks map[string]any `json:"checks"`
		}
		if json.Unmarshal(body, &r) == nil {
			var bad []string
			for name, v := range r.Checks {
				if v != "ok" && v != true {
					bad = append(bad, fmt.Sprintf("%s: %v", name, v))
				}
			}
			return "", fmt.Errorf("not ready: %s", strings.Join(bad, "; "))
		}
	}
	return "", expect("GET", "/ready", code, body, http.StatusOK)
}

func (s *smoke) models(ctx context.Context) (string, error) {
	code, body, err := s.do(ctx, "GET", "/api/v1/models", nil)
	if err != nil {
		return "", err
	}
	if err := expect("GET", "/api/v1/models", code, body, http.StatusOK); err != nil {
		return "", err
	}
	var list struct {
		Models []struct {
			ModelID string `json:"model_id"`
			Retired bool   `json:"retired"`
			Latest  int    `json:"latest_version"`
		} `json:"models"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return "", fmt.Errorf("GET /api/v1/models: %w", err)
	}
	active := 0
	found := false
	for _, m := range list.Models {
		if m.Retired {
			continue
		}
		active++
		if s.model == "" {
			s.model = m.ModelID
		}
		found = found || m.ModelID == s.model
	}
	switch {
	case active == 0:
		return "", errors.New("no active model: publish one (POST /api/v1/models) first")
	case !found:
		err := fmt.Errorf("model %q is not an active model", s.model)
		s.model = ""
		return "", err
	}
	return fmt.Sprintf("%d active model(s); using %s", active, s.model), nil
}

func (s *smoke) optimize(ctx context.Context) (string, error) {
	if s.model == "" {
		return "", errors.New("skipped: no model to optimize against")
	}
	id := make([]byte, 8)
	rand.Read(id)
	s.requestID = "smoke-" + hex.EncodeToString(id)
	req := map[string]any{"request_id": s.requestID, "model_id": s.model,
		"constraints": map[string]any{"total": s.total}}
	wait := "10s"
	if dl, ok := ctx.Deadline(); ok {
		wait = fmt.Sprintf("%.3fs", max(0, time.Until(dl).Seconds()-1))
	}
	path := "/api/v1/optimize?wait=" + wait
	code, body, err := s.do(ctx, "POST", path, req)
	if err != nil {
		return "", err
	}
	if code == http.StatusAccepted {
		// Accepted, but the result did not come back within the wait (an API without
		// live notifications): the result test polls the read model for it.
		return fmt.Sprintf("accepted as %s (no live result)", s.requestID), nil
	}
	if err := expect("POST", "/api/v1/optimize", code, body, http.StatusOK); err != nil {
		return "", err
	}
	var res struct {
		Status      string `json:"status"`
		Certificate struct {
			Gap float64 `json:"gap"`
		} `json:"certificate"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return "", fmt.Errorf("POST /api/v1/optimize: %w", err)
	}
	switch res.Status {
	case "optimal", "feasible":
		return fmt.Sprintf("%s: %s, gap %.1e", s.requestID, res.Status, res.Certificate.Gap), nil
	case "infeasible":
		// The pipeline answered; the model's own minimums exceed the test budget.
		return fmt.Sprintf("%s: infeasible at total %g (raise --total)", s.requestID, s.total), nil
	}
	return "", fmt.Errorf("%s: status %q", s.requestID, res.Status)
}

// result polls the read model until the optimization's result is projected.
func (s *smoke) result(ctx context.Context) (string, error) {
	if s.requestID == "" {
		return "", errors.New("skipped: no optimization was sent")
	}
	path := "/api/v1/results/" + url.PathEscape(s.requestID)
	for {
		code, body, err := s.do(ctx, "GET", path, nil)
		if err != nil {
			if ctx.Err() != nil {
				return "", fmt.Errorf("GET %s: not projected before the timeout", path)
			}
			return "", err
		}
		if code != http.StatusNotFound {
			if err := expect("GET", path, code, body, http.StatusOK); err != nil {
				return "", err
			}
			var res struct {
				RequestID string `json:"request_id"`
				Status    string `json:"status"`
			}
			if err := json.Unmarshal(body, &res); err != nil || res.RequestID != s.requestID {
				return "", fmt.Errorf("GET %s: not the result asked for: %.200s", path, body)
			}
			return "status " + res.Status, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("GET %s: still 404 at the timeout", path)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
