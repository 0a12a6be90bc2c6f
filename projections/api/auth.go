package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Principal is an authenticated caller. ID is what logs, audit entries and rate limits
// name it by: an API key's id or a token's subject, never the secret itself.
type Principal struct {
	ID     string `json:"id"`
	Method string `json:"method"` // "api_key" or "jwt"
	Admin  bool   `json:"admin"`
}

// APIKey is one accepted key.
type APIKey struct {
	ID    string
	Key   string
	Admin bool
}

// Minimum secret sizes: shorter keys can be guessed, and an HS256 secret shorter than
// the hash output weakens the MAC (RFC 7518 §3.2).
const (
	minKeyLen       = 16
	minJWTSecretLen = 32
)

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,64}$`)

// ParseAPIKeys reads a comma-separated key list: each entry is either a bare key or
// "id:key". A bare key gets the id "key-" plus the start of its SHA-256, so that logs
// and rate limits can name it without revealing it. Bare keys therefore cannot contain
// ':'.
func ParseAPIKeys(list string, admin bool) ([]APIKey, error) {
	var keys []APIKey
	for i, entry := range strings.Split(list, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		k := APIKey{Key: entry, Admin: admin}
		if id, key, ok := strings.Cut(entry, ":"); ok {
			if !keyIDPattern.MatchString(id) {
				return nil, fmt.Errorf("API key %d: the id before ':' must be 1-64 letters, digits or ._@-", i+1)
			}
			k.ID, k.Key = id, key
		} else {
			sum := sha256.Sum256([]byte(entry))
			k.ID = "key-" + hex.EncodeToString(sum[:4])
		}
		// The error names the entry by position and id only: never echo a secret.
		if len(k.Key) < minKeyLen {
			return nil, fmt.Errorf("API key %d (%s): at least %d characters are needed", i+1, k.ID, minKeyLen)
		}
		if strings.ContainsAny(k.Key, " \t\r\n") {
			return nil, fmt.Errorf("API key %d (%s): must not contain white space", i+1, k.ID)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// AuthConfig configures an Authenticator.
type AuthConfig struct {
	Keys      []APIKey
	JWTSecret []byte           // HS256; empty: bearer tokens are not accepted
	Leeway    time.Duration    // clock skew tolerated on exp and nbf
	Now       func() time.Time // nil: time.Now
}

// Authenticator checks API keys (X-API-Key) and HS256 bearer tokens.
type Authenticator struct {
	keys   []storedKey
	secret []byte
	parser *jwt.Parser
}

// storedKey keeps a key's digest: comparing fixed-size digests in constant time hides
// both the content and the length of the configured keys.
type storedKey struct {
	digest [sha256.Size]byte
	id     string
	admin  bool
}

// NewAuthenticator validates the configuration: at least one key or a secret, ids
// unique.
func NewAuthenticator(cfg AuthConfig) (*Authenticator, error) {
	if len(cfg.Keys) == 0 && len(cfg.JWTSecret) == 0 {
		return nil, errors.New("authentication needs API keys or a JWT secret")
	}
	if len(cfg.JWTSecret) > 0 && len(cfg.JWTSecret) < minJWTSecretLen {
		return nil, fmt.Errorf("the JWT secret must be at least %d bytes (HS256)", minJWTSecretLen)
	}
	a := &Authenticator{secret: cfg.JWTSecret}
	ids := map[string]bool{}
	for _, k := range cfg.Keys {
		if ids[k.ID] {
			return nil, fmt.Errorf("API key id %q is used twice", k.ID)
		}
		ids[k.ID] = true
		a.keys = append(a.keys, storedKey{digest: sha256.Sum256([]byte(k.Key)), id: k.ID, admin: k.Admin})
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	// Only HS256 is accepted: this rejects "none" and the RS/HS confusion attack, and
	// a token without exp never expires, so exp is required.
	a.parser = jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(), jwt.WithLeeway(cfg.Leeway), jwt.WithTimeFunc(now))
	return a, nil
}

// Schemes are the WWW-Authenticate challenges a 401 carries.
func (a *Authenticator) challenges(err error) []string {
	var out []string
	if len(a.keys) > 0 {
		out = append(out, `ApiKey realm="atlas", header="X-API-Key"`)
	}
	if len(a.secret) > 0 {
		c := `Bearer realm="atlas"`
		var te *tokenError
		if errors.As(err, &te) {
			// RFC 6750 §3: say why the token was refused (never what it contained).
			c += `, error="invalid_token", error_description="` + strings.ReplaceAll(te.reason, `"`, "'") + `"`
		}
		out = append(out, c)
	}
	return out
}

// errNoCredentials: the request carries neither a key nor a token.
var errNoCredentials = errors.New("authentication required: send X-API-Key or Authorization: Bearer <token>")

type tokenError struct{ reason string }

func (e *tokenError) Error() string { return "invalid bearer token: " + e.reason }

// Authenticate returns the caller of r. An X-API-Key header wins over Authorization.
func (a *Authenticator) Authenticate(r *http.Request) (Principal, error) {
	if key := r.Header.Get("X-API-Key"); key != "" {
		return a.checkKey(key)
	}
	authz := r.Header.Get("Authorization")
	if authz == "" {
		return Principal{}, errNoCredentials
	}
	scheme, token, _ := strings.Cut(authz, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return Principal{}, errors.New("unsupported Authorization scheme: use Bearer")
	}
	return a.checkToken(strings.TrimSpace(token))
}

func (a *Authenticator) checkKey(key string) (Principal, error) {
	d := sha256.Sum256([]byte(key))
	match := -1
	// Every configured key is compared, so the time taken does not reveal which one
	// (or how much of one) matched.
	for i := range a.keys {
		if subtle.ConstantTimeCompare(d[:], a.keys[i].digest[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return Principal{}, errors.New("invalid API key")
	}
	return Principal{ID: a.keys[match].id, Method: "api_key", Admin: a.keys[match].admin}, nil
}

// tokenClaims are the claims Atlas reads: the registered ones and "roles".
type tokenClaims struct {
	jwt.RegisteredClaims
	Roles []string `json:"roles,omitempty"`
}

// checkToken verifies an HS256 token: the principal is its subject, an admin when
// "roles" holds "admin".
func (a *Authenticator) checkToken(token string) (Principal, error) {
	if len(a.secret) == 0 {
		return Principal{}, &tokenError{"bearer tokens are not accepted here"}
	}
	var claims tokenClaims
	_, err := a.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return a.secret, nil })
	if err != nil {
		return Principal{}, &tokenError{tokenReason(err)}
	}
	if claims.Subject == "" {
		return Principal{}, &tokenError{"the token has no subject (sub)"}
	}
	return Principal{ID: claims.Subject, Method: "jwt", Admin: slices.Contains(claims.Roles, "admin")}, nil
}

// tokenReason turns the library's error into a short reason safe to send back.
func tokenReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "the token has expired"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "the token has no expiry (exp)"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "the token is not valid yet"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature or algorithm (HS256 is required)"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	}
	return "the token was refused"
}
