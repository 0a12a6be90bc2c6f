// Package projections turns the event log into read models (results, allocations,
// models, the audit trail, dead letters) held in a store (projections/store), and serves
// them over HTTP (projections/api).
package projections

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

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

	// The model topic is always read from its start (models are few): version numbers
	// are assigned in log order and must come out the same after a restart.
	registry  *processor.Registry
	modelData map[string]json.RawMessage // published model data by event id
	caughtUp  bool
}

// Run projects until ctx ends. A failing store is retried with backoff: the projector
// waits, then catches up.
func (p *Projector) Run(ctx context.Context) error {
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
			p.caughtUp = true
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(p.Poll):
			}
		}
	}
}

// CaughtUp reports whether the projector has reached the end of the log once.
func (p *Projector) CaughtUp() bool { return p.caughtUp }

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

// Step reads what the log holds past the checkpoint and applies it in batches. It
// returns the number of messages projected.
func (p *Projector) Step(ctx context.Context) (int, error) {
	if p.registry == nil {
		p.registry = processor.NewRegistry("")
		p.modelData = map[string]json.RawMessage{}
	}
	cp, err := p.Store.Checkpoint(ctx, p.Name)
	if err != nil {
		return 0, fmt.Errorf("reading checkpoint: %w", err)
	}
	total := 0
	for _, topic := range []string{p.Topics.Models, p.Topics.Requests, p.Topics.Results, p.Topics.DeadLetters} {
		from := streams.Position{Offsets: cp[topic]}
		if topic == p.Topics.Models {
			from = streams.Position{Offsets: p.registry.Offsets()}
		}
		b := p.newBatch(cp)
		flush := func() error {
			if b.Rows() == 0 && len(b.Checkpoint[topic]) == 0 {
				return nil
			}
			if err := p.Store.Apply(ctx, b); err != nil {
				return fmt.Errorf("applying %d rows: %w", b.Rows(), err)
			}
			cp = b.Checkpoint
			b = p.newBatch(cp)
			return nil
		}
		n := 0
		err := p.Log.Read(ctx, topic, from, streams.Position{}, func(m streams.Message) error {
			n++
			p.project(&b, topic, m)
			b.Checkpoint[topic][m.Partition] = m.Offset + 1
			if b.Rows() >= p.BatchRows {
				return flush()
			}
			return nil
		})
		if err != nil {
			if errors.Is(err, streams.ErrClosed) || ctx.Err() != nil {
				return total, ctx.Err()
			}
			return total, fmt.Errorf("reading %s: %w", topic, err)
		}
		if n > 0 {
			if err := flush(); err != nil {
				return total, err
			}
		}
		total += n
	}
	return total, nil
}

func (p *Projector) newBatch(cp map[string]map[int]int64) store.Batch {
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
	return store.Batch{Projector: p.Name, Checkpoint: next}
}

func contentHash(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
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
	env, err := event.Decode(m.Value)
	if err != nil && !(env.Type != "" && env.ID != "") {
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
		var r struct {
			ModelID string `json:"model_id"`
		}
		json.Unmarshal(env.Data, &r) //nolint:errcheck
		audit.ModelID = r.ModelID
	case event.OptimizationCompleted:
		var res engine.Result
		if json.Unmarshal(env.Data, &res) != nil {
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
		if json.Unmarshal(env.Data, &rej) != nil {
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
