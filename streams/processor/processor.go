// Package processor is Atlas's stateful stream processor: it keeps the model registry
// from the model topic, answers every optimization request on the request topic with a
// result event, and dead-letters what it cannot decode.
//
// Delivery is at least once. A batch of requests is solved, its result events are
// appended and acknowledged by the log, and only then are the requests committed (the
// batches of up to Config.CommitInterval together); a crash in between makes the log
// deliver them again. Result events are deterministic
// (their id derives from the request id, their time from the request's, and the engine
// is bit-reproducible), so a redelivered request yields a byte-identical event that
// sinks deduplicate on its id.
package processor

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/atlas-mmm/atlas/engine"
	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/event"
)

// Topics names the topics of the pipeline.
type Topics struct {
	Models      string
	Requests    string
	Results     string
	DeadLetters string
}

// DefaultTopics are the topic names used unless configured otherwise.
func DefaultTopics() Topics {
	return Topics{Models: "atlas.models", Requests: "atlas.requests", Results: "atlas.results", DeadLetters: "atlas.deadletter"}
}

// Notifier carries result events to live listeners (NATS in production).
type Notifier interface {
	Notify(ctx context.Context, requestID string, resultEvent []byte) error
}

// ResultSubject is the NATS subject a request's result is announced on. Request ids
// are free text, so the subject holds a digest of the id rather than the id itself.
func ResultSubject(requestID string) string {
	sum := sha256.Sum256([]byte(requestID))
	return "atlas.results." + hex.EncodeToString(sum[:16])
}

// Config wires a processor.
type Config struct {
	Log          streams.Log
	Topics       Topics
	Group        string // consumer group of the request topic (default "atlas-processor")
	Partitions   int    // partitions of topics this processor creates (default 4)
	DefaultModel string // model for requests that name none (default: the latest published)
	Source       string // CloudEvents source of result events (default "atlas/processor")
	Notifier     Notifier
	Logger       zerolog.Logger
	Metrics      *Metrics
	BatchSize    int           // requests per batch (default 512)
	BatchWait    time.Duration // how long to wait to fill a batch once one request is in (default 2ms)
	Workers      int           // parallel solves (default GOMAXPROCS)
	// ModelRefresh is how often the registry looks for new model events between batches
	// (default 100ms). A request naming an unknown model triggers a look at once.
	ModelRefresh time.Duration
	// CommitInterval is how long the requests of batches whose results are appended may
	// wait to be committed together (default 50ms; negative: commit after every batch).
	// Commits only ever cover requests whose results the log has acknowledged, so the
	// guarantee stays at least once; a crash redelivers at most this much more work. Each
	// commit is a round trip and, on Kafka, a write to the offsets topic: at 10,000
	// requests/s a commit per batch means hundreds a second, for the broker to pay.
	CommitInterval time.Duration
}

// Processor answers optimization requests.
type Processor struct {
	cfg      Config
	reg      *Registry
	lastSync time.Time
	consumed map[int]int64 // next offset per partition of the request topic
	mu       sync.Mutex
	ready    atomic.Bool
}

// Ready reports whether the processor has rebuilt its registry and joined its group.
func (p *Processor) Ready() bool { return p.ready.Load() }

