package schemas

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/atlas-mmm/atlas/engine"
)

const (
	typeModel     = "atlas.model.published.v1"
	typeRetired   = "atlas.model.retired.v1"
	typeRequest   = "atlas.optimization.requested.v1"
	typeCompleted = "atlas.optimization.completed.v1"
	typeRejected  = "atlas.optimization.rejected.v1"
)

func read(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// envelope wraps data in a valid event of type typ.
func envelope(typ, subject string, data []byte) []byte {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, `{"specversion":"1.0","id":"evt-1","source":"/atlas/test","type":%q,"time":"2024-05-01T12:00:00.123456789Z","subject":%q,"datacontenttype":"application/json","data":`, typ, subject)
	buf.Write(data)
	buf.WriteString("}")
	return buf.Bytes()
}

func fieldErrors(t testing.TB, err error) engine.FieldErrors {
	t.Helper()
	var fes engine.FieldErrors
	if !errors.As(err, &fes) {
		t.Fatalf("error %v (%T) is not engine.FieldErrors", err, err)
	}
	return fes
}

func fields(fes engine.FieldErrors) []string {
	var out []string
	for _, fe := range fes {
		out = append(out, fe.Field)
	}
	return out
}

// ---------------------------------------------------------------------------------------
// The schema files themselves

func TestSchemaFiles(t *testing.T) {
	if _, err := compiled(); err != nil {
		t.Fatal(err)
	}
	want := []string{"cloudevent.schema.json", "model.schema.json", "rejected.schema.json", "request.schema.json", "result.schema.json", "retired.schema.json"}
	if got := Files(); !slices.Equal(got, want) {
		t.Fatalf("Files() = %v, want %v", got, want)
	}
	for _, name := range want {
		raw, err := File(name)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema = %v", name, doc["$schema"])
		}
		if doc["$id"] != BaseURL+name {
			t.Errorf("%s: $id = %v, want %s", name, doc["$id"], BaseURL+name)
		}
		if doc["title"] == nil || doc["description"] == nil {
			t.Errorf("%s: needs a title and a description", name)
		}
	}
	if _, err := File("../schemas.go"); err == nil {
		t.Error("File must not reach outside the schema folder")
	}
	for _, typ := range EventTypes() {
		if name, ok := DataSchema(typ); !ok || !slices.Contains(want, name) {
			t.Errorf("DataSchema(%s) = %q, %v", typ, name, ok)
		}
	}
	if err := ValidateData("atlas.nope.v1", []byte(`{}`)); err == nil {
		t.Error("an unknown event type must be an error")
	}
}

// ---------------------------------------------------------------------------------------
// Every example of the contract and of the repository validates

// contractPath finds contract.md: $ATLAS_CONTRACT, or the shared design folder next to
// the repository.
func contractPath() string {
	if p := os.Getenv("ATLAS_CONTRACT"); p != "" {
		return p
	}
	return filepath.Join("..", "..", "shared", "design", "contract.md")
}

