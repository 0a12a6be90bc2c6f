package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
)

// ModelHash is the content hash of a model: SHA-256 of its canonical JSON (struct field
// order, map keys sorted, numbers in Go's shortest round-trip form), so that formatting
// and key order in the published event do not change it.
//
// The canonical JSON is encoding/json's own output for the model. appendModelJSON writes
// the same bytes directly (tested against json.Marshal); where it meets anything it does
// not write the same way by construction (a string needing escapes, a number that is not
// finite) it leaves the model to json.Marshal.
func ModelHash(m *Model) string {
	b, ok := appendModelJSON(make([]byte, 0, 256+160*len(m.Channels)), m)
	if !ok {
		var err error
		if b, err = json.Marshal(m); err != nil { // a validated model always marshals
			panic(fmt.Sprintf("engine: model does not marshal: %v", err))
		}
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// appendModelJSON appends json.Marshal(m)'s bytes to b; ok is false where it cannot be
// sure to match them (b is then garbage).
func appendModelJSON(b []byte, m *Model) ([]byte, bool) {
	ok := true
	str := func(s string) {
		for i := 0; i < len(s); i++ {
			// printable ASCII that encoding/json writes as is (it escapes " \ < > &)
			if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				ok = false
				return
			}
		}
		b = append(b, '"')
		b = append(b, s...)
		b = append(b, '"')
	}
	num := func(f float64) {
		if math.IsInf(f, 0) || math.IsNaN(f) {
			ok = false
			return
		}
		// encoding/json's floatEncoder: %f-like between 1e-6 and 1e21, else %e with the
		// exponent's leading zero dropped
		abs := math.Abs(f)
		format := byte('f')
		if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
			format = 'e'
		}
		b = strconv.AppendFloat(b, f, format, -1, 64)
		if format == 'e' {
			if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
				b[n-2] = b[n-1]
				b = b[:n-1]
			}
		}
	}
	optNum := func(key string, p *float64) {
		if p != nil {
			b = append(b, ',', '"')
			b = append(b, key...)
			b = append(b, '"', ':')
			num(*p)
		}
	}
	channels := func(chs map[string]Channel) {
		if chs == nil {
			b = append(b, "null"...)
			return
		}
		keys := make([]string, 0, len(chs))
		for k := range chs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			str(k)
			ch := chs[k]
			c := &ch.Curve
			b = append(b, `:{"curve":{"type":`...)
			str(c.Type)
			optNum("beta", c.Beta)
			optNum("alpha", c.Alpha)
			optNum("kappa", c.Kappa)
			optNum("k", c.K)
			optNum("x0", c.X0)
			if len(c.Points) > 0 {
				b = append(b, `,"points":[`...)
				for j, p := range c.Points {
					if j > 0 {
						b = append(b, ',')
					}
					if p == nil {
						b = append(b, "null"...)
						continue
					}
					b = append(b, '[')
					for q, v := range p {
						if q > 0 {
							b = append(b, ',')
						}
						num(v)
					}
					b = append(b, ']')
				}
				b = append(b, ']')
			}
			b = append(b, '}')
			if a := ch.Adstock; a != nil {
				b = append(b, `,"adstock":{"type":`...)
				str(a.Type)
				b = append(b, `,"decay":`...)
				if a.Decay == nil {
					b = append(b, "null"...)
				} else {
					num(*a.Decay)
				}
				b = append(b, '}')
			}
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	b = append(b, `{"model_id":`...)
	str(m.ModelID)
	if m.KPI != "" {
		b = append(b, `,"kpi":`...)
		str(m.KPI)
	}
	b = append(b, `,"baseline":`...)
	num(m.Baseline)
	b = append(b, `,"channels":`...)
	channels(m.Channels)
	if len(m.KPIs) > 0 {
		keys := make([]string, 0, len(m.KPIs))
		for k := range m.KPIs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, `,"kpis":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			str(k)
			km := m.KPIs[k]
			b = append(b, `:{"baseline":`...)
			num(km.Baseline)
			b = append(b, `,"channels":`...)
			channels(km.Channels)
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	b = append(b, '}')
	return b, ok
}
