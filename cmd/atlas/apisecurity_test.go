package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns a pool that
// trusts it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	return selfSignedSerial(t, dir, 1)
}

func selfSignedSerial(t *testing.T, dir string, serial int64) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "atlas test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// lockedBuffer collects a role's log while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

const (
	testUserKey  = "ci-user-key-0123456789"
	testAdminKey = "ci-admin-key-0123456789"
	testSecret   = "a-test-secret-of-at-least-32-bytes!!"
)

// TestServeSecured runs `atlas serve` with authentication, rate limits and TLS on (the
// secrets from the environment, as documented) and checks each answer against the
// OpenAPI document.
func TestServeSecured(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	t.Setenv("ATLAS_API_KEYS", "ci:"+testUserKey)
	t.Setenv("ATLAS_ADMIN_API_KEYS", "ops:"+testAdminKey)
	t.Setenv("ATLAS_JWT_SECRET", testSecret)
	addr := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stdout, stderr lockedBuffer
	go func() {
		done <- runServe(ctx, []string{"--data-dir", filepath.Join(dir, "data"), "--http-addr", addr,
			"--demo-model", "../../examples/demo-model.json", "--tls-cert", certFile, "--tls-key", keyFile,
			"--optimize-rate-limit", "2/h:2", "--rate-limit", "1000/s"}, nil, &stdout, &stderr)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("atlas serve exited with %d\n%s", code, stderr.String())
		}
	}()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}
	base := "https://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(base + "/ready")
		if err == nil {
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
	var doc map[string]any
	do := func(method, path, body string, headers ...string) (*http.Response, map[string]any) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := client.Do(req)
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
		return resp, v
	}
	if !strings.Contains(stdout.String(), "https://") || !strings.Contains(stdout.String(), "X-API-Key: <key>") {
		t.Fatalf("the banner does not say https: %s", stdout.String())
	}
	if resp, _ := do("GET", "/openapi.json", ""); resp.StatusCode != 401 {
		t.Fatalf("/openapi.json without a key: %d", resp.StatusCode)
	}
	_, doc = do("GET", "/openapi.json", "", "X-API-Key", testUserKey)
	if doc["openapi"] == nil {
		t.Fatal("no OpenAPI document")
	}

	// The guide's smoke test with authentication on: /health 200, /api/v1/models 401
	// without a key, and the optimization with one.
	resp, _ := do("GET", "/health", "")
	if resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") != "max-age=31536000" ||
		resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("/health: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = do("GET", "/api/v1/models", "")
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("/api/v1/models without a key: %d %v", resp.StatusCode, resp.Header)
	}
	if resp, _ := do("GET", "/metrics", ""); resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	smoke := `{"budget": {"tv": 100000, "digital": 200000}, "constraints": {"total": 300000}}`
	resp, res := do("POST", "/api/v1/optimize", smoke, "X-API-Key", testUserKey)
	if resp.StatusCode != 200 || res["status"] != "optimal" || resp.Header.Get("X-RateLimit-Remaining") != "1" {
		t.Fatalf("smoke optimize: %d %v %v", resp.StatusCode, res, resp.Header)
	}

	// a bearer token minted as the README shows
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "dashboard", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := do("GET", "/api/v1/models/atlas-demo", "", "Authorization", "Bearer "+tok); resp.StatusCode != 200 {
		t.Fatalf("bearer token: %d", resp.StatusCode)
	}
	// the optimize limit is per client: the token's subject has its own two
	for i, want := range []int{200, 200, 429} {
		resp, body := do("POST", "/api/v1/optimize", smoke, "Authorization", "Bearer "+tok)
		if resp.StatusCode != want {
			t.Fatalf("token optimize %d: %d %v", i, resp.StatusCode, body)
		}
		if want == 429 && (resp.Header.Get("Retry-After") != "1800" || resp.Header.Get("X-RateLimit-Limit") != "2") {
			t.Fatalf("429 headers: %v", resp.Header)
		}
	}

	// maintenance, switched by an admin; audited
	if resp, _ := do("PUT", "/admin/maintenance", `{"enabled": true}`, "X-API-Key", testUserKey); resp.StatusCode != 403 {
		t.Fatalf("maintenance by a user: %d", resp.StatusCode)
	}
	if resp, body := do("PUT", "/admin/maintenance", `{"enabled": true}`, "X-API-Key", testAdminKey); resp.StatusCode != 200 || body["enabled"] != true {
		t.Fatalf("maintenance on: %d %v", resp.StatusCode, body)
	}
	resp, body := do("GET", "/api/v1/models", "", "X-API-Key", testUserKey)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "3600" {
		t.Fatalf("in maintenance: %d %v", resp.StatusCode, body)
	}
	if resp, _ := do("GET", "/health", ""); resp.StatusCode != 200 {
		t.Fatalf("/health in maintenance: %d", resp.StatusCode)
	}
	if resp, _ := do("PUT", "/admin/maintenance", `{"enabled": false}`, "X-API-Key", testAdminKey); resp.StatusCode != 200 {
		t.Fatalf("maintenance off: %d", resp.StatusCode)
	}
	resp, body = do("POST", "/api/v1/models", `{"model_id": "ci-model", "channels": {"tv": {"curve": {"type": "linear", "beta": 2}}}}`, "X-API-Key", testUserKey)
	if resp.StatusCode != 202 {
		t.Fatalf("publish: %d %v", resp.StatusCode, body)
	}
	resp, body = do("GET", "/admin/audit", "", "X-API-Key", testAdminKey)
	entries, _ := body["entries"].([]any)
	var actions []string
	for _, e := range entries {
		m := e.(map[string]any)
		actions = append(actions, m["action"].(string)+"/"+m["actor"].(string))
	}
	if resp.StatusCode != 200 || strings.Join(actions, " ") != "model.publish/ci maintenance.disable/ops maintenance.enable/ops admin.denied/ci" {
		t.Fatalf("audit: %d %v", resp.StatusCode, actions)
	}
	if resp, _ := do("GET", "/debug/status", "", "X-API-Key", testAdminKey); resp.StatusCode != 404 {
		t.Fatalf("/debug/status without DEBUG_MODE: %d", resp.StatusCode)
	}

	// TLS 1.1 is refused; plain HTTP gets no API
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if resp, err := old.Get(base + "/health"); err == nil {
		resp.Body.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
	if resp, err := http.Get("http://" + addr + "/api/v1/models"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP to the TLS port: %d", resp.StatusCode)
		}
	}

	// No secret reaches the log; the audit lines do.
	logs := stderr.String()
	for _, s := range []string{testUserKey, testAdminKey, testSecret, tok} {
		if strings.Contains(logs, s) {
			t.Fatalf("a secret was logged: %s", s)
		}
	}
	if strings.Count(logs, `"audit":true`) != 4 {
		t.Fatalf("%d audit lines in the log", strings.Count(logs, `"audit":true`))
	}
}

