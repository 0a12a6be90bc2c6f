// Package replay rebuilds read models from the event log into a fresh generation of
// the store (a new SQLite file beside the live one, or a new ClickHouse database)
// without touching the live read models, and switches a finished generation in on
// request (blue/green).
//
// A build reuses the projector (projections.Projector) with From/To bounds, writing its
// checkpoint under the live projector's name, so the generation holds the positions it
// covers: after a switch the live projector continues from there. An interrupted build
// resumes from that checkpoint when run again under the same name and range.
//
// A switch first catches the generation up to the end of the log, then exchanges the
// live read models with it in one step (a file rename on SQLite, one RENAME TABLE chain
// on ClickHouse); the previous live read models become the generation of that name, so
// switching it again switches back. A generation that starts after the start of the log
// lacks the events before it and is switched only when forced.
package replay

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/atlas-mmm/atlas/projections"
	"github.com/atlas-mmm/atlas/projections/store"
	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/processor"
)

// Target is where the generations live, beside the live read models.
type Target interface {
	// Open opens generation name, migrated; existed tells whether it was there before.
	// With create false a missing generation is ErrNotFound. Only Build passes create
	// true: a target may then write the generation in a mode made for a build.
	Open(ctx context.Context, name string, create bool) (s store.Store, existed bool, err error)
	// OpenLive opens the live read models, migrated.
	OpenLive(ctx context.Context) (store.Store, error)
	// Names lists the generations, sorted.
	Names(ctx context.Context) ([]string, error)
	// Drop removes generation name.
	Drop(ctx context.Context, name string) error
	// Swap exchanges the live read models with generation name's, atomically. Every
	// store opened with Open or OpenLive must be closed first.
	Swap(ctx context.Context, name string) error
	// Where names the generation's location for people (a file, a database).
	Where(name string) string
	Close() error
}

// ErrNotFound is returned for a generation that does not exist.
var ErrNotFound = errors.New("replay: no such generation")

// Replay builds, switches, lists and drops generations.
type Replay struct {
	Log       streams.Log
	Target    Target
	Topics    processor.Topics
	Projector string // the live projector's checkpoint name (default "atlas-projector")
	BatchRows int    // rows per Apply (default: the projector's)
	Logger    zerolog.Logger
	// CommitRows lets the store commit batches together, at most this many rows apart
	// (projections.Projector.CommitRows; default: every batch).
	CommitRows int
	// Report, when set, is called every Every (default 1s) while a build or a catch-up
	// runs, and once at its end.
	Report func(Progress)
	Every  time.Duration

	// failAt, set by tests, runs at each named step of a switch; an error stops the
	// switch there, as a crash would.
	failAt func(step string) error
}

