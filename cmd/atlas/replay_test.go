package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atlas-mmm/atlas/projections"
	"github.com/atlas-mmm/atlas/projections/replay/replaytest"
	"github.com/atlas-mmm/atlas/projections/store/sqlite"
	"github.com/atlas-mmm/atlas/streams/jetstream"
	"github.com/atlas-mmm/atlas/streams/processor"
)

// atlas replay on the embedded defaults: build (with periodic log lines), list,
// switch, list again, drop; and the usage errors.
func TestReplayCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	l, err := jetstream.Open(ctx, jetstream.Config{DataDir: filepath.Join(dir, "log")})
	if err != nil {
		t.Fatal(err)
	}
	topics := processor.DefaultTopics()
	if err := processor.CreateTopics(ctx, l, topics, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := replaytest.Write(ctx, l, topics, replaytest.Options{Requests: 300, Duplicates: 10}); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(filepath.Join(dir, "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	p := &projections.Projector{Log: l, Store: st, Topics: topics}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for n := 1; n > 0; {
		if n, err = p.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	l.Close()

	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := dispatch(ctx, append([]string{"replay"}, append(args, "--data-dir", dir)...), nil, &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, errs := run("--name", "g1", "--progress", "log", "--progress-every", "1ms")
	if code != 0 || !strings.Contains(out, "generation g1:") {
		t.Fatalf("replay: %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(errs, `"stage done"`) || !strings.Contains(errs, `"messages_per_s"`) {
		t.Errorf("no progress lines in the log:\n%s", errs)
	}
	code, out, errs = run("list")
	if code != 0 || !strings.Contains(out, "- (live)") || !strings.Contains(out, "store.replay-g1.db") {
		t.Fatalf("list: %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = run("switch", "g1")
	if code != 0 || !strings.Contains(out, "generation g1 is live") {
		t.Fatalf("switch: %d\n%s\n%s", code, out, errs)
	}
	code, out, _ = run("list")
	if code != 0 || !strings.Contains(out, "g1 (live)") {
		t.Fatalf("list after the switch: %d\n%s", code, out)
	}
	if code, out, errs = run("drop", "g1"); code != 0 {
		t.Fatalf("drop: %d\n%s\n%s", code, out, errs)
	}
	for _, bad := range [][]string{{"switch"}, {"frobnicate"}, {"--from", "yesterday"}, {"--name", "Bad Name"}, {"list", "x"}} {
		if code, _, _ := run(bad...); code != 2 {
			t.Errorf("atlas replay %v: exit %d, want 2", bad, code)
		}
	}
	if code, _, _ := run("switch", "nosuch"); code != 1 {
		t.Errorf("switching a missing generation: exit %d, want 1", code)
	}
}
