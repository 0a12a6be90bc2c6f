// Package api is Atlas's query API (contract §6): it accepts models and optimization
// requests (as events on the log), answers with results as they arrive on NATS, and
// serves the read models of the projections.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/atlas-mmm/atlas/engine"
	"github.com/atlas-mmm/atlas/projections/store"
	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/event"
	"github.com/atlas-mmm/atlas/streams/processor"
)

// Appender is the part of the event log the API writes to.
type Appender interface {
	Append(ctx context.Context, topic string, recs ...streams.Record) error
}

// Results delivers live result events: Subscribe must be called before the request is
// published, so that its result cannot slip past.
type Results interface {
	Subscribe(requestID string) (ch <-chan []byte, cancel func(), err error)
}

// Check is one readiness check: nil when fine.
type Check func(ctx context.Context) error

// Config wires the API.
type Config struct {
	Log          Appender
	Store        store.Store
	Live         Results // nil: POST /optimize never waits
	Topics       processor.Topics
	Source       string        // CloudEvents source (default "atlas/api")
	DefaultWait  time.Duration // how long POST /optimize waits by default (5s)
	MaxWait      time.Duration // the largest ?wait= (60s)
	DefaultModel string
	Checks       map[string]Check // readiness checks besides the store's
	Metrics      http.Handler     // GET /metrics
	Logger       zerolog.Logger
	MaxBody      int64 // request body limit (10 MB)
	// OpenAPI is the document served at /openapi.json.
	OpenAPI []byte
	// Security: authentication, rate limits, CORS, maintenance, limits (security.go).
	Security Security
	// Registry receives the HTTP metrics (atlas_http_*); nil: none.
	Registry prometheus.Registerer
	Version  string // shown by /debug/status
}

// Server is the HTTP handler.
type Server struct {
	cfg      Config
	mux      *http.ServeMux
	front    http.Handler // CORS and the guard, in front of mux
	models   sync.Map     // model hash → *engine.Prepared
	auth     *Authenticator
	apiLimit *limiter // nil: unlimited
	optLimit *limiter
	maint    *maintenance
	auditLog *auditLog
	metrics  *httpMetrics
	now      func() time.Time
	started  time.Time
}

// New builds the handler.
func New(cfg Config) *Server {
	if cfg.Topics == (processor.Topics{}) {
		cfg.Topics = processor.DefaultTopics()
	}
	if cfg.Source == "" {
		cfg.Source = "atlas/api"
	}
	if cfg.DefaultWait <= 0 {
		cfg.DefaultWait = 5 * time.Second
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 60 * time.Second
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 10 << 20 // the guide's proxy-body-size
	}
	sec := &cfg.Security
	if sec.MaxChannels <= 0 {
		sec.MaxChannels = 1000
	}
	if sec.MaxAllocations <= 0 {
		sec.MaxAllocations = 1000
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), auth: sec.Auth, now: sec.Now, started: time.Now()}
	if s.now == nil {
		s.now = time.Now
	}
	if sec.RateLimit.Enabled() {
		s.apiLimit = newLimiter(sec.RateLimit, sec.RateLimitClients)
	}
	if sec.OptimizeRateLimit.Enabled() {
		s.optLimit = newLimiter(sec.OptimizeRateLimit, sec.RateLimitClients)
	}
	s.maint = newMaintenance(sec.Maintenance, sec.MaintenanceRetryAfter, s.now())
	s.auditLog = newAuditLog(cfg.Logger, sec.AuditEntries, s.now)
	var err error
	if s.metrics, err = newHTTPMetrics(cfg.Registry); err != nil {
		// Only a clashing collector of the same name gets here: serve without the
		// HTTP metrics rather than not at all.
		cfg.Logger.Error().Err(err).Msg("registering the HTTP metrics")
	}
	s.routes()
	s.buildFront()
	return s
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /ready", s.ready)
	if s.cfg.Metrics != nil {
		s.mux.Handle("GET /metrics", s.cfg.Metrics)
	}
	s.mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(s.cfg.OpenAPI)
	})
	s.mux.HandleFunc("GET /api/v1/models", s.listModels)
	s.mux.HandleFunc("GET /api/v1/models/{id}", s.getModel)
	s.mux.HandleFunc("POST /api/v1/models", s.publishModel)
	s.mux.HandleFunc("POST /api/v1/optimize", s.optimize)
	s.mux.HandleFunc("GET /api/v1/results", s.listResults)
	s.mux.HandleFunc("GET /api/v1/results/{id}", s.getResult)
	s.mux.HandleFunc("GET /api/v1/results/{id}/audit", s.audit)
	s.mux.HandleFunc("POST /api/v1/whatif", s.whatif)
	s.mux.HandleFunc("GET /admin/maintenance", s.getMaintenance)
	s.mux.HandleFunc("PUT /admin/maintenance", s.putMaintenance)
	s.mux.HandleFunc("GET /admin/audit", s.listAudit)
	if s.cfg.Security.Debug {
		s.mux.HandleFunc("GET /debug/status", s.debugStatus)
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such route: "+r.Method+" "+r.URL.Path, "")
	})
}

