package replay

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atlas-mmm/atlas/projections"
	"github.com/atlas-mmm/atlas/projections/replay/replaytest"
	"github.com/atlas-mmm/atlas/projections/store"
	"github.com/atlas-mmm/atlas/projections/store/storetest"
	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/jetstream"
	"github.com/atlas-mmm/atlas/streams/processor"
)

const projector = "atlas-projector"

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func suffix() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// jetStreamLog is an embedded log with Atlas's topics (4 partitions each).
func jetStreamLog(t *testing.T) (streams.Log, processor.Topics) {
	l, err := jetstream.Open(context.Background(), jetstream.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	topics := processor.DefaultTopics()
	if err := processor.CreateTopics(testCtx(t), l, topics, 4); err != nil {
		t.Fatal(err)
	}
	return l, topics
}

func write(t *testing.T, l streams.Log, topics processor.Topics, o replaytest.Options) []string {
	ids, err := replaytest.Write(testCtx(t), l, topics, o)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// catchUp runs a live projector on s until it has nothing left to do.
func catchUp(t *testing.T, l streams.Log, topics processor.Topics, s store.Store) {
	t.Helper()
	p := &projections.Projector{Log: l, Store: s, Topics: topics, Name: projector, BatchRows: 700}
	for {
		n, err := p.Step(testCtx(t))
		if err != nil {
			t.Fatalf("live projector: %v", err)
		}
		if n == 0 {
			return
		}
	}
}

func snapshot(t *testing.T, s store.Store) storetest.Snapshot {
	t.Helper()
	snap, err := storetest.Take(testCtx(t), s, projector)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func sameSnapshots(t *testing.T, what string, want, got storetest.Snapshot) {
	t.Helper()
	if d := storetest.Diff(want, got); d != "" {
		t.Fatalf("%s:\n%s", what, d)
	}
}

func open(t *testing.T, tg Target, name string) store.Store {
	t.Helper()
	var s store.Store
	var err error
	if name == "" {
		s, err = tg.OpenLive(testCtx(t))
	} else {
		s, _, err = tg.Open(testCtx(t), name, false)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func generation(t *testing.T, s store.Store) store.Generation {
	t.Helper()
	g, err := s.(store.Generations).Generation(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// checkOnePerRequest: exactly one result per request, with its channels, whatever the
// redeliveries.
func checkOnePerRequest(t *testing.T, snap storetest.Snapshot, ids []string) {
	t.Helper()
	if len(snap.Results) != len(ids) {
		t.Fatalf("%d results for %d requests", len(snap.Results), len(ids))
	}
	seen := map[string]bool{}
	for _, r := range snap.Results {
		if seen[r.RequestID] {
			t.Fatalf("request %s has two results", r.RequestID)
		}
		seen[r.RequestID] = true
		want := len(replaytest.Channels)
		if r.Rejected {
			want = 0
		}
		if n := len(snap.Allocations[r.RequestID]); n != want {
			t.Fatalf("request %s: %d allocation rows, want %d", r.RequestID, n, want)
		}
	}
}

// The whole story on the embedded store: a replay with redelivered duplicates equals
// the live read models, query by query; a switch catches it up and makes it live; the
// previous live read models become the generation; the live projector then has
// nothing to redo.
func TestReplayAndSwitchSQLite(t *testing.T) {
	l, topics := jetStreamLog(t)
	ids := write(t, l, topics, replaytest.Options{Requests: 1500, Duplicates: 120})
	dir := t.TempDir()
	tg, err := NewSQLite(filepath.Join(dir, "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	live := open(t, tg, "")
	catchUp(t, l, topics, live)
	liveSnap := snapshot(t, live)
	checkOnePerRequest(t, liveSnap, ids)
	live.Close()

	var reports []Progress
	r := &Replay{Log: l, Target: tg, Topics: topics, BatchRows: 900, Every: time.Millisecond,
		Report: func(p Progress) { reports = append(reports, p) }}
	g, err := r.Build(testCtx(t), "g1", Spec{}, Spec{})
	if err != nil {
		t.Fatal(err)
	}
	if g.Finished.IsZero() || g.Messages == 0 {
		t.Fatalf("generation after the build: %+v", g)
	}
	if last := reports[len(reports)-1]; !last.Done || last.Fraction != 1 || last.Messages != g.Messages {
		t.Errorf("last progress report %+v, want done at 1 with %d messages", last, g.Messages)
	}
	gen := open(t, tg, "g1")
	sameSnapshots(t, "replayed read models vs live ones", liveSnap, snapshot(t, gen))
	gen.Close()
	if _, err := r.Build(testCtx(t), "g1", Spec{}, Spec{}); err == nil || !strings.Contains(err.Error(), "finished") {
		t.Errorf("building a finished generation again: %v", err)
	}

	// More history arrives; the switch catches the generation up first.
	more := write(t, l, topics, replaytest.Options{Requests: 300, Prefix: "late"})
	if err := r.Switch(testCtx(t), "g1", false); err != nil {
		t.Fatal(err)
	}
	live = open(t, tg, "")
	defer live.Close()
	if g := generation(t, live); g.Name != "g1" || g.Switched.IsZero() {
		t.Errorf("live generation after the switch: %+v", g)
	}
	switched := snapshot(t, live)
	checkOnePerRequest(t, switched, append(append([]string{}, ids...), more...))
	// The live projector re-reads the model topic on start (version numbers), and
	// nothing else.
	p := &projections.Projector{Log: l, Store: live, Topics: topics, Name: projector}
	var models int
	if err := l.Read(testCtx(t), topics.Models, streams.Position{}, streams.Position{}, func(streams.Message) error {
		models++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n, err := p.Step(testCtx(t)); err != nil || n != models {
		t.Errorf("the live projector after the switch projected %d messages (%v), want the %d model events", n, err, models)
	}
	sameSnapshots(t, "switched read models after the live projector's step", switched, snapshot(t, live))
	// The previous live read models are now generation g1, untouched.
	old := open(t, tg, "g1")
	oldSnap := snapshot(t, old)
	old.Close()
	sameSnapshots(t, "previous live read models", liveSnap, oldSnap)
	for _, side := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(tg.path("g1") + side); err == nil {
			t.Errorf("%s%s left behind", tg.path("g1"), side)
		}
	}
	if _, err := os.Stat(tg.swapPath()); err == nil {
		t.Error("swap file left behind")
	}

	// List and drop.
	infos, err := r.List(testCtx(t))
	if err != nil || len(infos) != 2 || !infos[0].Live || infos[0].Name != "g1" || infos[1].Name != "g1" {
		t.Fatalf("List = %+v, %v", infos, err)
	}
	if err := r.Drop(testCtx(t), "g1"); err != nil {
		t.Fatal(err)
	}
	if names, _ := tg.Names(testCtx(t)); len(names) != 0 {
		t.Errorf("names after drop: %v", names)
	}
	if err := r.Drop(testCtx(t), "g1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("dropping twice: %v", err)
	}
}

// cancelling cancels a context after its nth Apply, as a Ctrl-C mid-replay would.
type cancelling struct {
	store.Store
	store.Generations
	n      int
	cancel context.CancelFunc
}

func (c *cancelling) Apply(ctx context.Context, b store.Batch) error {
	if err := c.Store.Apply(ctx, b); err != nil {
		return err
	}
	if c.n--; c.n == 0 {
		c.cancel()
	}
	return nil
}

type wrapTarget struct {
	Target
	wrap func(store.Store) store.Store
}

func (w wrapTarget) Open(ctx context.Context, name string, create bool) (store.Store, bool, error) {
	s, had, err := w.Target.Open(ctx, name, create)
	if err != nil {
		return nil, false, err
	}
	return w.wrap(s), had, nil
}

// An interrupted replay resumes from its checkpoint under the same name and range,
// and ends equal to the live read models; a different range is refused.
func TestInterruptedReplayResumes(t *testing.T) {
	l, topics := jetStreamLog(t)
	write(t, l, topics, replaytest.Options{Requests: 1200, Duplicates: 30})
	tg, err := NewSQLite(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	live := open(t, tg, "")
	defer live.Close()
	catchUp(t, l, topics, live)

	ctx, cancel := context.WithCancel(testCtx(t))
	wt := wrapTarget{tg, func(s store.Store) store.Store {
		return &cancelling{Store: s, Generations: s.(store.Generations), n: 3, cancel: cancel}
	}}
	r := &Replay{Log: l, Target: wt, Topics: topics, BatchRows: 500}
	if _, err := r.Build(ctx, "g1", Spec{}, Spec{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted build: %v", err)
	}
	half := open(t, tg, "g1")
	if g := generation(t, half); g.Name != "g1" || !g.Finished.IsZero() {
		t.Errorf("interrupted generation: %+v", g)
	}
	cp, _ := half.Checkpoint(testCtx(t), projector)
	half.Close()
	if len(cp) == 0 {
		t.Fatal("the interrupted build left no checkpoint")
	}
	if err := r.Switch(testCtx(t), "g1", false); err == nil || !strings.Contains(err.Error(), "not finished") {
		t.Errorf("switching an unfinished generation: %v", err)
	}
	r.Target = tg
	if _, err := r.Build(testCtx(t), "g1", Spec{Raw: "5"}, Spec{}); err == nil || !strings.Contains(err.Error(), "resume") {
		t.Errorf("resuming with another range: %v", err)
	}
	if _, err := r.Build(testCtx(t), "g1", Spec{}, Spec{}); err != nil {
		t.Fatal(err)
	}
	gen := open(t, tg, "g1")
	defer gen.Close()
	sameSnapshots(t, "resumed replay vs live", snapshot(t, live), snapshot(t, gen))

	// Killed right after creating its store, before recording itself: the empty store
	// is reused. A store holding rows but no replay record is someone else's: refused.
	empty, _, err := tg.Open(testCtx(t), "g2", true)
	if err != nil {
		t.Fatal(err)
	}
	empty.Close()
	if _, err := r.Build(testCtx(t), "g2", Spec{}, Spec{}); err != nil {
		t.Fatalf("build over an empty, unrecorded store: %v", err)
	}
	other, _, err := tg.Open(testCtx(t), "g3", true)
	if err != nil {
		t.Fatal(err)
	}
	catchUp(t, l, topics, other)
	other.Close()
	if _, err := r.Build(testCtx(t), "g3", Spec{}, Spec{}); err == nil || !strings.Contains(err.Error(), "records no replay") {
		t.Errorf("build over a store with rows but no replay record: %v", err)
	}
}

// An unfinished build that a restart of the machine interrupted (its file marked with
// another boot, see sqlite.OpenBuild) may have lost writes: run again, it starts over,
// and ends equal to the live read models.
func TestBuildInterruptedByRestartStartsOver(t *testing.T) {
	l, topics := jetStreamLog(t)
	write(t, l, topics, replaytest.Options{Requests: 300})
	tg, err := NewSQLite(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	live := open(t, tg, "")
	defer live.Close()
	catchUp(t, l, topics, live)

	ctx, cancel := context.WithCancel(testCtx(t))
	wt := wrapTarget{tg, func(s store.Store) store.Store {
		return &cancelling{Store: s, Generations: s.(store.Generations), n: 2, cancel: cancel}
	}}
	r := &Replay{Log: l, Target: wt, Topics: topics, BatchRows: 100}
	if _, err := r.Build(ctx, "g1", Spec{}, Spec{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted build: %v", err)
	}
	half := open(t, tg, "g1")
	interrupted := generation(t, half)
	half.Close()

	// What a build in another boot leaves: its mark (the marks OpenBuild writes are odd).
	db, err := sql.Open("sqlite", tg.Where("g1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA user_version = 2"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	r.Target = tg
	g, err := r.Build(testCtx(t), "g1", Spec{}, Spec{})
	if err != nil {
		t.Fatal(err)
	}
	if g.Started.Equal(interrupted.Started) {
		t.Errorf("the build resumed (started %v) instead of starting over", g.Started)
	}
	gen := open(t, tg, "g1")
	defer gen.Close()
	sameSnapshots(t, "replay started over vs live", snapshot(t, live), snapshot(t, gen))
}

// A switch interrupted at any step leaves the live read models all old or all new,
// and the target settles what was left when next opened.
func TestSwitchInterruptedSQLite(t *testing.T) {
	l, topics := jetStreamLog(t)
	write(t, l, topics, replaytest.Options{Requests: 200})
	path := filepath.Join(t.TempDir(), "store.db")
	tg, err := NewSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	live := open(t, tg, "")
	catchUp(t, l, topics, live)
	live.Close()
	r := &Replay{Log: l, Target: tg, Topics: topics}
	if _, err := r.Build(testCtx(t), "g1", Spec{}, Spec{}); err != nil {
		t.Fatal(err)
	}
	liveName := func() string {
		s := open(t, tg, "")
		defer s.Close()
		return generation(t, s).Name
	}
	crash := errors.New("crash")

	// Before the swap: all old.
	r.failAt = func(step string) error {
		if step == "caught-up" {
			return crash
		}
		return nil
	}
	if err := r.Switch(testCtx(t), "g1", false); !errors.Is(err, crash) {
		t.Fatalf("switch: %v", err)
	}
	r.failAt = nil
	if n := liveName(); n != "" {
		t.Fatalf("live generation %q after a crash before the swap, want the old one", n)
	}

	// After the link, before the rename: all old, and the swap name is removed.
	tg.failAt = func(step string) error {
		if step == "linked" {
			return crash
		}
		return nil
	}
	if err := r.Switch(testCtx(t), "g1", false); !errors.Is(err, crash) {
		t.Fatalf("switch: %v", err)
	}
	if tg, err = NewSQLite(path); err != nil {
		t.Fatal(err)
	}
	r.Target = tg
	if n := liveName(); n != "" {
		t.Fatalf("live generation %q after a crash before the rename, want the old one", n)
	}
	if _, err := os.Stat(tg.swapPath()); err == nil {
		t.Fatal("the swap name survived recovery")
	}

	// After the rename: all new, and the previous live file becomes the generation.
	tg.failAt = func(step string) error {
		if step == "renamed" {
			return crash
		}
		return nil
	}
	if err := r.Switch(testCtx(t), "g1", false); !errors.Is(err, crash) {
		t.Fatalf("switch: %v", err)
	}
	if _, err := os.Stat(tg.path("g1")); err == nil {
		t.Fatal("the generation file is still there after the rename")
	}
	if tg, err = NewSQLite(path); err != nil {
		t.Fatal(err)
	}
	r.Target = tg
	if n := liveName(); n != "g1" {
		t.Fatalf("live generation %q after a crash after the rename, want g1", n)
	}
	old := open(t, tg, "g1")
	if g := generation(t, old); g.Name != "" {
		t.Errorf("the generation file holds %+v, want the previous live read models", g)
	}
	// An open file cannot be switched (another process could be using it).
	if err := r.Switch(testCtx(t), "g1", false); err == nil {
		t.Error("switched a generation whose file is open")
	}
	old.Close()
	// Switching back serves the previous read models again.
	if err := r.Switch(testCtx(t), "g1", false); err != nil {
		t.Fatal(err)
	}
	if n := liveName(); n != "g1" {
		t.Fatalf("live generation %q after switching back, want g1 (the name it was kept under)", n)
	}
}

// A bounded replay stops at --to; one that starts at --from is switched only by force.
func TestBoundedReplay(t *testing.T) {
	l, topics := jetStreamLog(t)
	hist := replaytest.Options{Requests: 400, Start: time.Now().UTC().Add(-time.Hour)}
	write(t, l, topics, hist)
	tg, err := NewSQLite(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	r := &Replay{Log: l, Target: tg, Topics: topics}
	// Stop the result topic after its 100th record (a time bound would depend on when
	// the log accepted each record).
	var results []streams.Message
	if err := l.Read(testCtx(t), topics.Results, streams.Position{}, streams.Position{}, func(m streams.Message) error {
		results = append(results, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	end := results[99].Offset + 1
	toSpec, err := ParseSpec(topics.Results + "/0:" + itoa(end) + "," + topics.Results + "/1:" + itoa(end) + "," +
		topics.Results + "/2:" + itoa(end) + "," + topics.Results + "/3:" + itoa(end))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Build(testCtx(t), "upto", Spec{}, toSpec); err != nil {
		t.Fatal(err)
	}
	s := open(t, tg, "upto")
	snap := snapshot(t, s)
	s.Close()
	if len(snap.Results) != 100 {
		t.Errorf("%d results up to the 100th result record, want 100", len(snap.Results))
	}
	for _, r := range snap.Results {
		if r.Offset >= end {
			t.Errorf("result at offset %d, beyond --to %d", r.Offset, end)
		}
	}

	// Time bounds: requests 100 to 199 and their results (the model topic is read
	// whole whatever --from says).
	fromT, _ := ParseSpec(hist.RequestTime(100).Format(time.RFC3339Nano))
	toT, _ := ParseSpec(hist.RequestTime(200).Format(time.RFC3339Nano))
	if _, err := r.Build(testCtx(t), "window", fromT, toT); err != nil {
		t.Fatal(err)
	}
	s = open(t, tg, "window")
	snap = snapshot(t, s)
	s.Close()
	if len(snap.Results) != 100 || len(snap.Models) == 0 {
		t.Errorf("time window: %d results and %d models, want 100 and the models", len(snap.Results), len(snap.Models))
	}
	for _, r := range snap.Results {
		if r.ResultTime.Before(hist.RequestTime(100)) || !r.ResultTime.Before(hist.RequestTime(200)) {
			t.Errorf("result %s at %v, outside the window", r.RequestID, r.ResultTime)
		}
	}

	from, err := ParseSpec(itoa(end))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Build(testCtx(t), "late", from, Spec{}); err != nil {
		t.Fatal(err)
	}
	if err := r.Switch(testCtx(t), "late", false); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("switching a replay that starts late: %v", err)
	}
	if err := r.Switch(testCtx(t), "late", true); err != nil {
		t.Fatal(err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// The live projector notices a switch under it: its checkpoint goes back to the one
// the new generation was built to, and Step says so.
func TestProjectorNoticesSwitch(t *testing.T) {
	l, topics := jetStreamLog(t)
	write(t, l, topics, replaytest.Options{Requests: 300})
	tg, err := NewSQLite(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	live := open(t, tg, "")
	defer live.Close()
	built := store.Generation{Name: "g9", Started: time.Now().UTC(), Finished: time.Now().UTC(),
		Checkpoint: map[string]map[int]int64{topics.Results: {0: 1}}}
	sw := &switching{Store: live, Generations: live.(store.Generations), to: built}
	p := &projections.Projector{Log: l, Store: sw, Topics: topics, Name: projector, BatchRows: 100}
	if _, err := p.Step(testCtx(t)); !errors.Is(err, projections.ErrSwitched) {
		t.Fatalf("Step during a switch: %v", err)
	}
	cp, err := live.Checkpoint(testCtx(t), projector)
	if err != nil {
		t.Fatal(err)
	}
	for topic, parts := range cp {
		for part, off := range parts {
			want := built.Checkpoint[topic][part] // 0 for what the generation does not name
			if off != want {
				t.Errorf("checkpoint %s/%d = %d after the switch, want %d", topic, part, off, want)
			}
		}
	}
	// The next Steps continue from there, to the same read models as a plain projection.
	catchUp(t, l, topics, sw)
	plain, err := NewSQLite(filepath.Join(t.TempDir(), "plain.db"))
	if err != nil {
		t.Fatal(err)
	}
	fresh := open(t, plain, "")
	defer fresh.Close()
	catchUp(t, l, topics, fresh)
	sameSnapshots(t, "after a switch vs a plain projection", snapshot(t, fresh), snapshot(t, live))
}

// switching is a store that a replay switch replaces after its first Apply.
type switching struct {
	store.Store
	store.Generations
	to   store.Generation
	done bool
}

func (s *switching) Apply(ctx context.Context, b store.Batch) error {
	if err := s.Store.Apply(ctx, b); err != nil {
		return err
	}
	if !s.done {
		s.done = true
		return s.Generations.SetGeneration(ctx, s.to)
	}
	return nil
}
