package engine

import (
	"fmt"
	"math"
	"math/rand"
)

func f64(v float64) *float64 { return &v }

// genModel makes a random model of n channels. kind: "concave", "hill" (S-shaped), "mixed".
func genModel(rng *rand.Rand, n int, kind string) *Model {
	m := &Model{ModelID: "gen", Baseline: 1000, Channels: map[string]Channel{}}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("ch%02d", i)
		beta := 1e5 * (0.5 + rng.Float64()*2)
		kappa := 2e4 * (0.3 + rng.Float64()*2)
		var c Curve
		k := kind
		if kind == "mixed" {
			k = []string{"concave", "hill", "linear"}[rng.Intn(3)]
		}
		switch k {
		case "hill":
			c = Curve{Type: "hill", Beta: f64(beta), Alpha: f64(1.5 + rng.Float64()*1.5), Kappa: f64(kappa)}
		case "linear":
			c = Curve{Type: "linear", Beta: f64(0.2 + rng.Float64())}
		default:
			switch rng.Intn(5) {
			case 0:
				c = Curve{Type: "saturation", Beta: f64(beta), Kappa: f64(kappa)}
			case 1:
				c = Curve{Type: "exponential", Beta: f64(beta), Kappa: f64(kappa)}
			case 2:
				c = Curve{Type: "log", Beta: f64(beta / 5), Kappa: f64(kappa)}
			case 3:
				c = Curve{Type: "power", Beta: f64(beta / 300), Alpha: f64(0.3 + rng.Float64()*0.6)}
			default:
				c = Curve{Type: "hill", Beta: f64(beta), Alpha: f64(0.4 + rng.Float64()*0.6), Kappa: f64(kappa)}
			}
		}
		ch := Channel{Curve: c}
		if rng.Intn(3) == 0 {
			ch.Adstock = &Adstock{Type: "geometric", Decay: f64(rng.Float64() * 0.6)}
		}
		m.Channels[name] = ch
	}
	return m
}

func genRequest(rng *rand.Rand, m *Model, total float64) *Request {
	req := &Request{Budget: map[string]float64{}, Constraints: Constraints{Total: &Total{Exact: f64(total)}}}
	for name := range m.Channels {
		req.Budget[name] = total / float64(len(m.Channels))
	}
	return req
}

// gridOptimum solves max Σ f_i(x_i) s.t. Σ x_i = T, lo ≤ x ≤ hi exactly on the grid of
// step T/G by dynamic programming; it also returns an upper bound on how far the true
// optimum can lie above the grid optimum (Σ_i max slope_i · step).
func gridOptimum(p *problem, G int) (best float64, slack float64) {
	T := p.tlo
	h := T / float64(G)
	n := p.n()
	neg := math.Inf(-1)
	V := make([]float64, G+1)
	for s := range V {
		V[s] = neg
	}
	V[0] = 0
	for i := 0; i < n; i++ {
		NV := make([]float64, G+1)
		for s := range NV {
			NV[s] = neg
		}
		vals := make([]float64, G+1)
		for k := 0; k <= G; k++ {
			x := float64(k) * h
			if x < p.lo[i]-1e-9 || x > p.hi[i]+1e-9 {
				vals[k] = neg
				continue
			}
			vals[k] = p.objective1(i, x)
		}
		for s := 0; s <= G; s++ {
			if V[s] == neg {
				continue
			}
			for k := 0; s+k <= G; k++ {
				if vals[k] == neg {
					continue
				}
				if v := V[s] + vals[k]; v > NV[s+k] {
					NV[s+k] = v
				}
			}
		}
		V = NV
		// max slope for the error bound: sample densely
		ms := 0.0
		for k := 0; k <= 4*G; k++ {
			x := float64(k) * T / float64(4*G)
			for kk, t := range p.terms[i] {
				if t != nil && p.w[kk] != 0 {
					if d := p.w[kk] * t.d1(x); finite(d) && d > ms {
						ms = d
					}
				}
			}
		}
		slack += ms * h
	}
	return V[G], slack
}

func (p *problem) objective1(i int, x float64) float64 {
	v := 0.0
	for k, t := range p.terms[i] {
		if t != nil && p.w[k] != 0 {
			v += p.w[k] * t.val(x)
		}
	}
	return v - p.cost*x
}