// apiError is the JSON error body: {"error": "...", "field": "..."}; rejections add the
// full list.
type apiError struct {
	Error  string              `json:"error"`
	Field  string              `json:"field,omitempty"`
	Errors []engine.FieldError `json:"errors,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v) //nolint:errcheck // the client went away
}

func writeRaw(w http.ResponseWriter, code int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b)
	w.Write([]byte("\n"))
}

func writeError(w http.ResponseWriter, code int, msg, field string) {
	writeJSON(w, code, apiError{Error: msg, Field: field})
}

func writeFieldErrors(w http.ResponseWriter, code int, errs engine.FieldErrors) {
	if len(errs) == 0 {
		writeError(w, code, "invalid request", "")
		return
	}
	writeJSON(w, code, apiError{Error: errs[0].Message, Field: errs[0].Field, Errors: errs})
}

// readBody reads a JSON body within the size limit; it writes the error itself.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", s.cfg.MaxBody), "")
		} else {
			writeError(w, http.StatusBadRequest, "cannot read the request body: "+err.Error(), "")
		}
		return nil, false
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		writeError(w, http.StatusBadRequest, "empty request body: a JSON object is expected", "")
		return nil, false
	}
	return b, true
}

// status for decode errors: malformed JSON is 400, well-formed but wrong is 422.
func decodeStatus(errs engine.FieldErrors) int {
	for _, e := range errs {
		if strings.HasPrefix(e.Message, "invalid JSON") || strings.HasPrefix(e.Message, "empty or truncated") ||
			strings.HasPrefix(e.Message, "unexpected data") {
			return http.StatusBadRequest
		}
	}
	return http.StatusUnprocessableEntity
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{}
	ok := true
	run := func(name string, c Check) {
		if err := c(ctx); err != nil {
			checks[name] = err.Error()
			ok = false
		} else {
			checks[name] = "ok"
		}
	}
	run("store", s.cfg.Store.Ping)
	names := make([]string, 0, len(s.cfg.Checks))
	for n := range s.cfg.Checks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		run(n, s.cfg.Checks[n])
	}
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"ready": ok, "checks": checks})
}

// modelView is a model as the API lists it.
type modelView struct {
	ModelID  string        `json:"model_id"`
	Retired  bool          `json:"retired"`
	Latest   int           `json:"latest_version"`
	Versions []versionView `json:"versions"`
}

type versionView struct {
	Version   int             `json:"version"`
	Hash      string          `json:"hash"`
	Published time.Time       `json:"published"`
	EventID   string          `json:"event_id"`
	Model     json.RawMessage `json:"model,omitempty"`
}

func viewModels(rows []store.Model, withData bool) []modelView {
	var out []modelView
	for _, m := range rows {
		if len(out) == 0 || out[len(out)-1].ModelID != m.ModelID {
			out = append(out, modelView{ModelID: m.ModelID})
		}
		mv := &out[len(out)-1]
		mv.Retired = m.Retired
		mv.Latest = max(mv.Latest, m.Version)
		v := versionView{Version: m.Version, Hash: m.Hash, Published: m.Published, EventID: m.EventID}
		if withData {
			v.Model = m.Data
		}
		mv.Versions = append(mv.Versions, v)
	}
	return out
}

func (s *Server) listModels(w http.ResponseWriter, r *http.Request) {
	rows, err := s.cfg.Store.Models(r.Context())
	if err != nil {
		s.internal(w, err)
		return
	}
	models := viewModels(rows, false)
	if models == nil {
		models = []modelView{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"models": models})
}

func (s *Server) getModel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rows, err := s.cfg.Store.ModelVersions(r.Context(), id)
	if err != nil {
		s.internal(w, err)
		return
	}
	if len(rows) == 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown model %q", id), "id")
		return
	}
	writeJSON(w, http.StatusOK, viewModels(rows, true)[0])
}

func (s *Server) internal(w http.ResponseWriter, err error) {
	s.cfg.Logger.Error().Err(err).Msg("request failed")
	writeError(w, http.StatusServiceUnavailable, "the read model is unavailable: "+err.Error(), "")
}

func newID(prefix string) string {
	var b [16]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand does not fail on supported platforms
	return prefix + hex.EncodeToString(b[:])
}

func (s *Server) publish(ctx context.Context, topic, typ, key string, data json.RawMessage, id string) error {
	env, err := event.New(typ, s.cfg.Source, "", data, id, time.Now())
	if err != nil {
		return err
	}
	b, err := event.Encode(env)
	if err != nil {
		return err
	}
	return s.cfg.Log.Append(ctx, topic, streams.Record{Key: []byte(key), Value: b})
}

func (s *Server) publishModel(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	m, err := engine.DecodeModel(body)
	if err != nil {
		var fes engine.FieldErrors
		errors.As(err, &fes)
		writeFieldErrors(w, decodeStatus(fes), fes)
		return
	}
	if m.ModelID == "" {
		writeError(w, http.StatusUnprocessableEntity, "a published model needs a model_id", "model_id")
		return
	}
	if !s.checkModel(w, &m, "") {
		return
	}
	id := newID("evt-")
	if err := s.publish(r.Context(), s.cfg.Topics.Models, event.ModelPublished, m.ModelID, body, id); err != nil {
		// The event schema is stricter than the decoder (duplicate keys, for one): its
		// refusal is the client's error, as for requests.
		var fes engine.FieldErrors
		if errors.As(err, &fes) {
			writeFieldErrors(w, http.StatusUnprocessableEntity, fes)
			return
		}
		s.cfg.Logger.Error().Err(err).Msg("publishing a model")
		writeError(w, http.StatusServiceUnavailable, "the event log is unavailable: "+err.Error(), "")
		return
	}
	hash := engine.ModelHash(&m)
	s.auditLog.record(r, "model.publish", "ok", map[string]string{"model_id": m.ModelID, "event_id": id, "hash": hash})
	writeJSON(w, http.StatusAccepted, map[string]any{"model_id": m.ModelID, "event_id": id, "hash": hash,
		"status": "accepted"})
}

func (s *Server) optimize(w http.ResponseWriter, r *http.Request) {
	wait := s.cfg.DefaultWait
	if q := r.URL.Query().Get("wait"); q != "" {
		d, err := time.ParseDuration(q)
		if err != nil {
			secs, err2 := strconv.ParseFloat(q, 64)
			if err2 != nil || secs < 0 {
				writeError(w, http.StatusBadRequest, "wait: a duration such as 5s, or seconds", "wait")
				return
			}
			d = time.Duration(secs * float64(time.Second))
		}
		if d < 0 {
			writeError(w, http.StatusBadRequest, "wait: must not be negative", "wait")
			return
		}
		wait = min(d, s.cfg.MaxWait)
	}
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	req, err := engine.DecodeRequest(body)
	if err != nil {
		var fes engine.FieldErrors
		errors.As(err, &fes)
		writeFieldErrors(w, decodeStatus(fes), fes)
		return
	}
	if !s.checkRequest(w, &req) {
		return
	}
	if req.RequestID == "" {
		req.RequestID = newID("req-")
		if body, err = json.Marshal(req); err != nil {
			s.internal(w, err)
			return
		}
	}
	var live <-chan []byte
	if s.cfg.Live != nil && wait > 0 {
		ch, cancel, err := s.cfg.Live.Subscribe(req.RequestID)
		if err == nil {
			defer cancel()
			live = ch
		}
	}
	if err := s.publish(r.Context(), s.cfg.Topics.Requests, event.OptimizationRequested, req.RequestID, body, newID("evt-")); err != nil {
		var fes engine.FieldErrors
		if errors.As(err, &fes) {
			writeFieldErrors(w, http.StatusUnprocessableEntity, fes)
			return
		}
		s.cfg.Logger.Error().Err(err).Msg("publishing a request")
		writeError(w, http.StatusServiceUnavailable, "the event log is unavailable: "+err.Error(), "")
		return
	}
	location := "/api/v1/results/" + req.RequestID
	if live != nil {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case b := <-live:
			s.answer(w, b)
			return
		case <-timer.C:
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Location", location)
	writeJSON(w, http.StatusAccepted, map[string]any{"request_id": req.RequestID, "status": "pending", "location": location})
}

// answer writes a result event as the response: the result for a completed request,
// 422 with the field errors for a rejected one.
func (s *Server) answer(w http.ResponseWriter, ev []byte) {
	env, err := event.Decode(ev)
	if err != nil {
		s.internal(w, err)
		return
	}
	if env.Type == event.OptimizationRejected {
		var rej event.Rejection
		json.Unmarshal(env.Data, &rej) //nolint:errcheck
		writeFieldErrors(w, http.StatusUnprocessableEntity, rej.Errors)
		return
	}
	writeRaw(w, http.StatusOK, env.Data)
}

func (s *Server) getResult(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	res, ok, err := s.cfg.Store.Result(r.Context(), id)
	if err != nil {
		s.internal(w, err)
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no result for request %q (yet)", id), "request_id")
		return
	}
	if res.Rejected {
		writeJSON(w, http.StatusOK, map[string]any{"request_id": res.RequestID, "status": "rejected", "errors": res.Errors})
		return
	}
	writeRaw(w, http.StatusOK, res.Data)
}

func (s *Server) listResults(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rq := store.ResultQuery{ModelID: q.Get("model_id"), Status: q.Get("status"), Cursor: q.Get("cursor")}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &rq.Since}, {"until", &rq.Until}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				writeError(w, http.StatusBadRequest, p.name+": an RFC 3339 time such as 2026-11-26T12:00:00Z", p.name)
				return
			}
			*p.dst = t
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit: an integer from 1 to %d", store.MaxLimit), "limit")
			return
		}
		rq.Limit = n
	}
	rows, next, err := s.cfg.Store.Results(r.Context(), rq)
	if err != nil {
		if errors.Is(err, store.ErrBadCursor) {
			writeError(w, http.StatusBadRequest, err.Error(), "cursor")
			return
		}
		s.internal(w, err)
		return
	}
	out := struct {
		Results    []json.RawMessage `json:"results"`
		NextCursor string            `json:"next_cursor,omitempty"`
	}{Results: []json.RawMessage{}, NextCursor: next}
	for _, row := range rows {
		if row.Rejected {
			b, _ := json.Marshal(map[string]any{"request_id": row.RequestID, "status": "rejected", "errors": row.Errors})
			out.Results = append(out.Results, b)
			continue
		}
		out.Results = append(out.Results, row.Data)
	}
	writeJSON(w, http.StatusOK, out)
}

// auditView is the trail of one request.
type auditView struct {
	RequestID string         `json:"request_id"`
	Request   *auditEntry    `json:"request,omitempty"`
	Model     *auditModel    `json:"model,omitempty"`
	Result    *auditEntry    `json:"result,omitempty"`
	Events    []auditEntry   `json:"events"`
	Checks    map[string]any `json:"checks"`
}

type auditEntry struct {
	EventID     string          `json:"event_id"`
	Type        string          `json:"type"`
	Topic       string          `json:"topic"`
	Partition   int             `json:"partition"`
	Offset      int64           `json:"offset"`
	Time        time.Time       `json:"time"`
	ContentHash string          `json:"content_hash"`
	Event       json.RawMessage `json:"event,omitempty"`
}

type auditModel struct {
	ModelID   string    `json:"model_id"`
	Version   int       `json:"version"`
	Hash      string    `json:"hash"`
	EventID   string    `json:"event_id"`
	Partition int       `json:"partition"`
	Offset    int64     `json:"offset"`
	Published time.Time `json:"published"`
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	evs, err := s.cfg.Store.Audit(r.Context(), id)
	if err != nil {
		s.internal(w, err)
		return
	}
	if len(evs) == 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no events for request %q", id), "request_id")
		return
	}
	v := auditView{RequestID: id, Events: []auditEntry{}, Checks: map[string]any{}}
	for _, e := range evs {
		entry := auditEntry{EventID: e.EventID, Type: e.Type, Topic: e.Topic, Partition: e.Partition, Offset: e.Offset,
			Time: e.Time, ContentHash: e.ContentHash, Event: e.Raw}
		v.Events = append(v.Events, entry)
		switch e.Type {
		case event.OptimizationRequested:
			if v.Request == nil {
				c := entry
				v.Request = &c
			}
		case event.OptimizationCompleted, event.OptimizationRejected:
			if v.Result == nil {
				c := entry
				v.Result = &c
			}
		}
	}
	if res, ok, err := s.cfg.Store.Result(r.Context(), id); err == nil && ok && !res.Rejected && res.ModelVersion > 0 {
		if versions, err := s.cfg.Store.ModelVersions(r.Context(), res.ModelID); err == nil {
			for _, m := range versions {
				if m.Version == res.ModelVersion {
					v.Model = &auditModel{ModelID: m.ModelID, Version: m.Version, Hash: m.Hash, EventID: m.EventID,
						Partition: m.Partition, Offset: m.Offset, Published: m.Published}
					v.Checks["model_hash_matches"] = m.Hash == res.ModelHash
				}
			}
		}
	}
	v.Checks["has_request"] = v.Request != nil
	v.Checks["has_result"] = v.Result != nil
	writeJSON(w, http.StatusOK, v)
}

// whatif evaluates allocations against a model: {"model_id" | "model", "allocations"}.
func (s *Server) whatif(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var in struct {
		ModelID     string               `json:"model_id"`
		Model       json.RawMessage      `json:"model"`
		Allocations []map[string]float64 `json:"allocations"`
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+strings.TrimPrefix(err.Error(), "json: "), "")
		return
	}
	if len(in.Allocations) == 0 {
		writeError(w, http.StatusUnprocessableEntity, "at least one allocation is needed", "allocations")
		return
	}
	if !s.checkAllocations(w, in.Allocations) {
		return
	}
	var pm *engine.Prepared
	switch {
	case len(in.Model) > 0:
		m, err := engine.DecodeModel(in.Model)
		if err == nil && !s.checkModel(w, &m, "model.") {
			return
		}
		if err == nil {
			pm, err = engine.Prepare(&m)
		}
		if err != nil {
			var fes engine.FieldErrors
			errors.As(err, &fes)
			for i := range fes {
				fes[i].Field = "model." + fes[i].Field
			}
			writeFieldErrors(w, http.StatusUnprocessableEntity, fes)
			return
		}
	default:
		var err error
		pm, err = s.latestModel(r.Context(), in.ModelID)
		if err != nil {
			writeError(w, http.StatusNotFound, err.Error(), "model_id")
			return
		}
	}
	evs, err := pm.Evaluate(in.Allocations)
	if err != nil {
		var fes engine.FieldErrors
		errors.As(err, &fes)
		writeFieldErrors(w, http.StatusUnprocessableEntity, fes)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"model_id": pm.Model().ModelID, "model_hash": pm.Hash(), "results": evs})
}

// latestModel is the newest version of a model from the read model (the default model
// when id is empty), prepared once per content hash.
func (s *Server) latestModel(ctx context.Context, id string) (*engine.Prepared, error) {
	if id == "" {
		id = s.cfg.DefaultModel
	}
	var pick *store.Model
	if id == "" {
		rows, err := s.cfg.Store.Models(ctx)
		if err != nil {
			return nil, err
		}
		for i := range rows {
			if !rows[i].Retired && (pick == nil || rows[i].Published.After(pick.Published)) {
				pick = &rows[i]
			}
		}
		if pick == nil {
			return nil, errors.New("no model has been published")
		}
	} else {
		rows, err := s.cfg.Store.ModelVersions(ctx, id)
		if err != nil {
			return nil, err
		}
		if len(rows) == 0 {
			return nil, fmt.Errorf("unknown model %q", id)
		}
		pick = &rows[len(rows)-1]
	}
	if pm, ok := s.models.Load(pick.Hash); ok {
		return pm.(*engine.Prepared), nil
	}
	m, err := engine.DecodeModel(pick.Data)
	if err != nil {
		return nil, fmt.Errorf("stored model %s v%d: %w", pick.ModelID, pick.Version, err)
	}
	pm, err := engine.Prepare(&m)
	if err != nil {
		return nil, err
	}
	s.models.Store(pick.Hash, pm)
	return pm, nil
}
