package api

import "net/http"

// securityHeaders are the deployment guide's response headers (its FastAPI middleware
// and nginx configuration), plus a Content-Security-Policy and a Referrer-Policy: the
// API serves JSON only, so no page may load anything from it or frame it.
var securityHeaders = [][2]string{
	{"X-Content-Type-Options", "nosniff"},
	{"X-Frame-Options", "DENY"},
	{"X-XSS-Protection", "1; mode=block"},
	{"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"},
	{"Referrer-Policy", "no-referrer"},
}

// hsts is the guide's Strict-Transport-Security. It is only sent over TLS: on plain HTTP
// browsers ignore it (RFC 6797 §8.1), and sending it there would claim what is not true.
const hsts = "max-age=31536000"

func setSecurityHeaders(h http.Header, overTLS bool) {
	for _, kv := range securityHeaders {
		h.Set(kv[0], kv[1])
	}
	if overTLS {
		h.Set("Strict-Transport-Security", hsts)
	}
}
