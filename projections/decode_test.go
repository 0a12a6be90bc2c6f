package projections

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/atlas-mmm/atlas/engine"
	"github.com/atlas-mmm/atlas/projections/replay/replaytest"
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

var (
	resultStrings = []string{`"r-1"`, `""`, `"é\u00e9"`, `"\ud800"`, `"a\"b"`, `"\u2028"`, `null`, `7`, `"\/x"`, `"` + "\xff" + `"`}
	// what the one-pass decoders take (they give up on escapes and bad UTF-8)
	cleanStrings = []string{`"r-1"`, `""`, `"é"`, `"radio ☂"`, `null`, `"a b"`}
)

// genResultJSON writes a result's data as the processor does, with variations: fields
// absent, null, retyped, repeated, spelled in another case, unknown fields, spacing.
// clean keeps to what fastResult takes (strings without escapes, numbers in range,
// exact keys) but for the absent, null, repeated and unknown fields and the spacing.
func genResultJSON(rng *rand.Rand, clean bool) []byte {
	strs := resultStrings
	if clean {
		strs = cleanStrings
	}
	str := func() string { return strs[rng.IntN(len(strs))] }
	num := func() string {
		switch rng.IntN(6) {
		case 0:
			if clean {
				return []string{"0", "-0", "1E2", "0.1", "1e-300", "null"}[rng.IntN(6)]
			}
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
		if rng.IntN(15) == 0 && !clean {
			k = strings.ToUpper(k[:1]) + k[1:]
		}
		fields = append(fields, fmt.Sprintf("%q:%s", k, v))
		if rng.IntN(20) == 0 {
			fields = append(fields, fmt.Sprintf("%q:%s", k, v))
		}
	}
	add("request_id", str())
	add("model_id", str())
	versions := []string{"1", "2", "-3", "1.5", "null", `"1"`, "99999999999999999999"}
	if clean {
		versions = []string{"1", "2", "-3", "null", "0"}
	}
	add("model_version", versions[rng.IntN(len(versions))])
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

// genRequestJSON writes a request's data with variations around its model_id: absent,
// null, retyped, repeated, spelled in another case or with an escape, beside nested
// unknown fields.
func genRequestJSON(rng *rand.Rand) []byte {
	ids := []string{`"m1"`, `""`, `"é"`, `null`, `7`, `{}`, `"m\u0031"`, `"` + "\xff" + `"`, `["m1"]`}
	keys := []string{"model_id", "model_id", "model_id", "Model_ID", "MODEL_ID", "modelid", "model_id\u017f", "model_\u017fd"}
	var fields []string
	for range rng.IntN(3) {
		fields = append(fields, fmt.Sprintf("%q:%s", keys[rng.IntN(len(keys))], ids[rng.IntN(len(ids))]))
	}
	fields = append(fields, `"request_id":"r-1"`, `"constraints":{"total":100000,"groups":[{"channels":["tv","radio"],"min":0.1}],"x":null}`,
		`"objective":{"type":"max_kpi","kpi":"revenue"}`, `"flags":[true,false,-1.5e3]`)
	rng.Shuffle(len(fields), func(i, j int) { fields[i], fields[j] = fields[j], fields[i] })
	return []byte("{" + strings.Join(fields, []string{",", ", ", ",\n"}[rng.IntN(3)]) + "}")
}

// genJSON is one of the generators above, in turn.
func genJSON(rng *rand.Rand, i int) []byte {
	switch i % 3 {
	case 0:
		return genResultJSON(rng, false)
	case 1:
		return genResultJSON(rng, true)
	}
	return genRequestJSON(rng)
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	fast := [3]int{}
	for i := range 24000 {
		b := genJSON(rng, i)
		if i%3 == 2 && fastRequest(b, &requestData{}) || i%3 != 2 && fastResult(b, &resultData{}) {
			fast[i%3]++
		}
		sameResult(t, b)
		m := bytes.Clone(b)
		const set = "{}[]\",:\\ 0-eE.tfn"
		m[rng.IntN(len(m))] = set[rng.IntN(len(set))]
		sameResult(t, m)
		sameResult(t, b[:rng.IntN(len(b))])
	}
	// The one-pass decoders must be exercised: they take most clean documents.
	if fast[1] < 2000 || fast[2] < 2000 {
		t.Errorf("fastResult took %d of 8000 clean results, fastRequest %d of 8000 requests", fast[1], fast[2])
	}
	t.Logf("taken by the one-pass decoders: %v of 8000 results, clean results, requests", fast)
}

// FuzzDecode: on any input decodeJSON agrees with encoding/json.
func FuzzDecode(f *testing.F) {
	rng := rand.New(rand.NewPCG(9, 10))
	for i := range 45 {
		f.Add(genJSON(rng, i))
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
		b := genResultJSON(rng, rng.IntN(2) == 0)
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

// The one-pass decoders skip the fields they do not know: they must know every field
// of resultData, requestData, engine.ChannelResult and engine.Certificate.
func TestFastDecodersKnowEveryField(t *testing.T) {
	for _, tc := range []struct {
		typ    reflect.Type
		fields []string
	}{
		{reflect.TypeFor[resultData](), resultFields},
		{reflect.TypeFor[requestData](), requestFields},
		{reflect.TypeFor[engine.ChannelResult](), channelFields},
		{reflect.TypeFor[engine.Certificate](), certificateFields},
	} {
		var names []string
		for f := range tc.typ.Fields() {
			names = append(names, strings.Split(f.Tag.Get("json"), ",")[0])
		}
		if !slices.Equal(names, tc.fields) {
			t.Errorf("%v has the JSON fields %v; the one-pass decoder knows %v", tc.typ, names, tc.fields)
		}
	}
	// And they take what the processor writes (else the fallback hides a slow path).
	for i, r := range []engine.Result{replaytest.Result("req-1", 1), {RequestID: "r", Status: "infeasible", Messages: []string{}},
		{RequestID: "r2", Channels: map[string]engine.ChannelResult{"tv": {Spend: 0, ROI: nil, MROI: nil, AtBound: "max"}}}} {
		data, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if !fastResult(data, &resultData{}) {
			t.Errorf("result %d: fastResult gave up on %s", i, data)
		}
		sameResult(t, data)
	}
	req := []byte(`{"request_id":"r-1","model_id":"m1","constraints":{"total":100000}}`)
	if !fastRequest(req, &requestData{}) {
		t.Errorf("fastRequest gave up on %s", req)
	}
}

// BenchmarkDecodeResult decodes a result's data as the processor writes it (five
// channels, a certificate), as a replay does for every result event.
func BenchmarkDecodeResult(b *testing.B) {
	data, err := json.Marshal(replaytest.Result("req-000123", 123))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var res resultData
		if err := decodeJSON(data, &res); err != nil {
			b.Fatal(err)
		}
	}
}
