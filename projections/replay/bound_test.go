package replay

import (
	"reflect"
	"testing"
	"time"

	"github.com/atlas-mmm/atlas/projections"
)

func TestParseSpec(t *testing.T) {
	seven := int64(7)
	parts := map[string][]int{"a": {0, 1}, "b": {0, 1, 2}}
	cases := []struct {
		in   string
		want projections.Bound
	}{
		{"", projections.Bound{}},
		{"2026-06-01T00:00:00.5+02:00", projections.Bound{Time: time.Date(2026, 5, 31, 22, 0, 0, 5e8, time.UTC)}},
		{"0:120,1:98", projections.Bound{Offsets: map[int]int64{0: 120, 1: 98}}},
		{"7", projections.Bound{Topics: map[string]map[int]int64{"a": {0: seven, 1: seven}, "b": {0: seven, 1: seven, 2: seven}}}},
		{"7, 1:3, b/2:9", projections.Bound{Offsets: map[int]int64{1: 3},
			Topics: map[string]map[int]int64{"a": {0: 7, 1: 3}, "b": {0: 7, 1: 3, 2: 9}}}},
		{"atlas.results/0:5", projections.Bound{Topics: map[string]map[int]int64{"a": {}, "b": {}}}},
	}
	for _, c := range cases {
		s, err := ParseSpec(c.in)
		if err != nil {
			t.Errorf("ParseSpec(%q): %v", c.in, err)
			continue
		}
		if got := s.bound(parts); !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseSpec(%q).bound = %+v, want %+v", c.in, got, c.want)
		}
		if s.Raw != c.in {
			t.Errorf("ParseSpec(%q).Raw = %q", c.in, s.Raw)
		}
	}
	s, _ := ParseSpec("atlas.results/0:5")
	if got := s.Topics["atlas.results"][0]; got != 5 {
		t.Errorf("topic offset %d, want 5", got)
	}
	for _, bad := range []string{"yesterday", "-1", "0:-5", "x:5", "/0:5", "a/5", "1,2", "0:1:2", "2026-13-01T00:00:00Z"} {
		if _, err := ParseSpec(bad); err == nil {
			t.Errorf("ParseSpec(%q) succeeded", bad)
		}
	}
}
