package event

import (
	"errors"
	"math"
	"slices"
	"strconv"

	"github.com/atlas-mmm/atlas/engine"
)

// appendResult writes r as encoding/json writes it (field order, omitempty, sorted map
// keys, number formatting, string escaping), without reflection: an audit re-encodes
// every result it re-derives, and this is a third of segmentio/encoding's time and a
// fifth of encoding/json's. It fails on a NaN or an infinity, which the caller leaves to
// encoding/json for its error. TestAppendDataMatchesMarshal holds it to encoding/json's
// bytes, and TestResultEncoderKnowsEveryField fails when engine.Result's fields change.
func appendResult(b []byte, r *engine.Result) ([]byte, error) {
	e := resultEncoder{b: b}
	e.result(r)
	return e.b, e.err
}

var errNonFinite = errors.New("event: a NaN or an infinity")

type resultEncoder struct {
	b    []byte
	err  error
	keys []string // reused for sorting map keys
}

func (e *resultEncoder) key(name string) {
	e.b = append(e.b, '"')
	e.b = append(e.b, name...)
	e.b = append(e.b, '"', ':')
}

func (e *resultEncoder) str(s string) { e.b = appendString(e.b, s) }

func (e *resultEncoder) float(f float64) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		e.err = errNonFinite
		e.b = append(e.b, '0')
		return
	}
	// encoding/json's floatEncoder for 64 bits: like %g with ES6's exponent cutoffs
	// and unpadded exponents.
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	e.b = strconv.AppendFloat(e.b, f, format, -1, 64)
	if format == 'e' {
		n := len(e.b)
		if n >= 4 && e.b[n-4] == 'e' && e.b[n-3] == '-' && e.b[n-2] == '0' {
			e.b[n-2] = e.b[n-1]
			e.b = e.b[:n-1]
		}
	}
}

func (e *resultEncoder) floatPtr(f *float64) {
	if f == nil {
		e.b = append(e.b, "null"...)
		return
	}
	e.float(*f)
}

func (e *resultEncoder) sorted(keys []string) []string {
	slices.Sort(keys)
	return keys
}

func (e *resultEncoder) floatMap(m map[string]float64) {
	if m == nil {
		e.b = append(e.b, "null"...)
		return
	}
	keys := e.keys[:0]
	for k := range m {
		keys = append(keys, k)
	}
	e.sorted(keys)
	e.b = append(e.b, '{')
	for i, k := range keys {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.str(k)
		e.b = append(e.b, ':')
		e.float(m[k])
	}
	e.b = append(e.b, '}')
	e.keys = keys[:0]
}

func (e *resultEncoder) channels(m map[string]engine.ChannelResult) {
	if m == nil {
		e.b = append(e.b, "null"...)
		return
	}
	keys := e.keys[:0]
	for k := range m {
		keys = append(keys, k)
	}
	e.sorted(keys)
	e.b = append(e.b, '{')
	for i, k := range keys {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		c := m[k]
		e.str(k)
		e.b = append(e.b, `:{"spend":`...)
		e.float(c.Spend)
		e.b = append(e.b, `,"response":`...)
		e.float(c.Response)
		e.b = append(e.b, `,"roi":`...)
		e.floatPtr(c.ROI)
		e.b = append(e.b, `,"mroi":`...)
		e.floatPtr(c.MROI)
		if c.AtBound != "" {
			e.b = append(e.b, `,"at_bound":`...)
			e.str(c.AtBound)
		}
		e.b = append(e.b, '}')
	}
	e.b = append(e.b, '}')
	e.keys = keys[:0]
}

func (e *resultEncoder) fieldErrors(errs []engine.FieldError) {
	e.b = append(e.b, '[')
	for i, fe := range errs {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.b = append(e.b, '{')
		if fe.Field != "" {
			e.key("field")
			e.str(fe.Field)
			e.b = append(e.b, ',')
		}
		e.key("error")
		e.str(fe.Message)
		e.b = append(e.b, '}')
	}
	e.b = append(e.b, ']')
}