// The JSON examples of contract.md, copied into testdata/contract so that the test runs
// anywhere; when contract.md is at hand the copies must still match it.
func TestContractExamplesUpToDate(t *testing.T) {
	md, err := os.ReadFile(contractPath())
	if err != nil {
		t.Skipf("contract.md not found (%v); set ATLAS_CONTRACT to check the copies", err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(md, -1)
	names := []string{"model.json", "request.json", "result.json"}
	if len(blocks) != len(names) {
		t.Fatalf("contract.md has %d JSON examples, testdata/contract has %d: update the copies", len(blocks), len(names))
	}
	for i, name := range names {
		if got := read(t, filepath.Join("testdata", "contract", name)); !bytes.Equal(got, blocks[i][1]) {
			t.Errorf("testdata/contract/%s differs from the contract's example %d: update the copy", name, i+1)
		}
	}
	smoke := []byte(`{"budget": {"tv": 100000, "digital": 200000},`)
	if !bytes.Contains(md, smoke) {
		t.Error("the deployment guide's smoke-test request changed in contract.md: update testdata/contract/smoke-request.json")
	}
}

func TestContractExamples(t *testing.T) {
	model := read(t, "testdata/contract/model.json")
	if err := ValidateData(typeModel, model); err != nil {
		t.Errorf("§1 model: %v", err)
	}
	if err := ValidateEvent(envelope(typeModel, "acme-mmm", model)); err != nil {
		t.Errorf("§1 model as an event: %v", err)
	}
	if err := ValidateData(typeRequest, read(t, "testdata/contract/smoke-request.json")); err != nil {
		t.Errorf("smoke-test request: %v", err)
	}

	// §2 documents the optional fields with placeholder strings; the only one that is not
	// a valid value is "model", whose value is an inline model, not a string.
	req := read(t, "testdata/contract/request.json")
	fes := fieldErrors(t, ValidateData(typeRequest, req))
	if got := fields(fes); !slices.Equal(got, []string{"model"}) {
		t.Errorf("§2 request verbatim: errors at %v (%v), want only the placeholder at model", got, fes)
	}
	var r map[string]any
	if err := json.Unmarshal(req, &r); err != nil {
		t.Fatal(err)
	}
	var m any
	if err := json.Unmarshal(model, &m); err != nil {
		t.Fatal(err)
	}
	r["model"] = m
	req, _ = json.Marshal(r)
	if err := ValidateData(typeRequest, req); err != nil {
		t.Errorf("§2 request with the §1 model inline: %v", err)
	}
	delete(r, "model")
	req, _ = json.Marshal(r)
	if err := ValidateEvent(envelope(typeRequest, "optional; generated when absent", req)); err != nil {
		t.Errorf("§2 request as an event: %v", err)
	}

	// §3 abbreviates the model hash as "sha256:…"; a real one is 64 hex digits.
	res := read(t, "testdata/contract/result.json")
	fes = fieldErrors(t, ValidateData(typeCompleted, res))
	if got := fields(fes); !slices.Equal(got, []string{"model_hash"}) {
		t.Errorf("§3 result verbatim: errors at %v (%v), want only the placeholder at model_hash", got, fes)
	}
	res = bytes.Replace(res, []byte(`"sha256:…"`), []byte(`"sha256:`+strings.Repeat("ab", 32)+`"`), 1)
	if err := ValidateData(typeCompleted, res); err != nil {
		t.Errorf("§3 result: %v", err)
	}
	if err := ValidateResult(res); err != nil {
		t.Errorf("§3 result as any result: %v", err)
	}
	if err := ValidateEvent(envelope(typeCompleted, "…", res)); err != nil {
		t.Errorf("§3 result as an event: %v", err)
	}

	// §5 small data shapes
	if err := ValidateEvent(envelope(typeRetired, "acme-mmm", []byte(`{"model_id": "acme-mmm"}`))); err != nil {
		t.Errorf("retired: %v", err)
	}
	rej := []byte(`{"request_id": "r1", "errors": [{"field": "constraints.total", "error": "must be a non-negative amount"}, {"error": "no model"}]}`)
	if err := ValidateEvent(envelope(typeRejected, "r1", rej)); err != nil {
		t.Errorf("rejected: %v", err)
	}
}

type example struct {
	name string
	raw  []byte
}

// repoRequests returns the repository's example requests.
func repoRequests(t testing.TB) []example {
	t.Helper()
	out := []example{{"examples/quickstart.json", read(t, "../examples/quickstart.json")}}
	sc := bufio.NewScanner(bytes.NewReader(read(t, "../examples/acme-requests.ndjson")))
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		out = append(out, example{fmt.Sprintf("examples/acme-requests.ndjson:%d", line), bytes.Clone(sc.Bytes())})
	}
	if len(out) < 2 {
		t.Fatal("no example requests found")
	}
	return out
}

func TestRepoExamples(t *testing.T) {
	model := read(t, "../examples/acme-model.json")
	if err := ValidateData(typeModel, model); err != nil {
		t.Errorf("examples/acme-model.json: %v", err)
	}
	if err := ValidateEvent(envelope(typeModel, "acme-mmm", model)); err != nil {
		t.Errorf("examples/acme-model.json as an event: %v", err)
	}
	for _, ex := range repoRequests(t) {
		if err := ValidateData(typeRequest, ex.raw); err != nil {
			t.Errorf("%s: %v", ex.name, err)
		}
		if err := ValidateEvent(envelope(typeRequest, "r", ex.raw)); err != nil {
			t.Errorf("%s as an event: %v", ex.name, err)
		}
	}
}

// ---------------------------------------------------------------------------------------
// Schemas and Go types stay in sync

// finishResult fills in what the processor adds to an engine result.
func finishResult(res *engine.Result, version int) {
	if res.Status != engine.StatusInvalid || res.ModelHash != "" {
		res.ModelVersion = version
	}
	res.Engine.ElapsedMicros = 41
}

func checkResult(t testing.TB, name string, res engine.Result) {
	t.Helper()
	raw, err := json.Marshal(res)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := ValidateResult(raw); err != nil {
		t.Errorf("%s: engine result does not match result.schema.json#/$defs/result: %v\n%s", name, err, raw)
	}
	completedErr := ValidateData(typeCompleted, raw)
	switch {
	case res.Status != engine.StatusInvalid && res.RequestID != "" && completedErr != nil:
		t.Errorf("%s: %s result does not match result.schema.json: %v\n%s", name, res.Status, completedErr, raw)
	case res.Status == engine.StatusInvalid && completedErr == nil:
		t.Errorf("%s: an invalid result must not pass as a completed event's data", name)
	}
	if res.Status != engine.StatusInvalid && res.RequestID != "" {
		if err := ValidateEvent(envelope(typeCompleted, res.RequestID, raw)); err != nil {
			t.Errorf("%s as an event: %v", name, err)
		}
	}
	if res.Status == engine.StatusInvalid && res.RequestID != "" {
		rej, _ := json.Marshal(struct {
			RequestID string             `json:"request_id"`
			Errors    engine.FieldErrors `json:"errors"`
		}{res.RequestID, res.Errors})
		if err := ValidateData(typeRejected, rej); err != nil {
			t.Errorf("%s: its rejection does not match rejected.schema.json: %v", name, err)
		}
	}
}

func TestEngineResultsOnExamples(t *testing.T) {
	m, err := engine.DecodeModel(read(t, "../examples/acme-model.json"))
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[string]bool{}
	for _, ex := range repoRequests(t) {
		req, err := engine.DecodeRequest(ex.raw)
		if err != nil {
			t.Fatalf("%s: %v", ex.name, err)
		}
		model := &m
		if req.Model != nil {
			model = nil
		}
		res := engine.Solve(model, &req)
		finishResult(&res, 3)
		statuses[res.Status] = true
		checkResult(t, ex.name, res)
	}
	// a malformed request: the engine answers "invalid" with field errors
	bad := engine.Request{RequestID: "bad", Budget: map[string]float64{"print": 5}}
	res := engine.Solve(&m, &bad)
	finishResult(&res, 3)
	statuses[res.Status] = true
	checkResult(t, "unknown channel", res)
	for _, s := range []string{engine.StatusOptimal, engine.StatusInfeasible, engine.StatusInvalid} {
		if !statuses[s] {
			t.Errorf("no example produced a %s result", s)
		}
	}
}

// TestEngineResultsRandom solves random models and requests, valid by construction:
// the schemas accept every one, and every result the engine writes matches
// result.schema.json.
func TestEngineResultsRandom(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 40
	}
	rng := rand.New(rand.NewSource(7))
	statuses := map[string]int{}
	for i := 0; i < n; i++ {
		m := randomModel(rng)
		req := randomRequest(rng, &m, i)
		mraw, _ := json.Marshal(m)
		if err := ValidateData(typeModel, mraw); err != nil {
			t.Fatalf("case %d: a valid model fails model.schema.json: %v\n%s", i, err, mraw)
		}
		if _, err := engine.DecodeModel(mraw); err != nil {
			t.Fatalf("case %d: generated an invalid model: %v\n%s", i, err, mraw)
		}
		rraw, _ := json.Marshal(req)
		if err := ValidateData(typeRequest, rraw); err != nil {
			t.Fatalf("case %d: request fails request.schema.json: %v\n%s", i, err, rraw)
		}
		res := engine.Solve(&m, &req)
		finishResult(&res, 1+i%5)
		statuses[res.Status]++
		if res.Status == engine.StatusInvalid {
			t.Logf("case %d: invalid: %v", i, res.Errors)
		}
		checkResult(t, fmt.Sprintf("case %d", i), res)
	}
	t.Logf("statuses: %v", statuses)
	if statuses[engine.StatusOptimal] == 0 {
		t.Error("no optimal result among the random cases")
	}
}

