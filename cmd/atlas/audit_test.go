package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/archive"
	"github.com/atlas-mmm/atlas/streams/audit"
	"github.com/atlas-mmm/atlas/streams/event"
	"github.com/atlas-mmm/atlas/streams/processor"
)

func auditReport(t *testing.T, path string) audit.Report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep audit.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// The real processor's history audits clean: the audit re-derives exactly what the
// processor wrote (so the two cannot drift apart), for both model versions, inline
// models, infeasible and rejected requests.
func TestAuditCleanHistory(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	l := openDir(t, data)
	n := history(t, l, processor.DefaultTopics(), 80)
	l.Close()
	report := filepath.Join(dir, "report.json")
	code, out, errs := run(t, "", "audit", "--data-dir", data, "--report", report)
	if code != 0 {
		t.Fatalf("audit of a clean history: exit %d\n%s\n%s", code, out, errs)
	}
	rep := auditReport(t, report)
	c := rep.Counts
	if !rep.OK || c.Requests != int64(n) || c.DeadLetters != 1 || c.ModelVersions != 2 || c.Rejections != int64(n/10) ||
		c.Resolved != int64(n-n/10) || c.ResultEvents != int64(n) {
		t.Fatalf("counts %+v\n%s", c, out)
	}
	if !strings.Contains(out, "OK: every recorded result matches") {
		t.Fatalf("summary:\n%s", out)
	}
	// Scoped audits: one model, a range of offsets.
	code, out, _ = run(t, "", "audit", "--data-dir", data, "--model", "nope")
	if code != 0 || !strings.Contains(out, "0 audited") {
		t.Fatalf("audit of an unknown model: exit %d\n%s", code, out)
	}
	if code, out, errs := run(t, "", "audit", "--data-dir", data, "--from", "0:1000000,1:1000000,2:1000000,3:1000000"); code != 0 || !strings.Contains(out, "0 audited") {
		t.Fatalf("audit past the end: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := run(t, "", "audit", "--data-dir", data, "--from", "yesterday"); code != 2 || !strings.Contains(errs, "neither") {
		t.Fatalf("bad --from: exit %d %s", code, errs)
	}
}

// A tampered result (one allocation changed) and a tampered model event (one curve
// parameter changed), exported, imported elsewhere and audited: both are found, the
// exit code is 1, and the report names their log positions.
func TestAuditFindsTampering(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	topics := processor.DefaultTopics()
	l := openDir(t, a)
	history(t, l, topics, 40)
	l.Close()
	file := filepath.Join(dir, "history.ndjson.zst")
	if code, _, errs := run(t, "", "export", "--data-dir", a, "--out", file); code != 0 {
		t.Fatalf("export: exit %d\n%s", code, errs)
	}
	h, msgs := readArchiveFile(t, file)

	// Change the digital allocation of the first completed result naming version 2
	// (requests against version 1 also diverge through the model), and tv's beta in
	// version 1 of the model.
	alloc := regexp.MustCompile(`"allocation":\{"digital":([0-9.e+-]+)`)
	var tamperedResult, tamperedModel *streams.Message
	for i := range msgs {
		m := &msgs[i]
		switch {
		case m.Topic == topics.Results && tamperedResult == nil && bytes.Contains(m.Value, []byte(`"model_version":2`)) &&
			bytes.Contains(m.Value, []byte(event.OptimizationCompleted)):
			loc := alloc.FindSubmatchIndex(m.Value)
			if loc == nil {
				t.Fatalf("no allocation in %s", m.Value)
			}
			v, _ := strconv.ParseFloat(string(m.Value[loc[2]:loc[3]]), 64)
			m.Value = append(append(append([]byte{}, m.Value[:loc[2]]...), strconv.FormatFloat(v+1, 'g', -1, 64)...), m.Value[loc[3]:]...)
			tamperedResult = m
		case m.Topic == topics.Models && tamperedModel == nil:
			v := bytes.Replace(m.Value, []byte(`"beta":900000`), []byte(`"beta":910000`), 1)
			if bytes.Equal(v, m.Value) {
				t.Fatalf("tv's beta not found in %s", m.Value)
			}
			m.Value = v
			tamperedModel = m
		}
	}
	if tamperedResult == nil || tamperedModel == nil {
		t.Fatal("nothing to tamper with")
	}
	// Whoever tampers writes a consistent archive (the checksum is no seal).
	tampered := filepath.Join(dir, "tampered.ndjson.gz")
	f, err := archive.Create(tampered)
	if err != nil {
		t.Fatal(err)
	}
	w, err := archive.NewWriter(f, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if err := w.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if code, _, errs := run(t, "", "import", "--data-dir", b, tampered); code != 0 {
		t.Fatalf("import: exit %d\n%s", code, errs)
	}
	report := filepath.Join(dir, "report.json")
	code, out, errs := run(t, "", "audit", "--data-dir", b, "--report", report)
	if code != 1 {
		t.Fatalf("audit of a tampered history: exit %d\n%s\n%s", code, out, errs)
	}
	rep := auditReport(t, report)
	var foundResult, foundModel bool
	for _, d := range rep.Divergences {
		switch d.Kind {
		case audit.ResultMismatch:
			// Same backend, same partition counts: the positions are the archive's.
			if d.At.Topic == topics.Results && d.At.Partition == tamperedResult.Partition && d.At.Offset == tamperedResult.Offset {
				foundResult = len(d.Differences) == 1 && strings.HasPrefix(d.Differences[0], "data.allocation.digital: ")
			}
		case audit.ModelHashMismatch:
			if d.At.Topic == topics.Models && d.At.Partition == tamperedModel.Partition && d.At.Offset == tamperedModel.Offset &&
				d.At.EventID == "model-v1" && d.ModelVersion == 1 && len(d.Related) > 0 {
				foundModel = true
			}
		}
	}
	if !foundResult || !foundModel {
		t.Fatalf("tampered result found: %v, tampered model found: %v\n%s", foundResult, foundModel, out)
	}
	if len(rep.Divergences) != 2 {
		t.Fatalf("%d divergences, want the 2 tampered events\n%s", len(rep.Divergences), out)
	}
	if !strings.Contains(out, "FAILED: 2 divergence(s)") || !strings.Contains(out, "model_hash_mismatch at atlas.models/") {
		t.Fatalf("summary:\n%s", out)
	}
}

// Exactly one result per request: a byte-identical redelivery counts once; a second,
// different result, a missing result and a result without a request are divergences.
func TestAuditCompleteness(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	topics := processor.DefaultTopics()
	l := openDir(t, data)
	defer l.Close()
	history(t, l, topics, 20)
	ctx := context.Background()
	var results []streams.Message
	l.Read(ctx, topics.Results, streams.Position{}, streams.Position{}, func(m streams.Message) error {
		results = append(results, m)
		return nil
	})
	redelivered, conflicting := results[1], results[2]
	changed := bytes.Replace(conflicting.Value, []byte(`"specversion":"1.0"`), []byte(`"specversion":"1.0","extra":1`), 1)
	orphan := bytes.ReplaceAll(results[3].Value, results[3].Key, []byte("ghost"))
	for _, r := range []streams.Record{
		{Key: redelivered.Key, Value: redelivered.Value},
		{Key: conflicting.Key, Value: changed},
		{Key: []byte("ghost"), Value: orphan},
	} {
		if err := l.Append(ctx, topics.Results, r); err != nil {
			t.Fatal(err)
		}
	}
	env, _ := event.New(event.OptimizationRequested, "atlas/test", "", json.RawMessage(`{"request_id":"unanswered","constraints":{"total":1000}}`), "evt-u", mustTime())
	raw, _ := event.Encode(env)
	l.Append(ctx, topics.Requests, streams.Record{Key: []byte("unanswered"), Value: raw})

	rep, err := audit.Run(ctx, l, audit.Options{Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, d := range rep.Divergences {
		kinds[d.Kind] = d.RequestID
	}
	want := map[string]string{audit.ConflictingResults: string(conflicting.Key), audit.MissingResult: "unanswered", audit.OrphanResult: "ghost"}
	if len(rep.Divergences) != 3 || kinds[audit.ConflictingResults] != want[audit.ConflictingResults] ||
		kinds[audit.MissingResult] != "unanswered" || kinds[audit.OrphanResult] != "ghost" {
		t.Fatalf("divergences %+v, want %v", rep.Divergences, want)
	}
	if rep.Counts.RedeliveredResults != 1 {
		t.Fatalf("redelivered results %d, want 1", rep.Counts.RedeliveredResults)
	}
}

func mustTime() time.Time { return time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC) }
