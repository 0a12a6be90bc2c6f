package event_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"testing"

	"github.com/atlas-mmm/atlas/streams/event"
)

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// FuzzDecode: Decode never panics; every failure is a *DecodeError with a reason; an
// accepted event re-encodes, and decoding that gives the same envelope and the same bytes
// again (a fixed point), with a non-empty key.
func FuzzDecode(f *testing.F) {
	wrap := func(typ, subject string, data []byte) []byte {
		e, err := event.New(typ, "/atlas/fuzz", subject, data, "evt-1", t0)
		if err != nil {
			f.Fatalf("seed %s: %v", typ, err)
		}
		raw, err := event.Encode(e)
		if err != nil {
			f.Fatal(err)
		}
		return raw
	}
	if b, err := os.ReadFile("../../examples/acme-model.json"); err == nil {
		f.Add(wrap(event.ModelPublished, "", b))
	}
	if b, err := os.ReadFile("../../examples/quickstart.json"); err == nil {
		f.Add(wrap(event.OptimizationRequested, "", b))
	}
	if b, err := os.ReadFile("../../examples/acme-requests.ndjson"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f.Add(wrap(event.OptimizationRequested, "", bytes.Clone(sc.Bytes())))
		}
	}
	f.Add(wrap(event.ModelRetired, "", []byte(`{"model_id":"acme-mmm"}`)))
	f.Add(wrap(event.OptimizationRejected, "", []byte(`{"request_id":"r1","errors":[{"field":"constraints.total","error":"must be a non-negative amount"}]}`)))
	f.Add([]byte(`{"specversion":"1.0","id":"e","source":"/s","type":"atlas.optimization.requested.v1","time":"2024-05-01T14:00:00.5+02:00","subject":"e","x1":1,"data":{"constraints":{"total":{"min":1e-400}}}}`))
	f.Add([]byte(`{"specversion":"1.0","id":"e","source":"/s","type":"atlas.optimization.requested.v1","subject":"e","data":{"request_id":7}}`))
	f.Add([]byte(`{"specversion":"1.0","id":"e","source":"/s","type":"atlas.model.retired.v1","subject":"m","data":{"model_id":"\u00e9\ud800"}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := event.Decode(raw)
		if err != nil {
			var de *event.DecodeError
			if !errors.As(err, &de) || len(de.Errors) == 0 || de.Reason() == "" {
				t.Fatalf("bad decode error %T %v", err, err)
			}
			if de.DataOnly {
				if e.ID == "" || e.Type == "" || len(de.DataErrors()) != len(de.Errors) {
					t.Fatalf("data-only error without its envelope: %+v %v", e, de)
				}
				if e.Type == event.OptimizationRequested {
					id, err := event.RequestID(raw)
					if err != nil || id == "" {
						t.Fatalf("RequestID of a decodable envelope: %q %v", id, err)
					}
				}
			} else if e.ID != "" {
				t.Fatalf("undecodable event returned an envelope: %+v", e)
			}
			return
		}
		if e.Key() == "" {
			t.Fatalf("empty key: %+v", e)
		}
		out, err := event.Encode(e)
		if err != nil {
			t.Fatalf("decoded event does not encode: %v\n%s", err, raw)
		}
		e2, err := event.Decode(out)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v\n%s", err, out)
		}
		if !equal(e, e2) {
			t.Fatalf("round trip changed the envelope:\n%+v\n%+v", e, e2)
		}
		out2, _ := event.Encode(e2)
		if !bytes.Equal(out, out2) {
			t.Fatalf("encoding is not a fixed point:\n%s\n%s", out, out2)
		}
	})
}
