package api

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func token(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAuthAPIKeys(t *testing.T) {
	clk := newClock()
	e := newEnv(t, Security{Auth: keysAuth(t, clk.Now), Now: clk.Now}, false)

	resp, body := e.do(t, "GET", "/api/v1/models", "")
	if resp.StatusCode != 401 || body["error"] == nil {
		t.Fatalf("no credentials: %d %v", resp.StatusCode, body)
	}
	ch := strings.Join(resp.Header.Values("WWW-Authenticate"), " | ")
	if !strings.Contains(ch, `ApiKey realm="atlas", header="X-API-Key"`) || !strings.Contains(ch, `Bearer realm="atlas"`) {
		t.Fatalf("WWW-Authenticate: %q", ch)
	}
	for _, bad := range []string{userKey + "x", userKey[:len(userKey)-1], strings.ToUpper(userKey), "x"} {
		if resp, _ := e.do(t, "GET", "/api/v1/models", "", "X-API-Key", bad); resp.StatusCode != 401 {
			t.Fatalf("key %q: %d", bad, resp.StatusCode)
		}
	}
	for _, k := range []string{userKey, adminKey} {
		if resp, body := e.do(t, "GET", "/api/v1/models", "", "X-API-Key", k); resp.StatusCode != 200 {
			t.Fatalf("good key: %d %v", resp.StatusCode, body)
		}
	}
	// every protected route, including the OpenAPI document
	for _, r := range [][2]string{{"GET", "/openapi.json"}, {"GET", "/api/v1/results"}, {"POST", "/api/v1/optimize"},
		{"POST", "/api/v1/whatif"}, {"GET", "/api/v1/results/x/audit"}, {"GET", "/no/such/route"}} {
		if resp, _ := e.do(t, r[0], r[1], "{}"); resp.StatusCode != 401 {
			t.Fatalf("%s %s without a key: %d", r[0], r[1], resp.StatusCode)
		}
	}
	// open routes
	if resp, _ := e.do(t, "GET", "/health", ""); resp.StatusCode != 200 {
		t.Fatalf("/health: %d", resp.StatusCode)
	}
	if resp, _ := e.do(t, "GET", "/metrics", ""); resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	if resp, body := e.do(t, "GET", "/ready", ""); resp.StatusCode == 401 || body["ready"] == nil {
		t.Fatalf("/ready: %d %v", resp.StatusCode, body)
	}
	// a scheme other than Bearer
	if resp, _ := e.do(t, "GET", "/api/v1/models", "", "Authorization", "Basic YWxpY2U6eA=="); resp.StatusCode != 401 {
		t.Fatalf("basic auth: %d", resp.StatusCode)
	}
	if strings.Contains(e.logs.String(), userKey) || strings.Contains(e.logs.String(), adminKey) {
		t.Fatal("a key was logged")
	}
}

func TestAuthJWT(t *testing.T) {
	clk := newClock()
	e := newEnv(t, Security{Auth: keysAuth(t, clk.Now), Now: clk.Now}, false)
	exp := clk.Now().Add(time.Hour).Unix()
	good := token(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "bob", "exp": exp})
	if resp, body := e.do(t, "GET", "/api/v1/models", "", "Authorization", "Bearer "+good); resp.StatusCode != 200 {
		t.Fatalf("good token: %d %v", resp.StatusCode, body)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "bob", "exp": exp}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		token  string
		reason string
	}{
		"expired":      {token(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "bob", "exp": clk.Now().Add(-time.Minute).Unix()}), "expired"},
		"no exp":       {token(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "bob"}), "no expiry"},
		"no sub":       {token(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"exp": exp}), "no subject"},
		"other secret": {token(t, jwt.SigningMethodHS256, []byte(secret+"!"), jwt.MapClaims{"sub": "bob", "exp": exp}), "signature"},
		"HS512":        {token(t, jwt.SigningMethodHS512, []byte(secret), jwt.MapClaims{"sub": "bob", "exp": exp}), "signature"},
		"RS256":        {token(t, jwt.SigningMethodRS256, rsaKey, jwt.MapClaims{"sub": "bob", "exp": exp}), "signature"},
		"alg none":     {none, "signature"},
		"garbage":      {"abc.def", "malformed"},
		"not yet":      {token(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "bob", "exp": exp, "nbf": clk.Now().Add(time.Hour).Unix()}), "not valid yet"},
	}
	for name, c := range cases {
		resp, body := e.do(t, "GET", "/api/v1/models", "", "Authorization", "Bearer "+c.token)
		if resp.StatusCode != 401 {
			t.Fatalf("%s: %d %v", name, resp.StatusCode, body)
		}
		ch := strings.Join(resp.Header.Values("WWW-Authenticate"), " | ")
		if !strings.Contains(ch, `error="invalid_token"`) || !strings.Contains(ch, c.reason) {
			t.Fatalf("%s: WWW-Authenticate %q", name, ch)
		}
	}
	// The token expires when the clock passes exp (30 s of leeway are not configured here).
	clk.Advance(2 * time.Hour)
	if resp, _ := e.do(t, "GET", "/api/v1/models", "", "Authorization", "Bearer "+good); resp.StatusCode != 401 {
		t.Fatalf("token after exp: %d", resp.StatusCode)
	}
	if strings.Contains(e.logs.String(), secret) || strings.Contains(e.logs.String(), good) {
		t.Fatal("a secret or a token was logged")
	}
}

