package api

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/rs/cors"
)

// Security configures what stands in front of the routes. The zero value keeps the
// security headers and the body limit and nothing else: no authentication, no rate
// limits, no CORS.
type Security struct {
	Auth              *Authenticator // nil: no authentication
	RateLimit         RateSpec       // per client, every route but /health, /ready, /metrics
	OptimizeRateLimit RateSpec       // per client, POST /api/v1/optimize (instead of RateLimit)
	RateLimitClients  int            // clients remembered per limit (10,000)
	// TrustedProxies are the addresses whose X-Forwarded-For (and X-Forwarded-Proto)
	// are believed; nobody's by default, since anyone can send the header.
	TrustedProxies []netip.Prefix
	CORSOrigins    []string // allowed origins; none: no CORS headers, preflights 404

	Maintenance           bool          // start in maintenance mode
	MaintenanceRetryAfter time.Duration // Retry-After of maintenance answers (1h, the guide's)
	Debug                 bool          // serve /debug/status
	MaxChannels           int           // channels per model, budget or allocation (1,000)
	MaxAllocations        int           // allocations per what-if request (1,000)
	AuditEntries          int           // audit entries kept for GET /admin/audit (1,000)

	Now func() time.Time // the clock of rate limits; nil: time.Now
}

// reqInfo travels with a request through the layers: what was decided about it.
type reqInfo struct {
	pattern   string // the mux pattern the request matches
	ip        string // the client's address, after trusted proxies
	tls       bool   // the client connected over TLS (to us or to a trusted proxy)
	principal *Principal
}

type infoKey struct{}

func requestInfo(r *http.Request) *reqInfo {
	if info, ok := r.Context().Value(infoKey{}).(*reqInfo); ok {
		return info
	}
	return &reqInfo{}
}

// Route classes, by mux pattern.
func openRoute(pattern string) bool {
	switch pattern {
	case "GET /health", "GET /ready", "GET /metrics":
		return true
	}
	return false
}

func adminRoute(pattern string) bool { return strings.Contains(pattern, " /admin/") }

func debugRoute(pattern string) bool { return strings.Contains(pattern, " /debug/") }

// maintenanceExempt: liveness (the guide's rule), the switch itself, so that it can be
// turned off, and /metrics, so that monitoring sees the maintenance window.
func maintenanceExempt(pattern string) bool {
	return pattern == "GET /health" || pattern == "GET /metrics" || adminRoute(pattern)
}

// ServeHTTP routes a request through the protections to its handler. The route is
// looked up first, once: the protections decide by route pattern (open, admin,
// optimize), and metrics are labelled by it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	_, pattern := s.mux.Handler(r)
	info := &reqInfo{pattern: pattern}
	info.ip, info.tls = s.client(r)
	r = r.WithContext(context.WithValue(r.Context(), infoKey{}, info))
	rec := &statusRecorder{ResponseWriter: w}
	setSecurityHeaders(rec.Header(), info.tls)
	s.front.ServeHTTP(rec, r)
	s.metrics.observe(pattern, rec.status(), time.Since(start))
}

// buildFront puts CORS, when configured, in front of the guard: a preflight carries no
// credentials and must be answered before authentication.
func (s *Server) buildFront() {
	var h http.Handler = http.HandlerFunc(s.guard)
	if len(s.cfg.Security.CORSOrigins) > 0 {
		h = cors.New(cors.Options{
			AllowedOrigins: s.cfg.Security.CORSOrigins,
			AllowedMethods: []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut},
			AllowedHeaders: []string{"Accept", "Content-Type", "Authorization", "X-API-Key"},
			ExposedHeaders: []string{"Location", "Retry-After", "WWW-Authenticate",
				"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"},
			// Credentials are headers the page sets (X-API-Key, Authorization), not
			// cookies, so the browser need not send cookies along.
			AllowCredentials: false,
			MaxAge:           600,
		}).Handler(h)
	}
	s.front = h
}

