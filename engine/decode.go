package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// FieldError is an error about one field of the input, named by its JSON path
// (e.g. "channels.tv.curve.alpha" or "constraints.groups[0].min_share").
type FieldError struct {
	Field   string `json:"field,omitempty"`
	Message string `json:"error"`
}

func (e FieldError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// FieldErrors is a list of field errors; it is itself an error.
type FieldErrors []FieldError

func (es FieldErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

func fieldErr(field, format string, args ...any) FieldError {
	return FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// DecodeModel decodes and validates a model. Unknown fields are rejected so that a typo
// ("kapa") is an error instead of a silently missing parameter.
func DecodeModel(data []byte) (Model, error) {
	var m Model
	if err := decodeStrict(data, &m); err != nil {
		return Model{}, err
	}
	if errs := ValidateModel(&m); len(errs) > 0 {
		return Model{}, errs
	}
	return m, nil
}

// DecodeRequest decodes a request and checks its own shape (not yet against a model; see
// ValidateRequest). An inline model is validated too.
func DecodeRequest(data []byte) (Request, error) {
	var r Request
	if err := decodeStrict(data, &r); err != nil {
		return Request{}, err
	}
	if r.Model != nil {
		if errs := ValidateModel(r.Model); len(errs) > 0 {
			for i := range errs {
				errs[i].Field = "model." + errs[i].Field
			}
			return Request{}, errs
		}
	}
	return r, nil
}

// decodeStrict decodes exactly one JSON value into v. encoding/json matches keys
// case-insensitively, ignores trailing data and names type errors without map keys or
// array indices, so the value is first checked against v's type by a walk over its
// generic form that reports the exact path of the first unknown (or miscased) key, wrong
// type or out-of-range number.
func decodeStrict(data []byte, v any) error {
	// Fast path: when every object key is plain lowercase ASCII ([a-z0-9_], as all of
	// Atlas's field names are), encoding/json's case-insensitive matching can only match a
	// key exactly, so one strict pass with DisallowUnknownFields is exact. Anything else
	// (a channel named "TV", an escape in a key, an error) takes the walk below, which also
	// names the field of any error.
	if plainKeys(data) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err == nil {
			if _, err := dec.Token(); err == io.EOF {
				return nil
			}
		}
		rv := reflect.ValueOf(v).Elem()
		rv.Set(reflect.Zero(rv.Type())) // the slow path starts from scratch
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return FieldErrors{describeSyntax(err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return FieldErrors{{Message: "unexpected data after the JSON value"}}
	}
	if fe, ok := checkShape(generic, reflect.TypeOf(v).Elem(), ""); !ok {
		return FieldErrors{fe}
	}
	if err := json.Unmarshal(data, v); err != nil {
		var fe FieldError
		var fes FieldErrors
		switch {
		case errors.As(err, &fes) && len(fes) > 0:
			return fes
		case errors.As(err, &fe):
			return FieldErrors{fe}
		}
		return FieldErrors{{Message: strings.TrimPrefix(err.Error(), "json: ")}}
	}
	return nil
}

func describeSyntax(err error) FieldError {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return FieldError{Message: fmt.Sprintf("invalid JSON at byte %d: %v", syn.Offset, syn)}
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return FieldError{Message: "empty or truncated JSON"}
	}
	return FieldError{Message: "invalid JSON: " + strings.TrimPrefix(err.Error(), "json: ")}
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return t.String()
}

func genericKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return "a value"
}

var (
	totalType   = reflect.TypeOf(Total{})
	rawType     = reflect.TypeOf(json.RawMessage{})
	fieldsCache sync.Map // reflect.Type → map[string]reflect.Type
)

func structFields(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldsCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("json"), ",")[0]
		if name == "" || name == "-" {
			continue
		}
		fields[name] = f.Type
	}
	fieldsCache.Store(t, fields)
	return fields
}

