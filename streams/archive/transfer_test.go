package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/jetstream"
)

func openEmbedded(t *testing.T) streams.Log {
	t.Helper()
	l, err := jetstream.Open(context.Background(), jetstream.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

var roleTopics = []Topic{
	{Role: RoleModels, Name: "atlas.models"},
	{Role: RoleRequests, Name: "atlas.requests"},
	{Role: RoleDeadLetter, Name: "atlas.deadletter"},
}

// fill appends keyed records with and without their own times to the role topics.
func fill(t *testing.T, l streams.Log) {
	t.Helper()
	ctx := context.Background()
	past := time.Now().Add(-time.Hour).Truncate(time.Second).Add(777)
	for i, tp := range roleTopics {
		if err := l.CreateTopic(ctx, tp.Name, 2+i); err != nil {
			t.Fatal(err)
		}
		var recs []streams.Record
		for j := range 50 * (i + 1) {
			r := streams.Record{Key: fmt.Appendf(nil, "k%d", j%7), Value: fmt.Appendf(nil, `{"i":%d,"j":%d}`, i, j)}
			if j%3 == 0 {
				r.Time = past.Add(time.Duration(j) * time.Second)
			}
			if j%11 == 0 {
				r.Value = []byte{0xff, byte(j)} // not JSON: a dead letter's bytes
			}
			recs = append(recs, r)
		}
		if err := l.Append(ctx, tp.Name, recs...); err != nil {
			t.Fatal(err)
		}
	}
}

func export(t *testing.T, l streams.Log, opt ExportOptions) ([]byte, Stats) {
	t.Helper()
	var buf bytes.Buffer
	st, err := Export(context.Background(), l, roleTopics, &buf, opt)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), st
}

// Export, import into an empty log, export again: the same messages (topics,
// partitions, offsets, keys, times, values) in the same order.
func TestExportImportRoundTrip(t *testing.T) {
	src := openEmbedded(t)
	fill(t, src)
	first, st := export(t, src, ExportOptions{Source: "test"})
	if st.Messages != 50+100+150 {
		t.Fatalf("exported %d messages", st.Messages)
	}
	dst := openEmbedded(t)
	ar, err := NewReader(bytes.NewReader(first))
	if err != nil {
		t.Fatal(err)
	}
	ist, err := Import(context.Background(), dst, ar, ImportOptions{Batch: 64})
	if err != nil {
		t.Fatal(err)
	}
	if ist.Messages != st.Messages {
		t.Fatalf("imported %d of %d", ist.Messages, st.Messages)
	}
	for _, tp := range roleTopics {
		a, _ := src.EndOffsets(context.Background(), tp.Name)
		b, _ := dst.EndOffsets(context.Background(), tp.Name)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("%s: end offsets %v, source %v", tp.Name, b, a)
		}
	}
	second, _ := export(t, dst, ExportOptions{Source: "test"})
	want, err := readArchive(bytes.NewReader(first))
	if err != nil {
		t.Fatal(err)
	}
	got, err := readArchive(bytes.NewReader(second))
	if err != nil {
		t.Fatal(err)
	}
	sameMessages(t, got, want)
	// Beyond the messages, the files differ only in the header's creation time (and so
	// in the trailer's checksum): the message lines are the same bytes.
	if body(first) != body(second) {
		t.Fatal("the message lines of the two exports differ")
	}
}

func body(b []byte) string {
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	return string(bytes.Join(lines[1:len(lines)-1], []byte("\n")))
}