// guard applies, in order, maintenance mode, authentication, admin rights, rate limits
// and the body limit, then routes.
func (s *Server) guard(w http.ResponseWriter, r *http.Request) {
	info := requestInfo(r)
	if s.maint.enabled() && !maintenanceExempt(info.pattern) {
		s.maint.refuse(w)
		return
	}
	if s.auth != nil && !openRoute(info.pattern) {
		p, err := s.auth.Authenticate(r)
		if err != nil {
			// Failed attempts count against the caller's address, so guessing keys is
			// throttled like any other traffic.
			if s.limited(s.apiLimit, "ip:"+info.ip, w.Header()) {
				s.refuseRate(w)
				return
			}
			for _, c := range s.auth.challenges(err) {
				w.Header().Add("WWW-Authenticate", c)
			}
			s.cfg.Logger.Debug().Str("remote", info.ip).Str("route", info.pattern).Str("reason", err.Error()).Msg("unauthenticated")
			writeError(w, http.StatusUnauthorized, err.Error(), "")
			return
		}
		info.principal = &p
	}
	if adminRoute(info.pattern) || debugRoute(info.pattern) {
		if !s.allowAdmin(w, r, info) {
			return
		}
	}
	if !openRoute(info.pattern) {
		lim := s.apiLimit
		if info.pattern == "POST /api/v1/optimize" {
			lim = s.optLimit
		}
		if s.limited(lim, clientKey(info), w.Header()) {
			s.refuseRate(w)
			return
		}
	}
	if r.ContentLength > s.cfg.MaxBody {
		// Refused before reading: the declared length is enough. Chunked bodies are
		// cut by readBody's MaxBytesReader.
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", s.cfg.MaxBody), "")
		return
	}
	s.mux.ServeHTTP(w, r)
}

// allowAdmin: admin routes need an authenticated admin; /debug/status needs one only
// when authentication is on (DEBUG_MODE is itself the opt-in on a development box).
func (s *Server) allowAdmin(w http.ResponseWriter, r *http.Request, info *reqInfo) bool {
	switch {
	case info.principal != nil && info.principal.Admin:
		return true
	case s.auth == nil && debugRoute(info.pattern):
		return true
	}
	msg := "an admin key or a token with the admin role is required"
	if s.auth == nil {
		msg = "admin endpoints need authentication: configure admin API keys or a JWT secret"
	}
	s.auditLog.record(r, "admin.denied", "denied", map[string]string{"route": info.pattern})
	writeError(w, http.StatusForbidden, msg, "")
	return false
}

// clientKey names the client a rate limit counts: its identity when authenticated,
// else its address.
func clientKey(info *reqInfo) string {
	if info.principal != nil {
		return info.principal.Method + ":" + info.principal.ID
	}
	return "ip:" + info.ip
}

// limited spends one request of key against lim (nil: unlimited), sets the headers and
// reports whether the request is over the limit.
func (s *Server) limited(lim *limiter, key string, h http.Header) bool {
	if lim == nil {
		return false
	}
	v := lim.take(key, s.now())
	v.setHeaders(h)
	return !v.allowed
}

// refuseRate answers 429; limit has set Retry-After.
func (s *Server) refuseRate(w http.ResponseWriter) {
	writeError(w, http.StatusTooManyRequests,
		fmt.Sprintf("rate limit exceeded: retry in %s s", w.Header().Get("Retry-After")), "")
}

// client is the caller's address and whether it came over TLS. X-Forwarded-For is read
// from the right, past the trusted proxies: the first address a trusted proxy did not
// add itself is the client (entries further left are the client's own claims).
func (s *Server) client(r *http.Request) (string, bool) {
	tlsOn := r.TLS != nil
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || !s.trusted(addr.Unmap()) {
		return host, tlsOn
	}
	addr = addr.Unmap()
	if strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		tlsOn = true
	}
	return forwardedFor(addr, r.Header.Values("X-Forwarded-For"), s.trusted).String(), tlsOn
}

// forwardedFor walks the X-Forwarded-For chain from the right starting at the trusted
// peer, and stops at the first untrusted or unparsable hop.
func forwardedFor(peer netip.Addr, headers []string, trusted func(netip.Addr) bool) netip.Addr {
	client := peer
	for i := len(headers) - 1; i >= 0; i-- {
		hops := strings.Split(headers[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(hops[j]))
			if err != nil {
				return client
			}
			client = a.Unmap()
			if !trusted(client) {
				return client
			}
		}
	}
	return client
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.Security.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParseTrustedProxies reads a comma-separated list of addresses and CIDR prefixes.
func ParseTrustedProxies(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if p, err := netip.ParsePrefix(item); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: an IP address or a CIDR prefix is expected", item)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