func randomModel(rng *rand.Rand) engine.Model {
	f := func(lo, hi float64) *float64 { v := lo + rng.Float64()*(hi-lo); return &v }
	names := []string{"tv", "digital", "radio", "search", "social", "print"}
	n := 1 + rng.Intn(len(names))
	m := engine.Model{ModelID: fmt.Sprintf("m%d", rng.Intn(100)), Baseline: *f(0, 1e5), Channels: map[string]engine.Channel{}}
	if rng.Intn(3) == 0 {
		m.KPI = "sales"
	}
	curve := func() engine.Curve {
		switch rng.Intn(8) {
		case 0:
			return engine.Curve{Type: "linear", Beta: f(0.1, 3)}
		case 1:
			return engine.Curve{Type: "hill", Beta: f(1e4, 1e6), Alpha: f(0.5, 3), Kappa: f(1e3, 3e5)}
		case 2:
			return engine.Curve{Type: "saturation", Beta: f(1e4, 1e6), Kappa: f(1e3, 3e5)}
		case 3:
			return engine.Curve{Type: "exponential", Beta: f(1e4, 1e6), Kappa: f(1e3, 3e5)}
		case 4:
			return engine.Curve{Type: "power", Beta: f(0.5, 50), Alpha: f(0.2, 1)}
		case 5:
			return engine.Curve{Type: "log", Beta: f(1e3, 1e5), Kappa: f(1e3, 3e5)}
		case 6:
			return engine.Curve{Type: "logistic", Beta: f(1e4, 1e6), K: f(1e-5, 1e-4), X0: f(0, 2e5)}
		}
		var pts [][]float64
		x, y := 0.0, 0.0
		for j := 0; j <= rng.Intn(4); j++ {
			x += 1e3 + rng.Float64()*1e5
			y += rng.Float64() * 1e5
			pts = append(pts, []float64{x, y})
		}
		return engine.Curve{Type: "piecewise", Points: pts}
	}
	for _, name := range names[:n] {
		ch := engine.Channel{Curve: curve()}
		if rng.Intn(3) == 0 {
			ch.Adstock = &engine.Adstock{Type: "geometric", Decay: f(0, 0.9)}
		}
		m.Channels[name] = ch
	}
	if rng.Intn(2) == 0 {
		k := engine.KPIModel{Baseline: *f(0, 1e3), Channels: map[string]engine.Channel{}}
		for _, name := range names[:n] {
			if rng.Intn(2) == 0 {
				k.Channels[name] = engine.Channel{Curve: curve()}
			}
		}
		if len(k.Channels) == 0 {
			k.Channels = nil // marshals as null, which the schema accepts too
		}
		m.KPIs = map[string]engine.KPIModel{"awareness": k}
	}
	return m
}

