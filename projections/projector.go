// Package projections turns the event log into read models (results, allocations,
// models, the audit trail, dead letters) held in a store (projections/store), and serves
// them over HTTP (projections/api).
package projections

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	segjson "github.com/segmentio/encoding/json"

	"github.com/atlas-mmm/atlas/engine"
	"github.com/atlas-mmm/atlas/projections/store"
	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/event"
	"github.com/atlas-mmm/atlas/streams/processor"
)

// Projector follows the log and keeps a store's read models up to date. It reads every
// topic from its checkpoint, builds batches of rows and applies each batch together with
// the positions it covers, so a restart neither loses nor double-counts: rows are keyed
// (request id, event id, position) and a re-applied batch changes nothing.
type Projector struct {
	Log       streams.Log
	Store     store.Store
	Topics    processor.Topics
	Name      string        // checkpoint name (default "atlas-projector")
	BatchRows int           // rows per Apply (default 5000)
	Poll      time.Duration // wait between reads once caught up (default 50ms)
	Logger    zerolog.Logger

	// CommitRows, when above BatchRows, lets the store hold batches back
	// (store.Batch.More) and commit them together: at least every CommitRows rows and
	// at the end of each Step. A replay sets it, for fewer and larger writes; 0 commits
	// every batch.
	CommitRows int

	// From and To bound what is projected (a replay, see projections/replay). A
	// partition's checkpoint wins over From; the model topic is always read from its
	// start whatever From says (version numbers depend on every earlier model event).
	// Zero values mean the start of the log and its end at each read.
	From, To Bound

	// The model topic is always read from its start (models are few): version numbers
	// are assigned in log order and must come out the same after a restart.
	registry  *processor.Registry
	modelData map[string]json.RawMessage // published model data by event id
	caughtUp  atomic.Bool

	mu       sync.Mutex
	started  time.Time                // first Step
	applied  map[string]map[int]int64 // the store's checkpoint: read by Step, then each Apply's
	newest   map[string]time.Time     // log time of the newest message applied, by topic
	messages int64                    // messages covered by Applies since the start
}

// Bound is one end of a projection range. Offsets of one topic (Topics) win over
// offsets for every topic (Offsets), which win over Time (the first message accepted
// at or after it); a partition that none of them bounds starts at its beginning (ends
// at the end of the log).
type Bound struct {
	Time    time.Time
	Offsets map[int]int64            // every topic's partitions
	Topics  map[string]map[int]int64 // one topic's partitions
}

// IsZero reports whether b bounds nothing.
func (b Bound) IsZero() bool {
	return b.Time.IsZero() && len(b.Offsets) == 0 && len(b.Topics) == 0
}

// Position is b for one topic.
func (b Bound) Position(topic string) streams.Position {
	pos := streams.Position{Time: b.Time}
	if len(b.Offsets) == 0 && len(b.Topics[topic]) == 0 {
		return pos
	}
	pos.Offsets = map[int]int64{}
	maps.Copy(pos.Offsets, b.Offsets)
	maps.Copy(pos.Offsets, b.Topics[topic])
	return pos
}

// ErrSwitched is returned by Step when the store's generation changed under it (a
// replay was switched in, see projections/replay): the checkpoint has been reset to the
// new generation's and the next Step continues from there.
var ErrSwitched = errors.New("projections: the store was switched to another generation")

// Run projects until ctx ends. A failing store is retried with backoff: the projector
// waits, then catches up.
func (p *Projector) Run(ctx context.Context) error {
	p.defaults()
	if err := p.migrate(ctx); err != nil {
		return err
	}
	p.registry = processor.NewRegistry("")
	p.modelData = map[string]json.RawMessage{}
	backoff := 100 * time.Millisecond
	for {
		n, err := p.Step(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrSwitched) {
			p.Logger.Info().Err(err).Msg("continuing from the new generation's checkpoint")
			continue
		}
		if err != nil {
			p.Logger.Warn().Err(err).Dur("retry_in", backoff).Msg("projection failed; retrying")
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 10*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if n == 0 {
			p.caughtUp.Store(true)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(p.Poll):
			}
		}
	}
}

