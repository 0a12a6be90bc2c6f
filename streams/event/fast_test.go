package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/atlas-mmm/atlas/engine"
)

// The fast paths (fast.go, appendData) must give exactly what encoding/json gives. These
// tests compare the two on generated events, on mutations of them, and (FuzzFastPaths,
// FuzzAppendData) on whatever the fuzzer finds.

// sameDecode fails t when the fast and the encoding/json paths of DecodeTrusted, or of
// dataString on raw as data, disagree, or when skipValue disagrees with json.Valid.
func sameDecode(t *testing.T, raw []byte) {
	t.Helper()
	fe, ferr := decodeTrusted(raw, true)
	se, serr := decodeTrusted(raw, false)
	if fmt.Sprint(ferr) != fmt.Sprint(serr) || reflect.TypeOf(ferr) != reflect.TypeOf(serr) {
		t.Fatalf("errors differ on %q:\nfast %v\nslow %v", raw, ferr, serr)
	}
	if !reflect.DeepEqual(fe, se) || (fe.Data == nil) != (se.Data == nil) {
		t.Fatalf("envelopes differ on %q:\nfast %+v\nslow %+v", raw, fe, se)
	}
	if ferr == nil && fe.Key() != se.Key() {
		t.Fatalf("keys differ on %q", raw)
	}
	for _, name := range []string{"request_id", "model_id"} {
		if f, s := dataString(raw, name), slowDataString(raw, name); f != s {
			t.Fatalf("dataString(%q) differs on %q: fast %q, slow %q", name, raw, f, s)
		}
	}
	i := skipValue(raw, skipWS(raw, 0), 0)
	fastValid := i >= 0 && skipWS(raw, i) == len(raw)
	if fastValid != json.Valid(raw) && (fastValid || depth(raw) < maxFastDepth) {
		t.Fatalf("skipValue says valid=%v, json.Valid %v on %q", fastValid, !fastValid, raw)
	}
}

// depth is an upper bound on raw's nesting.
func depth(raw []byte) int {
	return bytes.Count(raw, []byte("{")) + bytes.Count(raw, []byte("["))
}

var genTime = time.Date(2026, 11, 26, 5, 0, 0, 123456789, time.UTC)

// genStrings are strings that take each branch of the fast paths' string handling.
var genStrings = []string{"", "a", "req-1", "acme-mmm", `q"uote`, `back\slash`, "tab\t", "\x01ctl", "é", "\u2028",
	"<&>", "\xff", "ID", "Request_ID", "ſubject", "\u212a", "😀", "a/b", "null"}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// genEvents returns events as Atlas writes them, of every type, with varied content.
func genEvents(rng *rand.Rand, n int) [][]byte {
	var out [][]byte
	for range n {
		s := func() string { return genStrings[rng.IntN(len(genStrings))] }
		id := fmt.Sprintf("r-%d", rng.IntN(1000))
		if rng.IntN(4) == 0 {
			id = s()
		}
		t := genTime.Add(time.Duration(rng.Int64N(1e12)))
		if rng.IntN(5) == 0 {
			t = time.Time{}
		}
		var raw []byte
		var err error
		switch rng.IntN(5) {
		case 0:
			raw, err = EncodeTrusted(OptimizationCompleted, "atlas/processor", id, ResultID(id, OptimizationCompleted), t, genResult(rng, id))
		case 1:
			raw, err = EncodeTrusted(OptimizationRejected, "atlas/processor", id, ResultID(id, OptimizationRejected), t,
				Rejection{RequestID: id, Errors: engine.FieldErrors{{Field: s(), Message: s()}}})
		case 2:
			data := fmt.Sprintf(`{"request_id":%s,"model_id":%s,"budget":{"tv":%d},"constraints":{"total":1e5}}`, quote(id), quote(s()), rng.IntN(1e6))
			raw, err = EncodeTrusted(OptimizationRequested, "api", id, "evt-"+id, t, json.RawMessage(data))
		case 3:
			raw, err = EncodeTrusted(ModelRetired, "api", id, "evt-"+id, t, Retirement{ModelID: id})
		default:
			data := fmt.Sprintf(`{"model_id":%s,"channels":{"tv":{"curve":{"type":"hill","alpha":1.5}}},"x":[1,-2.5e-3,true,null,"s"]}`, quote(id))
			raw, err = EncodeTrusted(ModelPublished, "api", id, "evt-"+id, t, json.RawMessage(data))
		}
		if err != nil {
			panic(err)
		}
		out = append(out, raw)
	}
	return out
}

