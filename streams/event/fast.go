package event

import (
	"encoding/json"
	"time"
	"unicode/utf8"
)

// The fast paths below read events in one pass over their bytes, without reflection.
// They accept only the plain forms Atlas and ordinary producers write (known attributes
// spelled as the specification spells them, each once, strings without escapes) and
// answer ok=false for anything else, which then goes through encoding/json: whatever
// they accept, they read exactly as encoding/json does (fast_test.go holds them to it
// on generated and fuzzed input). Reading an event's envelope and data keys this way
// costs a fraction of encoding/json's decoding, which dominates replays and audits.

// maxFastDepth bounds the nesting the fast paths follow (encoding/json allows 10,000);
// deeper documents take the slow path.
const maxFastDepth = 512

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipValue returns the index just past the JSON value at b[i], or -1 when there is no
// valid JSON value there (or it nests deeper than maxFastDepth). What it accepts
// encoding/json accepts.
func skipValue(b []byte, i, depth int) int {
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; c {
	case '{':
		if depth >= maxFastDepth {
			return -1
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return -1
			}
			if i = skipString(b, i); i < 0 {
				return -1
			}
			i = skipWS(b, i)
			if i >= len(b) || b[i] != ':' {
				return -1
			}
			if i = skipValue(b, skipWS(b, i+1), depth+1); i < 0 {
				return -1
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case '}':
				return i + 1
			case ',':
				i = skipWS(b, i+1)
			default:
				return -1
			}
		}
	case '[':
		if depth >= maxFastDepth {
			return -1
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1
		}
		for {
			if i = skipValue(b, i, depth+1); i < 0 {
				return -1
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case ']':
				return i + 1
			case ',':
				i = skipWS(b, i+1)
			default:
				return -1
			}
		}
	case '"':
		return skipString(b, i)
	case 't':
		return skipLiteral(b, i, "true")
	case 'f':
		return skipLiteral(b, i, "false")
	case 'n':
		return skipLiteral(b, i, "null")
	default:
		return skipNumber(b, i)
	}
}

func skipLiteral(b []byte, i int, lit string) int {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit)
	}
	return -1
}

