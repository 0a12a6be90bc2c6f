package event_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atlas-mmm/atlas/engine"
	"github.com/atlas-mmm/atlas/schemas"
	"github.com/atlas-mmm/atlas/streams/event"
)

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)

func read(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func acmeModel(t testing.TB) engine.Model {
	t.Helper()
	m, err := engine.DecodeModel(read(t, "../../examples/acme-model.json"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustNew(t testing.TB, typ, subject string, data any, id string) event.Envelope {
	t.Helper()
	e, err := event.New(typ, "/atlas/test", subject, data, id, t0)
	if err != nil {
		t.Fatalf("New(%s): %v", typ, err)
	}
	return e
}

func decodeErr(t testing.TB, err error) *event.DecodeError {
	t.Helper()
	var de *event.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *DecodeError", err, err)
	}
	return de
}

func hasField(fes engine.FieldErrors, field string) bool {
	for _, fe := range fes {
		if fe.Field == field {
			return true
		}
	}
	return false
}

func TestTypesMatchSchemas(t *testing.T) {
	got := slices.Clone(event.Types())
	slices.Sort(got)
	if want := schemas.EventTypes(); !slices.Equal(got, want) {
		t.Fatalf("event types %v, schemas know %v", got, want)
	}
}

// Every type round-trips: New → Encode → Decode gives the same envelope, and encoding
// is byte-for-byte repeatable.
func TestRoundTrip(t *testing.T) {
	m := acmeModel(t)
	req, err := engine.DecodeRequest([]byte(`{"request_id": "acme-300k", "budget": {"tv": 100000, "digital": 100000}, "constraints": {"total": 300000}}`))
	if err != nil {
		t.Fatal(err)
	}
	res := engine.Solve(&m, &req)
	res.ModelVersion = 1
	if res.Status != engine.StatusOptimal {
		t.Fatalf("status %s", res.Status)
	}
	cases := []struct {
		typ, subject string
		data         any
		id, key      string
	}{
		{event.ModelPublished, "acme-mmm", m, "evt-m1", "acme-mmm"},
		{event.ModelPublished, "", read(t, "../../examples/acme-model.json"), "evt-m2", "acme-mmm"},
		{event.ModelRetired, "", event.Retirement{ModelID: "acme-mmm"}, "evt-r1", "acme-mmm"},
		{event.OptimizationRequested, "acme-300k", req, "evt-q1", "acme-300k"},
		{event.OptimizationRequested, "", json.RawMessage(`{"constraints": {"total": 5}}`), "evt-q2", "evt-q2"},
		{event.OptimizationCompleted, "", res, event.ResultID("acme-300k", event.OptimizationCompleted), "acme-300k"},
		{event.OptimizationRejected, "bad-1", event.Rejection{RequestID: "bad-1", Errors: engine.FieldErrors{{Field: "budget.print", Message: "unknown channel \"print\" <x>"}}}, event.ResultID("bad-1", event.OptimizationRejected), "bad-1"},
	}
	for _, tc := range cases {
		e := mustNew(t, tc.typ, tc.subject, tc.data, tc.id)
		if e.Subject != tc.key || e.Key() != tc.key || event.Key(e) != tc.key {
			t.Errorf("%s: subject %q, key %q, want %q", tc.typ, e.Subject, e.Key(), tc.key)
		}
		raw, err := event.Encode(e)
		if err != nil {
			t.Fatalf("%s: Encode: %v", tc.typ, err)
		}
		again, _ := event.Encode(e)
		if !bytes.Equal(raw, again) {
			t.Errorf("%s: Encode is not repeatable", tc.typ)
		}
		// json.Marshal gives the same event, only with <, > and & escaped in strings
		viaJSON, err := json.Marshal(e)
		if err != nil {
			t.Errorf("%s: json.Marshal: %v", tc.typ, err)
		} else if fromJSON, err := event.Decode(viaJSON); err != nil || !equalJSON(fromJSON.Data, e.Data) {
			t.Errorf("%s: json.Marshal output does not decode to the event: %v\n%s", tc.typ, err, viaJSON)
		}
		got, err := event.Decode(raw)
		if err != nil {
			t.Fatalf("%s: Decode: %v\n%s", tc.typ, err, raw)
		}
		if !equal(got, e) {
			t.Errorf("%s: round trip changed the envelope:\n%+v\n%+v", tc.typ, got, e)
		}
		if err := schemas.ValidateEvent(raw); err != nil {
			t.Errorf("%s: %v", tc.typ, err)
		}
		if bytes.Contains(raw, []byte(`\u003c`)) {
			t.Errorf("%s: HTML-escaped output: %s", tc.typ, raw)
		}
	}
}

func equalJSON(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

func equal(a, b event.Envelope) bool {
	return a.SpecVersion == b.SpecVersion && a.ID == b.ID && a.Source == b.Source && a.Type == b.Type &&
		a.Time.Equal(b.Time) && a.Time.Location() == b.Time.Location() && a.Subject == b.Subject &&
		a.DataContentType == b.DataContentType && bytes.Equal(a.Data, b.Data)
}

func TestEncodingDetails(t *testing.T) {
	paris := time.FixedZone("CEST", 2*3600)
	e, err := event.New(event.ModelRetired, "/atlas/api", "m", event.Retirement{ModelID: "m"}, "evt-1", t0.In(paris))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := event.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"specversion":"1.0","id":"evt-1","source":"/atlas/api","type":"atlas.model.retired.v1","time":"2024-05-01T12:00:00.123456789Z","subject":"m","datacontenttype":"application/json","data":{"model_id":"m"}}`
	if string(raw) != want {
		t.Errorf("Encode:\n got %s\nwant %s", raw, want)
	}
	// a zero time is left out (time is optional in CloudEvents)
	e, err = event.New(event.ModelRetired, "/atlas/api", "m", []byte("{ \"model_id\" : \"m\" }"), "evt-1", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = event.Encode(e)
	if bytes.Contains(raw, []byte(`"time"`)) || !bytes.Contains(raw, []byte(`"data":{"model_id":"m"}`)) {
		t.Errorf("Encode: %s", raw)
	}
	d, err := event.Decode(raw)
	if err != nil || !d.Time.IsZero() {
		t.Errorf("Decode: %v, time %v", err, d.Time)
	}
	// incoming times in other zones become UTC; extensions are accepted and dropped
	in := `{"specversion":"1.0","id":"e","source":"//acme/mmm","type":"atlas.model.retired.v1","time":"2024-05-01T14:00:00+02:00","subject":"m","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","data":{ "model_id": "m" }}`
	d, err = event.Decode([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if !d.Time.Equal(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)) || d.Time.Location() != time.UTC {
		t.Errorf("time %v", d.Time)
	}
	if string(d.Data) != `{"model_id":"m"}` {
		t.Errorf("data %s", d.Data)
	}
}

func TestNewRejectsInvalidEvents(t *testing.T) {
	cases := []struct {
		typ, subject string
		data         any
		field        string
	}{
		{"atlas.model.deleted.v1", "m", event.Retirement{ModelID: "m"}, "type"},
		{event.ModelRetired, "m", event.Retirement{}, "data.model_id"},
		{event.ModelRetired, "other", event.Retirement{ModelID: "m"}, "subject"},
		{event.ModelPublished, "m", json.RawMessage(`{"model_id": "m", "channels": {"tv": {"curve": {"type": "linear", "beta": 1, "alpha": 2}}}}`), "data.channels.tv.curve.alpha"},
		{event.OptimizationRequested, "r", json.RawMessage(`{"request_id": "r", "constraints": {"groups": [{"channels": ["tv"], "min_share": 2}]}}`), "data.constraints.groups[0].min_share"},
		{event.OptimizationRequested, "r", json.RawMessage(`{"constraints": {"total": 5}}`), "subject"}, // no request_id: the subject must be the event id
		{event.OptimizationCompleted, "r", engine.Result{RequestID: "r", Status: engine.StatusInvalid, Engine: engine.EngineInfo{Version: engine.Version}}, "data.status"},
		{event.OptimizationRejected, "r", event.Rejection{RequestID: "r"}, "data.errors"},
	}
	for _, tc := range cases {
		_, err := event.New(tc.typ, "/atlas/test", tc.subject, tc.data, "evt-1", t0)
		if err == nil {
			t.Errorf("%s %+v: accepted", tc.typ, tc.data)
			continue
		}
		var fes engine.FieldErrors
		if !errors.As(err, &fes) || !hasField(fes, tc.field) {
			t.Errorf("%s: error %v does not name %s", tc.typ, err, tc.field)
		}
	}
	if _, err := event.New(event.ModelRetired, "/s", "m", json.RawMessage(`{"model_id":`), "e", t0); err == nil {
		t.Error("malformed raw data accepted")
	}
	if _, err := event.New(event.ModelRetired, "/s", "m", event.Retirement{ModelID: "m"}, "", t0); err == nil {
		t.Error("empty id accepted")
	}
	if _, err := event.New(event.ModelRetired, "", "m", event.Retirement{ModelID: "m"}, "e", t0); err == nil {
		t.Error("empty source accepted")
	}
}

func TestDecodeErrors(t *testing.T) {
	good := `{"specversion":"1.0","id":"e1","source":"/atlas/api","type":"atlas.optimization.requested.v1","subject":"r1","data":{"request_id":"r1","constraints":{"total":5}}}`
	if _, err := event.Decode([]byte(good)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		raw       string
		field     string
		dataOnly  bool
		requestID string // of a data-only failure
	}{
		{`not json`, "", false, ""},
		{``, "", false, ""},
		{`{"specversion":"1.0"}`, "id", false, ""},
		{strings.Replace(good, `"1.0"`, `"0.3"`, 1), "specversion", false, ""},
		{strings.Replace(good, `requested`, `cancelled`, 1), "type", false, ""},
		{strings.Replace(good, `"subject":"r1"`, `"subject":"r2"`, 1), "subject", false, ""},
		{strings.Replace(good, `"id":"e1"`, `"id":"e1","time":"2024-13-01T00:00:00Z"`, 1), "time", false, ""},
		{strings.Replace(good, `"total":5`, `"total":-5`, 1), "data.constraints.total", true, "r1"},
		{strings.Replace(good, `"total":5`, `"totl":5`, 1), "data.constraints.totl", true, "r1"},
		{strings.Replace(good, `"total":5`, `"total":-5`, 1)[:len(good)-5], "", false, ""},
		{strings.Replace(good, `{"request_id":"r1","constraints":{"total":5}}`, `[]`, 1), "data", true, "e1"}, // no request_id: the event's id
	}
	for _, tc := range cases {
		e, err := event.Decode([]byte(tc.raw))
		if err == nil {
			t.Errorf("%s: accepted", tc.raw)
			continue
		}
		de := decodeErr(t, err)
		if tc.field != "" && !hasField(de.Errors, tc.field) {
			t.Errorf("%s: errors %v do not name %s", tc.raw, de.Errors, tc.field)
		}
		if de.DataOnly != tc.dataOnly {
			t.Errorf("%s: DataOnly = %v", tc.raw, de.DataOnly)
		}
		if !strings.Contains(de.Reason(), "cannot decode") || de.Reason() == "" {
			t.Errorf("reason %q", de.Reason())
		}
		var fes engine.FieldErrors
		if !errors.As(err, &fes) || len(fes) == 0 {
			t.Errorf("%s: not engine.FieldErrors: %v", tc.raw, err)
		}
		if tc.dataOnly {
			// the processor answers with a rejected event
			if e.ID != "e1" || e.Type != event.OptimizationRequested || e.RequestID() != tc.requestID {
				t.Errorf("%s: envelope %+v", tc.raw, e)
			}
			data := de.DataErrors()
			if len(data) == 0 || strings.HasPrefix(data[0].Field, "data") {
				t.Errorf("DataErrors %v", data)
			}
			rej, err := event.New(event.OptimizationRejected, "/atlas/processor", "", event.Rejection{RequestID: e.RequestID(), Errors: data}, event.ResultID(e.RequestID(), event.OptimizationRejected), e.Time)
			if err != nil {
				t.Errorf("rejection: %v", err)
			} else if rej.Key() != tc.requestID {
				t.Errorf("rejection key %q", rej.Key())
			}
		} else if e.ID != "" {
			t.Errorf("%s: an undecodable event returned an envelope", tc.raw)
		}
	}
}

func TestIDsAndKeys(t *testing.T) {
	id := event.ResultID("acme-300k", event.OptimizationCompleted)
	if !regexp.MustCompile(`^res-[0-9a-f]{32}$`).MatchString(id) {
		t.Errorf("ResultID = %q", id)
	}
	if id != event.ResultID("acme-300k", event.OptimizationCompleted) {
		t.Error("ResultID is not deterministic")
	}
	if id == event.ResultID("acme-300k", event.OptimizationRejected) || id == event.ResultID("acme-300", event.OptimizationCompleted) {
		t.Error("ResultID collides across types or requests")
	}
	// The documented derivation, so other languages can reproduce it.
	if id != "res-"+sha256hex(event.OptimizationCompleted + "\x00acme-300k")[:32] {
		t.Error("ResultID does not follow its documented derivation")
	}

	with := []byte(`{"specversion":"1.0","id":"e1","source":"/s","type":"atlas.optimization.requested.v1","subject":"r1","data":{"request_id":"r1"}}`)
	without := []byte(`{"specversion":"1.0","id":"e2","source":"/s","type":"atlas.optimization.requested.v1","subject":"e2","data":{"budget":{"tv":1}}}`)
	broken := []byte(`{"id":"e3","data":{"request_id":7,"constraints":"x"}}`)
	for raw, want := range map[string]string{string(with): "r1", string(without): "e2", string(broken): "e3"} {
		if got, err := event.RequestID([]byte(raw)); err != nil || got != want {
			t.Errorf("RequestID(%s) = %q, %v; want %q", raw, got, err, want)
		}
	}
	for _, raw := range []string{`{}`, `{"id": ""}`, `nope`} {
		if _, err := event.RequestID([]byte(raw)); err == nil {
			t.Errorf("RequestID(%s): no error", raw)
		}
	}
	e, err := event.Decode(without)
	if err != nil {
		t.Fatal(err)
	}
	if e.RequestID() != "e2" || e.Key() != "e2" {
		t.Errorf("request without request_id: id %q key %q", e.RequestID(), e.Key())
	}
	m, _ := event.New(event.ModelPublished, "/s", "", read(t, "../../examples/acme-model.json"), "e", t0)
	if m.Key() != "acme-mmm" || m.RequestID() != "" {
		t.Errorf("model event: key %q, request id %q", m.Key(), m.RequestID())
	}
}

// A redelivered request yields a byte-identical completed event.
func TestRedeliveryIsByteIdentical(t *testing.T) {
	m := acmeModel(t)
	sc := bufio.NewScanner(bytes.NewReader(read(t, "../../examples/acme-requests.ndjson")))
	for sc.Scan() {
		reqEvent := mustNew(t, event.OptimizationRequested, "", json.RawMessage(sc.Bytes()), "evt-1")
		answer := func() []byte {
			in, err := event.Decode(mustEncode(t, reqEvent))
			if err != nil {
				t.Fatal(err)
			}
			req, err := engine.DecodeRequest(in.Data)
			if err != nil {
				t.Fatal(err)
			}
			res := engine.Solve(&m, &req)
			res.RequestID, res.ModelVersion = in.RequestID(), 1
			typ := event.OptimizationCompleted
			var data any = res
			if res.Status == engine.StatusInvalid {
				typ, data = event.OptimizationRejected, event.Rejection{RequestID: in.RequestID(), Errors: res.Errors}
			}
			out, err := event.New(typ, "/atlas/processor", "", data, event.ResultID(in.RequestID(), typ), in.Time)
			if err != nil {
				t.Fatal(err)
			}
			return mustEncode(t, out)
		}
		a, b := answer(), answer()
		if !bytes.Equal(a, b) {
			t.Errorf("two answers to %s differ:\n%s\n%s", sc.Bytes(), a, b)
		}
	}
}

func mustEncode(t testing.TB, e event.Envelope) []byte {
	t.Helper()
	raw, err := event.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