// mutations are edits that move an event off the fast path or into an error, or keep it
// on the fast path in another form.
var mutations = []func(rng *rand.Rand, b []byte) []byte{
	func(rng *rand.Rand, b []byte) []byte { // a byte changed
		b = bytes.Clone(b)
		const set = "{}[]\",:\\ 0-eE.tfn\x00\xff"
		b[rng.IntN(len(b))] = set[rng.IntN(len(set))]
		return b
	},
	func(rng *rand.Rand, b []byte) []byte { // whitespace
		i := rng.IntN(len(b) + 1)
		return append(append(bytes.Clone(b[:i]), " \n\t\r"[rng.IntN(4)]), b[i:]...)
	},
	func(rng *rand.Rand, b []byte) []byte { // truncated
		return bytes.Clone(b[:rng.IntN(len(b))])
	},
	func(rng *rand.Rand, b []byte) []byte { // a key spelled otherwise
		k := []string{`"id"`, `"type"`, `"subject"`, `"data"`, `"request_id"`, `"model_id"`, `"time"`}[rng.IntN(7)]
		r := []string{`"ID"`, `"Type"`, `"subjecT"`, `"\u0064ata"`, `"request_\u0069d"`, `"MODEL_ID"`, `"tıme"`, `"x-ext"`}[rng.IntN(8)]
		return bytes.Replace(b, []byte(k), []byte(r), 1)
	},
	func(rng *rand.Rand, b []byte) []byte { // an attribute repeated, or an extension
		ext := []string{`"id":"other",`, `"subject":"x",`, `"ext":{"a":[1,2,{"b":null}]},`, `"data":{},`, `"time":"",`, `"source":null,`}[rng.IntN(6)]
		return append([]byte(`{`+ext), b[1:]...)
	},
	func(rng *rand.Rand, b []byte) []byte { // data keys repeated or retyped
		k := []string{`"request_id":`, `"model_id":`}[rng.IntN(2)]
		v := []string{`"x",`, `7,`, `null,`, `"\u0041",`, `{"request_id":"y"},`, `"é",`}[rng.IntN(6)]
		return bytes.Replace(b, []byte(`"data":{`), []byte(`"data":{`+k+v), 1)
	},
	func(rng *rand.Rand, b []byte) []byte { // times
		tm := []string{`"2026-11-26T05:00:00Z"`, `"2026-11-26T05:00:00.5+02:00"`, `"2026-13-26T05:00:00Z"`, `""`, `"x"`, `7`}[rng.IntN(6)]
		return append([]byte(`{"time":`+tm+`,`), bytes.Replace(b[1:], []byte(`"time":`), []byte(`"x-time":`), 1)...)
	},
	func(rng *rand.Rand, b []byte) []byte { // trailing bytes
		return append(bytes.Clone(b), []string{" ", "}", "x", "\n\n", "{}"}[rng.IntN(5)]...)
	},
}

func TestFastDecodeMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, raw := range genEvents(rng, 3000) {
		sameDecode(t, raw)
		m := raw
		for range 1 + rng.IntN(3) {
			if len(m) < 2 {
				break
			}
			m = mutations[rng.IntN(len(mutations))](rng, m)
			sameDecode(t, m)
		}
		// the data alone, as dataString sees it
		e, err := decodeTrusted(raw, false)
		if err == nil {
			sameDecode(t, e.Data)
		}
	}
	for _, raw := range []string{`{}`, `null`, `[]`, ` {"data":{}} `, `{"data":{"request_id":"a","request_id":"b"}}`,
		`{"specversion":"1.0","id":"e","source":"/s","type":"atlas.model.retired.v1","subject":"m","data":{"model_id":"m"}}`,
		`{"specversion":"1.0","id":"e","source":"/s","type":"atlas.model.retired.v1","subject":"m","data":{"model_id":"m"},"Data":{}}`,
		`{"specversion":"1.0","id":"e","type":"atlas.optimization.requested.v1","subject":"e","data":{"x":1e999}}`,
		`{"a":-}`, `{"a":01}`, `{"a":1.}`, `{"a":1e}`, `{"a":"\u12"}`, `{"a":"\q"}`, `{"a":tru}`, `{"a":[1,]}`, `{"a":{"b":1,}}`,
		strings.Repeat("[", 600) + strings.Repeat("]", 600), `{"data":` + strings.Repeat(`{"a":`, 600) + "1" + strings.Repeat("}", 601)} {
		sameDecode(t, []byte(raw))
	}
}

// FuzzFastPaths: on any input, the fast decoding paths agree with encoding/json.
func FuzzFastPaths(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, raw := range genEvents(rng, 40) {
		f.Add(raw)
		f.Add(mutations[rng.IntN(len(mutations))](rng, raw))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		sameDecode(t, raw)
	})
}

