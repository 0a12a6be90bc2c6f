package store

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []Cursor{{1, "a"}, {math.MaxInt64, "r'\"?;--ü"}, {0, "x"}} {
		got, err := DecodeCursor(EncodeCursor(c))
		if err != nil || got != c {
			t.Errorf("%+v: got %+v, %v", c, got, err)
		}
	}
	if _, err := DecodeCursor(""); !errors.Is(err, ErrBadCursor) {
		t.Errorf("empty cursor: %v", err)
	}
}

func TestSplitSQL(t *testing.T) {
	got := SplitSQL("-- a; comment\nCREATE TABLE a (x Int64); -- trailing; comment\n\n  CREATE TABLE b (y String)\n;\n-- end")
	want := []string{"CREATE TABLE a (x Int64)", "CREATE TABLE b (y String)"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("SplitSQL = %q", got)
	}
}

func TestTimesAndLimits(t *testing.T) {
	if !FromUnixNanos(UnixNanos(time.Time{})).IsZero() {
		t.Error("the zero time does not round-trip")
	}
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))
	if got := FromUnixNanos(UnixNanos(at)); !got.Equal(at) || got.Location() != time.UTC {
		t.Errorf("%v read back as %v", at, got)
	}
	for in, want := range map[int]int{-1: DefaultLimit, 0: DefaultLimit, 1: 1, MaxLimit: MaxLimit, MaxLimit + 1: MaxLimit} {
		if got := Limit(in); got != want {
			t.Errorf("Limit(%d) = %d, want %d", in, got, want)
		}
	}
}
