// Package event is Atlas's event envelope: CloudEvents 1.0 in structured JSON mode
// (contract §5), used alike by producers, the processor and the API.
//
// Every event is checked against the JSON Schemas in package schemas, on the way out
// (New, Encode) and on the way in (Decode), so what one component writes the others can
// read. The envelope requires subject as well as the CloudEvents attributes, and its
// subject is the event's key:
//
//	type                              key / subject   data
//	atlas.model.published.v1          model_id        model (contract §1)
//	atlas.model.retired.v1            model_id        {model_id}
//	atlas.optimization.requested.v1   request_id      request (contract §2)
//	atlas.optimization.completed.v1   request_id      result (contract §3)
//	atlas.optimization.rejected.v1    request_id      {request_id, errors}
//
// A request need not carry a request_id: its id is then the id of the event that carries
// it (see RequestID), and the event's subject should be that id too. Results and
// rejections name the request, and their event ids are derived from it (ResultID), so that
// a redelivered request yields byte-identical output events.
package event

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	segjson "github.com/segmentio/encoding/json"

	"github.com/atlas-mmm/atlas/engine"
	"github.com/atlas-mmm/atlas/schemas"
)

// Event types.
const (
	ModelPublished        = "atlas.model.published.v1"
	ModelRetired          = "atlas.model.retired.v1"
	OptimizationRequested = "atlas.optimization.requested.v1"
	OptimizationCompleted = "atlas.optimization.completed.v1"
	OptimizationRejected  = "atlas.optimization.rejected.v1"
)

// Types lists the event types in the order of the table above.
func Types() []string {
	return []string{ModelPublished, ModelRetired, OptimizationRequested, OptimizationCompleted, OptimizationRejected}
}

const (
	// SpecVersion is the CloudEvents version Atlas speaks.
	SpecVersion = "1.0"
	// ContentType is the datacontenttype of every Atlas event.
	ContentType = "application/json"
)