// genFloat returns floats around every formatting boundary of encoding/json.
func genFloat(rng *rand.Rand) float64 {
	switch rng.IntN(8) {
	case 0:
		return []float64{0, math.Copysign(0, -1), 1e-6, 9.999999e-7, 1e21, 9.99999999999999e20, math.MaxFloat64,
			math.SmallestNonzeroFloat64, 1e-7, 123456789012345678, 0.1, -1.5}[rng.IntN(12)]
	case 1:
		return math.Float64frombits(rng.Uint64()&^(0x7ff<<52) | uint64(rng.IntN(0x7ff))<<52) // never NaN or Inf
	case 2:
		return float64(rng.IntN(1e7))
	default:
		return rng.NormFloat64() * math.Pow(10, float64(rng.IntN(40)-20))
	}
}

// genResult returns an engine.Result with every field in play, some of them empty.
func genResult(rng *rand.Rand, id string) engine.Result {
	s := func() string { return genStrings[rng.IntN(len(genStrings))] }
	ptr := func() *float64 {
		if rng.IntN(3) == 0 {
			return nil
		}
		v := genFloat(rng)
		return &v
	}
	chans := func() map[string]engine.ChannelResult {
		if rng.IntN(6) == 0 {
			return nil
		}
		m := map[string]engine.ChannelResult{}
		for range rng.IntN(12) {
			m[s()+fmt.Sprint(rng.IntN(20))] = engine.ChannelResult{Spend: genFloat(rng), Response: genFloat(rng), ROI: ptr(), MROI: ptr(),
				AtBound: []string{"", "min", "max"}[rng.IntN(3)]}
		}
		return m
	}
	floats := func() map[string]float64 {
		if rng.IntN(5) == 0 {
			return nil
		}
		m := map[string]float64{}
		for range rng.IntN(4) {
			m[s()] = genFloat(rng)
		}
		return m
	}
	r := engine.Result{RequestID: id, ModelID: s(), ModelVersion: rng.IntN(5), ModelHash: "sha256:" + s(), Status: s(), Objective: s(),
		Allocation: floats(), TotalSpend: genFloat(rng), Expected: floats(), Channels: chans(),
		Engine: engine.EngineInfo{Version: engine.Version, Algorithm: s(), Iterations: rng.IntN(100), Nodes: rng.IntN(3), ElapsedMicros: rng.Int64N(9)}}
	if rng.IntN(3) == 0 {
		r.Current = &engine.Evaluation{TotalSpend: genFloat(rng), Expected: floats(), Channels: chans()}
	}
	if rng.IntN(2) == 0 {
		r.Certificate = &engine.Certificate{Objective: genFloat(rng), UpperBound: ptr(), LowerBound: ptr(), Gap: genFloat(rng)}
	}
	for range rng.IntN(3) {
		r.Messages = append(r.Messages, s())
	}
	for range rng.IntN(3) {
		r.Errors = append(r.Errors, engine.FieldError{Field: s(), Message: s()})
	}
	return r
}

func sameEncoding(t *testing.T, data any) {
	t.Helper()
	got, gerr := appendData([]byte("x"), data)
	want, werr := marshal(data)
	if fmt.Sprint(gerr) != fmt.Sprint(werr) {
		t.Fatalf("errors differ: %v, %v", gerr, werr)
	}
	if gerr == nil && !bytes.Equal(got, append([]byte("x"), want...)) {
		t.Fatalf("encodings differ:\nfast %s\nslow x%s", got, want)
	}
}

func TestAppendDataMatchesMarshal(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for range 5000 {
		r := genResult(rng, genStrings[rng.IntN(len(genStrings))])
		sameEncoding(t, r)
		sameEncoding(t, &r)
		rej := Rejection{RequestID: r.RequestID, Errors: r.Errors}
		sameEncoding(t, rej)
		sameEncoding(t, &rej)
	}
	sameEncoding(t, engine.Result{TotalSpend: math.NaN()})
	sameEncoding(t, engine.Result{Expected: map[string]float64{"x": math.Inf(1)}})
	sameEncoding(t, (*engine.Result)(nil))
	sameEncoding(t, map[string]any{"a": 1})
}

// FuzzAppendData: results built from any strings and float bits encode as encoding/json
// encodes them.
func FuzzAppendData(f *testing.F) {
	f.Add("acme", "tv", "optimal", uint64(0x3ff0000000000000), uint64(0))
	f.Add("\xff\u2028<", "\x00", "", uint64(0x7ff8000000000001), uint64(1))
	f.Fuzz(func(t *testing.T, a, b, c string, x, y uint64) {
		fx, fy := math.Float64frombits(x), math.Float64frombits(y)
		r := engine.Result{RequestID: a, ModelID: b, Status: c, TotalSpend: fx, Expected: map[string]float64{a: fy, b: fx},
			Channels: map[string]engine.ChannelResult{c: {Spend: fy, ROI: &fx, AtBound: a}}, Messages: []string{b, c},
			Certificate: &engine.Certificate{Objective: fy, UpperBound: &fx}, Errors: engine.FieldErrors{{Field: a, Message: c}}}
		sameEncoding(t, r)
		sameEncoding(t, Rejection{RequestID: a, Errors: r.Errors})
	})
}