// checkShape walks a generically decoded value alongside the Go type it is meant for.
func checkShape(v any, t reflect.Type, path string) (FieldError, bool) {
	join := func(key string) string {
		if path == "" {
			return key
		}
		return path + "." + key
	}
	mismatch := func() (FieldError, bool) {
		return FieldError{Field: path, Message: fmt.Sprintf("must be %s, got %s", jsonKind(t), genericKind(v))}, false
	}
	if v == nil {
		return FieldError{}, true // null leaves the zero value, as encoding/json does
	}
	if t == rawType {
		return FieldError{}, true
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == totalType {
		switch val := v.(type) {
		case json.Number:
			return checkShape(v, reflect.TypeOf(0.0), path)
		case map[string]any:
			for _, k := range sortedKeys(val) {
				if k != "min" && k != "max" {
					return FieldError{Field: join(k), Message: "unknown field (a total range takes min and max)"}, false
				}
				if fe, ok := checkShape(val[k], reflect.TypeOf(0.0), join(k)); !ok {
					return fe, false
				}
			}
			return FieldError{}, true
		}
		return FieldError{Field: path, Message: fmt.Sprintf("must be a number or {\"min\": a, \"max\": b}, got %s", genericKind(v))}, false
	}
	switch t.Kind() {
	case reflect.Float32, reflect.Float64, reflect.Int, reflect.Int64, reflect.Int32:
		n, ok := v.(json.Number)
		if !ok {
			return mismatch()
		}
		if t.Kind() == reflect.Float64 || t.Kind() == reflect.Float32 {
			if _, err := strconv.ParseFloat(string(n), 64); err != nil {
				return FieldError{Field: path, Message: fmt.Sprintf("number %s is out of range", n)}, false
			}
		} else if _, err := strconv.ParseInt(string(n), 10, 64); err != nil {
			return FieldError{Field: path, Message: fmt.Sprintf("must be an integer, got %s", n)}, false
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			return mismatch()
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return mismatch()
		}
	case reflect.Slice, reflect.Array:
		arr, ok := v.([]any)
		if !ok {
			return mismatch()
		}
		for i, e := range arr {
			if fe, ok := checkShape(e, t.Elem(), path+"["+strconv.Itoa(i)+"]"); !ok {
				return fe, false
			}
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return mismatch()
		}
		for _, k := range sortedKeys(obj) {
			if fe, ok := checkShape(obj[k], t.Elem(), join(k)); !ok {
				return fe, false
			}
		}
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return mismatch()
		}
		fields := structFields(t)
		for _, k := range sortedKeys(obj) {
			ft, ok := fields[k]
			if !ok {
				return FieldError{Field: join(k), Message: "unknown field"}, false
			}
			if fe, ok := checkShape(obj[k], ft, join(k)); !ok {
				return fe, false
			}
		}
	}
	return FieldError{}, true
}

// UnmarshalJSON accepts a number (exact total) or {"min": a, "max": b} (a range).
func (t *Total) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if bytes.Equal(data, []byte("null")) {
		*t = Total{}
		return nil
	}
	if len(data) > 0 && data[0] == '{' {
		var rng struct {
			Min *float64 `json:"min"`
			Max *float64 `json:"max"`
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rng); err != nil {
			return FieldError{Field: "constraints.total", Message: "must be a number or {\"min\": a, \"max\": b}: " + strings.TrimPrefix(err.Error(), "json: ")}
		}
		*t = Total{Min: rng.Min, Max: rng.Max}
		return nil
	}
	var x float64
	if err := json.Unmarshal(data, &x); err != nil {
		return FieldError{Field: "constraints.total", Message: "must be a number or {\"min\": a, \"max\": b}"}
	}
	*t = Total{Exact: &x}
	return nil
}

// MarshalJSON writes the form UnmarshalJSON reads.
func (t Total) MarshalJSON() ([]byte, error) {
	if t.Exact != nil {
		return json.Marshal(*t.Exact)
	}
	return json.Marshal(struct {
		Min *float64 `json:"min,omitempty"`
		Max *float64 `json:"max,omitempty"`
	}{t.Min, t.Max})
}

// plainKeys reports whether every object key in the JSON text consists of [a-z0-9_] only
// (no escapes). It is a lexical scan: a string followed by ':' is a key.
func plainKeys(data []byte) bool {
	for i := 0; i < len(data); i++ {
		if data[i] != '"' {
			continue
		}
		start := i + 1
		plain := true
		j := start
		for ; j < len(data); j++ {
			c := data[j]
			if c == '\\' {
				plain = false
				j++ // skip the escaped byte
				continue
			}
			if c == '"' {
				break
			}
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
				plain = false
			}
		}
		if j >= len(data) {
			return false // unterminated: let the slow path report it
		}
		k := j + 1
		for k < len(data) && (data[k] == ' ' || data[k] == '\t' || data[k] == '\n' || data[k] == '\r') {
			k++
		}
		if k < len(data) && data[k] == ':' && !plain {
			return false
		}
		i = j
	}
	return true
}
