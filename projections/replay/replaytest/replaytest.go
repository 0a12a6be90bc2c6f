// Package replaytest writes a synthetic but well-formed history into a log, for the
// replay tests and benchmark: model versions and a retirement, requests, their result
// events (completed or rejected), redelivered duplicates and dead letters.
package replaytest

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/atlas-mmm/atlas/engine"
	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/event"
	"github.com/atlas-mmm/atlas/streams/processor"
)

// Channels of the generated model and results.
var Channels = []string{"digital", "radio", "search", "social", "tv"}

// Options size a history.
type Options struct {
	Requests   int    // requests, each with one result event
	Duplicates int    // result events appended a second time, as a processor crash would
	Batch      int    // records per Append (default 1000)
	Prefix     string // request id prefix (default "req")
	// Start is the time of the first event (default: an hour before Write is called:
	// in the past, as time-range reads assume, and recent, as Kafka's retention, which
	// goes by record timestamps, requires).
	Start time.Time
}

// Model is a model event's data.
func Model(id string, beta float64) map[string]any {
	chs := map[string]any{}
	for i, c := range Channels {
		chs[c] = map[string]any{"curve": map[string]any{"type": "saturation", "beta": beta * float64(i+1), "kappa": 50000.0}}
	}
	return map[string]any{"model_id": id, "kpi": "revenue", "channels": chs}
}

func encode(typ, id string, t time.Time, data any) ([]byte, error) {
	e, err := event.New(typ, "replaytest", "", data, id, t)
	if err != nil {
		return nil, err
	}
	return event.Encode(e)
}

// Result is the result of request i.
func Result(requestID string, i int) engine.Result {
	r := engine.Result{RequestID: requestID, ModelID: "m1", ModelVersion: 1 + i%2, ModelHash: "sha256:abc",
		Status: engine.StatusOptimal, Objective: "max_kpi", TotalSpend: 100000 + float64(i),
		Expected: map[string]float64{"revenue": 250000.5 + float64(i)}, Channels: map[string]engine.ChannelResult{},
		Allocation: map[string]float64{}, Messages: []string{"ok"}, Engine: engine.EngineInfo{Version: "test", Algorithm: "lambda", Iterations: 12}}
	ub := r.Expected["revenue"] * (1 + 1e-10)
	r.Certificate = &engine.Certificate{Objective: r.Expected["revenue"], UpperBound: &ub, Gap: 1e-10}
	for j, c := range Channels {
		spend := 20000 + float64(i%7*j)
		roi := 2.5 - float64(j)/10
		mroi := 1.1
		r.Allocation[c] = spend
		r.Channels[c] = engine.ChannelResult{Spend: spend, Response: spend * roi, ROI: &roi, MROI: &mroi, AtBound: ""}
	}
	return r
}

// RequestTime is the time of request i, its result and their records (Record.Time):
// a millisecond apart from a minute after Start.
func (o Options) RequestTime(i int) time.Time {
	return o.Start.Add(time.Minute + time.Duration(i)*time.Millisecond)
}

// Write appends the history of o to l (topics must exist) and returns the request ids.
// Two versions of model m1 and a retired model m0 come first; every tenth result is a
// rejection; a dead letter follows every 500 requests. Records carry their events'
// times, so time bounds select by request number (Options.RequestTime).
func Write(ctx context.Context, l streams.Log, topics processor.Topics, o Options) ([]string, error) {
	if o.Batch <= 0 {
		o.Batch = 1000
	}
	if o.Prefix == "" {
		o.Prefix = "req"
	}
	if o.Start.IsZero() {
		o.Start = time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	}
	at := o.Start
	var models []streams.Record
	for i, m := range []struct {
		typ, id string
		data    any
	}{
		{event.ModelPublished, "m0-v1", Model("m0", 1)},
		{event.ModelPublished, "m1-v1", Model("m1", 2)},
		{event.ModelPublished, "m1-v2", Model("m1", 3)},
		{event.ModelRetired, "m0-retired", map[string]any{"model_id": "m0"}},
	} {
		raw, err := encode(m.typ, m.id, at.Add(time.Duration(i)*time.Second), m.data)
		if err != nil {
			return nil, err
		}
		models = append(models, streams.Record{Key: []byte(m.id[:2]), Value: raw, Time: at.Add(time.Duration(i) * time.Second)})
	}
	if err := l.Append(ctx, topics.Models, models...); err != nil {
		return nil, fmt.Errorf("appending models: %w", err)
	}
	var ids []string
	var reqs, results, dead []streams.Record
	flush := func(force bool) error {
		for _, x := range []struct {
			topic string
			recs  *[]streams.Record
		}{{topics.Requests, &reqs}, {topics.Results, &results}, {topics.DeadLetters, &dead}} {
			if len(*x.recs) >= o.Batch || (force && len(*x.recs) > 0) {
				if err := l.Append(ctx, x.topic, *x.recs...); err != nil {
					return fmt.Errorf("appending to %s: %w", x.topic, err)
				}
				*x.recs = (*x.recs)[:0]
			}
		}
		return nil
	}
	var resultRaw [][]byte
	for i := range o.Requests {
		id := fmt.Sprintf("%s-%07d", o.Prefix, i)
		ids = append(ids, id)
		t := o.RequestTime(i)
		req, err := encode(event.OptimizationRequested, id, t, map[string]any{"request_id": id, "model_id": "m1",
			"constraints": map[string]any{"total": 100000 + i}})
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, streams.Record{Key: []byte(id), Value: req, Time: t})
		var res []byte
		if i%10 == 9 {
			res, err = event.EncodeTrusted(event.OptimizationRejected, "replaytest", id, event.ResultID(id, event.OptimizationRejected), t,
				event.Rejection{RequestID: id, Errors: []engine.FieldError{{Field: "data.constraints.total", Message: "must be positive"}}})
		} else {
			res, err = event.EncodeTrusted(event.OptimizationCompleted, "replaytest", id, event.ResultID(id, event.OptimizationCompleted), t, Result(id, i))
		}
		if err != nil {
			return nil, err
		}
		resultRaw = append(resultRaw, res)
		results = append(results, streams.Record{Key: []byte(id), Value: res, Time: t})
		if i%500 == 499 {
			dl, _ := json.Marshal(processor.DeadLetter{Topic: topics.Requests, Partition: 0, Offset: int64(i), Reason: "not JSON", Time: t, Value: "{oops"})
			dead = append(dead, streams.Record{Key: []byte(id), Value: dl, Time: t})
		}
		if err := flush(false); err != nil {
			return nil, err
		}
	}
	// Redelivery: the same result events (same ids, same bytes) once more.
	for i := 0; i < o.Duplicates && i < len(resultRaw); i++ {
		results = append(results, streams.Record{Key: []byte(ids[i]), Value: resultRaw[i], Time: o.RequestTime(i)})
		if err := flush(false); err != nil {
			return nil, err
		}
	}
	return ids, flush(true)
}
