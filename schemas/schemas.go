// Package schemas holds the JSON Schemas (draft 2020-12) that are the source of truth for
// Atlas's events, and validates documents against them.
//
// The schema files live in events/ and are embedded (see FS) so that an API can serve
// them verbatim:
//
//	cloudevent.schema.json  the CloudEvents 1.0 envelope; data is checked by the schema of its type
//	model.schema.json       atlas.model.published.v1         (contract §1)
//	retired.schema.json     atlas.model.retired.v1           ({model_id})
//	request.schema.json     atlas.optimization.requested.v1  (contract §2)
//	result.schema.json      atlas.optimization.completed.v1  (contract §3)
//	rejected.schema.json    atlas.optimization.rejected.v1   ({request_id, errors})
//
// Errors are engine.FieldErrors naming each field by the same dotted path the engine uses
// ("channels.tv.curve.alpha", "constraints.groups[0].min_share"); ValidateEvent's paths
// start at the envelope ("data.channels.tv.curve.alpha"). They are sorted, so the same
// document always gives the same errors in the same order.
//
// Besides the standard keywords the schemas use "errorMessage" (the ajv-errors
// convention: a string for every error of that schema, or an object keyed by keyword) to
// word errors as the engine does; other validators ignore it or, with ajv-errors, honour
// it.
package schemas

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/atlas-mmm/atlas/engine"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

// FS holds the schema files, under events/ (e.g. "events/model.schema.json").
//
//go:embed events/*.schema.json
var FS embed.FS

// BaseURL is the prefix of every schema's $id: the files refer to each other relative to it.
const BaseURL = "https://github.com/atlas-mmm/atlas/schemas/events/"

// Envelope is the name of the envelope's schema file.
const Envelope = "cloudevent.schema.json"

// dataSchemas maps each event type to the schema file of its data.
var dataSchemas = map[string]string{
	"atlas.model.published.v1":        "model.schema.json",
	"atlas.model.retired.v1":          "retired.schema.json",
	"atlas.optimization.requested.v1": "request.schema.json",
	"atlas.optimization.completed.v1": "result.schema.json",
	"atlas.optimization.rejected.v1":  "rejected.schema.json",
}

// DataSchema returns the name of the schema file for eventType's data
// ("model.schema.json"), or false for a type Atlas does not know.
func DataSchema(eventType string) (string, bool) {
	name, ok := dataSchemas[eventType]
	return name, ok
}

// EventTypes lists the event types the schemas know, sorted.
func EventTypes() []string {
	types := make([]string, 0, len(dataSchemas))
	for t := range dataSchemas {
		types = append(types, t)
	}
	slices.Sort(types)
	return types
}

// Files returns the schema file names (e.g. "model.schema.json"), sorted.
func Files() []string {
	entries, _ := fs.ReadDir(FS, "events")
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// File returns the raw bytes of one schema file, by name ("model.schema.json").
func File(name string) ([]byte, error) {
	if strings.ContainsAny(name, "/\\") {
		return nil, fs.ErrNotExist
	}
	return FS.ReadFile("events/" + name)
}

// maxErrors caps the errors reported for one document: a rejected event or a dead-letter
// record stays small however broken the input.
const maxErrors = 50

// set is the compiled schemas together with their documents (for errorMessage lookups).
type set struct {
	event  *jsonschema.Schema
	result *jsonschema.Schema // any engine result, $defs/result
	data   map[string]*jsonschema.Schema
	docs   map[string]any // schema URL (without fragment) → decoded document
}

var compiled = sync.OnceValues(compile)

func compile() (*set, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.RegisterFormat(&jsonschema.Format{Name: "date-time", Validate: validateTime})
	c.RegisterFormat(&jsonschema.Format{Name: "int64", Validate: validateInt64})
	c.UseLoader(noLoader{})
	s := &set{data: map[string]*jsonschema.Schema{}, docs: map[string]any{}}
	for _, name := range Files() {
		raw, err := File(name)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("schemas: %s: %w", name, err)
		}
		if err := c.AddResource(BaseURL+name, doc); err != nil {
			return nil, fmt.Errorf("schemas: %s: %w", name, err)
		}
		s.docs[BaseURL+name] = doc
	}
	var err error
	if s.event, err = c.Compile(BaseURL + Envelope); err != nil {
		return nil, fmt.Errorf("schemas: %w", err)
	}
	if s.result, err = c.Compile(BaseURL + "result.schema.json#/$defs/result"); err != nil {
		return nil, fmt.Errorf("schemas: %w", err)
	}
	for typ, name := range dataSchemas {
		if s.data[typ], err = c.Compile(BaseURL + name); err != nil {
			return nil, fmt.Errorf("schemas: %w", err)
		}
	}
	return s, nil
}

