package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
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

// decodeStrict decodes exactly one JSON value into v, rejecting unknown fields and
// trailing data, and turns encoding/json's errors into FieldErrors with a path.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return FieldErrors{describeJSONError(data, v, err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return FieldErrors{{Message: "unexpected data after the JSON value"}}
	}
	return nil
}

func describeJSONError(data []byte, v any, err error) FieldError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var fe FieldError
	var fes FieldErrors
	switch {
	case errors.As(err, &fes) && len(fes) > 0:
		return fes[0]
	case errors.As(err, &fe):
		return fe
	case errors.As(err, &syn):
		return FieldError{Message: fmt.Sprintf("invalid JSON at byte %d: %v", syn.Offset, syn)}
	case errors.As(err, &typ):
		field := typ.Field
		return FieldError{Field: field, Message: fmt.Sprintf("must be %s, got %s", jsonKind(typ.Type), typ.Value)}
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return FieldError{Message: "empty or truncated JSON"}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		var generic any
		if json.Unmarshal(data, &generic) == nil {
			if path := findUnknownField(generic, reflect.TypeOf(v).Elem(), ""); path != "" {
				return FieldError{Field: path, Message: "unknown field"}
			}
		}
		return FieldError{Message: strings.TrimPrefix(err.Error(), "json: ")}
	default:
		return FieldError{Message: strings.TrimPrefix(err.Error(), "json: ")}
	}
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

var totalType = reflect.TypeOf(Total{})

// findUnknownField walks a generically decoded JSON value alongside the Go type it was
// meant for and returns the path of the first key the type does not have.
func findUnknownField(v any, t reflect.Type, path string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	join := func(key string) string {
		if path == "" {
			return key
		}
		return path + "." + key
	}
	switch val := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(val))
		for k := range val {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		switch {
		case t == totalType:
			for _, k := range keys {
				if k != "min" && k != "max" {
					return join(k)
				}
			}
		case t.Kind() == reflect.Map:
			for _, k := range keys {
				if p := findUnknownField(val[k], t.Elem(), join(k)); p != "" {
					return p
				}
			}
		case t.Kind() == reflect.Struct:
			fields := map[string]reflect.Type{}
			for i := 0; i < t.NumField(); i++ {
				f := t.Field(i)
				name := strings.Split(f.Tag.Get("json"), ",")[0]
				if name == "" || name == "-" {
					continue
				}
				fields[name] = f.Type
			}
			for _, k := range keys {
				ft, ok := fields[k]
				if !ok {
					return join(k)
				}
				if p := findUnknownField(val[k], ft, join(k)); p != "" {
					return p
				}
			}
		}
	case []any:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i, e := range val {
				if p := findUnknownField(e, t.Elem(), path+"["+strconv.Itoa(i)+"]"); p != "" {
					return p
				}
			}
		}
	}
	return ""
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