func TestImportRefusesNonEmptyTarget(t *testing.T) {
	src := openEmbedded(t)
	fill(t, src)
	data, _ := export(t, src, ExportOptions{})
	dst := openEmbedded(t)
	ctx := context.Background()
	// One record in the last topic: nothing may be written anywhere.
	if err := dst.CreateTopic(ctx, "atlas.deadletter", 4); err != nil {
		t.Fatal(err)
	}
	if err := dst.Append(ctx, "atlas.deadletter", streams.Record{Key: []byte("x"), Value: []byte("y")}); err != nil {
		t.Fatal(err)
	}
	ar, _ := NewReader(bytes.NewReader(data))
	_, err := Import(ctx, dst, ar, ImportOptions{})
	if !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), `"atlas.deadletter"`) {
		t.Fatalf("import into a non-empty topic: %v", err)
	}
	ends, _ := dst.EndOffsets(ctx, "atlas.models")
	for _, e := range ends {
		if e != 0 {
			t.Fatalf("the refused import wrote to atlas.models: %v", ends)
		}
	}
	// An import interrupted half-way leaves part of the archive: importing again is
	// refused, saying what probably happened.
	dst1 := openEmbedded(t)
	ictx, cancel := context.WithCancel(ctx)
	ar, _ = NewReader(bytes.NewReader(data))
	_, err = Import(ictx, dst1, ar, ImportOptions{Batch: 16, Progress: func(n int64) { cancel() }})
	cancel()
	if err == nil {
		t.Fatal("an interrupted import succeeded")
	}
	ar, _ = NewReader(bytes.NewReader(data))
	_, err = Import(ctx, dst1, ar, ImportOptions{})
	if !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "did not finish") {
		t.Fatalf("import into a partly imported log: %v", err)
	}
	// An empty topic with another partition count is refused too.
	dst2 := openEmbedded(t)
	dst2.CreateTopic(ctx, "atlas.requests", 5)
	ar, _ = NewReader(bytes.NewReader(data))
	if _, err := Import(ctx, dst2, ar, ImportOptions{}); err == nil || !strings.Contains(err.Error(), "partitions") {
		t.Fatalf("import into a topic with other partitions: %v", err)
	}
	// Roles map onto other topic names.
	dst3 := openEmbedded(t)
	ar, _ = NewReader(bytes.NewReader(data))
	if _, err := Import(ctx, dst3, ar, ImportOptions{Topics: map[string]string{RoleRequests: "other.requests"}}); err != nil {
		t.Fatal(err)
	}
	ends, err = dst3.EndOffsets(ctx, "other.requests")
	if err != nil || len(ends) != 3 {
		t.Fatalf("mapped topic: %v %v", ends, err)
	}
}

// A time range applies to every topic but the model topic.
func TestExportSince(t *testing.T) {
	src := openEmbedded(t)
	fill(t, src)
	all, _ := readArchive(bytes.NewReader(func() []byte { b, _ := export(t, src, ExportOptions{}); return b }()))
	since := time.Now().Add(-time.Hour + 30*time.Second)
	data, st := export(t, src, ExportOptions{Since: since})
	got, err := readArchive(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	// Each partition starts at its first message at or after since (streams.Position).
	var want []streams.Message
	started := map[string]bool{}
	for _, m := range all {
		p := fmt.Sprint(m.Topic, m.Partition)
		started[p] = started[p] || !m.Time.Before(since)
		if m.Topic == "atlas.models" || started[p] {
			want = append(want, m)
		}
	}
	if st.Topics["atlas.models"] != 50 {
		t.Fatalf("models: %d of 50", st.Topics["atlas.models"])
	}
	sameMessages(t, got, want)
}

// lateWriter appends to the log while Export takes the topics' ends, as a live
// pipeline would.
type lateWriter struct {
	streams.Log
	t    *testing.T
	done bool
}

func (l *lateWriter) EndOffsets(ctx context.Context, topic string) (map[int]int64, error) {
	if topic == "atlas.models" && !l.done {
		l.done = true
		for _, name := range []string{"atlas.deadletter", "atlas.requests"} {
			if err := l.Log.Append(ctx, name, streams.Record{Key: []byte("late"), Value: []byte(`"late"`)}); err != nil {
				l.t.Fatal(err)
			}
		}
	}
	return l.Log.EndOffsets(ctx, topic)
}

// Export reads each topic up to the end it took in the order results, dead letters,
// models, requests: a record appended to an earlier one meanwhile stays out, one
// appended to a later one is in.
func TestExportCut(t *testing.T) {
	src := openEmbedded(t)
	fill(t, src)
	data, st := export(t, &lateWriter{Log: src, t: t}, ExportOptions{})
	if st.Topics["atlas.deadletter"] != 150 || st.Topics["atlas.requests"] != 101 {
		t.Fatalf("exported %v: want the late request and not the late dead letter", st.Topics)
	}
	msgs, err := readArchive(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	// The file still lists the topics for people: models, requests, results, dead letters.
	if msgs[0].Topic != "atlas.models" || msgs[len(msgs)-1].Topic != "atlas.deadletter" {
		t.Fatalf("file order: first %s, last %s", msgs[0].Topic, msgs[len(msgs)-1].Topic)
	}
}