func randomRequest(rng *rand.Rand, m *engine.Model, i int) engine.Request {
	f := func(lo, hi float64) *float64 { v := lo + rng.Float64()*(hi-lo); return &v }
	var names []string
	for name := range m.Channels {
		names = append(names, name)
	}
	slices.Sort(names)
	req := engine.Request{RequestID: fmt.Sprintf("req-%d", i), Budget: map[string]float64{}, Options: &engine.Options{MaxNodes: 300}}
	for _, name := range names {
		if rng.Intn(4) > 0 {
			req.Budget[name] = *f(0, 2e5)
		}
	}
	if len(req.Budget) == 0 {
		req.Budget[names[0]] = 1e5
	}
	objective := rng.Intn(6) // 5: the default objective (max_kpi)
	// The engine can take minutes on spend-searching objectives (min_spend, target_roi,
	// target_mroi) under coupling constraints (groups, ratios, max_share) with piecewise
	// curves; those combinations are left out to keep this test fast.
	spendSearch := objective >= 2 && objective <= 4
	c := &req.Constraints
	switch rng.Intn(3) {
	case 0:
		c.Total = &engine.Total{Exact: f(1e4, 1e6)}
	case 1:
		lo := *f(0, 3e5)
		c.Total = &engine.Total{Min: &lo, Max: f(lo, lo+1e6)}
	}
	if rng.Intn(2) == 0 {
		c.Channels = map[string]engine.ChannelBounds{}
		for _, name := range names {
			switch rng.Intn(4) {
			case 0:
				lo := *f(0, 5e4)
				c.Channels[name] = engine.ChannelBounds{Min: &lo, Max: f(lo, lo+3e5)}
			case 1:
				c.Channels[name] = engine.ChannelBounds{Fixed: true}
			}
		}
	}
	if rng.Intn(4) == 0 {
		c.MaxChange = f(0.1, 2)
	}
	if !spendSearch && rng.Intn(4) == 0 {
		c.MaxShare = f(0.3, 1)
	}
	coupled := len(names) >= 2 && !spendSearch
	if coupled && rng.Intn(3) == 0 {
		c.Groups = []engine.Group{{Name: "g", Channels: names[:2], MinShare: f(0, 0.5)}}
	}
	if coupled && rng.Intn(3) == 0 {
		c.Ratios = []engine.Ratio{{Numerator: names[0], Denominator: names[1], Min: f(0.2, 1), Max: f(1, 4)}}
	}
	kpis := []string{m.PrimaryKPI()}
	if m.KPIs != nil {
		kpis = append(kpis, "awareness")
	}
	switch objective {
	case 0:
		req.Objective = engine.Objective{Type: engine.ObjMaxKPI, KPI: kpis[rng.Intn(len(kpis))]}
	case 1:
		w := map[string]float64{}
		for _, k := range kpis {
			w[k] = *f(0.1, 2)
		}
		req.Objective = engine.Objective{Type: engine.ObjWeighted, Weights: w}
	case 2:
		req.Objective = engine.Objective{Type: engine.ObjMinSpend, Target: map[string]float64{m.PrimaryKPI(): m.Baseline + *f(1e3, 3e5)}}
	case 3:
		req.Objective = engine.Objective{Type: engine.ObjTargetROI, ROI: f(0.2, 3)}
	case 4:
		req.Objective = engine.Objective{Type: engine.ObjTargetMROI, MROI: f(0.1, 2)}
	}
	if rng.Intn(5) == 0 && len(kpis) > 1 && req.Objective.Type != engine.ObjMinSpend {
		req.Objective.Floors = map[string]float64{"awareness": *f(0, 1e3)}
	}
	return req
}

// schemaFor maps each engine type that appears in JSON to the schema object describing
// it. A type listed with several locations is described by the union of their
// properties (the curve schemas, one per curve type).
var schemaFor = map[reflect.Type][]string{
	reflect.TypeFor[engine.Model]():         {"model.schema.json#/$defs/model"},
	reflect.TypeFor[engine.KPIModel]():      {"model.schema.json#/$defs/kpi"},
	reflect.TypeFor[engine.Channel]():       {"model.schema.json#/$defs/channel"},
	reflect.TypeFor[engine.Adstock]():       {"model.schema.json#/$defs/adstock"},
	reflect.TypeFor[engine.Curve]():         {"model.schema.json#/$defs/linear", "model.schema.json#/$defs/hill", "model.schema.json#/$defs/saturation", "model.schema.json#/$defs/exponential", "model.schema.json#/$defs/power", "model.schema.json#/$defs/log", "model.schema.json#/$defs/logistic", "model.schema.json#/$defs/piecewise"},
	reflect.TypeFor[engine.Request]():       {"request.schema.json"},
	reflect.TypeFor[engine.Constraints]():   {"request.schema.json#/$defs/constraints"},
	reflect.TypeFor[engine.Total]():         {"request.schema.json#/$defs/constraints/properties/total"},
	reflect.TypeFor[engine.ChannelBounds](): {"request.schema.json#/$defs/channelBounds"},
	reflect.TypeFor[engine.Group]():         {"request.schema.json#/$defs/group"},
	reflect.TypeFor[engine.Ratio]():         {"request.schema.json#/$defs/ratio"},
	reflect.TypeFor[engine.Objective]():     {"request.schema.json#/$defs/objective"},
	reflect.TypeFor[engine.Options]():       {"request.schema.json#/$defs/options"},
	reflect.TypeFor[engine.Result]():        {"result.schema.json#/$defs/result"},
	reflect.TypeFor[engine.Evaluation]():    {"result.schema.json#/$defs/evaluation"},
	reflect.TypeFor[engine.ChannelResult](): {"result.schema.json#/$defs/channelResult"},
	reflect.TypeFor[engine.Certificate]():   {"result.schema.json#/$defs/certificate"},
	reflect.TypeFor[engine.EngineInfo]():    {"result.schema.json#/$defs/engine"},
	reflect.TypeFor[engine.FieldError]():    {"result.schema.json#/$defs/fieldError"},
}

// jsonFields returns a struct's JSON field names, and whether each is always written.
func jsonFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" || name == "-" {
			continue
		}
		out[name] = !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero")
	}
	return out
}

