package projections

import (
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/atlas-mmm/atlas/engine"
)

// fastResult decodes a result's data into res in one pass, as encoding/json would
// (decodeJSON's test and fuzz target hold it to that), for what the processor
// writes: the fields resultData names, spelled exactly, strings without escapes,
// numbers in range. Anything else (an escape, a field spelled in another case, a
// null where encoding/json would keep an old value, a syntax error) makes it give up
// and return false, leaving res partly filled: the caller starts over with a general
// decoder. It was a replay's largest single cost after the envelope (segmentio took
// 2.6 µs a result, a third of it allocating).
//
// Strings in res share data's memory (data must not change afterwards), and the
// channels' ROI and mROI point into one slab: they were two thirds of its
// allocations.
func fastResult(data []byte, res *resultData) bool {
	s := scanner{b: data}
	return s.object(func(key []byte) bool {
		switch string(key) {
		case "request_id":
			return s.stringField(&res.RequestID)
		case "model_id":
			return s.stringField(&res.ModelID)
		case "model_hash":
			return s.stringField(&res.ModelHash)
		case "status":
			return s.stringField(&res.Status)
		case "objective":
			return s.stringField(&res.Objective)
		case "model_version":
			return s.intField(&res.ModelVersion)
		case "total_spend":
			return s.floatField(&res.TotalSpend)
		case "expected":
			return s.expected(&res.Expected)
		case "channels":
			return s.channels(&res.Channels)
		case "certificate":
			return s.certificate(&res.Certificate)
		case "messages":
			return s.messages(&res.Messages)
		}
		return !foldsTo(key, resultFields) && s.skip(0)
	}) && s.end()
}

// fastRequest reads a request's model_id as fastResult reads a result (the id shares
// the data's memory); false when it gives up.
func fastRequest(data []byte, r *requestData) bool {
	s := scanner{b: data}
	return s.object(func(key []byte) bool {
		if string(key) == "model_id" {
			return s.stringField(&r.ModelID)
		}
		return !foldsTo(key, requestFields) && s.skip(0)
	}) && s.end()
}

// The JSON names of resultData's, requestData's, engine.ChannelResult's and
// engine.Certificate's fields, in order (a test holds them to the types):
// encoding/json matches keys to them regardless of case.
var (
	requestFields = []string{"model_id"}
	resultFields  = []string{"request_id", "model_id", "model_version", "model_hash", "status", "objective",
		"total_spend", "expected", "channels", "certificate", "messages"}
	channelFields     = []string{"spend", "response", "roi", "mroi", "at_bound"}
	certificateFields = []string{"objective", "upper_bound", "lower_bound", "gap"}
)

// foldsTo reports whether key may name one of fields for encoding/json, in another
// case or through a non-ASCII character that folds to an ASCII one.
func foldsTo(key []byte, fields []string) bool {
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return true
		}
	}
	for _, f := range fields {
		if strings.EqualFold(f, text(key)) {
			return true
		}
	}
	return false
}

// scanner reads JSON from b at i. Its methods skip leading white space and return
// false on anything they do not take.
type scanner struct {
	b    []byte
	i    int
	slab []float64 // where floatPointer's values go
}

