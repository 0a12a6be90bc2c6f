package projections

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/atlas-mmm/atlas/streams/event"
)

// decodeJSON must read what encoding/json reads: whenever its fast decoder accepts
// data, the values must equal encoding/json's (and encoding/json must accept it too),
// for results, rejections and requests.
func sameResult(t *testing.T, data []byte) {
	t.Helper()
	same[resultData](t, data)
	same[event.Rejection](t, data)
	same[requestData](t, data)
}

func same[T resultData | event.Rejection | requestData](t *testing.T, data []byte) {
	t.Helper()
	var fast, slow T
	ferr := decodeJSON(data, &fast)
	serr := json.Unmarshal(data, &slow)
	if (ferr == nil) != (serr == nil) {
		t.Fatalf("decodeJSON(%T) error %v, encoding/json %v on %s", fast, ferr, serr, data)
	}
	if ferr == nil && !reflect.DeepEqual(fast, slow) {
		t.Fatalf("values differ on %s:\nfast %+v\nslow %+v", data, fast, slow)
	}
}

var resultStrings = []string{`"r-1"`, `""`, `"é\u00e9"`, `"\ud800"`, `"a\"b"`, `"\u2028"`, `null`, `7`, `"\/x"`, `"` + "\xff" + `"`}

// genResultJSON writes a result's data as the processor does, with variations: fields
// absent, null, retyped, repeated, spelled in another case, unknown fields, spacing.
func genResultJSON(rng *rand.Rand) []byte {
	str := func() string { return resultStrings[rng.IntN(len(resultStrings))] }
	num := func() string {
		switch rng.IntN(6) {
		case 0:
			return []string{"0", "-0", "1e400", "-1e-400", "1E2", "0.1", "123456789012345678901234567890", `"1"`, "null", "true"}[rng.IntN(10)]
		default:
			return strconv.FormatFloat(rng.NormFloat64()*math.Pow(10, float64(rng.IntN(30)-15)), 'g', -1, 64)
		}
	}
	var fields []string
	add := func(k, v string) {
		if rng.IntN(12) == 0 {
			return
		}
		if rng.IntN(15) == 0 {
			k = strings.ToUpper(k[:1]) + k[1:]
		}
		fields = append(fields, fmt.Sprintf("%q:%s", k, v))
		if rng.IntN(20) == 0 {
			fields = append(fields, fmt.Sprintf("%q:%s", k, v))
		}
	}
	add("request_id", str())
	add("model_id", str())
	add("model_version", []string{"1", "2", "-3", "1.5", "null", `"1"`, "99999999999999999999"}[rng.IntN(7)])
	add("model_hash", str())
	add("status", []string{`"optimal"`, `"infeasible"`, str()}[rng.IntN(3)])
	add("objective", str())
	add("allocation", fmt.Sprintf(`{"tv":%s,"radio":%s}`, num(), num()))
	add("total_spend", num())
	add("expected", fmt.Sprintf(`{"revenue":%s,"conversions":%s}`, num(), num()))
	var chans []string
	for i := range rng.IntN(11) {
		ch := fmt.Sprintf(`"ch%d":{"spend":%s,"response":%s,"roi":%s,"mroi":%s`, i, num(), num(), num(), num())
		if rng.IntN(3) == 0 {
			ch += `,"at_bound":` + []string{`"max"`, `"min"`, str()}[rng.IntN(3)]
		}
		if rng.IntN(10) == 0 {
			ch += `,"extra":[1,{"a":null}]`
		}
		chans = append(chans, ch+"}")
	}
	add("channels", "{"+strings.Join(chans, ",")+"}")
	add("certificate", []string{fmt.Sprintf(`{"objective":%s,"upper_bound":%s,"gap":%s}`, num(), num(), num()), "null", `{"lower_bound":` + num() + `}`}[rng.IntN(3)])
	add("messages", []string{`["a","b"]`, `[]`, `null`, `[` + str() + `]`}[rng.IntN(4)])
	add("errors", []string{`[{"field":"x","error":"y"}]`, `[{"error":` + str() + `},{"field":` + str() + `,"error":"z"}]`, `[]`, `null`, `[{"Field":"f","Error":"e","extra":1}]`}[rng.IntN(5)])
	add("engine", `{"version":"atlas-engine/1.1.0","iterations":3,"elapsed_us":0}`)
	rng.Shuffle(len(fields), func(i, j int) {
		if rng.IntN(4) == 0 {
			fields[i], fields[j] = fields[j], fields[i]
		}
	})
	sep := []string{",", ", ", ",\n"}[rng.IntN(3)]
	return []byte("{" + strings.Join(fields, sep) + "}")
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 8000 {
		b := genResultJSON(rng)
		sameResult(t, b)
		m := bytes.Clone(b)
		const set = "{}[]\",:\\ 0-eE.tfn"
		m[rng.IntN(len(m))] = set[rng.IntN(len(set))]
		sameResult(t, m)
		sameResult(t, b[:rng.IntN(len(b))])
	}
}

// FuzzDecode: on any input decodeJSON agrees with encoding/json.
func FuzzDecode(f *testing.F) {
	rng := rand.New(rand.NewPCG(9, 10))
	for range 30 {
		f.Add(genResultJSON(rng))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sameResult(t, data)
	})
}

// compactByByte is compact as a byte-at-a-time state machine, the reference.
func compactByByte(b []byte) bool {
	in, esc := false, false
	for _, c := range b {
		switch {
		case esc:
			esc = false
		case in && c == '\\':
			esc = true
		case c == '"':
			in = !in
		case !in && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return false
		}
	}
	return true
}

func TestCompactMatchesByByte(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const set = "\"\\ \t\n\rab{}:,"
	for range 50000 {
		b := make([]byte, rng.IntN(24))
		for i := range b {
			b[i] = set[rng.IntN(len(set))]
		}
		if compact(b) != compactByByte(b) {
			t.Fatalf("compact(%q) = %v", b, compact(b))
		}
	}
	for range 2000 {
		b := genResultJSON(rng)
		if compact(b) != compactByByte(b) {
			t.Fatalf("compact(%q) = %v", b, compact(b))
		}
	}
}

// FuzzCompact: compact agrees with the byte-at-a-time reference on any input.
func FuzzCompact(f *testing.F) {
	f.Add([]byte(`{"a":"b \" c","d":[1, 2]}`))
	f.Add([]byte(`"\\" x`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if compact(b) != compactByByte(b) {
			t.Fatalf("compact(%q) = %v", b, compact(b))
		}
	})
}
