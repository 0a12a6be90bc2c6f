// Package audit checks a recorded history of the event log: it re-runs the engine for
// every recorded request against the model version its result names and compares the
// result bit for bit, and checks that the history is complete and consistent (exactly
// one result per request, a request and a model version behind every result, model
// hashes that match the model events).
//
// Everything the processor writes is a pure function of what it read: a result event's
// id derives from the request id, its time from the request's, its content from the
// deterministic engine. An audit therefore needs nothing but the log, and a byte that
// differs is a finding.
package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atlas-mmm/atlas/engine"
	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/event"
	"github.com/atlas-mmm/atlas/streams/processor"
)

// Options say what to audit.
type Options struct {
	Topics processor.Topics
	// From and To bound the audited requests by their position on the request topic
	// (offsets or times, as for streams.Log.Read). Results and model events are read
	// whole: a request's result may come much later, and model version numbers depend on
	// the whole model topic.
	From, To streams.Position
	// ModelID, if set, audits only the requests whose result names this model (or that
	// name it themselves and have no result).
	ModelID string
	// Workers re-solve requests in parallel (default GOMAXPROCS).
	Workers int
	// Progress, if set, is called now and then with the requests read and checked so far.
	Progress func(read, checked int64)
}

// Position is where an event sits in the log.
type Position struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
	EventID   string `json:"event_id,omitempty"`
}

func (p Position) String() string {
	s := fmt.Sprintf("%s/%d/%d", p.Topic, p.Partition, p.Offset)
	if p.EventID != "" {
		s += " (" + p.EventID + ")"
	}
	return s
}

func positionOf(m streams.Message, eventID string) Position {
	return Position{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, EventID: eventID}
}

// Kinds of findings.
const (
	// Divergences: the audit fails.
	ResultMismatch      = "result_mismatch"      // the re-derived result differs from the recorded one
	MissingResult       = "missing_result"       // a request without a result
	ConflictingResults  = "conflicting_results"  // two different results for one request
	ConflictingRequests = "conflicting_requests" // two different request events with one request id
	OrphanResult        = "orphan_result"        // a result whose request is not in the log
	UnknownModelVersion = "unknown_model_version"
	ModelHashMismatch   = "model_hash_mismatch" // a model event's content does not hash to what results name
	BadResult           = "bad_result"          // a result event that does not decode or names another request
	// Notes: reported, the audit still passes.
	NoteEngineMetadata = "engine_metadata"         // only the engine's version, algorithm or counters differ
	NoteBadModelEvent  = "undecodable_model_event" // dead-lettered by the processor, no version
	NoteDeadLetter     = "dead_letter_request"     // a request-topic message that is no request
)

// Finding is one divergence or note.
type Finding struct {
	Kind         string     `json:"kind"`
	At           Position   `json:"at"`
	RequestID    string     `json:"request_id,omitempty"`
	ModelID      string     `json:"model_id,omitempty"`
	ModelVersion int        `json:"model_version,omitempty"`
	Related      []Position `json:"related,omitempty"`
	Detail       string     `json:"detail"`
	Differences  []string   `json:"differences,omitempty"`
}

// Counts summarise an audit.
type Counts struct {
	ModelEvents        int64 `json:"model_events"`
	ModelVersions      int64 `json:"model_versions"`
	RequestMessages    int64 `json:"request_messages"`     // read in scope, duplicates included
	Requests           int64 `json:"requests"`             // distinct requests audited
	DuplicateRequests  int64 `json:"duplicate_requests"`   // byte-identical repeats, counted once
	DeadLetters        int64 `json:"dead_letter_requests"` // request-topic messages that are no request
	ResultEvents       int64 `json:"result_events"`        // read, duplicates included
	RedeliveredResults int64 `json:"redelivered_results"`  // byte-identical repeats, counted once
	Resolved           int64 `json:"resolved"`             // completed results re-solved and matched
	Rejections         int64 `json:"rejections"`           // rejections re-derived and matched
	ModelRejections    int64 `json:"model_rejections"`     // rejected for an unresolvable model: form checked
	OutOfScope         int64 `json:"out_of_scope"`         // requests of other models (--model)
}

