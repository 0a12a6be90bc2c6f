package archive

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/atlas-mmm/atlas/streams"
)

// FuzzReader feeds arbitrary files to the reader (an archive is outside input): it must
// fail cleanly, never panic, and the fast path must agree with encoding/json on every
// line it accepts.
func FuzzReader(f *testing.F) {
	good := writeArchive(f, oddMessages()[:5])
	f.Add(good)
	f.Add(good[:len(good)/2])
	lines := bytes.SplitAfter(good, []byte("\n"))
	f.Add(append(append([]byte{}, lines[0]...), `{"topic":"m","partition":0,"offset":1,"time":"2026-01-01T00:00:00Z","value":{"a":1}}`+"\n"...))
	f.Add([]byte(`{"format":"atlas-archive","version":1,"topics":[{"role":"models","name":"m","partitions":1}]}` + "\n" +
		`{"end":{"messages":0,"topics":{"m":0},"crc32c":"00000000"}}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		readArchive(bytes.NewReader(data)) //nolint:errcheck // errors are expected; panics are not
		for _, raw := range bytes.Split(data, []byte("\n")) {
			fast, ok := parseFast(raw, false, nil)
			if !ok {
				continue
			}
			var l line
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&l); err != nil {
				t.Fatalf("fast path accepted a line encoding/json refuses (%v): %q", err, raw)
			}
			slow, _, err := l.message()
			if err != nil {
				t.Fatalf("fast path accepted a line the general path refuses (%v): %q", err, raw)
			}
			sameMessages(t, []streams.Message{fast}, []streams.Message{slow})
			// Parsing a line of its own (as Each does) gives the same message.
			aliased, ok := parseFast(bytes.Clone(raw), true, []string{"m", "dead"})
			if !ok {
				t.Fatalf("fast path refused a line it accepts when copying: %q", raw)
			}
			sameMessages(t, []streams.Message{aliased}, []streams.Message{slow})
		}
	})
}

// FuzzMessage: whatever a message holds, it comes back from an archive byte for byte.
func FuzzMessage(f *testing.F) {
	f.Add("m", 0, int64(0), []byte("key"), []byte(`{"a":1}`), int64(1764130860123456789))
	f.Add("dead", 2, int64(99), []byte{0xff}, []byte{0, '\n', '"'}, int64(0))
	f.Add("m", 1, int64(1<<40), []byte(nil), []byte(" null "), int64(-5))
	f.Fuzz(func(t *testing.T, topic string, part int, off int64, key, value []byte, nanos int64) {
		if topic != "m" && topic != "dead" {
			topic = "m"
		}
		part = ((part % 2) + 2) % 2
		if off < 0 {
			off = -(off + 1)
		}
		m := streams.Message{Topic: topic, Partition: part, Offset: off, Key: key, Value: value, Time: time.Unix(0, nanos).UTC()}
		got, err := readArchive(bytes.NewReader(writeArchive(t, []streams.Message{m})))
		if err != nil {
			t.Fatal(err)
		}
		sameMessages(t, got, []streams.Message{m})
	})
}

// FuzzRawJSON holds the fast validator behind rawJSON to encoding/json's answers: a
// value stored raw must be one every JSON reader accepts.
func FuzzRawJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e-7,"x\"y"]}`, `nul`, `"\u00e9"`, "\"\x01\"", `[1,]`, `01`, `{"a":1}}`, `1e999`, `"\ud800"`, "{\"a\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		if len(v) == 0 {
			return
		}
		want := !isSpace(v[0]) && !isSpace(v[len(v)-1]) && string(v) != "null" && !bytes.ContainsAny(v, "\r\n") &&
			utf8.Valid(v) && json.Valid(v)
		if got := rawJSON(v); got != want {
			t.Fatalf("rawJSON(%q) = %v, encoding/json says %v", v, got, want)
		}
	})
}