// skipString returns the index past the string starting at b[i] ('"'), or -1. Like
// encoding/json's scanner it accepts any byte from 0x20 up (UTF-8 or not) and checks
// escapes' form only.
func skipString(b []byte, i int) int {
	i++
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			return i + 1
		case c == '\\':
			i++
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if len(b)-i < 5 {
					return -1
				}
				for _, h := range b[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return -1
					}
				}
				i += 5
			default:
				return -1
			}
		case c < 0x20:
			return -1
		default:
			i++
		}
	}
	return -1
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// skipNumber returns the index past the number at b[i] (JSON's grammar), or -1.
func skipNumber(b []byte, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return -1
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		i = skipDigits(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

// plainString reads the string at b[i] when encoding/json would read it byte for byte:
// no escapes, valid UTF-8 (no control characters, which JSON forbids anyway). ok is
// false otherwise.
func plainString(b []byte, i int) (s string, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return "", -1, false
	}
	ascii := true
	for j := i + 1; j < len(b); j++ {
		c := b[j]
		switch {
		case c == '"':
			v := b[i+1 : j]
			if !ascii && !utf8.Valid(v) {
				return "", -1, false
			}
			return string(v), j + 1, true
		case c == '\\' || c < 0x20:
			return "", -1, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", -1, false
}

// keyFields are the data keys that name an event's key (see consistent).
type keyFields struct {
	requestID, modelID []byte // the last value of each, raw; nil when absent
}

// scanObject checks that b[i] starts a valid JSON object and returns the index past it,
// with the raw values of its top-level request_id and model_id (the last of each, as a
// map would keep). ok is false when the object is not valid JSON, or a key has escapes
// (it might then spell one of those names).
func scanObject(b []byte, i int) (next int, kf keyFields, ok bool) {
	if i >= len(b) || b[i] != '{' {
		return -1, kf, false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, kf, true
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return -1, kf, false
		}
		ks := i + 1
		if i = skipString(b, i); i < 0 {
			return -1, kf, false
		}
		key := b[ks : i-1]
		for _, c := range key {
			if c == '\\' {
				return -1, kf, false
			}
		}
		i = skipWS(b, i)
		if i >= len(b) || b[i] != ':' {
			return -1, kf, false
		}
		vs := skipWS(b, i+1)
		if i = skipValue(b, vs, 1); i < 0 {
			return -1, kf, false
		}
		switch string(key) {
		case "request_id":
			kf.requestID = b[vs:i]
		case "model_id":
			kf.modelID = b[vs:i]
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return -1, kf, false
		}
		switch b[i] {
		case '}':
			return i + 1, kf, true
		case ',':
			i = skipWS(b, i+1)
		default:
			return -1, kf, false
		}
	}
}

// valueString is what json.Unmarshal leaves in a string from a raw value (nil: absent):
// the string, or "" for anything else. ok is false for a string with escapes or
// invalid UTF-8.
func valueString(v []byte) (string, bool) {
	if len(v) == 0 || v[0] != '"' {
		return "", true
	}
	s, _, ok := plainString(v, 0)
	return s, ok
}

// fastDataString is dataString for data that is a plain JSON object; ok is false when
// dataString must decide.
func fastDataString(data []byte, name string) (string, bool) {
	i := skipWS(data, 0)
	end, kf, ok := scanObject(data, i)
	if !ok || skipWS(data, end) != len(data) {
		return "", false
	}
	switch name {
	case "request_id":
		return valueString(kf.requestID)
	case "model_id":
		return valueString(kf.modelID)
	}
	return "", false
}

// Envelope attributes, in the bit order of fastEnvelope's seen set.
var attributes = [...]string{"specversion", "id", "source", "type", "time", "subject", "datacontenttype", "data"}

// foldsToAttribute reports whether encoding/json might match key (raw, escapes and all)
// to an attribute: it matches field names case-insensitively (with Unicode's folds
// beyond ASCII).
func foldsToAttribute(key []byte) bool {
	for _, c := range key {
		if c >= utf8.RuneSelf || c == '\\' { // escapes may spell anything
			return true
		}
	}
	for _, a := range attributes {
		if len(a) != len(key) {
			continue
		}
		same := true
		for j := range key {
			c := key[j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != a[j] {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}

// fastEnvelope is decodeEnvelopeAsIs for an event in plain form, with the data's
// request_id and model_id as consistent reads them. ok is false when
// decodeEnvelopeAsIs must decide.
func fastEnvelope(raw []byte) (e Envelope, dataRequestID, dataModelID string, ok bool) {
	i := skipWS(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return e, "", "", false
	}
	i = skipWS(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		return e, "", "", false // no attributes: not worth a fast path
	}
	var seen uint
	var kf keyFields
	var timeStr string
	for {
		if i >= len(raw) || raw[i] != '"' {
			return e, "", "", false
		}
		ks := i + 1
		if i = skipString(raw, i); i < 0 {
			return e, "", "", false
		}
		key := raw[ks : i-1]
		i = skipWS(raw, i)
		if i >= len(raw) || raw[i] != ':' {
			return e, "", "", false
		}
		i = skipWS(raw, i+1)
		attr := -1
		for k, a := range attributes {
			if string(key) == a {
				attr = k
				break
			}
		}
		switch {
		case attr < 0:
			// An extension attribute (or anything else): skipped, as encoding/json
			// skips unknown keys, unless it might be an attribute spelled otherwise.
			if foldsToAttribute(key) {
				return e, "", "", false
			}
			if i = skipValue(raw, i, 1); i < 0 {
				return e, "", "", false
			}
		case seen&(1<<attr) != 0:
			return e, "", "", false // a repeated attribute: the last would win
		case attributes[attr] == "data":
			start := i
			if i, kf, ok = scanObject(raw, i); !ok {
				return e, "", "", false
			}
			e.Data = append(json.RawMessage(nil), raw[start:i]...)
		default:
			var s string
			if s, i, ok = plainString(raw, i); !ok {
				return e, "", "", false
			}
			switch attributes[attr] {
			case "specversion":
				e.SpecVersion = s
			case "id":
				e.ID = s
			case "source":
				e.Source = s
			case "type":
				e.Type = s
			case "time":
				timeStr = s
			case "subject":
				e.Subject = s
			case "datacontenttype":
				e.DataContentType = s
			}
		}
		if attr >= 0 {
			seen |= 1 << attr
		}
		i = skipWS(raw, i)
		if i >= len(raw) {
			return e, "", "", false
		}
		if raw[i] == '}' {
			break
		}
		if raw[i] != ',' {
			return e, "", "", false
		}
		i = skipWS(raw, i+1)
	}
	if skipWS(raw, i+1) != len(raw) {
		return e, "", "", false
	}
	if timeStr != "" {
		t, err := time.Parse(time.RFC3339Nano, timeStr)
		if err != nil {
			return e, "", "", false
		}
		e.Time = t.UTC()
	}
	var ok1, ok2 bool
	if dataRequestID, ok1 = valueString(kf.requestID); !ok1 {
		return e, "", "", false
	}
	if dataModelID, ok2 = valueString(kf.modelID); !ok2 {
		return e, "", "", false
	}
	return e, dataRequestID, dataModelID, true
}