// TestSchemasMatchGoTypes checks that every JSON field of the engine's types is a
// property of its schema and the other way round, that every field a schema requires is
// one Go always writes, and that every struct reachable from Model, Request and Result
// has a schema.
func TestSchemasMatchGoTypes(t *testing.T) {
	c := converter{set: mustCompile()}
	seen := map[reflect.Type]bool{}
	var visit func(reflect.Type)
	visit = func(typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map || typ.Kind() == reflect.Array {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] {
			return
		}
		seen[typ] = true
		locs, ok := schemaFor[typ]
		if !ok {
			t.Errorf("engine.%s appears in JSON but has no schema in schemaFor", typ.Name())
			return
		}
		props := map[string]bool{}
		for _, loc := range locs {
			sch, ok := c.schemaAt(BaseURL + loc).(map[string]any)
			if !ok {
				t.Errorf("engine.%s: no schema at %s", typ.Name(), loc)
				continue
			}
			p, _ := sch["properties"].(map[string]any)
			for k := range p {
				props[k] = true
			}
			if typ == reflect.TypeFor[engine.Total]() {
				continue
			}
			if sch["additionalProperties"] != false {
				t.Errorf("%s: must say additionalProperties false, as the strict decoder does", loc)
			}
			always := jsonFields(typ)
			req, _ := sch["required"].([]any)
			for _, r := range req {
				if written, ok := always[r.(string)]; !ok || (!written && typ.PkgPath() != "" && isOutput(typ)) {
					t.Errorf("%s requires %q, which engine.%s does not always write", loc, r, typ.Name())
				}
			}
		}
		if typ == reflect.TypeFor[engine.Total]() {
			if !props["min"] || !props["max"] || len(props) != 2 {
				t.Errorf("constraints.total range: properties %v, want min and max", props)
			}
			return
		}
		goFields := jsonFields(typ)
		for name := range goFields {
			if !props[name] {
				t.Errorf("engine.%s has JSON field %q that %v does not describe", typ.Name(), name, locs)
			}
		}
		for name := range props {
			if _, ok := goFields[name]; !ok {
				t.Errorf("%v describes %q, which engine.%s does not have", locs, name, typ.Name())
			}
		}
		for i := 0; i < typ.NumField(); i++ {
			visit(typ.Field(i).Type)
		}
	}
	visit(reflect.TypeFor[engine.Model]())
	visit(reflect.TypeFor[engine.Request]())
	visit(reflect.TypeFor[engine.Result]())
	for typ := range schemaFor {
		if !seen[typ] {
			t.Errorf("schemaFor lists engine.%s, which no longer appears in JSON", typ.Name())
		}
	}
}

