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
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	NoteKeyedOtherwise = "request_keyed_otherwise" // a request whose key is not its id: its result is not re-derived
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
	Resolved           int64 `json:"resolved"`             // results re-solved (and compared)
	Rejections         int64 `json:"rejections"`           // rejections re-derived (and compared)
	ModelRejections    int64 `json:"model_rejections"`     // rejected for an unresolvable model: form checked
	OutOfScope         int64 `json:"out_of_scope"`         // requests of other models (--model)
}

// Report is an audit's outcome.
type Report struct {
	OK          bool      `json:"ok"`
	Source      string    `json:"source,omitempty"` // the log audited, for people (set by the caller)
	Scope       string    `json:"scope"`
	Started     time.Time `json:"started"`
	Seconds     float64   `json:"seconds"`
	Counts      Counts    `json:"counts"`
	Divergences []Finding `json:"divergences"`
	Notes       []Finding `json:"notes"`
}

// pending is a request message in scope, waiting for its result.
type pending struct {
	msg     streams.Message
	matched bool // its result was found (set by the reading goroutine only)
}

// seenResult is what the audit keeps of a result event once it is handed to a worker:
// enough to recognise a redelivery and to name it.
type seenResult struct {
	sum     [sha256.Size]byte
	pos     Position
	matched bool
}

// job is a request and its (first) result, to check.
type job struct {
	req, res streams.Message
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
		reg: processor.NewRegistry(""), requests: map[string]*pending{}, results: map[string]*seenResult{},
		mismatched: map[[2]string]*Finding{}}
	if err := a.readModels(ctx); err != nil {
		return nil, err
	}
	if err := a.readRequests(ctx); err != nil {
		return nil, err
	}
	if err := a.checkResults(ctx); err != nil {
		return nil, err
	}
	a.unanswered()
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
	opt      Options
	log      streams.Log
	rep      *Report
	reg      *processor.Registry
	requests map[string]*pending    // by message key: the request id the processor keys its result with
	results  map[string]*seenResult // by key

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