func TestParseAPIKeys(t *testing.T) {
	keys, err := ParseAPIKeys(" ci:abcdefghijklmnop , qrstuvwxyz0123456789 ,", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].ID != "ci" || keys[0].Key != "abcdefghijklmnop" || !keys[0].Admin ||
		!strings.HasPrefix(keys[1].ID, "key-") || keys[1].Key != "qrstuvwxyz0123456789" {
		t.Fatalf("%+v", keys)
	}
	for _, bad := range []string{"short", "id:short", "bad id:abcdefghijklmnopq", ":abcdefghijklmnopq", "x:abcdefgh ijklmnopq"} {
		_, err := ParseAPIKeys(bad, false)
		if err == nil {
			t.Fatalf("%q accepted", bad)
		}
		if k := bad[strings.Index(bad, ":")+1:]; len(k) > 4 && strings.Contains(err.Error(), k) {
			t.Fatalf("the error repeats the key: %v", err)
		}
	}
	if _, err := NewAuthenticator(AuthConfig{JWTSecret: []byte("too short")}); err == nil {
		t.Fatal("a short JWT secret was accepted")
	}
	if _, err := NewAuthenticator(AuthConfig{}); err == nil {
		t.Fatal("an authenticator without keys or secret was built")
	}
	dup, _ := ParseAPIKeys("a:abcdefghijklmnopq,a:qrstuvwxyz0123456", false)
	if _, err := NewAuthenticator(AuthConfig{Keys: dup}); err == nil {
		t.Fatal("duplicate key ids accepted")
	}
}

func TestAdminRights(t *testing.T) {
	clk := newClock()
	e := newEnv(t, Security{Auth: keysAuth(t, clk.Now), Now: clk.Now}, false)
	if resp, _ := e.do(t, "PUT", "/admin/maintenance", `{"enabled": true}`, "X-API-Key", userKey); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("user key on admin: %d", resp.StatusCode)
	}
	userTok := token(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "bob", "exp": clk.Now().Add(time.Hour).Unix(), "roles": []string{"reader"}})
	if resp, _ := e.do(t, "GET", "/admin/audit", "", "Authorization", "Bearer "+userTok); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("token without admin role: %d", resp.StatusCode)
	}
	adminTok := token(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "ops", "exp": clk.Now().Add(time.Hour).Unix(), "roles": []string{"admin"}})
	if resp, body := e.do(t, "GET", "/admin/audit", "", "Authorization", "Bearer "+adminTok); resp.StatusCode != 200 {
		t.Fatalf("admin token: %d %v", resp.StatusCode, body)
	}

	// Without authentication nobody is an admin.
	open := newEnv(t, Security{}, false)
	if resp, body := open.do(t, "PUT", "/admin/maintenance", `{"enabled": true}`); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("admin without auth: %d %v", resp.StatusCode, body)
	}
	if resp, _ := open.do(t, "GET", "/api/v1/models", ""); resp.StatusCode != 200 {
		t.Fatalf("maintenance was switched: %d", resp.StatusCode)
	}
}
