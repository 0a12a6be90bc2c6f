package store

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
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

// AppendJSON writes what encoding/json writes (after what dst held), on the values
// its fast paths take and on the ones they leave to encoding/json.
func sameJSON(t *testing.T, v any, n int) {
	t.Helper()
	want, werr := json.Marshal(v)
	if n == 0 {
		want, werr = nil, nil
	}
	got, err := AppendJSON([]byte("prefix"), v, n)
	if (err == nil) != (werr == nil) || (err == nil && string(got) != "prefix"+string(want)) {
		t.Fatalf("%#v: AppendJSON %q, %v; encoding/json %q, %v", v, got, err, want, werr)
	}
	s, err := EncodeJSON(v, n)
	if err == nil && s != string(want) {
		t.Fatalf("%#v: EncodeJSON %q, encoding/json %q", v, s, want)
	}
}

var jsonStrings = []string{"", "revenue", "a b", "ok", "é", "<b>", "a&b", `q"uote`, `back\slash`, "\x00", "\x7f", "\xff", "\u2028", "tab\t", "~}|{"}

var jsonFloats = []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1e-6, 9.99e-7, 1e-7, 1.5e-10, 1e20, 1e21, 123456789e15, -1e21,
	250000.5, 44006.600000000006, math.MaxFloat64, math.SmallestNonzeroFloat64, 1e-300, math.NaN(), math.Inf(1), math.Inf(-1)}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		m := map[string]float64{}
		ss := []string{}
		for range rng.IntN(6) {
			k := jsonStrings[rng.IntN(len(jsonStrings))]
			if rng.IntN(2) == 0 {
				k += strconv.Itoa(rng.IntN(100))
			}
			f := jsonFloats[rng.IntN(len(jsonFloats))]
			if rng.IntN(2) == 0 {
				f = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(60)-30))
			}
			m[k] = f
			ss = append(ss, k)
		}
		sameJSON(t, m, len(m))
		sameJSON(t, ss, len(ss))
		sameJSON(t, []FieldError{{Field: "f", Message: ss0(ss)}}, 1)
	}
	sameJSON(t, map[string]float64(nil), 0)
	sameJSON(t, []string(nil), 0)
	// what results hold takes the fast paths
	if _, ok := appendFloatMap(nil, map[string]float64{"revenue": 250001.5, "conversions": 1e-9}); !ok {
		t.Error("expected KPIs left to encoding/json")
	}
	if _, ok := appendStrings(nil, []string{"ok", "group digital: min_share 0.6 conflicts with max_share 0.5"}); !ok {
		t.Error("messages left to encoding/json")
	}
}

func ss0(ss []string) string {
	if len(ss) == 0 {
		return ""
	}
	return ss[0]
}

// FuzzAppendJSON: for any key, float and message, AppendJSON agrees with encoding/json.
func FuzzAppendJSON(f *testing.F) {
	for i, s := range jsonStrings {
		f.Add(s, jsonFloats[i%len(jsonFloats)])
	}
	f.Fuzz(func(t *testing.T, s string, v float64) {
		sameJSON(t, map[string]float64{s: v, "revenue": -v}, 2)
		sameJSON(t, []string{s, "ok"}, 2)
	})
}
