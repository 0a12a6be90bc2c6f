package engine

import (
	"encoding/json"
	"math"
	"math/rand"
	"testing"
)

// appendModelJSON must write json.Marshal's bytes, or decline: model hashes are stored
// with every result and compared across builds.
func TestModelJSONMatchesMarshal(t *testing.T) {
	check := func(m *Model) {
		t.Helper()
		want, err := json.Marshal(m)
		got, ok := appendModelJSON(nil, m)
		if err != nil {
			if ok {
				t.Fatalf("json.Marshal fails (%v) but appendModelJSON wrote %s", err, got)
			}
			return
		}
		if ok {
			fastCount++
		}
		if ok && string(got) != string(want) {
			t.Fatalf("appendModelJSON:\n%s\njson.Marshal:\n%s", got, want)
		}
	}
	rng := rand.New(rand.NewSource(1))
	floats := []float64{0, math.Copysign(0, -1), 1, -1, 0.5, 1e-6, 9.99999e-7, 1e-7, -1e-7, 1e21, 9.99999e20, 1e22,
		-1e22, 1e300, 5e-324, math.MaxFloat64, 123456789.125, 1.0 / 3, 2.5e-10, 1e15, 1e-5}
	num := func() float64 {
		switch rng.Intn(40) {
		case 0:
			return math.Float64frombits(rng.Uint64()) // any bits, NaN and Inf included
		case 1, 2, 3, 4, 5, 6, 7, 8, 9, 10:
			return floats[rng.Intn(len(floats))]
		case 11, 12, 13:
			return math.Float64frombits(rng.Uint64() &^ (1 << 62)) // finite, any magnitude
		default:
			return math.Exp(rng.NormFloat64()*20) * float64(1-2*rng.Intn(2))
		}
	}
	names := []string{"", "tv", "ch01", "a b", `q"uote`, `back\slash`, "<tag>", "a&b", "tab\t", "é", "日本", "\u2028",
		"\xff", "ctl\x01", "~", "Z", "zz"}
	plain := []string{"", "tv", "ch01", "a b", "~", "Z", "zz", "search_brand", "KPI-2", "x.y"}
	name := func() string {
		if rng.Intn(8) == 0 { // now and then one that needs escaping
			return names[rng.Intn(len(names))]
		}
		return plain[rng.Intn(len(plain))]
	}
	ptr := func() *float64 {
		if rng.Intn(3) == 0 {
			return nil
		}
		v := num()
		return &v
	}
	types := []string{"hill", "saturation", "exponential", "power", "log", "logistic", "piecewise", "linear", "", "x<y"}
	channels := func() map[string]Channel {
		if rng.Intn(10) == 0 {
			return nil
		}
		chs := map[string]Channel{}
		for k := rng.Intn(6); k > 0; k-- {
			c := Channel{Curve: Curve{Type: types[rng.Intn(len(types))], Beta: ptr(), Alpha: ptr(), Kappa: ptr(), K: ptr(), X0: ptr()}}
			switch rng.Intn(4) {
			case 0:
				c.Curve.Points = [][]float64{}
			case 1:
				for j := rng.Intn(4); j >= 0; j-- {
					var p []float64
					if rng.Intn(5) > 0 {
						p = []float64{num(), num()}
					}
					c.Curve.Points = append(c.Curve.Points, p)
				}
			}
			if rng.Intn(2) == 0 {
				c.Adstock = &Adstock{Type: name(), Decay: ptr()}
			}
			chs[name()+name()] = c
		}
		return chs
	}
	for n := 0; n < 20000; n++ {
		m := &Model{ModelID: name(), Baseline: num(), Channels: channels()}
		if rng.Intn(2) == 0 {
			m.KPI = name()
		}
		switch rng.Intn(3) {
		case 0:
			m.KPIs = map[string]KPIModel{}
		case 1:
			m.KPIs = map[string]KPIModel{}
			for k := rng.Intn(3); k >= 0; k-- {
				m.KPIs[name()] = KPIModel{Baseline: num(), Channels: channels()}
			}
		}
		check(m)
	}
	t.Logf("%d of 20000 random models took the direct path", fastCount)
	if fastCount < 5000 {
		t.Fatalf("only %d of 20000 random models took the direct path", fastCount)
	}
	// the plain models every benchmark and test uses take the fast path
	m := &Model{ModelID: "m", Baseline: 1e5, Channels: map[string]Channel{"tv": {Curve: Curve{Type: "hill", Beta: ptrTo(1e6), Alpha: ptrTo(2), Kappa: ptrTo(5e4)}}}}
	if _, ok := appendModelJSON(nil, m); !ok {
		t.Fatal("a plain model fell back to json.Marshal")
	}
	check(m)
}

func ptrTo(v float64) *float64 { return &v }

var fastCount int
