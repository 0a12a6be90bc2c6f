package schemas

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/atlas-mmm/atlas/engine"
)

// engineOnly are the rules the schemas cannot express (see model.schema.json's
// description): the only reasons the engine may reject a model the schema accepts.
var engineOnly = []string{
	"x must be increasing",                   // piecewise points in order
	"y must not decrease",                    // piecewise points in order
	"the curve is zero for all practical",    // logistic |k·x0| > 700
	"a secondary KPI needs a name different", // kpis.<primary>
	"not a channel of the model",             // kpis.X.channels.Y
}

func engineOnlyError(fe engine.FieldError) bool {
	for _, s := range engineOnly {
		if strings.Contains(fe.Message, s) {
			return true
		}
	}
	return false
}

func addSeeds(f *testing.F) {
	model, err := os.ReadFile("../examples/acme-model.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(envelope(typeModel, "acme-mmm", model))
	if b, err := os.ReadFile("testdata/contract/model.json"); err == nil {
		f.Add(envelope(typeModel, "acme-mmm", b))
	}
	if b, err := os.ReadFile("testdata/contract/result.json"); err == nil {
		f.Add(envelope(typeCompleted, "…", bytes.Replace(b, []byte(`"sha256:…"`), []byte(`"sha256:`+strings.Repeat("0f", 32)+`"`), 1)))
	}
	if b, err := os.ReadFile("../examples/quickstart.json"); err == nil {
		f.Add(envelope(typeRequest, "quickstart", b))
	}
	if b, err := os.ReadFile("../examples/acme-requests.ndjson"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f.Add(envelope(typeRequest, "r", bytes.Clone(sc.Bytes())))
		}
	}
	f.Add(envelope(typeRetired, "acme-mmm", []byte(`{"model_id":"acme-mmm"}`)))
	f.Add(envelope(typeRejected, "r1", []byte(`{"request_id":"r1","errors":[{"field":"constraints.total","error":"must be a non-negative amount"}]}`)))
	f.Add([]byte(`{"specversion":"1.0","id":"x","source":"/s","type":"atlas.model.published.v1","subject":"m","data":{"model_id":"m","channels":{"tv":{"curve":{"type":"piecewise","points":[[1e400,2]]}}}},"ext":true}`))
	f.Add([]byte(`{"data_base64":"e30=","time":"2024-05-01T12:00:60Z"}`))
	f.Add([]byte(``))
	f.Add([]byte(`[1e999999999]`))
}

// FuzzValidateEvent: validation never panics, always answers with sorted field errors,
// answers the same twice, and whatever it accepts the Go side can read: the engine's
// strict decoder takes the data (rejecting a model only for rules JSON Schema cannot
// express) and results decode into engine.Result.
func FuzzValidateEvent(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		err := ValidateEvent(raw)
		if err != nil {
			fes := fieldErrors(t, err)
			if len(fes) == 0 || len(fes) > maxErrors+1 {
				t.Fatalf("%d errors", len(fes))
			}
			for _, fe := range fes {
				if fe.Message == "" {
					t.Fatalf("error without a message at %q", fe.Field)
				}
			}
			if !slices.IsSortedFunc(fes, func(a, b engine.FieldError) int { return strings.Compare(a.Field, b.Field) }) {
				t.Fatalf("errors not sorted: %v", fes)
			}
			if again := ValidateEvent(raw); again == nil || again.Error() != err.Error() {
				t.Fatalf("validation is not deterministic:\n%v\n%v", err, again)
			}
			return
		}
		var ev struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatalf("valid event does not unmarshal: %v", err)
		}
		if err := ValidateData(ev.Type, ev.Data); err != nil {
			t.Fatalf("the event is valid but its data alone is not: %v", err)
		}
		switch ev.Type {
		case typeModel:
			if _, err := engine.DecodeModel(ev.Data); err != nil {
				for _, fe := range fieldErrors(t, err) {
					if !engineOnlyError(fe) {
						t.Fatalf("model.schema.json accepts what the engine rejects: %v\n%s", fe, ev.Data)
					}
				}
			}
		case typeRequest:
			if _, err := engine.DecodeRequest(ev.Data); err != nil {
				for _, fe := range fieldErrors(t, err) {
					if !strings.HasPrefix(fe.Field, "model.") || !engineOnlyError(fe) {
						t.Fatalf("request.schema.json accepts what the engine rejects: %v\n%s", fe, ev.Data)
					}
				}
			}
		case typeCompleted:
			var res engine.Result
			dec := json.NewDecoder(bytes.NewReader(ev.Data))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&res); err != nil {
				t.Fatalf("result.schema.json accepts what engine.Result cannot hold: %v\n%s", err, ev.Data)
			}
		}
	})
}

// FuzzModelAgainstEngine compares model.schema.json with the engine's own decoder and
// validator on the same bytes, both ways. What the schema accepts the engine accepts,
// but for the rules JSON Schema cannot express (engineOnly); what the engine accepts the
// schema accepts, but for the schema's deliberate extra strictness: a published model
// names itself (model_id), null is not a stand-in for an absent value, and a key may not
// appear twice in one object.
func FuzzModelAgainstEngine(f *testing.F) {
	for _, path := range []string{"../examples/acme-model.json", "testdata/contract/model.json"} {
		if b, err := os.ReadFile(path); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"model_id":"m","channels":{"a":{"curve":{"type":"piecewise","points":[[1,1],[2,3]]}},"b":{"curve":{"type":"power","beta":1,"alpha":4}}}}`))
	f.Add([]byte(`{"model_id":"m","kpi":"k","channels":{"a":{"curve":{"type":"logistic","beta":1,"k":1,"x0":700}}},"kpis":{"x":{"channels":null}}}`))
	f.Add([]byte(`{"model_id":"m","channels":{"a":{"curve":{"type":"exponential","beta":0,"kappa":1e-6},"adstock":{"type":"geometric","decay":0}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		schemaErr := ValidateData(typeModel, data)
		_, engineErr := engine.DecodeModel(data)
		if schemaErr == nil && engineErr != nil {
			for _, fe := range fieldErrors(t, engineErr) {
				if !engineOnlyError(fe) {
					t.Fatalf("the schema accepts, the engine rejects: %v\n%s", fe, data)
				}
			}
		}
		if schemaErr != nil && engineErr == nil {
			for _, fe := range fieldErrors(t, schemaErr) {
				switch {
				case fe.Field == "model_id":
				case fe.Message == "appears twice in one object":
				case strings.HasSuffix(fe.Message, "got null"):
				default:
					t.Fatalf("the engine accepts, the schema rejects: %v\n%s", fe, data)
				}
			}
		}
	})
}
