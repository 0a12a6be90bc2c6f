package audit

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/atlas-mmm/atlas/engine"
	"github.com/atlas-mmm/atlas/streams/event"
)

// recorded is what the audit reads from a recorded result event before re-deriving it.
type recorded struct {
	ID     string `json:"id"`
	Source string `json:"source"`
	Type   string `json:"type"`
	Data   struct {
		RequestID    string             `json:"request_id"`
		ModelID      string             `json:"model_id"`
		ModelVersion int                `json:"model_version"`
		ModelHash    string             `json:"model_hash"`
		Errors       engine.FieldErrors `json:"errors"`
	} `json:"data"`
}

// readRecorded reads the attributes the audit needs. Completed results as the processor
// writes them (event.EncodeTrusted's layout, engine.Result's field order) take a fast
// path that reads only their first few hundred bytes: decoding a whole result costs as
// much as solving it. Anything else goes through encoding/json. A misread cannot pass
// unnoticed: the recorded bytes must equal the re-derived ones.
func readRecorded(raw []byte) (recorded, error) {
	if rec, ok := fastRecorded(raw); ok {
		return rec, nil
	}
	var rec recorded
	err := json.Unmarshal(raw, &rec)
	return rec, err
}

func fastRecorded(raw []byte) (recorded, bool) {
	var rec recorded
	p := scan{b: raw}
	ok := p.lit(`{"specversion":"1.0","id":`) && p.str(&rec.ID) && p.lit(`,"source":`) && p.str(&rec.Source) &&
		p.lit(`,"type":`) && p.str(&rec.Type) && rec.Type == event.OptimizationCompleted
	if !ok {
		return rec, false
	}
	var t, subject string
	if p.lit(`,"time":`) && !p.str(&t) {
		return rec, false
	}
	if !(p.lit(`,"subject":`) && p.str(&subject) && p.lit(`,"datacontenttype":"application/json","data":{"request_id":`) &&
		p.str(&rec.Data.RequestID)) {
		return rec, false
	}
	if p.lit(`,"model_id":`) && !p.str(&rec.Data.ModelID) {
		return rec, false
	}
	if p.lit(`,"model_version":`) && !p.int(&rec.Data.ModelVersion) {
		return rec, false
	}
	if p.lit(`,"model_hash":`) && !p.str(&rec.Data.ModelHash) {
		return rec, false
	}
	return rec, p.lit(`,"status":`)
}

// scan reads the plain forms of JSON strings and integers at a cursor.
type scan struct {
	b []byte
	i int
}

func (p *scan) lit(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// str reads a string without escapes or control characters, in valid UTF-8: what
// encoding/json reads as it is.
func (p *scan) str(dst *string) bool {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return false
	}
	j := bytes.IndexByte(p.b[p.i+1:], '"')
	if j < 0 {
		return false
	}
	s := p.b[p.i+1 : p.i+1+j]
	if bytes.IndexByte(s, '\\') >= 0 || !utf8.Valid(s) {
		return false
	}
	for _, c := range s {
		if c < 0x20 {
			return false
		}
	}
	*dst = string(s)
	p.i += j + 2
	return true
}

func (p *scan) int(dst *int) bool {
	j := p.i
	for j < len(p.b) && p.b[j] >= '0' && p.b[j] <= '9' {
		j++
	}
	if j == p.i || j-p.i > 9 {
		return false
	}
	n, err := strconv.Atoi(string(p.b[p.i:j]))
	*dst, p.i = n, j
	return err == nil
}

// quickID is an event's id, read from the front of the event when it is where Atlas
// writes it.
func quickID(raw []byte) string {
	p := scan{b: raw}
	var id string
	if p.lit(`{"specversion":"1.0","id":`) && p.str(&id) {
		return id
	}
	return eventID(raw)
}
