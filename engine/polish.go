package engine

import "math"

// polish turns an interior-point answer, which sits a hair inside every active
// constraint, into a point exactly on them: channels next to a bound are put on it, and
// the remaining channels are moved by the least amount that makes the active linear rows
// hold exactly. A linear program's vertex comes out exact (350000, not 350000.0000002),
// and an exact total is spent in full.
func (r *relax) polish(res *ipmResult) []float64 {
	p := r.p
	n := p.n()
	x := append([]float64(nil), res.x...)
	X := 1.0
	for i := 0; i < n; i++ {
		X = math.Max(X, r.hi[i])
	}
	const snap = 1e-8
	freeVar := make([]bool, n)
	for i := 0; i < n; i++ {
		w := r.hi[i] - r.lo[i]
		switch {
		case w <= 1e-12*math.Max(1, r.hi[i]):
			x[i] = r.lo[i]
		case x[i]-r.lo[i] <= snap*X:
			x[i] = r.lo[i]
		case r.hi[i]-x[i] <= snap*X:
			x[i] = r.hi[i]
		default:
			freeVar[i] = true
		}
	}
	// Active linear rows: the total when exact or at an end, and rows at a side.
	type act struct {
		idx  []int
		coef []float64
		rhs  float64
	}
	var rows []act
	all := make([]int, n)
	ones := make([]float64, n)
	for i := range all {
		all[i], ones[i] = i, 1
	}
	s := sum(x)
	consider := func(idx []int, coef []float64, lo, hi, v float64) {
		switch {
		case lo == hi || math.Abs(v-lo) <= snap*X:
			rows = append(rows, act{idx, coef, lo})
		case math.Abs(v-hi) <= snap*X:
			rows = append(rows, act{idx, coef, hi})
		}
	}
	consider(all, ones, p.tlo, p.thi, s)
	for k := range p.rows {
		rw := &p.rows[k]
		consider(rw.idx, rw.coef, rw.lo, rw.hi, rw.eval(x))
	}
	if len(rows) > 0 {
		for pass := 0; pass < 3; pass++ {
			m := len(rows)
			// residuals and the normal equations over the free channels
			resid := make([]float64, m)
			for a, rw := range rows {
				v := 0.0
				for j, i := range rw.idx {
					v += rw.coef[j] * x[i]
				}
				resid[a] = rw.rhs - v
			}
			if infNorm(resid) == 0 {
				break
			}
			G := make([]float64, m*m)
			dense := make([]float64, n)
			for a, ra := range rows {
				for j, i := range ra.idx {
					if freeVar[i] {
						dense[i] = ra.coef[j]
					}
				}
				for b := a; b < m; b++ {
					v := 0.0
					for j, i := range rows[b].idx {
						v += rows[b].coef[j] * dense[i]
					}
					G[a*m+b], G[b*m+a] = v, v
				}
				for _, i := range ra.idx {
					dense[i] = 0
				}
				G[a*m+a] += 1e-12 * (1 + G[a*m+a])
			}
			if !cholesky(G, m) {
				break
			}
			cholSolve(G, m, resid)
			for a, ra := range rows {
				for j, i := range ra.idx {
					if freeVar[i] {
						x[i] += ra.coef[j] * resid[a]
					}
				}
			}
			for i := range x {
				x[i] = clamp(x[i], r.lo[i], r.hi[i])
			}
		}
	}
	// Keep the polished point only if it is feasible and no worse.
	if p.feasibleLinear(x, r.lo, r.hi, 1e-12) && p.floorsHold(r, x) &&
		p.relaxObjective(r, x) >= p.relaxObjective(r, res.x)-1e-9*math.Max(1, math.Abs(p.relaxObjective(r, res.x))) {
		return x
	}
	return res.x
}

func (p *problem) relaxObjective(r *relax, x []float64) float64 {
	v := 0.0
	for i := range x {
		v += r.chanVal(i, p.w, x[i]) - p.cost*x[i]
	}
	return v
}

func (p *problem) floorsHold(r *relax, x []float64) bool {
	for _, f := range p.floors {
		v := 0.0
		for i := range x {
			if e := &r.env[i][f.kpi]; e.t != nil {
				v += e.val(x[i])
			}
		}
		if v < f.rhs-1e-9*math.Max(1, math.Abs(f.rhs)) {
			return false
		}
	}
	return true
}