// isOutput reports whether typ is written by the engine (results), where a required
// field must be one Go always writes. Inputs may require fields Go omits when empty.
func isOutput(typ reflect.Type) bool {
	for _, loc := range schemaFor[typ] {
		if strings.HasPrefix(loc, "result.schema.json") {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------------------
// Bad input names the field, as the engine does

func TestBadModels(t *testing.T) {
	base := `{"model_id": "m", "baseline": 10, "channels": {"tv": {"curve": %s}, "radio": {"curve": {"type": "linear", "beta": 1}}}%s}`
	cases := []struct {
		curve, extra string
		field        string
		message      string // a part of the schema's message
	}{
		{`{"type": "linear", "beta": 1, "alpha": 2}`, ``, "channels.tv.curve.alpha", "not a parameter of a linear curve"},
		{`{"type": "hill", "beta": 1, "alpha": 2}`, ``, "channels.tv.curve.kappa", "missing (a hill curve takes beta, alpha, kappa)"},
		{`{"type": "hill", "beta": 1, "alpha": 2, "kapa": 3}`, ``, "channels.tv.curve.kapa", "not a parameter"},
		{`{"type": "saturation", "beta": 1, "kappa": 0}`, ``, "channels.tv.curve.kappa", "at least 1e-06"},
		{`{"type": "linear", "beta": -1}`, ``, "channels.tv.curve.beta", "at least 0"},
		{`{"type": "linear", "beta": "1"}`, ``, "channels.tv.curve.beta", "must be a number, got a string"},
		{`{"type": "linear", "beta": 1e400}`, ``, "channels.tv.curve.beta", "out of range"},
		{`{"type": "cubic", "beta": 1}`, ``, "channels.tv.curve.type", `got "cubic"`},
		{`{"beta": 1}`, ``, "channels.tv.curve.type", "missing"},
		{`{"type": "power", "beta": 1, "alpha": 5}`, ``, "channels.tv.curve.alpha", "at most 4"},
		{`{"type": "hill", "beta": 1, "alpha": 101, "kappa": 5}`, ``, "channels.tv.curve.alpha", "at most 100"},
		{`{"type": "logistic", "beta": 1, "k": 0, "x0": 5}`, ``, "channels.tv.curve.k", "greater than 0"},
		{`{"type": "piecewise", "points": [[1, 2], [3]]}`, ``, "channels.tv.curve.points[1]", "a point is [x, y]"},
		{`{"type": "piecewise", "points": []}`, ``, "channels.tv.curve.points", "at least one"},
		{`{"type": "linear", "beta": 1}, "adstock": {"type": "geometric", "decay": 1}`, ``, "channels.tv.adstock.decay", "less than 1"},
		{`{"type": "linear", "beta": 1}, "adstock": {"type": "weibull", "decay": 0.5}`, ``, "channels.tv.adstock.type", `must be "geometric"`},
		{`{"type": "linear", "beta": 1}, "adstock": {"type": "geometric"}`, ``, "channels.tv.adstock.decay", "missing"},
		{`{"type": "linear", "beta": 1}`, `, "baseline2": 1`, "baseline2", "unknown field"},
		{`{"type": "linear", "beta": 1}`, `, "kpis": {"awareness": {"channels": {"tv": {"curve": {"type": "log", "beta": 1}}}}}`, "kpis.awareness.channels.tv.curve.kappa", "missing"},
	}
	for _, tc := range cases {
		raw := []byte(fmt.Sprintf(base, tc.curve, tc.extra))
		err := ValidateData(typeModel, raw)
		if err == nil {
			t.Errorf("%s: accepted", raw)
			continue
		}
		fes := fieldErrors(t, err)
		if !hasError(fes, tc.field, tc.message) {
			t.Errorf("%s: errors %v, want one at %s containing %q", raw, fes, tc.field, tc.message)
		}
		// the engine rejects it too, naming the same field (or the point containing it)
		_, eerr := engine.DecodeModel(raw)
		if eerr == nil {
			t.Errorf("%s: the schema rejects it but the engine accepts it", raw)
		} else if !relatedField(fieldErrors(t, eerr), tc.field) {
			t.Errorf("%s: engine errors %v do not name %s", raw, eerr, tc.field)
		}
		// and as an event the path starts at the envelope
		fes = fieldErrors(t, ValidateEvent(envelope(typeModel, "m", raw)))
		if !hasError(fes, "data."+tc.field, tc.message) {
			t.Errorf("%s as an event: errors %v, want one at data.%s", raw, fes, tc.field)
		}
	}
	for _, raw := range []string{`{"channels": {"tv": {"curve": {"type": "linear", "beta": 1}}}}`, `{"model_id": "", "channels": {"tv": {"curve": {"type": "linear", "beta": 1}}}}`} {
		fes := fieldErrors(t, ValidateData(typeModel, []byte(raw)))
		if !hasError(fes, "model_id", "") {
			t.Errorf("%s: errors %v, want one at model_id (a published model names itself)", raw, fes)
		}
	}
	fes := fieldErrors(t, ValidateData(typeModel, []byte(`{"model_id": "m", "channels": {}}`)))
	if !hasError(fes, "channels", "at least one channel") {
		t.Errorf("no channels: %v", fes)
	}
	empty := []byte(`{"model_id": "m", "channels": {"": {"curve": {"type": "linear", "beta": 1}}, "tv": {"curve": {"type": "linear", "beta": 1}}}, "kpis": {"": {}}}`)
	fes = fieldErrors(t, ValidateData(typeModel, empty))
	if !hasError(fes, "channels", "channel names must not be empty") || !hasError(fes, "kpis", "KPI names must not be empty") || len(fes) != 2 {
		t.Errorf("empty names: %v", fes)
	}
	if _, err := engine.DecodeModel(empty); err == nil || !relatedField(fieldErrors(t, err), "channels") {
		t.Errorf("engine on empty names: %v", err)
	}
}

func TestBadRequests(t *testing.T) {
	m, err := engine.DecodeModel(read(t, "../examples/acme-model.json"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		req     string
		field   string
		message string
	}{
		{`{"budget": {"tv": 1}, "constraints": {"total": -1}}`, "constraints.total", "at least 0"},
		{`{"budget": {"tv": 1}, "constraints": {"total": "lots"}}`, "constraints.total", "must be a number or an object"},
		{`{"budget": {"tv": 1}, "constraints": {"total": {"min": -5}}}`, "constraints.total.min", "at least 0"},
		{`{"budget": {"tv": 1}, "constraints": {"total": {"min": 1, "most": 2}}}`, "constraints.total.most", "unknown field"},
		{`{"budget": {"tv": -1}, "constraints": {"total": 5}}`, "budget.tv", "at least 0"},
		{`{"budget": {"tv": 1}, "constraints": {"total": 5, "channels": {"tv": {"min": -1}}}}`, "constraints.channels.tv.min", "at least 0"},
		{`{"budget": {"tv": 1}, "constraints": {"total": 5, "channels": {"tv": {"fixed": "yes"}}}}`, "constraints.channels.tv.fixed", "must be a boolean"},
		{`{"budget": {"tv": 1}, "constraints": {"total": 5, "max_share": 0}}`, "constraints.max_share", "greater than 0"},
		{`{"budget": {"tv": 1}, "constraints": {"total": 5, "max_change": -0.5}}`, "constraints.max_change", "at least 0"},
		{`{"budget": {"tv": 1}, "constraints": {"total": 5, "groups": [{"channels": ["tv", "radio"]}]}}`, "constraints.groups[0]", "at least one of min, max, min_share, max_share"},
		{`{"budget": {"tv": 1}, "constraints": {"total": 5, "groups": [{"channels": [], "min": 1}]}}`, "constraints.groups[0].channels", "at least one channel"},
		{`{"budget": {"tv": 1}, "constraints": {"total": 5, "groups": [{"channels": ["tv", "radio", "tv"], "min": 1}]}}`, "constraints.groups[0].channels[2]", "listed twice"},
		{`{"budget": {"tv": 1}, "constraints": {"total": 5, "groups": [{"channels": ["tv"], "min": 1}, {"channels": ["tv"], "min_share": 1.5}]}}`, "constraints.groups[1].min_share", "at most 1"},
		{`{"budget": {"tv": 1}, "constraints": {"total": 5, "ratios": [{"numerator": "tv", "denominator": "radio"}]}}`, "constraints.ratios[0]", "min or max"},
		{`{"budget": {"tv": 1}, "constraints": {"total": 5}, "objective": {"type": "max_revenue"}}`, "objective.type", `got "max_revenue"`},
		{`{"budget": {"tv": 1}, "constraints": {"total": 5}, "objective": {"type": "weighted"}}`, "objective.weights", "missing"},
		{`{"budget": {"tv": 1}, "constraints": {"total": 5}, "objective": {"type": "weighted", "weights": {"revenue": 0}}}`, "objective.weights", "positive"},
		{`{"budget": {"tv": 1}, "constraints": {"total": 5}, "objective": {"type": "weighted", "kpi": "revenue", "weights": {"revenue": 1}}}`, "objective.kpi", "not used by objective weighted"},
		{`{"budget": {"tv": 1}, "constraints": {"total": 5}, "objective": {"weights": {"revenue": 1}}}`, "objective.weights", "only used by objective weighted"},
		{`{"budget": {"tv": 1}, "objective": {"type": "min_spend"}}`, "objective.target", "min_spend needs a target"},
		{`{"budget": {"tv": 1}, "objective": {"type": "target_roi"}}`, "objective.roi", "positive roi"},
		{`{"budget": {"tv": 1}, "objective": {"type": "target_roi", "roi": 0}}`, "objective.roi", "greater than 0"},
		{`{"budget": {"tv": 1}, "objective": {"type": "target_mroi", "mroi": -1}}`, "objective.mroi", "greater than 0"},
		{`{"budget": {"tv": 1}, "constraints": {"total": 5}, "objective": {"roi": 2}}`, "objective.roi", "only used by objective target_roi"},
		{`{"budget": {"tv": 1}, "constraints": {"total": 5}, "objective": {"floors": {"awareness": 1e16}}}`, "objective.floors.awareness", "at most 1e+15"},
		{`{"budget": {"tv": 1}, "constraints": {"total": 5}, "options": {"gap": 1}}`, "options.gap", "less than 1"},
		{`{"budget": {"tv": 1}, "constraints": {"total": 5}, "options": {"max_nodes": -1}}`, "options.max_nodes", "at least 0"},
		{`{"budget": {"tv": 1}, "constraints": {"total": 5}, "options": {"max_nodes": 1.5}}`, "options.max_nodes", "integer"},
		{`{"budget": {"tv": 1}, "constraints": {"total": 5}, "options": {"max_nodes": 1e3}}`, "options.max_nodes", "must be an integer, got 1e3"},
		{`{"budget": {"tv": 1}, "constraint": {"total": 5}}`, "constraint", "unknown field"},
		{`{"budget": {"tv": 1}, "Budget": {"tv": 1}}`, "Budget", "unknown field"},
		{`{"budget": {"tv": 1}, "constraints": {"total": 5}, "model": {"model_id": "x", "channels": {"tv": {"curve": {"type": "log", "beta": 1}}}}}`, "model.channels.tv.curve.kappa", "missing"},
	}
	for _, tc := range cases {
		raw := []byte(tc.req)
		err := ValidateData(typeRequest, raw)
		if err == nil {
			t.Errorf("%s: accepted", raw)
			continue
		}
		fes := fieldErrors(t, err)
		if !hasError(fes, tc.field, tc.message) {
			t.Errorf("%s: errors %v, want one at %s containing %q", raw, fes, tc.field, tc.message)
		}
		// the engine rejects it too (decoding or solving), naming the same field
		var efes engine.FieldErrors
		req, derr := engine.DecodeRequest(raw)
		if derr != nil {
			efes = fieldErrors(t, derr)
		} else {
			model := &m
			if req.Model != nil {
				model = nil
			}
			efes = engine.Solve(model, &req).Errors
		}
		if !relatedField(efes, tc.field) {
			t.Errorf("%s: engine errors %v do not name %s", raw, efes, tc.field)
		}
	}
}

func TestBadEvents(t *testing.T) {
	good := `{"specversion":"1.0","id":"e1","source":"/atlas/api","type":"atlas.model.retired.v1","time":"2024-05-01T12:00:00Z","subject":"m","datacontenttype":"application/json","data":{"model_id":"m"}}`
	if err := ValidateEvent([]byte(good)); err != nil {
		t.Fatalf("good event: %v", err)
	}
	var base map[string]any
	if err := json.Unmarshal([]byte(good), &base); err != nil {
		t.Fatal(err)
	}
	with := func(key string, v any) []byte {
		m := map[string]any{}
		for k, x := range base {
			m[k] = x
		}
		if v == nil {
			delete(m, key)
		} else {
			m[key] = v
		}
		b, _ := json.Marshal(m)
		return b
	}
	cases := []struct {
		raw     []byte
		field   string
		message string
	}{
		{with("specversion", "0.3"), "specversion", `must be "1.0"`},
		{with("specversion", nil), "specversion", "missing"},
		{with("id", nil), "id", "missing"},
		{with("id", ""), "id", "must not be empty"},
		{with("source", nil), "source", "missing"},
		{with("source", "http://a b"), "source", "URI reference"},
		{with("type", "atlas.model.deleted.v1"), "type", `got "atlas.model.deleted.v1"`},
		{with("type", 7), "type", "got 7"},
		{with("time", "yesterday"), "time", "RFC 3339"},
		{with("time", "2024-05-01T12:00:60Z"), "time", "RFC 3339"},
		{with("time", "2024-05-01t12:00:00z"), "time", "RFC 3339"},
		{with("subject", nil), "subject", "missing"},
		{with("datacontenttype", "text/plain"), "datacontenttype", `must be "application/json"`},
		{with("data", nil), "data", "missing"},
		{with("data", "m"), "data", "must be an object"},
		{with("data", map[string]any{"model_id": ""}), "data.model_id", "must not be empty"},
		{with("data", map[string]any{"model_id": "m", "reason": "old"}), "data.reason", "unknown field"},
		{with("data_base64", "e30="), "data_base64", "not a CloudEvents attribute"},
		{with("Type", "x"), "Type", "not a CloudEvents attribute"},
		{with("traceparent", map[string]any{"a": 1}), "traceparent", "extension attribute"},
		{[]byte(`{"specversion":"1.0"`), "", "truncated"},
		{[]byte(`not json`), "", "invalid JSON"},
		{[]byte(good + ` {}`), "", "after the JSON value"},
		{[]byte(`[]`), "", "must be an object"},
	}
	for _, tc := range cases {
		err := ValidateEvent(tc.raw)
		if err == nil {
			t.Errorf("%s: accepted", tc.raw)
			continue
		}
		if fes := fieldErrors(t, err); !hasError(fes, tc.field, tc.message) {
			t.Errorf("%s: errors %v, want one at %q containing %q", tc.raw, fes, tc.field, tc.message)
		}
	}
	// extensions with scalar values are fine
	if err := ValidateEvent(with("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")); err != nil {
		t.Errorf("a traceparent extension: %v", err)
	}
	if err := ValidateEvent(with("time", nil)); err != nil {
		t.Errorf("time is optional in CloudEvents: %v", err)
	}
	// completed data must be a result that names its request; invalid ones are rejections
	res := `{"request_id":"r","status":"invalid","total_spend":0,"errors":[{"field":"budget.tv","error":"unknown channel"}],"engine":{"version":"v","iterations":0,"elapsed_us":0}}`
	fes := fieldErrors(t, ValidateEvent(envelope(typeCompleted, "r", []byte(res))))
	if !hasError(fes, "data.status", "invalid one is rejected") {
		t.Errorf("completed with status invalid: %v", fes)
	}
	if err := ValidateResult([]byte(res)); err != nil {
		t.Errorf("an invalid result is still a result: %v", err)
	}
}

func TestErrorsDeterministicAndCapped(t *testing.T) {
	var sb strings.Builder
	sb.WriteString(`{"model_id": "m", "channels": {`)
	for i := 0; i < 80; i++ {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `"c%02d": {"curve": {"type": "linear", "beta": -1, "alpha": 1}}`, i)
	}
	sb.WriteString(`}}`)
	raw := []byte(sb.String())
	first := ValidateData(typeModel, raw).Error()
	for i := 0; i < 5; i++ {
		if again := ValidateData(typeModel, raw).Error(); again != first {
			t.Fatalf("errors differ between runs:\n%s\n%s", first, again)
		}
	}
	fes := fieldErrors(t, ValidateData(typeModel, raw))
	if len(fes) != maxErrors+1 {
		t.Fatalf("%d errors, want %d and a summary", len(fes), maxErrors)
	}
	last := fes[len(fes)-1]
	if last.Field != "channels" || !strings.Contains(last.Message, "110 more errors") {
		t.Errorf("summary error = %+v", last)
	}
	if !slices.IsSortedFunc(fes[:maxErrors], func(a, b engine.FieldError) int { return strings.Compare(a.Field, b.Field) }) {
		t.Error("errors are not sorted by field")
	}
}

// A number with a huge exponent must not stall the validator (it compares exact
// rationals) nor crash it.
func TestHugeNumbers(t *testing.T) {
	for _, num := range []string{"1e1000000", "1e999999999", "-1e-999999999", "1e-400", "0." + strings.Repeat("0", 5000) + "1"} {
		raw := []byte(`{"model_id": "m", "baseline": ` + num + `, "channels": {"tv": {"curve": {"type": "linear", "beta": 1}}}}`)
		err := ValidateData(typeModel, raw)
		_, eerr := engine.DecodeModel(raw)
		if (err == nil) != (eerr == nil) {
			t.Errorf("baseline %.20s: schema says %v, engine says %v", num, err, eerr)
		}
	}
}

// What JSON readers disagree on is rejected: a key twice in one object (Go would merge
// the two curves below into a valid hill curve, other readers keep one or the other),
// and absurd nesting.
func TestAmbiguousJSON(t *testing.T) {
	dup := []byte(`{"model_id": "m", "channels": {"tv": {"curve": {"type": "hill", "beta": 1, "alpha": 2, "kappa": 3}, "curve": {"type": "hill"}}}}`)
	fes := fieldErrors(t, ValidateData(typeModel, dup))
	if !hasError(fes, "channels.tv.curve", "appears twice") {
		t.Errorf("duplicate key: %v", fes)
	}
	fes = fieldErrors(t, ValidateEvent([]byte(`{"specversion":"1.0","id":"a","id":"b","source":"/s","type":"atlas.model.retired.v1","subject":"m","data":{"model_id":"m"}}`)))
	if !hasError(fes, "id", "appears twice") {
		t.Errorf("duplicate attribute: %v", fes)
	}
	deep := []byte(`{"model_id": "m", "channels": {"tv": {"curve": {"type": "piecewise", "points": ` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}}}}`)
	fes = fieldErrors(t, ValidateData(typeModel, deep))
	if !hasError(fes, "", "nested more than") && !strings.Contains(fes.Error(), "nested more than") {
		t.Errorf("deep nesting: %v", fes)
	}
}

func hasError(fes engine.FieldErrors, field, message string) bool {
	for _, fe := range fes {
		if fe.Field == field && strings.Contains(fe.Message, message) {
			return true
		}
	}
	return false
}

// relatedField reports whether the engine names field, a field inside it or the field it
// is inside of (the engine names a piecewise point, the schema its x).
func relatedField(fes engine.FieldErrors, field string) bool {
	for _, fe := range fes {
		a, b := fe.Field, field
		if len(a) > len(b) {
			a, b = b, a
		}
		if a == b || strings.HasPrefix(b, a+".") || strings.HasPrefix(b, a+"[") {
			return true
		}
	}
	return false
}

// Validation is safe from many goroutines (the processor validates in parallel).
func TestConcurrentValidation(t *testing.T) {
	model := read(t, "../examples/acme-model.json")
	good := envelope(typeModel, "acme-mmm", model)
	bad := envelope(typeModel, "acme-mmm", bytes.Replace(model, []byte(`"alpha": 2.2`), []byte(`"alpha": -2.2`), 1))
	want := ValidateEvent(bad).Error()
	done := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 50; i++ {
				if err := ValidateEvent(good); err != nil {
					done <- err
					return
				}
				if err := ValidateEvent(bad); err == nil || err.Error() != want {
					done <- fmt.Errorf("bad event: %v", err)
					return
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