// Report is an audit's outcome.
type Report struct {
	OK          bool      `json:"ok"`
	Scope       string    `json:"scope"`
	Started     time.Time `json:"started"`
	Seconds     float64   `json:"seconds"`
	Counts      Counts    `json:"counts"`
	Divergences []Finding `json:"divergences"`
	Notes       []Finding `json:"notes"`
}

// resultGroup is every result event recorded for one request id (the result's key).
type resultGroup struct {
	first    streams.Message
	distinct []streams.Message // different bytes, in log order
	repeats  int64
	claimed  atomic.Bool // a request in the log owns it
}

// Run audits the log.
func Run(ctx context.Context, l streams.Log, opt Options) (*Report, error) {
	if opt.Topics == (processor.Topics{}) {
		opt.Topics = processor.DefaultTopics()
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	a := &auditor{opt: opt, log: l, rep: &Report{Started: time.Now().UTC(), Scope: scope(opt)},
		reg: processor.NewRegistry(""), results: map[string]*resultGroup{}, mismatched: map[[2]string]*Finding{}}
	if err := a.readModels(ctx); err != nil {
		return nil, err
	}
	if err := a.readResults(ctx); err != nil {
		return nil, err
	}
	if err := a.checkRequests(ctx); err != nil {
		return nil, err
	}
	a.finish()
	a.rep.Seconds = time.Since(a.rep.Started).Seconds()
	return a.rep, nil
}

func scope(opt Options) string {
	var parts []string
	if len(opt.From.Offsets) > 0 {
		parts = append(parts, fmt.Sprintf("requests from offsets %v", opt.From.Offsets))
	}
	if !opt.From.Time.IsZero() {
		parts = append(parts, "requests since "+opt.From.Time.UTC().Format(time.RFC3339Nano))
	}
	if len(opt.To.Offsets) > 0 {
		parts = append(parts, fmt.Sprintf("requests before offsets %v", opt.To.Offsets))
	}
	if !opt.To.Time.IsZero() {
		parts = append(parts, "requests until "+opt.To.Time.UTC().Format(time.RFC3339Nano))
	}
	if opt.ModelID != "" {
		parts = append(parts, "model "+opt.ModelID)
	}
	if len(parts) == 0 {
		return "whole log"
	}
	return strings.Join(parts, ", ")
}

func (o Options) whole() bool {
	return len(o.From.Offsets) == 0 && o.From.Time.IsZero() && len(o.To.Offsets) == 0 && o.To.Time.IsZero() && o.ModelID == ""
}

type auditor struct {
	opt     Options
	log     streams.Log
	rep     *Report
	reg     *processor.Registry
	results map[string]*resultGroup

	mu         sync.Mutex
	findings   []Finding
	notes      []Finding
	mismatched map[[2]string]*Finding // model hash findings by (model id@version, recorded hash)
	counts     Counts                 // updated under mu by workers
}

func (a *auditor) diverge(f Finding) {
	a.mu.Lock()
	a.findings = append(a.findings, f)
	a.mu.Unlock()
}

func (a *auditor) note(f Finding) {
	a.mu.Lock()
	a.notes = append(a.notes, f)
	a.mu.Unlock()
}

func (a *auditor) readModels(ctx context.Context) error {
	err := a.log.Read(ctx, a.opt.Topics.Models, streams.Position{}, streams.Position{}, func(m streams.Message) error {
		a.rep.Counts.ModelEvents++
		m.Topic = a.opt.Topics.Models
		if err := a.reg.Apply(m); err != nil {
			a.note(Finding{Kind: NoteBadModelEvent, At: positionOf(m, eventID(m.Value)), Detail: err.Error()})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("audit: reading %s: %w", a.opt.Topics.Models, err)
	}
	for _, st := range a.reg.Models() {
		a.rep.Counts.ModelVersions += int64(len(st.Versions))
	}
	return nil
}

// readResults groups every result event by its key, the request id the processor
// appends it under; the workers check that the event names that request.
func (a *auditor) readResults(ctx context.Context) error {
	err := a.log.Read(ctx, a.opt.Topics.Results, streams.Position{}, streams.Position{}, func(m streams.Message) error {
		a.rep.Counts.ResultEvents++
		m.Topic = a.opt.Topics.Results
		g := a.results[string(m.Key)]
		if g == nil {
			a.results[string(m.Key)] = &resultGroup{first: m, distinct: []streams.Message{m}}
			return nil
		}
		for _, d := range g.distinct {
			if bytes.Equal(d.Value, m.Value) {
				g.repeats++
				a.rep.Counts.RedeliveredResults++
				return nil
			}
		}
		g.distinct = append(g.distinct, m)
		return nil
	})
	if err != nil {
		return fmt.Errorf("audit: reading %s: %w", a.opt.Topics.Results, err)
	}
	return nil
}

// checkRequests reads the requests in scope and checks each on a pool of workers while
// reading goes on.
func (a *auditor) checkRequests(ctx context.Context) error {
	jobs := make(chan streams.Message, 4*a.opt.Workers*64)
	var checked atomic.Int64
	var wg sync.WaitGroup
	for range a.opt.Workers {
		wg.Go(func() {
			var local Counts
			for m := range jobs {
				a.check(m, &local)
				checked.Add(1)
			}
			a.mu.Lock()
			addCounts(&a.counts, &local)
			a.mu.Unlock()
		})
	}
	seen := map[string][]byte{} // request message key → its bytes, for duplicates
	var read int64
	err := a.log.Read(ctx, a.opt.Topics.Requests, a.opt.From, a.opt.To, func(m streams.Message) error {
		m.Topic = a.opt.Topics.Requests
		read++
		a.rep.Counts.RequestMessages++
		if prev, ok := seen[string(m.Key)]; ok {
			if bytes.Equal(prev, m.Value) {
				a.rep.Counts.DuplicateRequests++
				return nil
			}
			a.diverge(Finding{Kind: ConflictingRequests, At: positionOf(m, eventID(m.Value)), RequestID: string(m.Key),
				Detail: fmt.Sprintf("a second, different request event with key %q", m.Key)})
			return nil
		}
		seen[string(m.Key)] = m.Value
		if a.opt.Progress != nil && read%4096 == 0 {
			a.opt.Progress(read, checked.Load())
		}
		select {
		case jobs <- m:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(jobs)
	wg.Wait()
	if err != nil {
		return fmt.Errorf("audit: reading %s: %w", a.opt.Topics.Requests, err)
	}
	if a.opt.Progress != nil {
		a.opt.Progress(read, checked.Load())
	}
	return nil
}

func addCounts(dst, src *Counts) {
	dst.Requests += src.Requests
	dst.DeadLetters += src.DeadLetters
	dst.Resolved += src.Resolved
	dst.Rejections += src.Rejections
	dst.ModelRejections += src.ModelRejections
	dst.OutOfScope += src.OutOfScope
}

// check audits one request message.
func (a *auditor) check(m streams.Message, c *Counts) {
	r := decodeRequest(m)
	reqPos := positionOf(m, r.env.ID)
	if r.dead != "" {
		c.DeadLetters++
		a.note(Finding{Kind: NoteDeadLetter, At: reqPos, Detail: r.dead})
		return
	}
	g := a.results[r.requestID]
	if g != nil {
		g.claimed.Store(true)
	}
	if a.opt.ModelID != "" && !a.inScope(r, g) {
		c.OutOfScope++
		return
	}
	c.Requests++
	if g == nil {
		a.diverge(Finding{Kind: MissingResult, At: reqPos, RequestID: r.requestID, ModelID: r.modelID,
			Detail: "no result event for this request"})
		return
	}
	if len(g.distinct) > 1 {
		rel := []Position{reqPos}
		for _, d := range g.distinct[:len(g.distinct)-1] {
			rel = append(rel, positionOf(d, eventID(d.Value)))
		}
		last := g.distinct[len(g.distinct)-1]
		a.diverge(Finding{Kind: ConflictingResults, At: positionOf(last, eventID(last.Value)), RequestID: r.requestID,
			Related: rel, Detail: fmt.Sprintf("%d different result events for one request", len(g.distinct)),
			Differences: diff(g.distinct[0].Value, last.Value)})
	}
	a.compare(r, reqPos, g.first, c)
}

// recorded is what the audit reads from a recorded result event before re-deriving it.
type recorded struct {
	ID     string `json:"id"`
	Source string `json:"source"`
	Type   string `json:"type"`
	Data   struct {
		RequestID    string             `json:"request_id"`
		ModelID      string             `json:"model_id"`
		ModelVersion int                `json:"model_version"`
		ModelHash    string             `json:"model_hash"`
		Errors       engine.FieldErrors `json:"errors"`
	} `json:"data"`
}

func (a *auditor) compare(r *request, reqPos Position, res streams.Message, c *Counts) {
	var rec recorded
	resPos := positionOf(res, "")
	if err := json.Unmarshal(res.Value, &rec); err != nil {
		a.diverge(Finding{Kind: BadResult, At: resPos, RequestID: r.requestID, Related: []Position{reqPos},
			Detail: "result event does not decode: " + err.Error()})
		return
	}
	resPos.EventID = rec.ID
	base := Finding{At: resPos, RequestID: r.requestID, ModelID: rec.Data.ModelID, ModelVersion: rec.Data.ModelVersion,
		Related: []Position{reqPos}}
	if rec.Data.RequestID != r.requestID {
		f := base
		f.Kind, f.Detail = BadResult, fmt.Sprintf("result appended under request %q names request %q", r.requestID, rec.Data.RequestID)
		a.diverge(f)
		return
	}
	var want []byte
	var err error
	switch {
	case r.rejected:
		want, err = r.rejection(rec.Source, r.reject)
		c.Rejections++
	case rec.Type == event.OptimizationRejected && r.req.Model == nil && modelRejection(rec.Data.Errors):
		// Rejected because the model could not be resolved when it was processed: that
		// depends on the registry at that moment, so the message is checked for its form.
		if msg := rec.Data.Errors[0].Message; !plausibleModelRejection(msg, r.modelID) {
			f := base
			f.Kind = ResultMismatch
			f.Detail = fmt.Sprintf("rejected for its model with %q, which the processor never says for model %q", msg, r.modelID)
			a.diverge(f)
			return
		}
		want, err = r.rejection(rec.Source, rec.Data.Errors)
		c.ModelRejections++
	case r.inline != nil:
		want, err = r.solved(rec.Source, r.inline, r.modelID, 0)
		c.Resolved++
	case rec.Type == event.OptimizationRejected:
		// The engine found the request invalid against the model it resolved; a
		// rejection does not name that version, so any version of the model (any model
		// for a request that names none) that gives these very bytes will do: the
		// engine's validation errors rarely depend on the version at all.
		cands := a.candidates(r.modelID)
		if len(cands) == 0 {
			f := base
			f.Kind, f.Detail = ResultMismatch, fmt.Sprintf("rejected by the engine, but no version of model %q exists to re-derive it", r.modelID)
			a.diverge(f)
			return
		}
		for _, v := range cands {
			if want, err = r.solved(rec.Source, v.Prepared(), v.ModelID, v.Version); err == nil && bytes.Equal(want, res.Value) {
				break
			}
		}
		c.Rejections++
	default:
		v, ok := versionOf(a.reg, rec.Data.ModelID, rec.Data.ModelVersion)
		if !ok {
			f := base
			f.Kind = UnknownModelVersion
			f.Detail = fmt.Sprintf("the result names model %q version %d, which the model topic does not hold", rec.Data.ModelID, rec.Data.ModelVersion)
			a.diverge(f)
			return
		}
		if r.modelID != "" && r.modelID != v.ModelID {
			f := base
			f.Kind, f.Detail = ResultMismatch, fmt.Sprintf("the request asks for model %q, the result names %q", r.modelID, v.ModelID)
			a.diverge(f)
			return
		}
		if v.Hash != rec.Data.ModelHash {
			a.hashMismatch(v, rec.Data.ModelHash, resPos)
			return
		}
		want, err = r.solved(rec.Source, v.Prepared(), v.ModelID, v.Version)
		c.Resolved++
	}
	if err != nil {
		f := base
		f.Kind, f.Detail = ResultMismatch, "the result cannot be re-derived: "+err.Error()
		a.diverge(f)
		return
	}
	if bytes.Equal(want, res.Value) {
		return
	}
	diffs := diff(res.Value, want)
	f := base
	if engineOnly(diffs) {
		f.Kind, f.Detail, f.Differences = NoteEngineMetadata, "only the engine's metadata differs (recorded, then recomputed)", diffs
		a.note(f)
		return
	}
	f.Kind, f.Detail, f.Differences = ResultMismatch, "the recorded result differs from the re-derived one (recorded, then recomputed)", diffs
	a.diverge(f)
}

// hashMismatch records that results name a hash the model event's content does not
// have: one finding per model version and recorded hash, at the model event.
func (a *auditor) hashMismatch(v *processor.ModelVersion, named string, resPos Position) {
	key := [2]string{fmt.Sprintf("%s@%d", v.ModelID, v.Version), named}
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.mismatched[key]
	if f == nil {
		f = &Finding{Kind: ModelHashMismatch, At: Position{Topic: a.opt.Topics.Models, Partition: v.Partition, Offset: v.Offset, EventID: v.EventID},
			ModelID: v.ModelID, ModelVersion: v.Version}
		a.mismatched[key] = f
		f.Differences = []string{"model_hash: recorded " + named + ", recomputed from the model event " + v.Hash}
	}
	f.Related = append(f.Related, resPos)
}

// candidates are the model versions a request could have been solved against, the
// most recent first.
func (a *auditor) candidates(modelID string) []*processor.ModelVersion {
	var out []*processor.ModelVersion
	for _, st := range a.reg.Models() {
		if modelID != "" && st.ModelID != modelID {
			continue
		}
		out = append(out, st.Versions...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Published.After(out[j].Published) })
	return out
}

func plausibleModelRejection(msg, modelID string) bool {
	if modelID == "" {
		return strings.HasPrefix(msg, "no model has been published") || strings.HasPrefix(msg, "unknown model ") ||
			strings.HasSuffix(msg, " is retired")
	}
	return msg == fmt.Sprintf("unknown model %q", modelID) || msg == fmt.Sprintf("model %q is retired", modelID)
}

func (a *auditor) inScope(r *request, g *resultGroup) bool {
	if g != nil {
		var rec recorded
		if json.Unmarshal(g.first.Value, &rec) == nil && rec.Data.ModelID != "" {
			return rec.Data.ModelID == a.opt.ModelID
		}
	}
	return r.modelID == a.opt.ModelID
}

// finish adds the checks that need every request seen, and orders the findings by log
// position so that a report does not depend on the workers' timing.
func (a *auditor) finish() {
	addCounts(&a.rep.Counts, &a.counts)
	for _, f := range a.mismatched {
		sortPositions(f.Related)
		n := len(f.Related)
		f.Detail = fmt.Sprintf("the model event's content does not hash to what %d result(s) name", n)
		if n > 20 {
			f.Related = f.Related[:20]
		}
		a.findings = append(a.findings, *f)
	}
	if a.opt.whole() {
		for id, g := range a.results {
			if g.claimed.Load() {
				continue
			}
			a.findings = append(a.findings, Finding{Kind: OrphanResult, At: positionOf(g.first, eventID(g.first.Value)), RequestID: id,
				Detail: "no request event for this result"})
		}
	}
	sortFindings(a.findings, a.opt.Topics)
	sortFindings(a.notes, a.opt.Topics)
	a.rep.Divergences = append([]Finding{}, a.findings...)
	a.rep.Notes = append([]Finding{}, a.notes...)
	a.rep.OK = len(a.rep.Divergences) == 0
}

func topicRank(t processor.Topics, name string) int {
	switch name {
	case t.Models:
		return 0
	case t.Requests:
		return 1
	case t.Results:
		return 2
	}
	return 3
}

func less(t processor.Topics, a, b Position) bool {
	if ra, rb := topicRank(t, a.Topic), topicRank(t, b.Topic); ra != rb {
		return ra < rb
	}
	if a.Partition != b.Partition {
		return a.Partition < b.Partition
	}
	return a.Offset < b.Offset
}

func sortFindings(fs []Finding, t processor.Topics) {
	sort.SliceStable(fs, func(i, j int) bool {
		if fs[i].At != fs[j].At {
			return less(t, fs[i].At, fs[j].At)
		}
		return fs[i].Kind < fs[j].Kind
	})
}

func sortPositions(ps []Position) {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Partition != ps[j].Partition {
			return ps[i].Partition < ps[j].Partition
		}
		return ps[i].Offset < ps[j].Offset
	})
}

// eventID reads an event's id, "" when there is none.
func eventID(raw []byte) string {
	var e struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(raw, &e) != nil {
		return ""
	}
	return e.ID
}