// text is b, a part of the data, as a string sharing its memory.
func text(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next consumes c if it comes next.
func (s *scanner) next(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) literal(word string) bool {
	s.space()
	if len(s.b)-s.i >= len(word) && string(s.b[s.i:s.i+len(word)]) == word {
		s.i += len(word)
		return true
	}
	return false
}

// end reports whether only white space is left.
func (s *scanner) end() bool {
	s.space()
	return s.i == len(s.b)
}

// object reads an object, calling field for each key with the scanner at its value.
func (s *scanner) object(field func(key []byte) bool) bool {
	if !s.next('{') {
		return false
	}
	if s.next('}') {
		return true
	}
	for {
		key, ok := s.stringBytes()
		if !ok || !s.next(':') || !field(key) {
			return false
		}
		if !s.next(',') {
			return s.next('}')
		}
	}
}

// stringBytes reads a string without escapes or control characters, in valid UTF-8,
// and returns its bytes within b.
func (s *scanner) stringBytes() ([]byte, bool) {
	if !s.next('"') {
		return nil, false
	}
	ascii := true
	for j := s.i; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			v := s.b[s.i:j]
			if !ascii && !utf8.Valid(v) {
				return nil, false // encoding/json would replace the bad bytes
			}
			s.i = j + 1
			return v, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// number reads a number's literal, checked against JSON's grammar.
func (s *scanner) number() ([]byte, bool) {
	s.space()
	b, j := s.b, s.i
	digits := func() bool {
		k := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		return j > k
	}
	if j < len(b) && b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case !digits():
		return nil, false
	}
	if j < len(b) && b[j] == '.' {
		j++
		if !digits() {
			return nil, false
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if !digits() {
			return nil, false
		}
	}
	lit := b[s.i:j]
	s.i = j
	return lit, true
}

// float reads a number as encoding/json does into a float64.
func (s *scanner) float() (float64, bool) {
	lit, ok := s.number()
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(text(lit), 64)
	return f, err == nil
}

// isNull consumes a null if one comes next.
func (s *scanner) isNull() bool {
	s.space()
	return s.i < len(s.b) && s.b[s.i] == 'n' && s.literal("null")
}

// stringField sets *v to a string; a null leaves it alone, as encoding/json does.
func (s *scanner) stringField(v *string) bool {
	if s.isNull() {
		return true
	}
	b, ok := s.stringBytes()
	if ok {
		*v = text(b)
	}
	return ok
}

func (s *scanner) floatField(v *float64) bool {
	if s.isNull() {
		return true
	}
	f, ok := s.float()
	if ok {
		*v = f
	}
	return ok
}

// floatPointer sets *v to a new float, or nil for a null.
func (s *scanner) floatPointer(v **float64) bool {
	if s.isNull() {
		*v = nil
		return true
	}
	f, ok := s.float()
	if !ok {
		return false
	}
	if len(s.slab) == cap(s.slab) {
		s.slab = make([]float64, 0, 16)
	}
	s.slab = append(s.slab, f)
	*v = &s.slab[len(s.slab)-1]
	return true
}

func (s *scanner) intField(v *int) bool {
	if s.isNull() {
		return true
	}
	lit, ok := s.number()
	if !ok {
		return false
	}
	n, err := strconv.ParseInt(text(lit), 10, 64)
	if err != nil {
		return false // a fraction, an exponent or out of range: encoding/json refuses it
	}
	*v = int(n)
	return true
}

// expected reads the expected KPIs into *m, added to what it holds (encoding/json
// keeps a map's entries when its key comes again).
func (s *scanner) expected(m *map[string]float64) bool {
	if s.isNull() {
		*m = nil
		return true
	}
	s.space()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return false
	}
	if *m == nil {
		*m = map[string]float64{}
	}
	return s.object(func(key []byte) bool {
		f, ok := s.float() // a null would be a zero entry: left to encoding/json
		if ok {
			(*m)[text(key)] = f
		}
		return ok
	})
}

func (s *scanner) channels(m *map[string]engine.ChannelResult) bool {
	if s.isNull() {
		*m = nil
		return true
	}
	s.space()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return false
	}
	if *m == nil {
		*m = make(map[string]engine.ChannelResult, 8)
	}
	return s.object(func(key []byte) bool {
		var c engine.ChannelResult // each entry decodes into a zero value
		ok := s.object(func(field []byte) bool {
			switch string(field) {
			case "spend":
				return s.floatField(&c.Spend)
			case "response":
				return s.floatField(&c.Response)
			case "roi":
				return s.floatPointer(&c.ROI)
			case "mroi":
				return s.floatPointer(&c.MROI)
			case "at_bound":
				return s.stringField(&c.AtBound)
			}
			return !foldsTo(field, channelFields) && s.skip(0)
		})
		if ok {
			(*m)[text(key)] = c
		}
		return ok
	})
}

// certificate reads into *c, allocated when nil (a second certificate key decodes
// into the same struct, as with encoding/json).
func (s *scanner) certificate(c **engine.Certificate) bool {
	if s.isNull() {
		*c = nil
		return true
	}
	s.space()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return false
	}
	if *c == nil {
		*c = &engine.Certificate{}
	}
	cert := *c
	return s.object(func(field []byte) bool {
		switch string(field) {
		case "objective":
			return s.floatField(&cert.Objective)
		case "gap":
			return s.floatField(&cert.Gap)
		case "upper_bound":
			return s.floatPointer(&cert.UpperBound)
		case "lower_bound":
			return s.floatPointer(&cert.LowerBound)
		}
		return !foldsTo(field, certificateFields) && s.skip(0)
	})
}

// messages reads a list of strings; [] is an empty list, not nil.
func (s *scanner) messages(v *[]string) bool {
	if s.isNull() {
		*v = nil
		return true
	}
	if !s.next('[') {
		return false
	}
	out := []string{}
	if !s.next(']') {
		for {
			b, ok := s.stringBytes() // a null element would keep an old value: left to encoding/json
			if !ok {
				return false
			}
			out = append(out, text(b))
			if !s.next(',') {
				if !s.next(']') {
					return false
				}
				break
			}
		}
	}
	*v = out
	return true
}

// skip reads any value, checking its syntax (strings: as stringBytes).
func (s *scanner) skip(depth int) bool {
	if depth > 32 {
		return false
	}
	s.space()
	if s.i >= len(s.b) {
		return false
	}
	switch s.b[s.i] {
	case '"':
		_, ok := s.stringBytes()
		return ok
	case '{':
		return s.object(func([]byte) bool { return s.skip(depth + 1) })
	case '[':
		s.i++
		if s.next(']') {
			return true
		}
		for {
			if !s.skip(depth + 1) {
				return false
			}
			if !s.next(',') {
				return s.next(']')
			}
		}
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	_, ok := s.number()
	return ok
}