func mustCompile() *set {
	s, err := compiled()
	if err != nil {
		panic(err) // the embedded schemas are broken: a build error, caught by the tests
	}
	return s
}

// noLoader refuses to fetch anything: every schema Atlas needs is embedded.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schemas: %s is not an embedded schema", url)
}

// dateTimeFormat is the library's own RFC 3339 check, used together with Go's parser.
var dateTimeFormat = sync.OnceValue(func() *jsonschema.Schema {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("mem:///date-time.json", map[string]any{"format": "date-time"}); err != nil {
		panic(err)
	}
	return c.MustCompile("mem:///date-time.json")
})

// validateTime accepts an RFC 3339 date-time that both the JSON Schema format check and
// Go's time.Parse accept (Go rejects leap seconds and a lower-case T or Z), so that an
// event the schema accepts always decodes.
func validateTime(v any) error {
	s, ok := v.(string)
	if !ok {
		return nil
	}
	if err := dateTimeFormat().Validate(s); err != nil {
		return errors.New("not an RFC 3339 date-time")
	}
	if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
		return errors.New("not an RFC 3339 date-time")
	}
	return nil
}

// ValidateEvent validates a whole event: the CloudEvents envelope and its data, by the
// schema its type selects. Field paths start at the envelope ("type", "data.baseline").
func ValidateEvent(raw []byte) error {
	return validate(mustCompile().event, raw)
}

// ValidateData validates an event's data alone against the schema of eventType. Field
// paths start at the data ("channels.tv.curve.alpha"), as the engine's do.
func ValidateData(eventType string, data []byte) error {
	sch, ok := mustCompile().data[eventType]
	if !ok {
		return engine.FieldErrors{{Message: fmt.Sprintf("unknown event type %q (one of %s)", eventType, strings.Join(EventTypes(), ", "))}}
	}
	return validate(sch, data)
}

// ValidateResult validates any engine result (result.schema.json#/$defs/result): unlike
// the data of a completed event it may have status invalid and no request_id, as `atlas
// solve` and the what-if API answer.
func ValidateResult(data []byte) error {
	return validate(mustCompile().result, data)
}

