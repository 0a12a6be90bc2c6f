package archive

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atlas-mmm/atlas/streams"
)

var testTopics = []Topic{
	{Role: RoleModels, Name: "m", Partitions: 2},
	{Role: RoleDeadLetter, Name: "dead", Partitions: 3},
}

// oddMessages covers every way a key or value can be stored.
func oddMessages() []streams.Message {
	t0 := time.Date(2026, 11, 26, 4, 21, 0, 123456789, time.UTC)
	vals := [][]byte{
		[]byte(`{"specversion":"1.0","id":"e1","data":{"a":[1,2.5e-7,"x\"y"]}}`),
		[]byte("{\n  \"pretty\": true\n}"),       // JSON over several lines
		[]byte(` {"lead":1}`),                    // surrounding whitespace
		[]byte(`null`),                           // the JSON null
		[]byte(`"just a string"`),                // a JSON scalar
		{0, 1, 2, 0xff, '\n'},                    // binary
		[]byte("{\"bad\": \xff}"),                // invalid UTF-8
		nil,                                      // empty
		[]byte(`{"unterminated":`),               // not JSON
		[]byte(`{"u":"ключ \u2028 ✓"}`),          // non-ASCII
		[]byte(strings.Repeat("x", 3<<20)),       // longer than the reader's buffer
		[]byte(`{"k":1}` + "\r"),                 // a carriage return
		[]byte(`{"esc":"tab\there\\ \"q\" \/"}`), // escapes
	}
	keys := [][]byte{[]byte("acme-mmm"), nil, []byte("k\"ey\\\n\t\x01"), {0xfe, 0}, []byte("ключ"), []byte(" spaced ")}
	var out []streams.Message
	for i, v := range vals {
		topic := "m"
		if i%2 == 1 {
			topic = "dead"
		}
		out = append(out, streams.Message{Topic: topic, Partition: i % 2, Offset: int64(i * 7), Key: keys[i%len(keys)],
			Value: v, Time: t0.Add(time.Duration(i) * time.Millisecond)})
	}
	return out
}

func writeArchive(t testing.TB, msgs []streams.Message) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Source: "test", Topics: testTopics})
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
	return buf.Bytes()
}