// The hand-written encoder (result.go) knows these fields; a change to them must
// change it too.
func TestResultEncoderKnowsEveryField(t *testing.T) {
	want := map[reflect.Type]string{
		reflect.TypeFor[engine.Result]():        `RequestID string json:"request_id,omitempty"; ModelID string json:"model_id,omitempty"; ModelVersion int json:"model_version,omitempty"; ModelHash string json:"model_hash,omitempty"; Status string json:"status"; Objective string json:"objective,omitempty"; Allocation map[string]float64 json:"allocation,omitempty"; TotalSpend float64 json:"total_spend"; Expected map[string]float64 json:"expected,omitempty"; Current *engine.Evaluation json:"current,omitempty"; Channels map[string]engine.ChannelResult json:"channels,omitempty"; Certificate *engine.Certificate json:"certificate,omitempty"; Messages []string json:"messages,omitempty"; Errors []engine.FieldError json:"errors,omitempty"; Engine engine.EngineInfo json:"engine"; `,
		reflect.TypeFor[engine.Evaluation]():    `TotalSpend float64 json:"total_spend"; Expected map[string]float64 json:"expected"; Channels map[string]engine.ChannelResult json:"channels,omitempty"; `,
		reflect.TypeFor[engine.ChannelResult](): `Spend float64 json:"spend"; Response float64 json:"response"; ROI *float64 json:"roi"; MROI *float64 json:"mroi"; AtBound string json:"at_bound,omitempty"; `,
		reflect.TypeFor[engine.Certificate]():   `Objective float64 json:"objective"; UpperBound *float64 json:"upper_bound,omitempty"; LowerBound *float64 json:"lower_bound,omitempty"; Gap float64 json:"gap"; `,
		reflect.TypeFor[engine.EngineInfo]():    `Version string json:"version"; Algorithm string json:"algorithm,omitempty"; Iterations int json:"iterations"; Nodes int json:"nodes,omitempty"; ElapsedMicros int64 json:"elapsed_us"; `,
		reflect.TypeFor[engine.FieldError]():    `Field string json:"field,omitempty"; Message string json:"error"; `,
		reflect.TypeFor[Rejection]():            `RequestID string json:"request_id"; Errors engine.FieldErrors json:"errors"; `,
	}
	for typ, fields := range want {
		var got strings.Builder
		for f := range typ.Fields() {
			fmt.Fprintf(&got, "%s %s %s; ", f.Name, f.Type, f.Tag)
		}
		if got.String() != fields {
			t.Errorf("%s is now\n%s\nwas\n%s\nupdate appendResult (result.go) and this list", typ, got.String(), fields)
		}
		for _, m := range []string{"MarshalJSON", "MarshalText"} {
			if _, ok := typ.MethodByName(m); ok {
				t.Errorf("%s has a %s method: appendResult must call it", typ, m)
			}
			if _, ok := reflect.PointerTo(typ).MethodByName(m); ok {
				t.Errorf("*%s has a %s method: appendResult must call it", typ, m)
			}
		}
	}
}

// The engine's own answers, including rejections and what-if blocks, encode as
// encoding/json encodes them.
func TestAppendDataMatchesMarshalOnSolves(t *testing.T) {
	var n int
	for _, name := range []string{"acme-model.json", "demo-model.json"} {
		raw, err := os.ReadFile("../../examples/" + name)
		if err != nil {
			t.Fatal(err)
		}
		m, err := engine.DecodeModel(raw)
		if err != nil {
			t.Fatal(err)
		}
		pm, err := engine.Prepare(&m)
		if err != nil {
			t.Fatal(err)
		}
		reqs, err := os.ReadFile("../../examples/acme-requests.ndjson")
		if err != nil {
			t.Fatal(err)
		}
		for line := range bytes.Lines(reqs) {
			req, err := engine.DecodeRequest(line)
			if err != nil {
				t.Fatal(err)
			}
			res := pm.Solve(&req)
			sameEncoding(t, res)
			sameEncoding(t, Rejection{RequestID: req.RequestID, Errors: res.Errors})
			n++
		}
	}
	if n == 0 {
		t.Fatal("no requests solved")
	}
}