func validate(sch *jsonschema.Schema, raw []byte) error {
	v, errs, err := decode(raw)
	if err != nil {
		return err
	}
	// The document is validated even when decode found problems (a duplicate key, a
	// number out of range), so that every error is reported, not only the first kind.
	verr := sch.Validate(v)
	if verr != nil {
		ve, ok := verr.(*jsonschema.ValidationError)
		if !ok {
			return engine.FieldErrors{{Message: verr.Error()}}
		}
		cv := converter{set: mustCompile(), doc: v}
		zeroed := map[string]bool{} // numbers out of range, read as 0: say so only once
		for _, e := range errs {
			if strings.HasSuffix(e.Message, "is out of range") {
				zeroed[e.Field] = true
			}
		}
		for _, e := range cv.walk(ve) {
			if !zeroed[e.Field] {
				errs = append(errs, e)
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return finish(errs)
}

// decode reads exactly one JSON value with numbers kept as json.Number, rejecting what
// JSON readers disagree on:
//
//   - a key that appears twice in one object: one reader keeps the first value, another
//     the last, and Go merges nested objects, so the validator and the engine could see
//     different documents;
//   - a number beyond float64's range (the engine reads numbers as float64, and says the
//     same);
//   - nesting deeper than maxDepth.
//
// Numbers with long literals or large exponents are rewritten in their shortest float64
// form: the validator compares numbers as exact rationals, and a literal such as
// 1e1000000 would take it half a second (or, past its parser's limit, a panic).
//
// It returns the value (a duplicate key holding its last value, a number out of range
// read as 0) and the errors about it, or an error alone when there is no value to
// validate.
func decode(raw []byte) (any, engine.FieldErrors, error) {
	r := reader{dec: json.NewDecoder(bytes.NewReader(raw))}
	r.dec.UseNumber()
	v, err := r.value("", 0)
	if err != nil {
		var fe engine.FieldError
		if !errors.As(err, &fe) {
			fe = syntaxError(err)
		}
		return nil, nil, engine.FieldErrors{fe}
	}
	if _, err := r.dec.Token(); err != io.EOF {
		return nil, nil, engine.FieldErrors{{Message: "unexpected data after the JSON value"}}
	}
	return v, r.errs, nil
}

// maxDepth bounds nesting: Atlas documents are a handful of levels deep.
const maxDepth = 100

type reader struct {
	dec  *json.Decoder
	errs engine.FieldErrors
}

func (r *reader) value(path string, depth int) (any, error) {
	tok, err := r.dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		if depth >= maxDepth {
			return nil, engine.FieldError{Field: path, Message: fmt.Sprintf("nested more than %d levels deep", maxDepth)}
		}
		if t == '{' {
			obj := map[string]any{}
			for r.dec.More() {
				kt, err := r.dec.Token()
				if err != nil {
					return nil, err
				}
				key, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("object key is not a string")
				}
				p := join(path, key)
				v, err := r.value(p, depth+1)
				if err != nil {
					return nil, err
				}
				if _, dup := obj[key]; dup {
					r.errs = append(r.errs, engine.FieldError{Field: p, Message: "appears twice in one object"})
				}
				obj[key] = v
			}
			_, err := r.dec.Token() // '}'
			return obj, err
		}
		arr := []any{}
		for i := 0; r.dec.More(); i++ {
			v, err := r.value(path+"["+strconv.Itoa(i)+"]", depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		_, err := r.dec.Token() // ']'
		return arr, err
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil {
			r.errs = append(r.errs, engine.FieldError{Field: path, Message: fmt.Sprintf("number %s is out of range", abbreviate(string(t)))})
			return json.Number("0"), nil
		}
		if cheap(string(t)) {
			return t, nil // kept as written, so that the int64 format can tell 1000 from 1e3
		}
		return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
	}
	return tok, nil // string, bool or nil
}

func syntaxError(err error) engine.FieldError {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return engine.FieldError{Message: fmt.Sprintf("invalid JSON at byte %d: %v", syn.Offset, syn)}
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return engine.FieldError{Message: "empty or truncated JSON"}
	}
	return engine.FieldError{Message: "invalid JSON: " + strings.TrimPrefix(err.Error(), "json: ")}
}

// cheap reports whether the validator can handle a number literal as written: short,
// with an exponent of at most three digits.
func cheap(s string) bool {
	if len(s) > 64 {
		return false
	}
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		exp := strings.TrimLeft(s[i+1:], "+-")
		return len(exp) <= 3
	}
	return true
}

// validateInt64 is the "int64" format (as in OpenAPI): an integer written as Go's
// strict decoder reads one into an int, without a fraction or an exponent (1000, not
// 1000.0 or 1e3), within int64's range.
func validateInt64(v any) error {
	n, ok := v.(json.Number)
	if !ok {
		return nil
	}
	if _, err := strconv.ParseInt(string(n), 10, 64); err != nil {
		return fmt.Errorf("must be an integer, got %s", n)
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func abbreviate(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

// finish sorts errors, drops duplicates and caps their number.
func finish(errs engine.FieldErrors) engine.FieldErrors {
	slices.SortFunc(errs, func(a, b engine.FieldError) int {
		if c := strings.Compare(a.Field, b.Field); c != 0 {
			return c
		}
		return strings.Compare(a.Message, b.Message)
	})
	errs = slices.Compact(errs)
	if len(errs) > maxErrors {
		// Name the part of the document the dropped errors are in, so that a reader (or
		// a processor telling data errors from envelope errors) still knows where they are.
		dropped := errs[maxErrors:]
		prefix := dropped[0].Field
		for _, e := range dropped[1:] {
			prefix = commonPath(prefix, e.Field)
		}
		errs = append(errs[:maxErrors:maxErrors], engine.FieldError{Field: prefix, Message: fmt.Sprintf("and %d more errors", len(dropped))})
	}
	if len(errs) == 0 { // cannot happen: a failed validation has a cause
		errs = engine.FieldErrors{{Message: "does not match the schema"}}
	}
	return errs
}

// commonPath is the longest common prefix of two field paths that ends at a field
// boundary ("data.channels.tv.curve" and "data.channels.radio" give "data.channels").
func commonPath(a, b string) string {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	if n == len(a) && n == len(b) {
		return a
	}
	boundary := func(s string, i int) bool { return i == len(s) || s[i] == '.' || s[i] == '[' }
	for n > 0 && !(boundary(a, n) && boundary(b, n)) {
		n--
	}
	return a[:n]
}

// converter turns the validator's error tree into field errors.
type converter struct {
	set *set
	doc any // the validated document, to tell array indices from object keys
}

func (c *converter) walk(e *jsonschema.ValidationError) engine.FieldErrors {
	path := c.path(e.InstanceLocation)
	switch k := e.ErrorKind.(type) {
	case *kind.Schema, *kind.Group, *kind.AllOf, *kind.Reference:
		var errs engine.FieldErrors
		for _, cause := range e.Causes {
			errs = append(errs, c.walk(cause)...)
		}
		return errs
	case *kind.AnyOf:
		return c.alternatives(e, path)
	case *kind.OneOf:
		if k.Subschemas == nil {
			return c.alternatives(e, path)
		}
		return engine.FieldErrors{{Field: path, Message: c.message(e, "matches more than one of the allowed forms")}}
	case *kind.AdditionalProperties:
		var errs engine.FieldErrors
		for _, p := range k.Properties {
			errs = append(errs, engine.FieldError{Field: join(path, p), Message: c.message(e, "unknown field")})
		}
		return errs
	case *kind.Required:
		var errs engine.FieldErrors
		for _, p := range k.Missing {
			errs = append(errs, engine.FieldError{Field: join(path, p), Message: c.message(e, "missing")})
		}
		return errs
	case *kind.PropertyNames:
		field := path // an empty name is reported at its object, as the engine does
		if k.Property != "" {
			field = join(path, k.Property)
		}
		return engine.FieldErrors{{Field: field, Message: c.message(e, fmt.Sprintf("%s is not an allowed name", display(k.Property)))}}
	case *kind.UniqueItems:
		return engine.FieldErrors{{Field: fmt.Sprintf("%s[%d]", path, k.Duplicates[1]),
			Message: c.message(e, fmt.Sprintf("duplicate of item %d", k.Duplicates[0]))}}
	}
	return engine.FieldErrors{{Field: path, Message: c.message(e, leafMessage(e.ErrorKind))}}
}

// alternatives reports a failed anyOf/oneOf. Branches that failed only because the
// value has another JSON type do not apply; if exactly one branch applies, its errors
// are the answer, otherwise one error at the value.
func (c *converter) alternatives(e *jsonschema.ValidationError, path string) engine.FieldErrors {
	if msg := c.lookup(e); msg != "" {
		return engine.FieldErrors{{Field: path, Message: msg}}
	}
	var applicable []*jsonschema.ValidationError
	var wants []string
	for _, cause := range e.Causes {
		if t := onlyTypeError(cause, len(e.InstanceLocation)); t != nil {
			wants = append(wants, t.Want...)
			continue
		}
		applicable = append(applicable, cause)
	}
	if len(applicable) == 1 {
		return c.walk(applicable[0])
	}
	if len(applicable) == 0 && len(wants) > 0 {
		slices.Sort(wants)
		wants = slices.Compact(wants)
		return engine.FieldErrors{{Field: path, Message: "must be " + typeList(wants) + ", got " + typeName(c.value(e.InstanceLocation))}}
	}
	return engine.FieldErrors{{Field: path, Message: "matches none of the allowed forms"}}
}

// onlyTypeError returns the type error if err's tree holds nothing but one type error at
// the given depth.
func onlyTypeError(e *jsonschema.ValidationError, depth int) *kind.Type {
	for {
		if t, ok := e.ErrorKind.(*kind.Type); ok && len(e.InstanceLocation) == depth {
			return t
		}
		if len(e.Causes) != 1 {
			return nil
		}
		e = e.Causes[0]
	}
}

// message is the schema's errorMessage for e, or def.
func (c *converter) message(e *jsonschema.ValidationError, def string) string {
	if msg := c.lookup(e); msg != "" {
		return msg
	}
	return def
}

// lookup finds the errorMessage of the schema where e arose: a string applies to every
// error of that schema, an object maps keywords to messages.
func (c *converter) lookup(e *jsonschema.ValidationError) string {
	obj, ok := c.schemaAt(e.SchemaURL).(map[string]any)
	if !ok {
		return ""
	}
	switch m := obj["errorMessage"].(type) {
	case string:
		return m
	case map[string]any:
		if s, ok := m[keyword(e.ErrorKind)].(string); ok {
			return s
		}
	}
	return ""
}

func keyword(k jsonschema.ErrorKind) string {
	switch k.(type) {
	case *kind.Not:
		return "not"
	case *kind.FalseSchema:
		return "false"
	}
	if p := k.KeywordPath(); len(p) > 0 {
		return p[0]
	}
	return ""
}

// schemaAt resolves an absolute schema location ("…/model.schema.json#/$defs/linear")
// to the schema's decoded JSON.
func (c *converter) schemaAt(loc string) any {
	base, frag, _ := strings.Cut(loc, "#")
	v, ok := c.set.docs[base]
	if !ok || frag == "" {
		return v
	}
	for _, tok := range strings.Split(strings.TrimPrefix(frag, "/"), "/") {
		if u, err := url.PathUnescape(tok); err == nil {
			tok = u // the fragment is URL-encoded ("^$" is %5E$)
		}
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch node := v.(type) {
		case map[string]any:
			v = node[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(node) {
				return nil
			}
			v = node[i]
		default:
			return nil
		}
	}
	return v
}

// path turns an instance location (JSON pointer tokens) into the engine's dotted form,
// writing array indices as [i]. An error about an empty key ("channels": {"": ...}) is
// reported at its object, as the engine does.
func (c *converter) path(loc []string) string {
	if n := len(loc); n > 0 && loc[n-1] == "" {
		if _, isObj := c.value(loc[:n-1]).(map[string]any); isObj {
			loc = loc[:n-1]
		}
	}
	var sb strings.Builder
	v := c.doc
	for _, tok := range loc {
		switch node := v.(type) {
		case []any:
			sb.WriteString("[" + tok + "]")
			if i, err := strconv.Atoi(tok); err == nil && i >= 0 && i < len(node) {
				v = node[i]
			} else {
				v = nil
			}
			continue
		case map[string]any:
			v = node[tok]
		default:
			v = nil
		}
		if sb.Len() > 0 {
			sb.WriteByte('.')
		}
		sb.WriteString(tok)
	}
	return sb.String()
}

func (c *converter) value(loc []string) any {
	v := c.doc
	for _, tok := range loc {
		switch node := v.(type) {
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(node) {
				return nil
			}
			v = node[i]
		case map[string]any:
			v = node[tok]
		default:
			return nil
		}
	}
	return v
}

func leafMessage(k jsonschema.ErrorKind) string {
	switch k := k.(type) {
	case *kind.Type:
		return "must be " + typeList(k.Want) + ", got " + article(k.Got)
	case *kind.Enum:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = display(w)
		}
		return fmt.Sprintf("must be one of %s, got %s", strings.Join(want, ", "), display(k.Got))
	case *kind.Const:
		return fmt.Sprintf("must be %s, got %s", display(k.Want), display(k.Got))
	case *kind.Minimum:
		return fmt.Sprintf("must be at least %s, got %s", rat(k.Want), rat(k.Got))
	case *kind.Maximum:
		return fmt.Sprintf("must be at most %s, got %s", rat(k.Want), rat(k.Got))
	case *kind.ExclusiveMinimum:
		return fmt.Sprintf("must be greater than %s, got %s", rat(k.Want), rat(k.Got))
	case *kind.ExclusiveMaximum:
		return fmt.Sprintf("must be less than %s, got %s", rat(k.Want), rat(k.Got))
	case *kind.MinLength:
		if k.Want == 1 {
			return "must not be empty"
		}
		return fmt.Sprintf("must be at least %d characters long", k.Want)
	case *kind.MaxLength:
		if k.Want == 0 {
			return "must be empty"
		}
		return fmt.Sprintf("must be at most %d characters long", k.Want)
	case *kind.MinProperties:
		if k.Want == 1 {
			return "must not be empty"
		}
		return fmt.Sprintf("needs at least %d entries, got %d", k.Want, k.Got)
	case *kind.MaxProperties:
		return fmt.Sprintf("%d entries exceed the limit of %d", k.Got, k.Want)
	case *kind.MinItems:
		if k.Want == 1 {
			return "needs at least one item"
		}
		return fmt.Sprintf("needs at least %d items, got %d", k.Want, k.Got)
	case *kind.MaxItems:
		return fmt.Sprintf("%d items exceed the limit of %d", k.Got, k.Want)
	case *kind.Pattern:
		return "must match " + k.Want
	case *kind.Format:
		switch k.Want {
		case "date-time":
			return "must be an RFC 3339 date-time such as 2024-05-01T12:00:00Z"
		case "uri":
			return "must be an absolute URI"
		case "uri-reference":
			return "must be a URI reference"
		case "int64":
			return fmt.Sprintf("must be an integer, got %s", display(k.Got))
		}
		return "must be a valid " + k.Want
	case *kind.Not, *kind.FalseSchema:
		return "not allowed here"
	}
	if kw := keyword(k); kw != "" {
		return "does not satisfy " + kw
	}
	return "does not match the schema"
}

func typeList(want []string) string {
	names := make([]string, len(want))
	for i, w := range want {
		names[i] = article(w)
	}
	return strings.Join(names, " or ")
}

func article(t string) string {
	switch t {
	case "integer", "object", "array":
		return "an " + t
	case "null":
		return "null"
	case "boolean":
		return "a boolean"
	}
	return "a " + t
}

func typeName(v any) string {
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

func display(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(abbreviate(v))
	case json.Number:
		return string(v)
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(v)
	}
	return typeName(v)
}

func rat(r *big.Rat) string {
	if r == nil {
		return "?"
	}
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'g', -1, 64)
}