func readArchive(r io.Reader) ([]streams.Message, error) {
	ar, err := NewReader(r)
	if err != nil {
		return nil, err
	}
	var out []streams.Message
	for {
		m, err := ar.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
}

// readArchiveEach reads an archive with Reader.Each (lines parsed in parallel).
func readArchiveEach(r io.Reader) ([]streams.Message, error) {
	ar, err := NewReader(r)
	if err != nil {
		return nil, err
	}
	var out []streams.Message
	err = ar.Each(context.Background(), func(m streams.Message) error {
		out = append(out, m)
		return nil
	})
	return out, err
}

func sameMessages(t testing.TB, got, want []streams.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Topic != w.Topic || g.Partition != w.Partition || g.Offset != w.Offset || !bytes.Equal(g.Key, w.Key) ||
			!bytes.Equal(g.Value, w.Value) || !g.Time.Equal(w.Time) {
			t.Fatalf("message %d:\n got %s/%d/%d key %q time %v value %.80q\nwant %s/%d/%d key %q time %v value %.80q", i,
				g.Topic, g.Partition, g.Offset, g.Key, g.Time, g.Value, w.Topic, w.Partition, w.Offset, w.Key, w.Time, w.Value)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	msgs := oddMessages()
	data := writeArchive(t, msgs)
	got, err := readArchive(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	sameMessages(t, got, msgs)
	// Many chunks of lines, parsed in parallel, come back in order.
	var many []streams.Message
	for i := range 3000 {
		m := msgs[i%len(msgs)]
		if len(m.Value) > 1<<20 {
			continue
		}
		m.Offset = int64(i)
		many = append(many, m)
	}
	got, err = readArchiveEach(bytes.NewReader(writeArchive(t, many)))
	if err != nil {
		t.Fatal(err)
	}
	sameMessages(t, got, many)
	// JSON values on one line are stored as they are (readable, greppable); the others
	// as base64.
	lines := strings.Split(string(data), "\n")
	if !strings.HasSuffix(lines[1], `,"value":`+string(msgs[0].Value)+`}`) {
		t.Errorf("a one-line JSON value is not stored raw: %s", lines[1])
	}
	for i, m := range msgs {
		raw := strings.Contains(lines[i+1], `"value":`)
		b64 := strings.Contains(lines[i+1], `"value_base64":`)
		switch {
		case len(m.Value) == 0 && (raw || b64):
			t.Errorf("empty value %d stored: %s", i, lines[i+1])
		case len(m.Value) > 0 && raw == b64:
			t.Errorf("value %d (%.20q): raw %v, base64 %v", i, m.Value, raw, b64)
		case bytes.Equal(m.Value, []byte("null")) && raw:
			t.Errorf("the JSON null is stored raw (a reader takes it for no value)")
		}
	}
}

// A line written by another tool (fields in another order, whitespace, escapes) reads
// the same as the Writer's.
func TestReadsAnyLayout(t *testing.T) {
	data := writeArchive(t, nil)
	lines := strings.SplitN(string(data), "\n", 2)
	msg := `{ "value": {"a": 1} , "time":"2026-01-02T03:04:05.5+01:00", "key":"k\u00e9", "offset":3,"partition":1,"topic":"m"}`
	// The trailer's checksum covers the lines before it: recompute it with a Writer-less
	// trailer built from scratch.
	body := lines[0] + "\n" + msg + "\n"
	var w Writer
	w.crc = newCRC()
	w.crc.Write([]byte(body))
	trailer := `{"end":{"messages":1,"topics":{"m":1,"dead":0},"crc32c":"` + hex8(w.crc.Sum32()) + `"}}` + "\n"
	got, err := readArchive(strings.NewReader(body + trailer))
	if err != nil {
		t.Fatal(err)
	}
	want := []streams.Message{{Topic: "m", Partition: 1, Offset: 3, Key: []byte("ké"), Value: []byte(`{"a": 1}`),
		Time: time.Date(2026, 1, 2, 2, 4, 5, 5e8, time.UTC)}}
	sameMessages(t, got, want)
}

func TestDamagedArchives(t *testing.T) {
	good := string(writeArchive(t, oddMessages()[:4]))
	lines := strings.SplitAfter(good, "\n")
	cases := map[string]struct {
		data string
		want string
	}{
		"empty":             {"", "empty file"},
		"not an archive":    {`{"format":"tar"}` + "\n", "not an Atlas archive"},
		"future version":    {strings.Replace(good, `"version":1`, `"version":9`, 1), "version 9"},
		"truncated":         {strings.Join(lines[:3], ""), "truncated"},
		"cut mid-line":      {good[:len(good)-30], "truncated"},
		"changed value":     {strings.Replace(good, `"id":"e1"`, `"id":"e2"`, 1), "checksum mismatch"},
		"dropped line":      {lines[0] + strings.Join(lines[2:], ""), "trailer counts"},
		"unknown topic":     {strings.Replace(good, `{"topic":"m"`, `{"topic":"x"`, 1), `topic "x" is not in the header`},
		"partition":         {strings.Replace(good, `"partition":1`, `"partition":7`, 1), "partition 7"},
		"after the trailer": {good + lines[1], "after the trailer"},
		"garbage line":      {lines[0] + "hello\n" + strings.Join(lines[1:], ""), "line 2"},
		"bad time":          {strings.Replace(good, `"time":"2026`, `"time":"x026`, 1), "time"},
		"bad base64":        {strings.Replace(good, `"value_base64":"`, `"value_base64":"!`, 1), "value_base64"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := readArchive(strings.NewReader(c.data))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Next: error %v, want one containing %q", err, c.want)
			}
			_, err = readArchiveEach(strings.NewReader(c.data))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Each: error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestCompressedFiles(t *testing.T) {
	msgs := oddMessages()
	for _, name := range []string{"a.ndjson", "a.ndjson.gz", "a.ndjson.zst"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), name)
			f, err := Create(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(writeArchive(t, msgs)); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if compressed := !bytes.HasPrefix(raw, []byte(`{"format"`)); compressed != (filepath.Ext(name) != ".ndjson") {
				t.Fatalf("%s: compressed = %v", name, compressed)
			}
			r, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := readArchive(r)
			if err != nil {
				t.Fatal(err)
			}
			sameMessages(t, got, msgs)
		})
	}
	// A plain file named .zst is refused with a clear error, not read as garbage.
	path := filepath.Join(t.TempDir(), "plain.zst")
	os.WriteFile(path, writeArchive(t, msgs), 0o644)
	r, err := Open(path)
	if err == nil {
		_, err = readArchive(r)
		r.Close()
	}
	if err == nil {
		t.Fatal("a plain file named .zst was read")
	}
}

func TestWriterRefusesUnknownTopic(t *testing.T) {
	w, err := NewWriter(io.Discard, Header{Topics: testTopics})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(streams.Message{Topic: "other"}); err == nil {
		t.Fatal("Write accepted a topic the header does not list")
	}
	if _, err := NewWriter(io.Discard, Header{Topics: []Topic{{Role: "x", Name: "a", Partitions: 1}}}); err == nil {
		t.Fatal("NewWriter accepted an unknown role")
	}
	if !errors.Is(ErrNotEmpty, ErrNotEmpty) {
		t.Fatal("unreachable")
	}
}

// Salvage reads what a damaged file's sound lines hold and says what is wrong.
func TestSalvage(t *testing.T) {
	msgs := oddMessages()[:6]
	good := string(writeArchive(t, msgs))
	lines := strings.SplitAfter(good, "\n")
	for name, data := range map[string]string{
		"truncated":       strings.Join(lines[:4], ""),
		"changed a value": strings.Replace(good, `"id":"e1"`, `"id":"e2"`, 1),
	} {
		ar, err := NewReader(strings.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		ar.Salvage = true
		var got []streams.Message
		for {
			m, err := ar.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got = append(got, m)
		}
		if ar.Damage == nil {
			t.Fatalf("%s: no damage reported", name)
		}
		if name == "truncated" && len(got) != 3 || name != "truncated" && len(got) != len(msgs) {
			t.Fatalf("%s: salvaged %d messages", name, len(got))
		}
	}
}