// TestAPIRoleRequiresAuth: `atlas api` refuses to start open unless told to, and
// configuration mistakes stop either role before it opens anything.
func TestAPIRoleRequiresAuth(t *testing.T) {
	for _, v := range []string{"ATLAS_API_KEYS", "ATLAS_ADMIN_API_KEYS", "ATLAS_JWT_SECRET", "ATLAS_REQUIRE_AUTH"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	dir := t.TempDir()
	cases := []struct {
		run  func(context.Context, []string, io.Reader, io.Writer, io.Writer) int
		args []string
		want string
	}{
		{runAPI, nil, "authentication is required"},
		{runAPI, []string{"--api-keys", "short"}, "at least 16 characters"},
		{runAPI, []string{"--jwt-secret", "too-short"}, "at least 32 bytes"},
		{runServe, []string{"--rate-limit", "10/d"}, "--rate-limit"},
		{runServe, []string{"--tls-cert", filepath.Join(dir, "missing.pem")}, "--tls-key go together"},
		{runServe, []string{"--tls-cert", filepath.Join(dir, "missing.pem"), "--tls-key", filepath.Join(dir, "missing.key")}, "no such file"},
		{runServe, []string{"--trusted-proxies", "nonsense"}, "--trusted-proxies"},
	}
	for _, c := range cases {
		var stderr bytes.Buffer
		args := append([]string{"--data-dir", filepath.Join(dir, "data")}, c.args...)
		if code := c.run(context.Background(), args, nil, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Fatalf("%v: exit %d, %s", c.args, code, stderr.String())
		}
		if strings.Contains(stderr.String(), "short") && strings.Contains(stderr.String(), `"short"`) {
			t.Fatalf("a key was echoed: %s", stderr.String())
		}
	}
	// -h shows the variables but never their values
	t.Setenv("ATLAS_JWT_SECRET", testSecret)
	var help bytes.Buffer
	runAPI(context.Background(), []string{"-h"}, nil, io.Discard, &help)
	if !strings.Contains(help.String(), "[ATLAS_JWT_SECRET]") || strings.Contains(help.String(), testSecret) {
		t.Fatalf("-h: %s", help.String())
	}
}

// TestTLSCertificateReload: a renewed certificate is served without a restart, and a
// broken renewal leaves the previous one in service.
func TestTLSCertificateReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := selfSignedSerial(t, dir, 1)
	sec := apiSecurity{tlsCert: certFile, tlsKey: keyFile, maxChannels: 1, maxAllocations: 1, maintenanceRetry: 1}
	if _, err := sec.build(); err != nil {
		t.Fatal(err)
	}
	sec.cert.interval = 0 // look at the files on every handshake
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler()}
	var logs lockedBuffer
	go sec.serve(srv, ln, zerolog.New(&logs))
	defer srv.Close()
	serial := func() int64 {
		t.Helper()
		// The test checks which certificate is served, not who signed it.
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if got := serial(); got != 1 {
		t.Fatalf("serial %d", got)
	}
	// renewal: new files, later modification time
	selfSignedSerial(t, dir, 2)
	later := time.Now().Add(time.Hour)
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
	}
	if got := serial(); got != 2 {
		t.Fatalf("after renewal: serial %d", got)
	}
	// a broken renewal: the previous certificate stays
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := serial(); got != 2 {
		t.Fatalf("after a broken renewal: serial %d", got)
	}
	if !strings.Contains(logs.String(), "cannot be loaded") || !strings.Contains(logs.String(), "TLS certificate reloaded") {
		t.Fatalf("log: %s", logs.String())
	}
}
