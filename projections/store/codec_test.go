package store

import (
	"errors"
	"math"
	"strings"
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

// Validate runs on every row a replay writes: a valid batch costs no allocation, and
// the labels of what fails are still precise.
func TestValidate(t *testing.T) {
	one := 1.0
	b := Batch{Projector: "p", Checkpoint: map[string]map[int]int64{"t": {0: 1}}}
	for range 100 {
		b.Results = append(b.Results, Result{RequestID: "r", Expected: map[string]float64{"revenue": 1}, UpperBound: &one})
		b.Allocations = append(b.Allocations, Allocation{RequestID: "r", Channel: "tv", ROI: &one})
		b.Audit = append(b.Audit, AuditEvent{EventID: "e"})
		b.DeadLetters = append(b.DeadLetters, DeadLetter{})
	}
	if n := testing.AllocsPerRun(10, func() {
		if err := Validate(b); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Validate of a valid batch: %v allocations", n)
	}
	b.Results[7].Expected = map[string]float64{"revenue": math.NaN()}
	b.Allocations[3].ROI = new(math.Inf(-1))
	b.Audit[5].Offset = -1
	b.Checkpoint["t"][2] = -4
	err := Validate(b)
	for _, want := range []string{"results[7].expected.revenue: NaN", "allocations[3]: -Inf",
		"audit[5]: negative partition or offset (0, -1)", "checkpoint t: negative partition or offset (2, -4)"} {
		if !errors.Is(err, ErrInvalidBatch) || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to say %q", err, want)
		}
	}
}
