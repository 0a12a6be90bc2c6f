package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/atlas-mmm/atlas/projections/api"
)

// apiSecurity is the configuration of the API's protections (projections/api
// security.go) and of its TLS listener, shared by `atlas serve` and `atlas api`.
type apiSecurity struct {
	requireAuth       bool
	apiKeys           string
	adminKeys         string
	jwtSecret         string
	rateLimit         string
	optimizeRateLimit string
	rateLimitClients  int
	trustedProxies    string
	corsOrigins       string
	maxChannels       int
	maxAllocations    int
	maintenance       bool
	maintenanceRetry  int
	debug             bool
	tlsCert           string
	tlsKey            string

	tls  *tls.Config   // set by build when a certificate is given
	cert *certReloader // its certificate
}

// register defines the flags. production sets the role's defaults: `atlas api` is what
// production runs, so it requires authentication (the guide's checklist) and applies the
// guide's rate limits (nginx: 10 r/s burst 20, optimize 1 r/s burst 5); `atlas serve`
// is the local, try-it-out mode and starts open and unlimited.
//
// The secrets (--api-keys, --admin-api-keys, --jwt-secret) do not take their
// environment variable as the flag default: -h prints defaults, and must not print
// secrets. build reads the variables instead.
func (c *apiSecurity) register(fs *flag.FlagSet, production bool) {
	apiRate, optRate := "off", "off"
	if production {
		apiRate, optRate = "10/s:20", "1/s:5"
	}
	fs.BoolVar(&c.requireAuth, "require-auth", envFlagBool("ATLAS_REQUIRE_AUTH", production), "refuse to start without API keys or a JWT secret [ATLAS_REQUIRE_AUTH]")
	fs.StringVar(&c.apiKeys, "api-keys", "", "accepted X-API-Key values, comma-separated, each KEY or ID:KEY (prefer the variable) [ATLAS_API_KEYS]")
	fs.StringVar(&c.adminKeys, "admin-api-keys", "", "API keys that may also use /admin (same format) (prefer the variable) [ATLAS_ADMIN_API_KEYS]")
	fs.StringVar(&c.jwtSecret, "jwt-secret", "", "HS256 secret of accepted bearer tokens, at least 32 bytes (prefer the variable) [ATLAS_JWT_SECRET]")
	fs.StringVar(&c.rateLimit, "rate-limit", envString("ATLAS_RATE_LIMIT", apiRate), "requests per client, COUNT/s|m|h[:BURST], or off [ATLAS_RATE_LIMIT]")
	fs.StringVar(&c.optimizeRateLimit, "optimize-rate-limit", envString("ATLAS_OPTIMIZE_RATE_LIMIT", optRate), "POST /api/v1/optimize per client, same format [ATLAS_OPTIMIZE_RATE_LIMIT]")
	fs.IntVar(&c.rateLimitClients, "rate-limit-clients", envInt("ATLAS_RATE_LIMIT_CLIENTS", 10000), "clients remembered per rate limit (least recently seen forgotten first) [ATLAS_RATE_LIMIT_CLIENTS]")
	fs.StringVar(&c.trustedProxies, "trusted-proxies", envString("ATLAS_TRUSTED_PROXIES", ""), "addresses or CIDRs whose X-Forwarded-For/-Proto are believed, comma-separated [ATLAS_TRUSTED_PROXIES]")
	fs.StringVar(&c.corsOrigins, "cors-origins", envString("ATLAS_CORS_ORIGINS", ""), "origins allowed to call the API from a browser, comma-separated (none: no CORS) [ATLAS_CORS_ORIGINS]")
	fs.IntVar(&c.maxChannels, "max-channels", envInt("ATLAS_MAX_CHANNELS", 1000), "channels per model, budget or allocation [ATLAS_MAX_CHANNELS]")
	fs.IntVar(&c.maxAllocations, "max-allocations", envInt("ATLAS_MAX_ALLOCATIONS", 1000), "allocations per what-if request [ATLAS_MAX_ALLOCATIONS]")
	fs.BoolVar(&c.maintenance, "maintenance", envFlagBool("ATLAS_MAINTENANCE", false), "start in maintenance mode (503 but /health, /metrics, /admin) [ATLAS_MAINTENANCE]")
	fs.IntVar(&c.maintenanceRetry, "maintenance-retry-after", envInt("ATLAS_MAINTENANCE_RETRY_AFTER", 3600), "Retry-After seconds of maintenance answers [ATLAS_MAINTENANCE_RETRY_AFTER]")
	fs.BoolVar(&c.debug, "debug-mode", envFlagBool("DEBUG_MODE", false), "serve /debug/status [DEBUG_MODE]")
	fs.StringVar(&c.tlsCert, "tls-cert", envString("ATLAS_TLS_CERT", ""), "PEM certificate (chain) of the API: serve HTTPS, TLS 1.2 or later [ATLAS_TLS_CERT]")
	fs.StringVar(&c.tlsKey, "tls-key", envString("ATLAS_TLS_KEY", ""), "PEM private key of --tls-cert [ATLAS_TLS_KEY]")
}

// envFlagBool is a boolean variable's value, def when unset or unreadable.
func envFlagBool(name string, def bool) bool {
	if v, ok := os.LookupEnv(name); ok {
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
	}
	return def
}

// secret is the flag's value, else the variable's.
func secret(flagValue, env string) string {
	if flagValue != "" {
		return flagValue
	}
	return os.Getenv(env)
}