func (p *Projector) defaults() {
	if p.Name == "" {
		p.Name = "atlas-projector"
	}
	if p.BatchRows <= 0 {
		p.BatchRows = 5000
	}
	if p.Poll <= 0 {
		p.Poll = 50 * time.Millisecond
	}
	if p.Topics == (processor.Topics{}) {
		p.Topics = processor.DefaultTopics()
	}
}

// CaughtUp reports whether the projector has reached the end of the log once.
func (p *Projector) CaughtUp() bool { return p.caughtUp.Load() }

// Applied returns the store's checkpoint as the projector last read or wrote it (nil
// before its first Step).
func (p *Projector) Applied() map[string]map[int]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]map[int]int64, len(p.applied))
	for t, parts := range p.applied {
		out[t] = maps.Clone(parts)
	}
	return out
}

// Newest returns the log time of the newest message of topic applied so far.
func (p *Projector) Newest(topic string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.newest[topic]
}

// Messages returns how many messages the Applies since the start covered.
func (p *Projector) Messages() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.messages
}

func (p *Projector) startedAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.started
}

func (p *Projector) topicList() []string {
	t := p.Topics
	if t == (processor.Topics{}) {
		t = processor.DefaultTopics()
	}
	return []string{t.Models, t.Requests, t.Results, t.DeadLetters}
}

func (p *Projector) recordApply(b store.Batch, topic string, msgs int, newest time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.applied = b.Checkpoint
	p.messages += int64(msgs)
	if p.newest == nil {
		p.newest = map[string]time.Time{}
	}
	if newest.After(p.newest[topic]) {
		p.newest[topic] = newest
	}
}