// Progress is how far a build or catch-up is.
type Progress struct {
	Name     string
	Stage    string  // "build" or "catch-up"
	Messages int64   // messages projected so far in this stage
	Fraction float64 // estimated share of the range done, 0 to 1
	Elapsed  time.Duration
	Done     bool
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_]{0,39}$`)

// CheckName rejects names that cannot name a file suffix and a database alike.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("replay: generation name %q: use 1 to 40 lower-case letters, digits and _", name)
	}
	return nil
}

func (r *Replay) projectorName() string {
	if r.Projector == "" {
		return "atlas-projector"
	}
	return r.Projector
}

func (r *Replay) topics() processor.Topics {
	if r.Topics == (processor.Topics{}) {
		return processor.DefaultTopics()
	}
	return r.Topics
}

func (r *Replay) topicList() []string {
	t := r.topics()
	return []string{t.Models, t.Requests, t.Results, t.DeadLetters}
}

// Build replays [from, to) into generation name. A generation of that name that is
// unfinished and was started with the same from and to is resumed; a finished one is
// an error (drop it first).
func (r *Replay) Build(ctx context.Context, name string, from, to Spec) (store.Generation, error) {
	if err := CheckName(name); err != nil {
		return store.Generation{}, err
	}
	s, existed, err := r.Target.Open(ctx, name, true)
	if err != nil {
		return store.Generation{}, err
	}
	defer s.Close()
	gs, ok := s.(store.Generations)
	if !ok {
		return store.Generation{}, fmt.Errorf("replay: the store does not record generations")
	}
	g, err := gs.Generation(ctx)
	if err != nil {
		return g, err
	}
	if existed && g.Name == "" {
		// Created by a build killed before it recorded itself: empty, or something else.
		cp, err := s.Checkpoint(ctx, r.projectorName())
		if err != nil {
			return g, err
		}
		if len(cp) > 0 {
			return g, fmt.Errorf("replay: %s exists but records no replay: drop it first", r.Target.Where(name))
		}
		existed = false
	}
	switch {
	case existed && !g.Finished.IsZero():
		return g, fmt.Errorf("replay: generation %q was finished at %s: drop it or choose another name", name, g.Finished.Format(time.RFC3339))
	case existed && (g.From != from.Raw || g.To != to.Raw):
		return g, fmt.Errorf("replay: the interrupted generation %q was started with --from %q --to %q: resume it with those, or drop it", name, g.From, g.To)
	case existed:
		r.Logger.Info().Str("generation", name).Time("started", g.Started).Msg("resuming an interrupted replay from its checkpoint")
	default:
		g = store.Generation{Name: name, From: from.Raw, To: to.Raw, Started: time.Now().UTC()}
		if err := gs.SetGeneration(ctx, g); err != nil {
			return g, err
		}
	}
	n, err := r.project(ctx, s, name, "build", from, to)
	if err != nil {
		return g, err
	}
	cp, err := s.Checkpoint(ctx, r.projectorName())
	if err != nil {
		return g, err
	}
	g.Finished, g.Checkpoint, g.Messages = time.Now().UTC(), cp, g.Messages+n
	if err := gs.SetGeneration(ctx, g); err != nil {
		return g, err
	}
	r.Logger.Info().Str("generation", name).Int64("messages", n).Str("where", r.Target.Where(name)).Msg("replay finished")
	return g, nil
}

// project runs the projector on s over [from, to) (to zero: the end of the log now)
// until it has nothing left, reporting progress. It returns the messages projected.
func (r *Replay) project(ctx context.Context, s store.Store, name, stage string, from, to Spec) (int64, error) {
	ends := map[string]map[int]int64{}
	parts := map[string][]int{}
	for _, t := range r.topicList() {
		e, err := r.Log.EndOffsets(ctx, t)
		if err != nil {
			return 0, fmt.Errorf("replay: end offsets of %s: %w", t, err)
		}
		ends[t] = e
		for p := range e {
			parts[t] = append(parts[t], p)
		}
		sort.Ints(parts[t])
	}
	toBound := to.bound(parts)
	if to.IsZero() {
		// A fixed end: a busy log would otherwise never let the replay finish.
		toBound = projections.Bound{Topics: ends}
	}
	start, err := s.Checkpoint(ctx, r.projectorName())
	if err != nil {
		return 0, err
	}
	proj := &projections.Projector{Log: r.Log, Store: s, Topics: r.topics(), Name: r.projectorName(),
		BatchRows: r.BatchRows, CommitRows: r.CommitRows, From: from.bound(parts), To: toBound, Logger: r.Logger}
	est := newEstimate(start, proj.From, toBound, ends, r.topics().Models)

	began := time.Now()
	report := func(done bool) {
		if r.Report != nil {
			r.Report(Progress{Name: name, Stage: stage, Messages: proj.Messages(), Fraction: est.fraction(proj.Applied(), done),
				Elapsed: time.Since(began), Done: done})
		}
	}
	stop := make(chan struct{})
	reporterDone := make(chan struct{})
	stopReporter := sync.OnceFunc(func() { close(stop); <-reporterDone })
	defer stopReporter()
	go func() {
		defer close(reporterDone)
		every := r.Every
		if every <= 0 {
			every = time.Second
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				report(false)
			}
		}
	}()

	backoff, failures := stepBackoff, 0
	for {
		n, err := proj.Step(ctx)
		if ctx.Err() != nil {
			return proj.Messages(), fmt.Errorf("replay %q interrupted (run it again to resume): %w", name, ctx.Err())
		}
		if err != nil && !errors.Is(err, store.ErrInvalidBatch) && failures+1 < stepAttempts {
			// A Step starts from the stored checkpoint, so a failed one (a lost
			// connection; with CommitRows the store cannot retry a write itself, as the
			// rows it held back are lost with it) is tried again from there.
			failures++
			r.Logger.Warn().Err(err).Str("generation", name).Dur("retry_in", backoff).Msg("replay step failed; retrying from the checkpoint")
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff *= 2
			continue
		}
		if err != nil {
			return proj.Messages(), fmt.Errorf("replay %q: %w", name, err)
		}
		if n == 0 {
			stopReporter()
			report(true)
			return proj.Messages(), nil
		}
	}
}

// Retries of a failed Step: attempts in all, and the first wait (doubling).
const (
	stepAttempts = 4
	stepBackoff  = 100 * time.Millisecond
)

// estimate turns checkpoints into a share of the range done, in offset units: exact
// for Kafka, whose offsets count messages per partition; proportional for JetStream,
// whose offsets are stream sequences shared by the partitions.
type estimate struct {
	start, end map[string]map[int]int64
	known      map[string]map[int]bool // start known up front (else the first one seen)
}

func newEstimate(cp map[string]map[int]int64, from, to projections.Bound, ends map[string]map[int]int64, models string) *estimate {
	e := &estimate{start: map[string]map[int]int64{}, end: map[string]map[int]int64{}, known: map[string]map[int]bool{}}
	for t, parts := range ends {
		e.start[t], e.end[t], e.known[t] = map[int]int64{}, map[int]int64{}, map[int]bool{}
		fromPos, toPos := from.Position(t), to.Position(t)
		for p, end := range parts {
			if o, ok := toPos.Offsets[p]; ok && o < end {
				end = o
			}
			e.end[t][p] = end
			switch o, ok := fromPos.Offsets[p]; {
			case t == models: // always read from its start
				e.known[t][p] = true
			case cp[t] != nil && cp[t][p] > 0:
				e.start[t][p], e.known[t][p] = cp[t][p], true
			case ok:
				e.start[t][p], e.known[t][p] = o, true
			case fromPos.Time.IsZero():
				e.known[t][p] = true
			}
		}
	}
	return e
}

func (e *estimate) fraction(applied map[string]map[int]int64, done bool) float64 {
	if done {
		return 1
	}
	var did, all int64
	for t, parts := range e.end {
		for p, end := range parts {
			cur, ok := applied[t][p]
			if !e.known[t][p] {
				if !ok {
					continue // not reached yet, start unknown: leave it out
				}
				e.start[t][p], e.known[t][p] = cur, true
			}
			start := e.start[t][p]
			if end <= start {
				continue
			}
			all += end - start
			if ok {
				did += min(max(cur, start), end) - start
			}
		}
	}
	if all == 0 {
		return 0
	}
	return float64(did) / float64(all)
}

// Switch makes generation name the live read models: it catches it up to the end of
// the log, then swaps it with the live ones. A generation built from a later --from
// than the start lacks history and needs force.
func (r *Replay) Switch(ctx context.Context, name string, force bool) error {
	if err := CheckName(name); err != nil {
		return err
	}
	s, _, err := r.Target.Open(ctx, name, false)
	if err != nil {
		return err
	}
	_, err = r.catchUp(ctx, s, name, force)
	s.Close()
	if err != nil {
		return err
	}
	if err := r.step("caught-up"); err != nil {
		return err
	}

	live, err := r.Target.OpenLive(ctx)
	if err != nil {
		return err
	}
	prev, liveCp, err := generationOf(ctx, live, r.projectorName())
	live.Close()
	if err != nil {
		return err
	}
	if err := r.Target.Swap(ctx, name); err != nil {
		return err
	}
	r.Logger.Info().Str("generation", name).Msg("switched: the replayed read models are live")
	if err := r.step("swapped"); err != nil {
		return err
	}

	// The previous live read models are now generation name: record what they hold, so
	// that a projector that sees them switched back in knows where to continue.
	old, _, err := r.Target.Open(ctx, name, false)
	if err != nil {
		return fmt.Errorf("replay: switched, but recording the previous read models failed: %w", err)
	}
	defer old.Close()
	if prev.Name == "" { // built by the live projector: a new identity
		prev = store.Generation{Started: time.Now().UTC()}
	}
	prev.Name, prev.Checkpoint, prev.Switched = name, liveCp, time.Time{}
	if prev.Finished.IsZero() {
		prev.Finished = time.Now().UTC()
	}
	gs, ok := old.(store.Generations)
	if !ok {
		return fmt.Errorf("replay: switched, but the store does not record generations")
	}
	if err := gs.SetGeneration(ctx, prev); err != nil {
		return fmt.Errorf("replay: switched, but recording the previous read models failed: %w", err)
	}
	return nil
}

func (r *Replay) step(name string) error {
	if r.failAt != nil {
		return r.failAt(name)
	}
	return nil
}

func generationOf(ctx context.Context, s store.Store, projector string) (store.Generation, map[string]map[int]int64, error) {
	gs, ok := s.(store.Generations)
	if !ok {
		return store.Generation{}, nil, fmt.Errorf("replay: the store does not record generations")
	}
	g, err := gs.Generation(ctx)
	if err != nil {
		return g, nil, err
	}
	cp, err := s.Checkpoint(ctx, projector)
	return g, cp, err
}

// catchUp projects what the log gained since generation name was built and records
// the checkpoint it reached as the generation's.
func (r *Replay) catchUp(ctx context.Context, s store.Store, name string, force bool) (store.Generation, error) {
	gs, ok := s.(store.Generations)
	if !ok {
		return store.Generation{}, fmt.Errorf("replay: the store does not record generations")
	}
	g, err := gs.Generation(ctx)
	if err != nil {
		return g, err
	}
	if g.Name == "" {
		// Read models the live projector built (switched out by a switch that crashed
		// before recording them): complete from the start of the log.
		g = store.Generation{Name: name, Started: time.Now().UTC(), Finished: time.Now().UTC()}
	}
	if g.Finished.IsZero() {
		return g, fmt.Errorf("replay: generation %q is not finished: run the replay again to resume it", name)
	}
	from, err := ParseSpec(g.From)
	if err != nil {
		return g, err
	}
	if !from.IsZero() && !force {
		return g, fmt.Errorf("replay: generation %q starts at --from %q and lacks the events before: switch with --force to serve it anyway", name, g.From)
	}
	n, err := r.project(ctx, s, name, "catch-up", from, Spec{})
	if err != nil {
		return g, err
	}
	if g.Checkpoint, err = s.Checkpoint(ctx, r.projectorName()); err != nil {
		return g, err
	}
	g.Messages += n
	g.Switched = time.Now().UTC()
	if err := gs.SetGeneration(ctx, g); err != nil {
		return g, err
	}
	return g, nil
}

// Info is one generation as List shows it.
type Info struct {
	Name       string
	Where      string
	Generation store.Generation
	Live       bool // the live read models (Name is then what built them, "" for the projector)
	Err        error
}

// List returns the live read models first, then every generation.
func (r *Replay) List(ctx context.Context) ([]Info, error) {
	var out []Info
	live, err := r.Target.OpenLive(ctx)
	if err != nil {
		return nil, err
	}
	g, _, err := generationOf(ctx, live, r.projectorName())
	live.Close()
	out = append(out, Info{Name: g.Name, Where: r.Target.Where(""), Generation: g, Live: true, Err: err})
	names, err := r.Target.Names(ctx)
	if err != nil {
		return out, err
	}
	for _, n := range names {
		info := Info{Name: n, Where: r.Target.Where(n)}
		s, _, err := r.Target.Open(ctx, n, false)
		if err == nil {
			info.Generation, _, info.Err = generationOf(ctx, s, r.projectorName())
			s.Close()
		} else {
			info.Err = err
		}
		out = append(out, info)
	}
	return out, nil
}

// Drop removes generation name.
func (r *Replay) Drop(ctx context.Context, name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	names, err := r.Target.Names(ctx)
	if err != nil {
		return err
	}
	for _, n := range names {
		if n == name {
			return r.Target.Drop(ctx, name)
		}
	}
	return fmt.Errorf("%w: %q", ErrNotFound, name)
}