// build checks the configuration and returns the API's part of it; errors name the
// flag. It also loads the TLS certificate, so that a bad one stops the start.
func (c *apiSecurity) build() (api.Security, error) {
	sec := api.Security{Maintenance: c.maintenance, MaintenanceRetryAfter: time.Duration(c.maintenanceRetry) * time.Second,
		Debug: c.debug, MaxChannels: c.maxChannels, MaxAllocations: c.maxAllocations, RateLimitClients: c.rateLimitClients}
	keys, err := api.ParseAPIKeys(secret(c.apiKeys, "ATLAS_API_KEYS"), false)
	if err != nil {
		return sec, fmt.Errorf("--api-keys: %w", err)
	}
	admins, err := api.ParseAPIKeys(secret(c.adminKeys, "ATLAS_ADMIN_API_KEYS"), true)
	if err != nil {
		return sec, fmt.Errorf("--admin-api-keys: %w", err)
	}
	jwtSecret := secret(c.jwtSecret, "ATLAS_JWT_SECRET")
	if len(keys)+len(admins) > 0 || jwtSecret != "" {
		sec.Auth, err = api.NewAuthenticator(api.AuthConfig{Keys: append(keys, admins...), JWTSecret: []byte(jwtSecret),
			Leeway: 30 * time.Second})
		if err != nil {
			return sec, fmt.Errorf("authentication: %w", err)
		}
	} else if c.requireAuth {
		return sec, errors.New("authentication is required (--require-auth): set ATLAS_API_KEYS, ATLAS_ADMIN_API_KEYS or ATLAS_JWT_SECRET, or --require-auth=false to run an open API")
	}
	if sec.RateLimit, err = api.ParseRateSpec(c.rateLimit); err != nil {
		return sec, fmt.Errorf("--rate-limit: %w", err)
	}
	if sec.OptimizeRateLimit, err = api.ParseRateSpec(c.optimizeRateLimit); err != nil {
		return sec, fmt.Errorf("--optimize-rate-limit: %w", err)
	}
	if sec.TrustedProxies, err = api.ParseTrustedProxies(c.trustedProxies); err != nil {
		return sec, fmt.Errorf("--trusted-proxies: %w", err)
	}
	for _, o := range strings.Split(c.corsOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			sec.CORSOrigins = append(sec.CORSOrigins, o)
		}
	}
	if c.maxChannels < 1 || c.maxAllocations < 1 {
		return sec, errors.New("--max-channels and --max-allocations must be positive")
	}
	if c.maintenanceRetry < 1 {
		return sec, errors.New("--maintenance-retry-after must be at least 1 second")
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return sec, errors.New("--tls-cert and --tls-key go together")
	}
	if c.tlsCert != "" {
		if c.cert, err = newCertReloader(c.tlsCert, c.tlsKey, 10*time.Second); err != nil {
			return sec, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		c.tls = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.cert.get}
	}
	return sec, nil
}

// scheme is the API's URL scheme.
func (c *apiSecurity) scheme() string {
	if c.tls != nil {
		return "https"
	}
	return "http"
}

// serve runs srv on ln, over TLS when a certificate was given (HTTP/2 included). It
// also bounds what a slow or idle client can hold: the whole request (a 10 MB body
// included) and the answer (POST /optimize waits up to 60 s) within two minutes each,
// idle keep-alive connections two minutes, headers 64 KB. The server's own errors go
// to logger.
func (c *apiSecurity) serve(srv *http.Server, ln net.Listener, logger zerolog.Logger) error {
	if srv.ErrorLog == nil {
		srv.ErrorLog = log.New(serverErrors{logger}, "", 0)
	}
	if srv.ReadTimeout == 0 {
		srv.ReadTimeout = 2 * time.Minute
	}
	if srv.WriteTimeout == 0 {
		srv.WriteTimeout = 2 * time.Minute
	}
	if srv.IdleTimeout == 0 {
		srv.IdleTimeout = 2 * time.Minute
	}
	if srv.MaxHeaderBytes == 0 {
		srv.MaxHeaderBytes = 64 << 10
	}
	if c.tls == nil {
		return srv.Serve(ln)
	}
	c.cert.logger = logger
	srv.TLSConfig = c.tls
	return srv.ServeTLS(ln, "", "")
}

// serverErrors puts net/http's error lines in the JSON log. Failed TLS handshakes
// (scanners, plain HTTP on the TLS port) are debug noise; anything else is a warning.
type serverErrors struct{ logger zerolog.Logger }

func (w serverErrors) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	ev := w.logger.Warn()
	if strings.Contains(msg, "TLS handshake error") {
		ev = w.logger.Debug()
	}
	ev.Str("component", "http").Msg(msg)
	return len(p), nil
}

// certReloader serves the certificate in its files and reads them again when they
// change, so that a renewed certificate (cert-manager, certbot) is used without a
// restart. The files are looked at no more than once per interval, on a handshake; a
// renewal that cannot be loaded (half written, key not matching yet) leaves the
// previous certificate in service until it can.
type certReloader struct {
	certFile, keyFile string
	interval          time.Duration
	logger            zerolog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // modification times and sizes of both files
	checked time.Time
}

func newCertReloader(certFile, keyFile string, interval time.Duration) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, interval: interval, logger: zerolog.Nop()}
	stamp, err := r.fileStamp()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	r.cert, r.stamp, r.checked = &cert, stamp, time.Now()
	return r, nil
}

func (r *certReloader) fileStamp() (string, error) {
	var b strings.Builder
	for _, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return b.String(), nil
}

// get is tls.Config.GetCertificate.
func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= r.interval {
		r.checked = now
		stamp, err := r.fileStamp()
		if err == nil && stamp != r.stamp {
			cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
			if err != nil {
				r.logger.Warn().Err(err).Str("cert", r.certFile).Msg("the changed TLS certificate cannot be loaded; keeping the previous one")
				return r.cert, nil
			}
			r.cert, r.stamp = &cert, stamp
			r.logger.Info().Str("cert", r.certFile).Msg("TLS certificate reloaded")
		}
	}
	return r.cert, nil
}