func (p *Projector) migrate(ctx context.Context) error {
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		err := p.Store.Migrate(ctx)
		if err == nil {
			return nil
		}
		p.Logger.Warn().Err(err).Msg("store migration failed; retrying")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// Step reads what the log holds past the checkpoint (up to To) and applies it in
// batches. It returns the number of messages projected.
//
// When the store records its generation (store.Generations), Step notes it before
// reading the checkpoint and checks it after every Apply: a replay switched in
// meanwhile (projections/replay) means this Step's batches may have landed in the new
// tables with positions of the old ones, so the checkpoint is reset to the one the
// new generation was built to and Step returns ErrSwitched. Re-applying from there is
// harmless (writes are idempotent upserts).
//
// A Step that fails forgets the models it read: they were taken in when read, and
// the batches that carried their rows may not have been written (or, held back by the
// store, were dropped), so the next Step reads the model topic from its start again.
func (p *Projector) Step(ctx context.Context) (int, error) {
	n, err := p.step(ctx)
	if err != nil {
		p.registry, p.modelData = nil, nil
	}
	return n, err
}

func (p *Projector) step(ctx context.Context) (int, error) {
	p.defaults()
	if p.registry == nil {
		p.registry = processor.NewRegistry("")
		p.modelData = map[string]json.RawMessage{}
	}
	gens, _ := p.Store.(store.Generations)
	var gen store.Generation
	if gens != nil {
		var err error
		if gen, err = gens.Generation(ctx); err != nil {
			return 0, fmt.Errorf("reading the store's generation: %w", err)
		}
	}
	cp, err := p.Store.Checkpoint(ctx, p.Name)
	if err != nil {
		return 0, fmt.Errorf("reading checkpoint: %w", err)
	}
	p.mu.Lock()
	p.applied = cp
	if p.started.IsZero() {
		p.started = time.Now()
	}
	p.mu.Unlock()
	ap := &applier{p: p, gens: gens, gen: gen}
	total := 0
	topics := []string{p.Topics.Models, p.Topics.Requests, p.Topics.Results, p.Topics.DeadLetters}
	// With CommitRows, batches go with More (the store may hold them back) until
	// CommitRows rows are held or the Step ends: one commit for all topics, so a
	// store's INSERTs stay open from one topic to the next.
	held, uncommitted := 0, false
	// Batches grow from firstBatchRows to BatchRows: the writer waits for the first one,
	// which should not take long to read.
	limit := min(firstBatchRows, p.BatchRows)
	for i, topic := range topics {
		lastTopic := i == len(topics)-1
		from := p.From.Position(topic)
		if len(cp[topic]) > 0 {
			from.Offsets = maps.Clone(from.Offsets)
			if from.Offsets == nil {
				from.Offsets = map[int]int64{}
			}
			maps.Copy(from.Offsets, cp[topic])
		}
		if topic == p.Topics.Models {
			from = streams.Position{Offsets: p.registry.Offsets()}
		}
		b := p.newBatch(cp, store.Batch{})
		msgs := 0
		var newest time.Time
		flush := func(end bool) error {
			if b.Rows() == 0 && len(b.Checkpoint[topic]) == 0 {
				return nil
			}
			held += b.Rows()
			b.More = !(end && lastTopic) && p.CommitRows > p.BatchRows && held < p.CommitRows
			if uncommitted = b.More; !b.More {
				held = 0
			}
			if err := ap.submit(ctx, b, topic, msgs, newest); err != nil {
				return err
			}
			msgs = 0
			cp = b.Checkpoint
			b = p.newBatch(cp, b)
			limit = min(2*limit, p.BatchRows)
			return nil
		}
		n := 0
		err := p.Log.Read(ctx, topic, from, p.To.Position(topic), func(m streams.Message) error {
			n++
			msgs++
			if m.Time.After(newest) {
				newest = m.Time
			}
			p.project(&b, topic, m)
			b.Checkpoint[topic][m.Partition] = m.Offset + 1
			if b.Rows() >= limit {
				return flush(false)
			}
			return nil
		})
		if err == nil && n > 0 {
			err = flush(true)
		}
		if err == nil && !lastTopic {
			// The next topic is read while this one's last batch is written; its
			// outcome comes with the next submit or wait.
			total += n
			continue
		}
		if err == nil && uncommitted {
			// Held rows left at the end of the Step: commit them with the checkpoint.
			err = ap.submit(ctx, p.newBatch(cp, store.Batch{}), topic, 0, time.Time{})
			uncommitted = false
		}
		if werr := ap.wait(); err == nil || errors.Is(werr, ErrSwitched) {
			err = werr
		}
		if errors.Is(err, ErrSwitched) {
			return total, err
		}
		if err != nil {
			if errors.Is(err, streams.ErrClosed) || ctx.Err() != nil {
				return total, ctx.Err()
			}
			return total, fmt.Errorf("reading %s: %w", topic, err)
		}
		total += n
	}
	return total, nil
}

// firstBatchRows is the size of a Step's first batch (see step).
const firstBatchRows = 1000

// applier applies a Step's batches in order on a goroutine of its own, so that the
// next batches are read and built while earlier ones are written. Up to inFlight
// batches are handed over at a time, one being written and the others waiting their
// turn: the reader goes on while the writer waits for its disk (a commit's fsyncs), or
// the cores stood idle. After a failure the batches still waiting are dropped.
type applier struct {
	p       *Projector
	gens    store.Generations // nil if the store records none
	gen     store.Generation  // as the Step found it
	jobs    chan applyJob     // handed over, in order (nil until the first)
	results chan error        // each job's outcome, in order
	pending int               // jobs whose outcome has not been taken
	err     error             // the first failure taken
}

type applyJob struct {
	ctx    context.Context
	b      store.Batch
	topic  string
	msgs   int
	newest time.Time
}

// inFlight is how many batches an applier holds at most (see applier).
const inFlight = 2

// errDropped is the outcome of a batch dropped after an earlier one failed.
var errDropped = errors.New("projections: batch dropped after a failure")

// submit hands b over, first waiting for the oldest batch if inFlight are held; it
// returns the first failure met so far.
func (a *applier) submit(ctx context.Context, b store.Batch, topic string, msgs int, newest time.Time) error {
	if a.err != nil {
		return a.err
	}
	if a.jobs == nil {
		a.jobs = make(chan applyJob, inFlight)
		a.results = make(chan error, inFlight)
		go a.run(a.jobs, a.results)
	}
	for a.pending >= inFlight {
		if err := a.take(); err != nil {
			return err
		}
	}
	a.jobs <- applyJob{ctx, b, topic, msgs, newest} // room: pending < inFlight
	a.pending++
	return nil
}

// take waits for the oldest outcome and returns the first failure so far.
func (a *applier) take() error {
	if err := <-a.results; err != nil && a.err == nil {
		a.err = err
	}
	a.pending--
	return a.err
}

// wait waits for every batch handed over, ends the goroutine and returns the first
// failure (nil if none).
func (a *applier) wait() error {
	for a.pending > 0 {
		a.take()
	}
	if a.jobs != nil {
		close(a.jobs)
		a.jobs = nil
	}
	return a.err
}

func (a *applier) run(jobs <-chan applyJob, results chan<- error) {
	failed := false
	for j := range jobs {
		if failed {
			results <- errDropped
			continue
		}
		err := a.apply(j.ctx, j.b, j.topic, j.msgs, j.newest)
		failed = err != nil
		results <- err
	}
}

func (a *applier) apply(ctx context.Context, b store.Batch, topic string, msgs int, newest time.Time) error {
	if err := a.p.Store.Apply(ctx, b); err != nil {
		return fmt.Errorf("applying %d rows of %s: %w", b.Rows(), topic, err)
	}
	if a.gens != nil {
		now, err := a.gens.Generation(ctx)
		if err != nil {
			return fmt.Errorf("reading the store's generation: %w", err)
		}
		if !now.Same(a.gen) {
			return a.p.resetTo(ctx, now)
		}
	}
	a.p.recordApply(b, topic, msgs, newest)
	return nil
}

// resetTo sets the checkpoint to the one generation g was built to: every partition it
// does not name goes back to the start, since rows this projector wrote for it may
// have landed in the tables that were switched out.
func (p *Projector) resetTo(ctx context.Context, g store.Generation) error {
	now, err := p.Store.Checkpoint(ctx, p.Name)
	if err != nil {
		return fmt.Errorf("reading checkpoint after a switch: %w", err)
	}
	reset := map[string]map[int]int64{}
	for t, parts := range now {
		reset[t] = map[int]int64{}
		for part := range parts {
			reset[t][part] = 0
		}
	}
	for t, parts := range g.Checkpoint {
		if reset[t] == nil {
			reset[t] = map[int]int64{}
		}
		maps.Copy(reset[t], parts)
	}
	if err := p.Store.Apply(ctx, store.Batch{Projector: p.Name, Checkpoint: reset}); err != nil {
		return fmt.Errorf("resetting the checkpoint after a switch: %w", err)
	}
	return fmt.Errorf("%w %q", ErrSwitched, g.Name)
}

// newBatch starts a batch from checkpoint cp, with room for as many rows as like has
// (the previous batch: a topic's batches are alike, and slices grown row by row were
// copied over and over).
func (p *Projector) newBatch(cp map[string]map[int]int64, like store.Batch) store.Batch {
	next := map[string]map[int]int64{}
	for t, parts := range cp {
		next[t] = map[int]int64{}
		for k, v := range parts {
			next[t][k] = v
		}
	}
	for _, t := range []string{p.Topics.Models, p.Topics.Requests, p.Topics.Results, p.Topics.DeadLetters} {
		if next[t] == nil {
			next[t] = map[int]int64{}
		}
	}
	return store.Batch{Projector: p.Name, Checkpoint: next,
		Results:     make([]store.Result, 0, len(like.Results)),
		Allocations: make([]store.Allocation, 0, len(like.Allocations)),
		Models:      make([]store.Model, 0, len(like.Models)),
		Audit:       make([]store.AuditEvent, 0, len(like.Audit)),
		DeadLetters: make([]store.DeadLetter, 0, len(like.DeadLetters)),
	}
}

func contentHash(b []byte) string {
	sum := sha256.Sum256(b)
	const prefix = "sha256:"
	h := make([]byte, len(prefix)+hex.EncodedLen(len(sum)))
	hex.Encode(h[copy(h, prefix):], sum[:])
	return string(h)
}

// project adds the rows one message turns into.
func (p *Projector) project(b *store.Batch, topic string, m streams.Message) {
	m.Topic = topic
	if topic == p.Topics.DeadLetters {
		var dl processor.DeadLetter
		raw := string(m.Value)
		reason := "unparseable dead letter"
		if json.Unmarshal(m.Value, &dl) == nil {
			reason, raw = dl.Reason, dl.Value
			if raw == "" {
				raw = dl.ValueB64
			}
			b.DeadLetters = append(b.DeadLetters, store.DeadLetter{Topic: dl.Topic, Partition: dl.Partition, Offset: dl.Offset,
				Reason: reason, Time: dl.Time, Raw: raw})
			return
		}
		b.DeadLetters = append(b.DeadLetters, store.DeadLetter{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
			Reason: reason, Time: m.Time, Raw: raw})
		return
	}
	env, ok := decode(m.Value)
	if !ok {
		// Not an event at all: the processor dead-letters these on the request topic; on
		// other topics there is nothing to project.
		return
	}
	audit := store.AuditEvent{EventID: env.ID, Type: env.Type, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset,
		Key: string(m.Key), Subject: env.Subject, Time: m.Time, ContentHash: contentHash(m.Value), Raw: json.RawMessage(m.Value)}
	switch env.Type {
	case event.ModelPublished, event.ModelRetired:
		p.registry.Apply(m) //nolint:errcheck // bad model events are the processor's dead letters
		var id struct {
			ModelID string `json:"model_id"`
		}
		json.Unmarshal(env.Data, &id) //nolint:errcheck
		audit.ModelID = id.ModelID
		if env.Type == event.ModelPublished {
			p.modelData[env.ID] = env.Data
		}
		for _, st := range p.registry.Models() {
			if st.ModelID != id.ModelID {
				continue
			}
			for _, v := range st.Versions {
				if env.Type == event.ModelPublished && v.EventID != env.ID {
					continue // only the new version; a retirement rewrites them all
				}
				b.Models = append(b.Models, store.Model{ModelID: v.ModelID, Version: v.Version, Hash: v.Hash, Retired: st.Retired,
					Published: v.Published, EventID: v.EventID, Partition: v.Partition, Offset: v.Offset, Data: p.modelData[v.EventID]})
			}
		}
	case event.OptimizationRequested:
		audit.RequestID = env.RequestID()
		var r requestData
		decodeJSON(env.Data, &r) //nolint:errcheck // what is not a request names no model
		audit.ModelID = r.ModelID
	case event.OptimizationCompleted:
		var res resultData
		if decodeJSON(env.Data, &res) != nil {
			return
		}
		audit.RequestID, audit.ModelID = res.RequestID, res.ModelID
		row := store.Result{RequestID: res.RequestID, ModelID: res.ModelID, ModelVersion: res.ModelVersion, ModelHash: res.ModelHash,
			Status: res.Status, Objective: res.Objective, TotalSpend: res.TotalSpend, Expected: res.Expected, Messages: res.Messages,
			RequestTime: env.Time, ResultTime: m.Time, EventID: env.ID, Partition: m.Partition, Offset: m.Offset, Data: env.Data}
		if c := res.Certificate; c != nil {
			row.UpperBound, row.LowerBound, row.Gap = c.UpperBound, c.LowerBound, c.Gap
		}
		b.Results = append(b.Results, row)
		for _, ch := range sortedChannels(res.Channels) {
			c := res.Channels[ch]
			b.Allocations = append(b.Allocations, store.Allocation{RequestID: res.RequestID, Channel: ch, Spend: c.Spend,
				Response: c.Response, ROI: c.ROI, MROI: c.MROI, AtBound: c.AtBound})
		}
	case event.OptimizationRejected:
		var rej event.Rejection
		if decodeJSON(env.Data, &rej) != nil {
			return
		}
		audit.RequestID = rej.RequestID
		b.Results = append(b.Results, store.Result{RequestID: rej.RequestID, Status: engine.StatusInvalid, Errors: rej.Errors,
			Rejected: true, RequestTime: env.Time, ResultTime: m.Time, EventID: env.ID, Partition: m.Partition, Offset: m.Offset, Data: env.Data})
	default:
		return
	}
	b.Audit = append(b.Audit, audit)
}

// decode reads an event to project. It checks what the processor checks on its hot
// path (event.DecodeTrusted: the envelope's attributes, the subject naming the key)
// plus a source and a subject; only what that refuses goes through full JSON Schema
// validation (event.Decode), which costs more than the rest of a projection and serves
// here only to tell an event whose data is invalid (still projected, as it is in the
// log) from something that is not an event. The data is compacted, as Decode does, so
// both paths store the same bytes.
func decode(raw []byte) (event.Envelope, bool) {
	if env, err := event.DecodeTrusted(raw); err == nil && env.Source != "" && env.Subject != "" {
		if compact(env.Data) {
			return env, true // what Atlas writes: no copy needed
		}
		var buf bytes.Buffer
		buf.Grow(len(env.Data))
		if json.Compact(&buf, env.Data) == nil {
			env.Data = buf.Bytes()
			return env, true
		}
	}
	env, err := event.Decode(raw)
	return env, err == nil || (env.Type != "" && env.ID != "")
}

// compact reports whether the JSON value b has no whitespace outside its strings (then
// json.Compact would return it unchanged). Strings are skipped a closing quote at a
// time (bytes.IndexByte) rather than a byte at a time: most of an event's bytes are in
// strings.
func compact(b []byte) bool {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			return false
		case '"':
			// The string ends at the next quote that an even number of backslashes
			// precedes (its own opening quote stops the count).
			for {
				j := bytes.IndexByte(b[i+1:], '"')
				if j < 0 {
					return true // unterminated: nothing outside a string follows
				}
				i += 1 + j
				n := 0
				for b[i-1-n] == '\\' {
					n++
				}
				if n%2 == 0 {
					break
				}
			}
		}
	}
	return true
}