// Envelope is one event. Time is written in UTC with up to nanosecond precision (RFC
// 3339) and left out when zero. CloudEvents extension attributes of incoming events are
// accepted by Decode but not kept.
type Envelope struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Time            time.Time       `json:"time,omitzero"`
	Subject         string          `json:"subject"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Data            json.RawMessage `json:"data"`
}

// Retirement is the data of a model.retired event.
type Retirement struct {
	ModelID string `json:"model_id"`
}

// Rejection is the data of an optimization.rejected event: the request's id and field
// errors whose paths start at the request ("constraints.total").
type Rejection struct {
	RequestID string             `json:"request_id"`
	Errors    engine.FieldErrors `json:"errors"`
}

// New builds and validates an event. data is marshalled to JSON unless it already is
// JSON (json.RawMessage or []byte). An empty subject is filled in with the event's key
// (see Key). t is converted to UTC; a zero t leaves the time out. The id is the caller's:
// use ResultID for completed and rejected events so that they are deterministic.
func New(typ, source, subject string, data any, id string, t time.Time) (Envelope, error) {
	raw, err := marshalData(data)
	if err != nil {
		return Envelope{}, fmt.Errorf("event: %s data: %w", typ, err)
	}
	e := Envelope{
		SpecVersion:     SpecVersion,
		ID:              id,
		Source:          source,
		Type:            typ,
		Subject:         subject,
		DataContentType: ContentType,
		Data:            raw,
	}
	if !t.IsZero() {
		e.Time = t.UTC()
	}
	if e.Subject == "" {
		e.Subject = e.Key()
	}
	if _, err := Encode(e); err != nil {
		return Envelope{}, err
	}
	return e, nil
}

func marshalData(data any) (json.RawMessage, error) {
	var raw []byte
	switch d := data.(type) {
	case json.RawMessage:
		raw = d
	case []byte:
		raw = d
	default:
		var err error
		if raw, err = marshal(data); err != nil {
			return nil, err
		}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// marshal is json.Marshal without HTML escaping ("<" stays "<"), without the trailing
// newline of an Encoder.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// MarshalJSON writes the event in CloudEvents structured JSON mode, with the time in UTC
// and data compacted. Equal envelopes give identical bytes. (json.Marshal then escapes
// <, > and & inside strings as encoding/json always does; Encode leaves them be.)
func (e Envelope) MarshalJSON() ([]byte, error) {
	type plain Envelope // the same fields without this method
	p := plain(e)
	if !p.Time.IsZero() {
		p.Time = p.Time.UTC()
	}
	if len(p.Data) > 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, p.Data); err != nil {
			return nil, fmt.Errorf("event: data: %w", err)
		}
		p.Data = buf.Bytes()
	}
	return marshal(p)
}

// Encode validates an event and returns its bytes. The error for an invalid event wraps
// engine.FieldErrors naming each field ("subject", "data.channels.tv.curve.alpha").
func Encode(e Envelope) ([]byte, error) {
	raw, err := e.MarshalJSON()
	if err != nil {
		return nil, err
	}
	if err := schemas.ValidateEvent(raw); err != nil {
		return nil, fmt.Errorf("event: invalid %s event %q: %w", e.Type, e.ID, err)
	}
	if errs := e.consistent(); len(errs) > 0 {
		return nil, fmt.Errorf("event: invalid %s event %q: %w", e.Type, e.ID, errs)
	}
	return raw, nil
}

// DecodeError says why raw bytes are not an Atlas event. Its message is meant to be
// stored with the untouched bytes in a dead-letter record.
type DecodeError struct {
	// Errors name each problem's field, from the envelope ("type", "time",
	// "data.constraints.total").
	Errors engine.FieldErrors
	// DataOnly reports that the envelope is valid and only the data is not. Decode then
	// returns the envelope as well, so that a processor can answer a malformed request
	// with a rejected event (see DataErrors) instead of dead-lettering it.
	DataOnly bool
}

func (e *DecodeError) Error() string {
	return "event: cannot decode: " + e.Errors.Error()
}

// Unwrap makes errors.As(err, &engine.FieldErrors{}) work.
func (e *DecodeError) Unwrap() error { return e.Errors }

// Reason is the text to store with a dead-lettered record.
func (e *DecodeError) Reason() string { return e.Error() }

// DataErrors returns the errors about the data with paths relative to the data
// ("constraints.total" rather than "data.constraints.total"): what a rejected event
// carries.
func (e *DecodeError) DataErrors() engine.FieldErrors {
	var out engine.FieldErrors
	for _, fe := range e.Errors {
		switch {
		case fe.Field == "data":
			fe.Field = ""
		case strings.HasPrefix(fe.Field, "data."):
			fe.Field = strings.TrimPrefix(fe.Field, "data.")
		default:
			continue
		}
		out = append(out, fe)
	}
	return out
}

// Decode parses and validates an event (the envelope, and its data against the schema its
// type selects). Every failure is a *DecodeError; when only the data is invalid the
// envelope is returned too (see DecodeError.DataOnly).
func Decode(raw []byte) (Envelope, error) {
	if err := schemas.ValidateEvent(raw); err != nil {
		var fes engine.FieldErrors
		if !errors.As(err, &fes) {
			fes = engine.FieldErrors{{Message: err.Error()}}
		}
		dataOnly := len(fes) > 0
		for _, fe := range fes {
			if fe.Field != "data" && !strings.HasPrefix(fe.Field, "data.") {
				dataOnly = false
			}
		}
		if dataOnly {
			if e, err := decodeEnvelope(raw); err == nil {
				return e, &DecodeError{Errors: fes, DataOnly: true}
			}
		}
		return Envelope{}, &DecodeError{Errors: fes}
	}
	e, err := decodeEnvelope(raw)
	if err != nil {
		return Envelope{}, &DecodeError{Errors: engine.FieldErrors{{Message: err.Error()}}}
	}
	if errs := e.consistent(); len(errs) > 0 {
		return Envelope{}, &DecodeError{Errors: errs}
	}
	return e, nil
}

// decodeEnvelope reads the attributes of an event whose envelope the schema accepted,
// with its data compacted.
func decodeEnvelope(raw []byte) (Envelope, error) {
	e, err := decodeEnvelopeAsIs(raw)
	if err != nil {
		return Envelope{}, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, e.Data); err != nil {
		return Envelope{}, err
	}
	e.Data = buf.Bytes()
	return e, nil
}

// decodeEnvelopeAsIs reads the attributes, leaving the data as it came.
func decodeEnvelopeAsIs(raw []byte) (Envelope, error) {
	var w struct {
		SpecVersion     string          `json:"specversion"`
		ID              string          `json:"id"`
		Source          string          `json:"source"`
		Type            string          `json:"type"`
		Time            string          `json:"time"`
		Subject         string          `json:"subject"`
		DataContentType string          `json:"datacontenttype"`
		Data            json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return Envelope{}, err
	}
	e := Envelope{SpecVersion: w.SpecVersion, ID: w.ID, Source: w.Source, Type: w.Type,
		Subject: w.Subject, DataContentType: w.DataContentType}
	if w.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, w.Time)
		if err != nil {
			return Envelope{}, engine.FieldErrors{{Field: "time", Message: "must be an RFC 3339 date-time"}}
		}
		e.Time = t.UTC()
	}
	e.Data = w.Data
	return e, nil
}

// consistent checks what the schema cannot: the subject is the key the data names.
func (e Envelope) consistent() engine.FieldErrors {
	return e.consistentWith(func(name string) string { return e.dataString(name) })
}

// consistentWith is consistent with the data's top-level strings read by data.
func (e Envelope) consistentWith(data func(name string) string) engine.FieldErrors {
	var field, want string
	switch e.Type {
	case ModelPublished, ModelRetired:
		field, want = "model_id", data("model_id")
	case OptimizationRequested, OptimizationCompleted, OptimizationRejected:
		field, want = "request_id", data("request_id")
	}
	if want != "" && e.Subject != want {
		return engine.FieldErrors{{Field: "subject", Message: fmt.Sprintf("%q differs from data.%s %q: the subject is the event's key", e.Subject, field, want)}}
	}
	if e.Type == OptimizationRequested && want == "" && e.Subject != e.ID {
		return engine.FieldErrors{{Field: "subject", Message: fmt.Sprintf("%q differs from the event id %q, which is the request's id when data.request_id is absent", e.Subject, e.ID)}}
	}
	return nil
}

// dataString reads a top-level string field of the data ("" when absent or not a string).
func (e Envelope) dataString(name string) string {
	return dataString(e.Data, name)
}

func dataString(data json.RawMessage, name string) string {
	if s, ok := fastDataString(data, name); ok {
		return s
	}
	return slowDataString(data, name)
}

// slowDataString is dataString by encoding/json: what fastDataString must agree with.
func slowDataString(data json.RawMessage, name string) string {
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return ""
	}
	var s string
	if json.Unmarshal(obj[name], &s) != nil {
		return ""
	}
	return s
}

// Key is the event's partitioning key: the model_id of a model event, the request id of
// an optimization event (see RequestID), else the subject.
func (e Envelope) Key() string {
	var k string
	switch e.Type {
	case ModelPublished, ModelRetired:
		k = e.dataString("model_id")
	case OptimizationRequested, OptimizationCompleted, OptimizationRejected:
		k = e.RequestID()
	}
	if k == "" {
		k = e.Subject
	}
	return k
}

// Key returns e.Key(): the key to append e with.
func Key(e Envelope) string { return e.Key() }

// RequestID is the id of the request an optimization event is about: data.request_id,
// or, for a request that has none, the id of the event carrying it. It is "" for model
// events.
func (e Envelope) RequestID() string {
	switch e.Type {
	case OptimizationRequested:
		if id := e.dataString("request_id"); id != "" {
			return id
		}
		return e.ID
	case OptimizationCompleted, OptimizationRejected:
		if id := e.dataString("request_id"); id != "" {
			return id
		}
		return e.Subject
	}
	return ""
}

// RequestID reads the request id from the raw bytes of a requested event without
// validating it: data.request_id when it is a non-empty string, else the event's id. It
// lets a processor name the request in a rejected event even when the request is
// malformed. It fails only when neither is there.
func RequestID(raw []byte) (string, error) {
	var w struct {
		ID   json.RawMessage `json:"id"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return "", fmt.Errorf("event: no request id: %w", err)
	}
	if id := dataString(w.Data, "request_id"); id != "" {
		return id, nil
	}
	var id string
	if json.Unmarshal(w.ID, &id) != nil || id == "" {
		return "", errors.New("event: no request id: neither data.request_id nor id is a non-empty string")
	}
	return id, nil
}