// New checks the configuration and returns a processor; Run starts it.
func New(cfg Config) (*Processor, error) {
	if cfg.Log == nil {
		return nil, errors.New("processor: no log")
	}
	if cfg.Topics == (Topics{}) {
		cfg.Topics = DefaultTopics()
	}
	if cfg.Group == "" {
		cfg.Group = "atlas-processor"
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 4
	}
	if cfg.Source == "" {
		cfg.Source = "atlas/processor"
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 512
	}
	if cfg.BatchWait <= 0 {
		cfg.BatchWait = 2 * time.Millisecond
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.ModelRefresh <= 0 {
		cfg.ModelRefresh = 100 * time.Millisecond
	}
	if cfg.CommitInterval == 0 {
		cfg.CommitInterval = 50 * time.Millisecond
	}
	return &Processor{cfg: cfg, reg: NewRegistry(cfg.DefaultModel), consumed: map[int]int64{}}, nil
}

// Registry is the processor's model registry (read-only use).
func (p *Processor) Registry() *Registry { return p.reg }

// CreateTopics creates the pipeline's topics if they are missing.
func CreateTopics(ctx context.Context, log streams.Log, t Topics, partitions int) error {
	for _, name := range []string{t.Models, t.Requests, t.Results, t.DeadLetters} {
		if err := log.CreateTopic(ctx, name, partitions); err != nil {
			return fmt.Errorf("creating topic %s: %w", name, err)
		}
	}
	return nil
}

// SyncModels applies model events appended since the last call.
func (p *Processor) SyncModels(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.syncModelsLocked(ctx)
}

func (p *Processor) syncModelsLocked(ctx context.Context) error {
	from := streams.Position{Offsets: p.reg.Offsets()}
	var dead []streams.Record
	err := p.cfg.Log.Read(ctx, p.cfg.Topics.Models, from, streams.Position{}, func(m streams.Message) error {
		p.cfg.Metrics.Events.WithLabelValues(eventType(m.Value)).Inc()
		if err := p.reg.Apply(m); err != nil {
			p.cfg.Logger.Warn().Err(err).Int("partition", m.Partition).Int64("offset", m.Offset).Msg("model event dead-lettered")
			dead = append(dead, deadLetter(m, err.Error()))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading model topic: %w", err)
	}
	if len(dead) > 0 {
		// Every instance reads every model event, so each writes the same dead letters;
		// their keys (topic/partition/offset) let a sink keep one.
		if err := p.cfg.Log.Append(ctx, p.cfg.Topics.DeadLetters, dead...); err != nil {
			return fmt.Errorf("dead-lettering model events: %w", err)
		}
		p.cfg.Metrics.DeadLetters.WithLabelValues(p.cfg.Topics.Models).Add(float64(len(dead)))
	}
	p.cfg.Metrics.Models.Set(float64(p.reg.Len()))
	p.lastSync = time.Now()
	return nil
}

// Run processes requests until ctx ends. On cancellation the batch in flight is
// finished, its results appended and its requests committed before Run returns (within
// a grace period of 30 s).
func (p *Processor) Run(ctx context.Context) error {
	log := p.cfg.Logger
	if err := CreateTopics(ctx, p.cfg.Log, p.cfg.Topics, p.cfg.Partitions); err != nil {
		return err
	}
	if err := p.SyncModels(ctx); err != nil {
		return err
	}
	log.Info().Int("models", p.reg.Len()).Msg("model registry rebuilt from the log")
	sub, err := p.cfg.Log.Subscribe(ctx, p.cfg.Topics.Requests, p.cfg.Group)
	if err != nil {
		return fmt.Errorf("subscribing to %s: %w", p.cfg.Topics.Requests, err)
	}
	defer sub.Close()
	p.ready.Store(true)
	defer p.ready.Store(false)
	log.Info().Str("topic", p.cfg.Topics.Requests).Str("group", p.cfg.Group).Msg("processing requests")
	lagTick := time.NewTicker(time.Second)
	defer lagTick.Stop()

	// Two stages: this goroutine fetches and solves batch k+1 while the writer appends
	// batch k (and commits what is due), so solving overlaps the log's round trips. Batches are written
	// in order, one at a time; a write failure stops the processor (what was not
	// committed is delivered again).
	writes := make(chan solved, 1)
	writeErr := make(chan error, 1)
	// Writes finish even when ctx has ended: the batch's work is done and cheap to save.
	wctx, cancelWrites := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWrites()
	go func() {
		defer close(writeErr)
		if err := p.writeLoop(wctx, sub, writes); err != nil {
			writeErr <- err
			for range writes { // drop the rest; they will be redelivered
			}
		}
	}()
	stop := func(err error) error {
		close(writes)
		t := time.AfterFunc(30*time.Second, cancelWrites) // the grace period
		defer t.Stop()
		if werr := <-writeErr; werr != nil && err == nil {
			err = werr
		}
		if err == nil {
			log.Info().Msg("processor stopped")
		}
		return err
	}
	for {
		batch, err := p.fetchBatch(ctx, sub)
		if len(batch) > 0 {
			sb, serr := p.solveBatch(wctx, batch)
			if serr != nil {
				return stop(serr)
			}
			select {
			case writes <- sb:
			case werr := <-writeErr:
				return stop(werr)
			}
		}
		if ctx.Err() != nil {
			return stop(nil)
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return stop(fmt.Errorf("fetching requests: %w", err))
		}
		select {
		case werr := <-writeErr:
			return stop(werr)
		case <-lagTick.C:
			p.updateLag(ctx)
		default:
		}
	}
}

// fetchBatch blocks for one request, then gathers more for up to BatchWait.
func (p *Processor) fetchBatch(ctx context.Context, sub streams.Subscription) ([]streams.Message, error) {
	// Wake up at least every second when idle, to refresh the lag gauge.
	idle, cancelIdle := context.WithTimeout(ctx, time.Second)
	first, err := sub.Fetch(idle)
	cancelIdle()
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return nil, context.DeadlineExceeded
		}
		return nil, err
	}
	batch := []streams.Message{first}
	wait, cancel := context.WithTimeout(ctx, p.cfg.BatchWait)
	defer cancel()
	for len(batch) < p.cfg.BatchSize {
		m, err := sub.Fetch(wait)
		if err != nil {
			break
		}
		batch = append(batch, m)
	}
	return batch, nil
}

// output is what one request turns into.
type output struct {
	record    streams.Record
	dead      bool
	requestID string
	modelErr  bool // no such model (yet): worth a registry refresh and a second try
}

// solved is a batch whose answers are computed and waiting to be written.
type solved struct {
	batch []streams.Message
	outs  []output
}

// solveBatch computes the answers of a batch (in parallel), refreshing the registry as
// needed.
func (p *Processor) solveBatch(ctx context.Context, batch []streams.Message) (solved, error) {
	p.cfg.Metrics.BatchSize.Observe(float64(len(batch)))
	p.mu.Lock()
	if time.Since(p.lastSync) >= p.cfg.ModelRefresh {
		if err := p.syncModelsLocked(ctx); err != nil {
			p.mu.Unlock()
			return solved{}, err
		}
	}
	p.mu.Unlock()
	outs := make([]output, len(batch))
	p.parallel(len(batch), func(i int) { outs[i] = p.handle(batch[i]) })
	var retry []int
	for i := range outs {
		if outs[i].modelErr {
			retry = append(retry, i)
		}
	}
	if len(retry) > 0 {
		if err := p.SyncModels(ctx); err != nil {
			return solved{}, err
		}
		for _, i := range retry {
			outs[i] = p.handle(batch[i])
		}
	}
	return solved{batch: batch, outs: outs}, nil
}

// writeLoop writes the solved batches in order and commits their requests, together,
// at most every CommitInterval once their results are acknowledged. When writes is
// closed it commits what is pending and returns.
func (p *Processor) writeLoop(ctx context.Context, sub streams.Subscription, writes <-chan solved) error {
	var (
		pending    []streams.Message // requests whose results are appended, not yet committed
		lastCommit = time.Now()
		timer      *time.Timer
		due        <-chan time.Time // fires when pending requests must be committed
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	commit := func() error {
		due = nil
		lastCommit = time.Now()
		if len(pending) == 0 {
			return nil
		}
		err := p.commit(ctx, sub, pending)
		clear(pending) // drop the references to the requests' bytes
		pending = pending[:0]
		return err
	}
	for {
		select {
		case sb, ok := <-writes:
			if !ok {
				return commit()
			}
			if err := p.writeBatch(ctx, sb); err != nil {
				return err
			}
			pending = append(pending, sb.batch...)
			wait := p.cfg.CommitInterval - time.Since(lastCommit)
			switch {
			case wait <= 0:
				if err := commit(); err != nil {
					return err
				}
			case due == nil:
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				due = timer.C
			}
		case <-due:
			if err := commit(); err != nil {
				return err
			}
		}
	}
}

// writeBatch appends a solved batch's results and dead letters and notifies listeners.
// Its requests may be committed only after it returns without error: at least once.
func (p *Processor) writeBatch(ctx context.Context, sb solved) error {
	var results, dead []streams.Record
	for _, o := range sb.outs {
		if o.dead {
			dead = append(dead, o.record)
		} else {
			results = append(results, o.record)
		}
	}
	if len(results) > 0 {
		if err := p.cfg.Log.Append(ctx, p.cfg.Topics.Results, results...); err != nil {
			return fmt.Errorf("appending results: %w", err)
		}
	}
	if len(dead) > 0 {
		if err := p.cfg.Log.Append(ctx, p.cfg.Topics.DeadLetters, dead...); err != nil {
			return fmt.Errorf("appending dead letters: %w", err)
		}
		p.cfg.Metrics.DeadLetters.WithLabelValues(p.cfg.Topics.Requests).Add(float64(len(dead)))
	}
	if n := p.cfg.Notifier; n != nil {
		for _, o := range sb.outs {
			if !o.dead {
				if err := n.Notify(ctx, o.requestID, o.record.Value); err != nil {
					p.cfg.Logger.Warn().Err(err).Str("request_id", o.requestID).Msg("live notification failed")
				}
			}
		}
	}
	return nil
}

// commit commits requests whose results are appended and records how far this
// processor got (for the lag gauge).
func (p *Processor) commit(ctx context.Context, sub streams.Subscription, msgs []streams.Message) error {
	if err := sub.Commit(ctx, msgs...); err != nil {
		return fmt.Errorf("committing requests: %w", err)
	}
	p.mu.Lock()
	for _, m := range msgs {
		if m.Offset+1 > p.consumed[m.Partition] {
			p.consumed[m.Partition] = m.Offset + 1
		}
	}
	p.mu.Unlock()
	return nil
}

// parallel runs f(0..n-1) on the configured number of workers.
func (p *Processor) parallel(n int, f func(int)) {
	w := p.cfg.Workers
	if w > n {
		w = n
	}
	if w <= 1 {
		for i := 0; i < n; i++ {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	for k := 0; k < w; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	wg.Wait()
}

// handle turns one request message into a result event or a dead letter. It never
// panics on input: the engine reports its own failures as results.
func (p *Processor) handle(m streams.Message) output {
	metrics := p.cfg.Metrics
	// Hot path: the envelope's attributes here, the request by the engine's strict
	// decoder below (the same rules as the request schema, with the same field paths).
	// Whatever the fast path refuses gets the full schema validation, for its message.
	env, err := event.DecodeTrusted(m.Value)
	if err != nil {
		env, err = event.Decode(m.Value)
	}
	var derr *event.DecodeError
	switch {
	case err == nil && env.Type != event.OptimizationRequested:
		metrics.Events.WithLabelValues(env.Type).Inc()
		return output{dead: true, record: deadLetter(m, fmt.Sprintf("event type %s does not belong on the request topic", env.Type))}
	case err != nil && errors.As(err, &derr) && derr.DataOnly && env.Type == event.OptimizationRequested:
		metrics.Events.WithLabelValues(env.Type).Inc()
		return p.reject(m, env, env.RequestID(), derr.DataErrors(), "", "")
	case err != nil:
		metrics.Events.WithLabelValues("undecodable").Inc()
		return output{dead: true, record: deadLetter(m, err.Error())}
	}
	metrics.Events.WithLabelValues(env.Type).Inc()
	req, err := engine.DecodeRequest(env.Data)
	if err != nil {
		var fes engine.FieldErrors
		if !errors.As(err, &fes) {
			fes = engine.FieldErrors{{Message: err.Error()}}
		}
		return p.reject(m, env, env.RequestID(), fes, "", "")
	}
	// The request's own id, or the event's when it has none (as env.RequestID(), without
	// parsing the data a second time).
	requestID := req.RequestID
	if requestID == "" {
		requestID = env.ID
	}
	req.RequestID = requestID
	method := req.Objective.Type
	if method == "" {
		method = engine.ObjMaxKPI
	}

	var pm *engine.Prepared
	modelID, version, hash := "", 0, ""
	if req.Model != nil {
		pm, err = engine.Prepare(req.Model)
		if err != nil {
			var fes engine.FieldErrors
			errors.As(err, &fes)
			for i := range fes {
				fes[i].Field = "model." + fes[i].Field
			}
			return p.reject(m, env, requestID, fes, method, engine.StatusInvalid)
		}
		modelID, hash = req.Model.ModelID, pm.Hash()
	} else {
		mv, err := p.reg.Resolve(req.ModelID)
		if err != nil {
			o := p.reject(m, env, requestID, engine.FieldErrors{{Field: "model_id", Message: err.Error()}}, method, engine.StatusInvalid)
			o.modelErr = true
			return o
		}
		pm, modelID, version, hash = mv.Prepared(), mv.ModelID, mv.Version, mv.Hash
	}

	metrics.Active.Inc()
	start := time.Now()
	res := pm.Solve(&req)
	took := time.Since(start).Seconds()
	metrics.Active.Dec()
	metrics.Duration.WithLabelValues(method).Observe(took)
	metrics.ModelPrediction.WithLabelValues(modelID).Observe(took)
	metrics.Requests.WithLabelValues(method, res.Status).Inc()

	res.RequestID, res.ModelID, res.ModelVersion, res.ModelHash = requestID, modelID, version, hash
	p.cfg.Logger.Debug().Str("request_id", requestID).Str("model_id", modelID).Int("model_version", version).
		Str("status", res.Status).Float64("seconds", took).Msg("request solved")
	// The solve time stays out of the event: a redelivered request must give the same
	// bytes. It is in the metrics above.
	res.Engine.ElapsedMicros = 0
	if res.Status == engine.StatusInvalid {
		errs := res.Errors
		if len(errs) == 0 {
			for _, msg := range res.Messages {
				errs = append(errs, engine.FieldError{Message: msg})
			}
		}
		return p.reject(m, env, requestID, errs, "", "")
	}
	return p.emit(m, env, requestID, event.OptimizationCompleted, res)
}

func (p *Processor) reject(m streams.Message, env event.Envelope, requestID string, errs engine.FieldErrors, method, status string) output {
	if method != "" {
		p.cfg.Metrics.Requests.WithLabelValues(method, status).Inc()
	}
	if len(errs) == 0 {
		errs = engine.FieldErrors{{Message: "invalid request"}}
	}
	if requestID == "" {
		requestID = env.ID
	}
	return p.emit(m, env, requestID, event.OptimizationRejected, event.Rejection{RequestID: requestID, Errors: errs})
}

func (p *Processor) emit(m streams.Message, env event.Envelope, requestID, typ string, data any) output {
	t := env.Time
	if t.IsZero() {
		t = m.Time
	}
	// Result events are built from engine values whose JSON the schemas are tested
	// against (schemas' tests, the processor's tests decode every result in full), so
	// they are not validated again here: that would cost three times the solve.
	b, err := event.EncodeTrusted(typ, p.cfg.Source, requestID, event.ResultID(requestID, typ), t, data)
	if err == nil {
		return output{record: streams.Record{Key: []byte(requestID), Value: b}, requestID: requestID}
	}
	// Our own event failed our own schema: a bug, but the request must not vanish.
	p.cfg.Logger.Error().Err(err).Str("request_id", requestID).Msg("result event does not validate")
	return output{dead: true, record: deadLetter(m, "result event does not validate: "+err.Error())}
}

// DeadLetter is the value of a dead-letter record: the original bytes, untouched, with
// where they came from and why they could not be processed.
type DeadLetter struct {
	Reason    string    `json:"reason"`
	Topic     string    `json:"topic"`
	Partition int       `json:"partition"`
	Offset    int64     `json:"offset"`
	Time      time.Time `json:"time"`
	Key       string    `json:"key,omitempty"`
	Value     string    `json:"value,omitempty"`        // the original value when it is UTF-8
	ValueB64  string    `json:"value_base64,omitempty"` // otherwise, base64
}

func deadLetter(m streams.Message, reason string) streams.Record {
	d := DeadLetter{Reason: reason, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Time: m.Time, Key: string(m.Key)}
	if utf8.Valid(m.Value) {
		d.Value = string(m.Value)
	} else {
		d.ValueB64 = base64.StdEncoding.EncodeToString(m.Value)
	}
	b, _ := json.Marshal(d)
	return streams.Record{Key: []byte(fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, m.Offset)), Value: b}
}

func eventType(raw []byte) string {
	var t struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(raw, &t) != nil || t.Type == "" {
		return "undecodable"
	}
	return t.Type
}

// updateLag sets the lag gauge of the request topic from the log's end offsets.
func (p *Processor) updateLag(ctx context.Context) {
	ends, err := p.cfg.Log.EndOffsets(ctx, p.cfg.Topics.Requests)
	if err != nil {
		return
	}
	p.mu.Lock()
	lag := int64(0)
	for part, end := range ends {
		if d := end - p.consumed[part]; d > 0 {
			lag += d
		}
	}
	p.mu.Unlock()
	p.cfg.Metrics.Lag.WithLabelValues(p.cfg.Topics.Requests).Set(float64(lag))
}