// decodeJSON reads an event's data into v: a result's, a rejection's or a request's.
// segmentio/encoding reads what encoding/json reads, with the same values
// (TestDecodeMatchesEncodingJSON and FuzzDecode hold it to that), in a fraction of the
// time: decoding results was the largest part of a replay's CPU. What it refuses goes
// through encoding/json, for encoding/json's answer.
//
// What the processor writes first goes through a one-pass decoder of its own
// (fastResult, fastRequest), a third cheaper again; strings then share data's memory,
// so data must not change afterwards.
func decodeJSON[T resultData | event.Rejection | requestData](data []byte, v *T) error {
	switch v := any(v).(type) {
	case *resultData:
		if fastResult(data, v) {
			return nil
		}
	case *requestData:
		if fastRequest(data, v) {
			return nil
		}
	}
	var zero T
	*v = zero
	if segjson.Unmarshal(data, v) == nil {
		return nil
	}
	*v = zero
	return json.Unmarshal(data, v)
}

// requestData is what the projector reads of a request event's data.
type requestData struct {
	ModelID string `json:"model_id"`
}

// resultData is what the projector reads of a result event's data (engine.Result
// without the fields it does not store, which encoding/json then skips unallocated).
type resultData struct {
	RequestID    string                          `json:"request_id"`
	ModelID      string                          `json:"model_id"`
	ModelVersion int                             `json:"model_version"`
	ModelHash    string                          `json:"model_hash"`
	Status       string                          `json:"status"`
	Objective    string                          `json:"objective"`
	TotalSpend   float64                         `json:"total_spend"`
	Expected     map[string]float64              `json:"expected"`
	Channels     map[string]engine.ChannelResult `json:"channels"`
	Certificate  *engine.Certificate             `json:"certificate"`
	Messages     []string                        `json:"messages"`
}

func sortedChannels(m map[string]engine.ChannelResult) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// small maps: insertion sort keeps this allocation-free beyond keys
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}