// ResultID is the event id of the typ (completed or rejected) event answering request
// requestID: "res-" and 32 hex digits of SHA-256(typ, NUL, requestID). A redelivered
// request thus yields an event with the same id, which consumers can deduplicate on.
func ResultID(requestID, typ string) string {
	sum := sha256.Sum256([]byte(typ + "\x00" + requestID))
	return "res-" + hex.EncodeToString(sum[:])[:32]
}

// DecodeTrusted reads an event without JSON Schema validation: the envelope's attributes
// are checked (spec version, a known type, an id, an RFC 3339 time, a JSON object as data,
// the subject naming the key) and the data is left to its own strict decoder
// (engine.DecodeRequest, engine.DecodeModel), which enforces the same rules with the same
// field paths. It is the processor's hot path: full validation costs about twice a solve.
// Anything it refuses should go through Decode for a complete explanation.
func DecodeTrusted(raw []byte) (Envelope, error) {
	return decodeTrusted(raw, true)
}

// decodeTrusted is DecodeTrusted, with the fast paths (fast.go) or, for the tests that
// hold the two to the same answers, with encoding/json alone.
func decodeTrusted(raw []byte, tryFast bool) (Envelope, error) {
	var e Envelope
	var reqID, modelID string
	fast := false
	if tryFast {
		e, reqID, modelID, fast = fastEnvelope(raw)
	}
	if !fast {
		var err error
		if e, err = decodeEnvelopeAsIs(raw); err != nil {
			return Envelope{}, err
		}
	}
	switch {
	case e.SpecVersion != SpecVersion:
		return Envelope{}, engine.FieldErrors{{Field: "specversion", Message: "must be \"1.0\""}}
	case e.ID == "":
		return Envelope{}, engine.FieldErrors{{Field: "id", Message: "missing"}}
	case !knownType(e.Type):
		return Envelope{}, engine.FieldErrors{{Field: "type", Message: fmt.Sprintf("unknown event type %q", e.Type)}}
	case e.DataContentType != "" && e.DataContentType != ContentType:
		return Envelope{}, engine.FieldErrors{{Field: "datacontenttype", Message: "must be application/json"}}
	case len(e.Data) == 0 || e.Data[0] != '{':
		return Envelope{}, engine.FieldErrors{{Field: "data", Message: "must be a JSON object"}}
	}
	data := func(name string) string { return slowDataString(e.Data, name) }
	if tryFast {
		data = func(name string) string { return e.dataString(name) }
	}
	if fast {
		// fastEnvelope read both while checking the data: no second pass
		data = func(name string) string {
			if name == "model_id" {
				return modelID
			}
			return reqID
		}
	}
	if errs := e.consistentWith(data); len(errs) > 0 {
		return Envelope{}, errs
	}
	return e, nil
}