func (e *resultEncoder) result(r *engine.Result) {
	e.b = append(e.b, '{')
	if r.RequestID != "" {
		e.key("request_id")
		e.str(r.RequestID)
		e.b = append(e.b, ',')
	}
	if r.ModelID != "" {
		e.key("model_id")
		e.str(r.ModelID)
		e.b = append(e.b, ',')
	}
	if r.ModelVersion != 0 {
		e.key("model_version")
		e.b = strconv.AppendInt(e.b, int64(r.ModelVersion), 10)
		e.b = append(e.b, ',')
	}
	if r.ModelHash != "" {
		e.key("model_hash")
		e.str(r.ModelHash)
		e.b = append(e.b, ',')
	}
	e.key("status")
	e.str(r.Status)
	if r.Objective != "" {
		e.b = append(e.b, `,"objective":`...)
		e.str(r.Objective)
	}
	if len(r.Allocation) > 0 {
		e.b = append(e.b, `,"allocation":`...)
		e.floatMap(r.Allocation)
	}
	e.b = append(e.b, `,"total_spend":`...)
	e.float(r.TotalSpend)
	if len(r.Expected) > 0 {
		e.b = append(e.b, `,"expected":`...)
		e.floatMap(r.Expected)
	}
	if c := r.Current; c != nil {
		e.b = append(e.b, `,"current":{"total_spend":`...)
		e.float(c.TotalSpend)
		e.b = append(e.b, `,"expected":`...)
		e.floatMap(c.Expected)
		if len(c.Channels) > 0 {
			e.b = append(e.b, `,"channels":`...)
			e.channels(c.Channels)
		}
		e.b = append(e.b, '}')
	}
	if len(r.Channels) > 0 {
		e.b = append(e.b, `,"channels":`...)
		e.channels(r.Channels)
	}
	if c := r.Certificate; c != nil {
		e.b = append(e.b, `,"certificate":{"objective":`...)
		e.float(c.Objective)
		if c.UpperBound != nil {
			e.b = append(e.b, `,"upper_bound":`...)
			e.float(*c.UpperBound)
		}
		if c.LowerBound != nil {
			e.b = append(e.b, `,"lower_bound":`...)
			e.float(*c.LowerBound)
		}
		e.b = append(e.b, `,"gap":`...)
		e.float(c.Gap)
		e.b = append(e.b, '}')
	}
	if len(r.Messages) > 0 {
		e.b = append(e.b, `,"messages":[`...)
		for i, m := range r.Messages {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.str(m)
		}
		e.b = append(e.b, ']')
	}
	if len(r.Errors) > 0 {
		e.b = append(e.b, `,"errors":`...)
		e.fieldErrors(r.Errors)
	}
	g := &r.Engine
	e.b = append(e.b, `,"engine":{"version":`...)
	e.str(g.Version)
	if g.Algorithm != "" {
		e.b = append(e.b, `,"algorithm":`...)
		e.str(g.Algorithm)
	}
	e.b = append(e.b, `,"iterations":`...)
	e.b = strconv.AppendInt(e.b, int64(g.Iterations), 10)
	if g.Nodes != 0 {
		e.b = append(e.b, `,"nodes":`...)
		e.b = strconv.AppendInt(e.b, int64(g.Nodes), 10)
	}
	e.b = append(e.b, `,"elapsed_us":`...)
	e.b = strconv.AppendInt(e.b, g.ElapsedMicros, 10)
	e.b = append(e.b, "}}"...)
}

// appendRejection writes j as encoding/json writes it.
func appendRejection(b []byte, j *Rejection) []byte {
	e := resultEncoder{b: b}
	e.b = append(e.b, `{"request_id":`...)
	e.str(j.RequestID)
	e.b = append(e.b, `,"errors":`...)
	if j.Errors == nil {
		e.b = append(e.b, "null"...)
	} else {
		e.fieldErrors(j.Errors)
	}
	return append(e.b, '}')
}
