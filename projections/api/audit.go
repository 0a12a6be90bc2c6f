package api

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// AuditEntry records who did what and when: every model publication and every admin
// action (and refused admin attempts).
type AuditEntry struct {
	Time    time.Time         `json:"time"`
	Actor   string            `json:"actor"`                 // key id or token subject; "anonymous" without authentication
	Method  string            `json:"auth_method,omitempty"` // api_key or jwt
	Remote  string            `json:"remote"`                // the client's address
	Action  string            `json:"action"`                // model.publish, maintenance.enable, ...
	Outcome string            `json:"outcome"`               // ok or denied
	Details map[string]string `json:"details,omitempty"`
}

// auditLog writes each entry as a log line with "audit": true (the durable record, for
// the log pipeline) and keeps the latest ones in memory for GET /admin/audit.
type auditLog struct {
	logger zerolog.Logger
	now    func() time.Time
	mu     sync.Mutex
	ring   []AuditEntry
	next   int // where the next entry goes
	n      int // entries held
}

func newAuditLog(logger zerolog.Logger, capacity int, now func() time.Time) *auditLog {
	if capacity <= 0 {
		capacity = 1000
	}
	return &auditLog{logger: logger, now: now, ring: make([]AuditEntry, capacity)}
}

func (a *auditLog) record(r *http.Request, action, outcome string, details map[string]string) {
	info := requestInfo(r)
	e := AuditEntry{Time: a.now().UTC(), Actor: "anonymous", Remote: info.ip, Action: action, Outcome: outcome, Details: details}
	if p := info.principal; p != nil {
		e.Actor, e.Method = p.ID, p.Method
	}
	ev := a.logger.Info()
	if outcome != "ok" {
		ev = a.logger.Warn()
	}
	d := zerolog.Dict()
	for k, v := range details {
		d = d.Str(k, v)
	}
	ev.Bool("audit", true).Str("actor", e.Actor).Str("auth_method", e.Method).Str("remote", e.Remote).
		Str("action", action).Str("outcome", outcome).Dict("details", d).Msg("audit")

	a.mu.Lock()
	a.ring[a.next] = e
	a.next = (a.next + 1) % len(a.ring)
	a.n = min(a.n+1, len(a.ring))
	a.mu.Unlock()
}

// recent is up to limit entries, newest first.
func (a *auditLog) recent(limit int) []AuditEntry {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]AuditEntry, 0, min(limit, a.n))
	for i := 1; i <= a.n && len(out) < limit; i++ {
		out = append(out, a.ring[(a.next-i+len(a.ring))%len(a.ring)])
	}
	return out
}

// listAudit is GET /admin/audit?limit=N (default 100).
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > len(s.auditLog.ring) {
			writeError(w, http.StatusBadRequest, "limit: an integer from 1 to "+strconv.Itoa(len(s.auditLog.ring)), "limit")
			return
		}
		limit = n
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": s.auditLog.recent(limit)})
}