func knownType(t string) bool {
	switch t {
	case ModelPublished, ModelRetired, OptimizationRequested, OptimizationCompleted, OptimizationRejected:
		return true
	}
	return false
}

// EncodeTrusted returns the bytes of an event built by Atlas itself from values whose
// JSON form the schemas are tested against (engine.Result, Rejection): the envelope is
// marshalled as MarshalJSON does, without validating it again.
func EncodeTrusted(typ, source, subject, id string, t time.Time, data any) ([]byte, error) {
	// Assembled by hand, in MarshalJSON's field order: data is already compact JSON from
	// the encoder, and encoding/json would validate and compact it once more.
	out := make([]byte, 0, 2048)
	str := func(name, v string) {
		out = append(out, '"')
		out = append(out, name...)
		out = append(out, `":`...)
		out = appendString(out, v)
		out = append(out, ',')
	}
	out = append(out, '{')
	str("specversion", SpecVersion)
	str("id", id)
	str("source", source)
	str("type", typ)
	if !t.IsZero() {
		out = append(out, `"time":"`...)
		out = t.UTC().AppendFormat(out, time.RFC3339Nano)
		out = append(out, `",`...)
	}
	str("subject", subject)
	str("datacontenttype", ContentType)
	out = append(out, `"data":`...)
	out, err := appendData(out, data)
	if err != nil {
		return nil, fmt.Errorf("event: %s data: %w", typ, err)
	}
	return append(out, '}'), nil
}

// appendData appends data's JSON form as marshal writes it. The types Atlas answers
// with (engine.Result, Rejection) are written by hand (result.go): encoding/json's
// reflection was most of an audit's time per request. Anything else, and any failure
// (for encoding/json's error), goes through marshal.
func appendData(out []byte, data any) ([]byte, error) {
	switch d := data.(type) {
	case engine.Result:
		if b, err := appendResult(out, &d); err == nil {
			return b, nil
		}
	case *engine.Result:
		if d != nil {
			if b, err := appendResult(out, d); err == nil {
				return b, nil
			}
		}
	case Rejection:
		return appendRejection(out, &d), nil
	case *Rejection:
		if d != nil {
			return appendRejection(out, d), nil
		}
	}
	raw, err := marshal(data)
	if err != nil {
		return out, err
	}
	return append(out, raw...), nil
}

// appendString appends s as a JSON string, escaped as marshal escapes it (HTML
// characters as they are).
func appendString(out []byte, s string) []byte {
	return segjson.AppendEscape(out, s, 0)
}
