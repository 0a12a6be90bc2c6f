package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maintenance is the maintenance switch: on, every route but /health, /metrics and the
// admin routes answers 503 with Retry-After. It is per process: with several API
// instances, each is switched (or started with ATLAS_MAINTENANCE=true).
type maintenance struct {
	retryAfter time.Duration
	mu         sync.RWMutex
	state      maintenanceState
}

type maintenanceState struct {
	Enabled    bool      `json:"enabled"`
	RetryAfter int       `json:"retry_after"` // seconds
	Since      time.Time `json:"since"`
	By         string    `json:"by"` // who set it: an admin's id, or "startup"
}

func newMaintenance(on bool, retryAfter time.Duration, now time.Time) *maintenance {
	if retryAfter <= 0 {
		retryAfter = time.Hour // the guide's Retry-After: 3600
	}
	return &maintenance{retryAfter: retryAfter, state: maintenanceState{Enabled: on, Since: now.UTC(),
		By: "startup", RetryAfter: int(retryAfter / time.Second)}}
}

func (m *maintenance) enabled() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.state.Enabled
}

func (m *maintenance) get() maintenanceState {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.state
}

// set switches the mode and reports whether it changed.
func (m *maintenance) set(on bool, by string, now time.Time) (maintenanceState, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state.Enabled == on {
		return m.state, false
	}
	m.state.Enabled, m.state.Since, m.state.By = on, now.UTC(), by
	return m.state, true
}

// refuse is the guide's maintenance answer.
func (m *maintenance) refuse(w http.ResponseWriter) {
	secs := int(m.retryAfter / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeJSON(w, http.StatusServiceUnavailable, map[string]any{
		"error": "Service temporarily unavailable for maintenance", "retry_after": secs})
}

// getMaintenance is GET /admin/maintenance.
func (s *Server) getMaintenance(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.maint.get())
}

// putMaintenance is PUT /admin/maintenance {"enabled": true|false}.
func (s *Server) putMaintenance(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var in struct {
		Enabled *bool `json:"enabled"`
	}
	if err := decodeStrict(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error(), "")
		return
	}
	if in.Enabled == nil {
		writeError(w, http.StatusUnprocessableEntity, "enabled: true or false is required", "enabled")
		return
	}
	by := "anonymous"
	if p := requestInfo(r).principal; p != nil {
		by = p.ID
	}
	st, changed := s.maint.set(*in.Enabled, by, s.now())
	action := "maintenance.disable"
	if *in.Enabled {
		action = "maintenance.enable"
	}
	s.auditLog.record(r, action, "ok", map[string]string{"changed": strconv.FormatBool(changed)})
	writeJSON(w, http.StatusOK, st)
}

// decodeStrict decodes one JSON value into v, refusing unknown fields and trailing data.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}
