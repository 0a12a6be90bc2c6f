package projections

import (
	"bytes"
	"testing"

	"github.com/atlas-mmm/atlas/streams/event"
)

// The projector's fast decoding stores what full validation (event.Decode) would:
// the same envelope and the same compacted data; what Decode refuses outright is not
// projected, and an event whose data is invalid still is.
func TestDecodeMatchesFullValidation(t *testing.T) {
	cases := []struct {
		name string
		raw  string
		ok   bool
	}{
		{"compact", `{"specversion":"1.0","id":"e1","source":"s","type":"atlas.optimization.requested.v1","subject":"r1","data":{"request_id":"r1","constraints":{"total":5},"note":"a b\"c"}}`, true},
		{"spaced", `{"specversion":"1.0","id":"e1","source":"s","type":"atlas.optimization.requested.v1","subject":"r1","data": { "request_id" : "r1",
			"constraints": {"total": 5}, "note": "a b\"c" } }`, true},
		{"invalid data", `{"specversion":"1.0","id":"e2","source":"s","type":"atlas.optimization.requested.v1","subject":"r2","data":{"request_id":"r2","constraints":{"total":"lots"}}}`, true},
		{"not an event", `{"hello": "world"}`, false},
		{"not JSON", `{oops`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := decode([]byte(c.raw))
			if ok != c.ok {
				t.Fatalf("decode ok = %v, want %v", ok, c.ok)
			}
			if !ok {
				return
			}
			want, err := event.Decode([]byte(c.raw))
			if err != nil && want.ID == "" {
				t.Fatalf("event.Decode refused it: %v", err)
			}
			if got.ID != want.ID || got.Type != want.Type || got.Subject != want.Subject || !got.Time.Equal(want.Time) {
				t.Errorf("envelope %+v, want %+v", got, want)
			}
			if !bytes.Equal(got.Data, want.Data) {
				t.Errorf("data %s, want %s", got.Data, want.Data)
			}
		})
	}
	if !compact([]byte(`{"a":"x y","b":[1,2]}`)) || compact([]byte(`{"a": 1}`)) || !compact([]byte(`{"a":"\" x"}`)) {
		t.Error("compact misjudges whitespace inside and outside strings")
	}
}