// readRequests keeps the request messages in scope, by key. Requests are the smaller
// half of the history (a result is several times larger), and results are then
// streamed past them.
func (a *auditor) readRequests(ctx context.Context) error {
	err := a.log.Read(ctx, a.opt.Topics.Requests, a.opt.From, a.opt.To, func(m streams.Message) error {
		m.Topic = a.opt.Topics.Requests
		a.rep.Counts.RequestMessages++
		if prev, ok := a.requests[string(m.Key)]; ok {
			if bytes.Equal(prev.msg.Value, m.Value) {
				a.rep.Counts.DuplicateRequests++
				return nil
			}
			a.diverge(Finding{Kind: ConflictingRequests, At: positionOf(m, eventID(m.Value)), RequestID: string(m.Key),
				Related: []Position{positionOf(prev.msg, eventID(prev.msg.Value))},
				Detail:  fmt.Sprintf("a second, different request event with key %q", m.Key)})
			return nil
		}
		a.requests[string(m.Key)] = &pending{msg: m}
		if a.opt.Progress != nil && a.rep.Counts.RequestMessages%4096 == 0 {
			a.opt.Progress(a.rep.Counts.RequestMessages, 0)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("audit: reading %s: %w", a.opt.Topics.Requests, err)
	}
	return nil
}

// checkResults streams the result topic: each request's first result goes with the
// request to a pool of workers that re-derive it while reading goes on; a repeat is a
// redelivery when byte-identical and a divergence otherwise.
func (a *auditor) checkResults(ctx context.Context) error {
	jobs := make(chan job, 64*a.opt.Workers)
	var checked atomic.Int64
	var wg sync.WaitGroup
	for range a.opt.Workers {
		wg.Go(func() {
			var local Counts
			for j := range jobs {
				a.check(j, &local)
				checked.Add(1)
			}
			a.mu.Lock()
			addCounts(&a.counts, &local)
			a.mu.Unlock()
		})
	}
	var read int64
	quoted, _ := json.Marshal(a.opt.ModelID)
	err := a.log.Read(ctx, a.opt.Topics.Results, streams.Position{}, streams.Position{}, func(m streams.Message) error {
		m.Topic = a.opt.Topics.Results
		read++
		a.rep.Counts.ResultEvents++
		if a.opt.Progress != nil && read%4096 == 0 {
			a.opt.Progress(a.rep.Counts.RequestMessages, checked.Load())
		}
		sum := sha256.Sum256(m.Value)
		if prev := a.results[string(m.Key)]; prev != nil {
			switch {
			case prev.sum == sum:
				a.rep.Counts.RedeliveredResults++
			case a.opt.ModelID != "" && !bytes.Contains(m.Value, append([]byte(`"model_id":`), quoted...)):
				// another model's
			default:
				if _, inScope := a.requests[string(m.Key)]; inScope || a.opt.whole() {
					a.diverge(Finding{Kind: ConflictingResults, At: positionOf(m, quickID(m.Value)), RequestID: string(m.Key),
						Related: []Position{prev.pos}, Detail: "a second, different result event for this request (the first is the related one)"})
				}
			}
			return nil
		}
		seen := &seenResult{sum: sum, pos: positionOf(m, quickID(m.Value))}
		a.results[string(m.Key)] = seen
		r := a.requests[string(m.Key)]
		if r == nil {
			return nil // an orphan, unless its request is keyed otherwise (see unanswered)
		}
		r.matched, seen.matched = true, true
		select {
		case jobs <- job{req: r.msg, res: m}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(jobs)
	wg.Wait()
	if err != nil {
		return fmt.Errorf("audit: reading %s: %w", a.opt.Topics.Results, err)
	}
	if a.opt.Progress != nil {
		a.opt.Progress(a.rep.Counts.RequestMessages, checked.Load())
	}
	return nil
}

// unanswered looks at the requests no result was keyed for: messages that are no
// request (dead letters), requests of other models, requests keyed other than by their
// id, and requests without a result.
func (a *auditor) unanswered() {
	var left []*pending
	for _, r := range a.requests {
		if !r.matched {
			left = append(left, r)
		}
	}
	decoded := make([]*request, len(left))
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range a.opt.Workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(left); i = int(next.Add(1) - 1) {
				decoded[i] = decodeRequest(left[i].msg)
			}
		})
	}
	wg.Wait()
	c := &a.rep.Counts
	for _, r := range decoded {
		pos := positionOf(r.msg, r.env.ID)
		switch {
		case r.dead != "":
			c.DeadLetters++
			a.notes = append(a.notes, Finding{Kind: NoteDeadLetter, At: pos, Detail: r.dead})
		case a.opt.ModelID != "" && r.modelID != a.opt.ModelID:
			c.OutOfScope++
		case string(r.msg.Key) != r.requestID && a.results[r.requestID] != nil:
			c.Requests++
			a.results[r.requestID].matched = true
			a.notes = append(a.notes, Finding{Kind: NoteKeyedOtherwise, At: pos, RequestID: r.requestID,
				Related: []Position{a.results[r.requestID].pos},
				Detail:  fmt.Sprintf("the request is keyed %q, its result %q: not re-derived", r.msg.Key, r.requestID)})
		default:
			c.Requests++
			a.findings = append(a.findings, Finding{Kind: MissingResult, At: pos, RequestID: r.requestID, ModelID: r.modelID,
				Detail: "no result event for this request"})
		}
	}
}

func addCounts(dst, src *Counts) {
	dst.Requests += src.Requests
	dst.DeadLetters += src.DeadLetters
	dst.Resolved += src.Resolved
	dst.Rejections += src.Rejections
	dst.ModelRejections += src.ModelRejections
	dst.OutOfScope += src.OutOfScope
}

// check audits one request and its result.
func (a *auditor) check(j job, c *Counts) {
	r := decodeRequest(j.req)
	reqPos := positionOf(j.req, r.env.ID)
	if r.dead != "" {
		// The processor dead-letters such a message; a result keyed like it is no answer.
		c.DeadLetters++
		a.note(Finding{Kind: NoteDeadLetter, At: reqPos, Detail: r.dead})
		a.diverge(Finding{Kind: OrphanResult, At: positionOf(j.res, quickID(j.res.Value)), RequestID: string(j.res.Key),
			Related: []Position{reqPos}, Detail: "a result keyed like a message that is no request"})
		return
	}
	if a.opt.ModelID != "" && !a.inScope(r, j.res) {
		c.OutOfScope++
		return
	}
	c.Requests++
	a.compare(r, reqPos, j.res, c)
}

func (a *auditor) compare(r *request, reqPos Position, res streams.Message, c *Counts) {
	resPos := positionOf(res, "")
	rec, err := readRecorded(res.Value)
	if err != nil {
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

func (a *auditor) inScope(r *request, res streams.Message) bool {
	if rec, err := readRecorded(res.Value); err == nil && rec.Data.ModelID != "" {
		return rec.Data.ModelID == a.opt.ModelID
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
			if !g.matched {
				a.findings = append(a.findings, Finding{Kind: OrphanResult, At: g.pos, RequestID: id, Detail: "no request event for this result"})
			}
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
