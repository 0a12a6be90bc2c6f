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
		X = max(X, r.hi[i])
	}
	const snap = 1e-8
	freeVar := make([]bool, n)
	for i := 0; i < n; i++ {
		w := r.hi[i] - r.lo[i]
		switch {
		case w <= 1e-12*max(1, r.hi[i]):
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
	project := func(x []float64) {
		if len(rows) == 0 {
			return
		}
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
			w := make([]float64, n)
			for i := range w {
				if freeVar[i] {
					w[i] = 1
				}
			}
			G, _, ok := weightedGram(m, n, func(a int) ([]int, []float64) { return rows[a].idx, rows[a].coef }, w, nil, 1e-12)
			if !ok {
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
	project(x)
	// Newton steps on the active face: maximise the relaxed objective over the free
	// channels with the active rows held as equalities. The interior-point answer is
	// accurate to ~1e-9; this makes it exact to rounding where the face is smooth.
	if len(rows) > 0 && len(p.floors) == 0 {
		m := len(rows)
		for it := 0; it < 8; it++ {
			g := make([]float64, n)
			hinv := make([]float64, n)
			for i := 0; i < n; i++ {
				if !freeVar[i] {
					continue
				}
				g[i] = r.chanD1(i, p.w, x[i]) - p.cost
				h := -r.chanD2(i, p.w, x[i])
				scale := math.Abs(g[i])/max(X, 1) + 1e-300
				if h < 1e-6*scale {
					// linear channels: a proximal term keeps the step well conditioned;
					// repeated steps still converge to the face's optimum
					h = 1e-6 * scale
				}
				hinv[i] = 1 / h
			}
			G, rhs, ok := weightedGram(m, n, func(a int) ([]int, []float64) { return rows[a].idx, rows[a].coef }, hinv, g, 1e-12)
			if !ok {
				break
			}
			cholSolve(G, m, rhs)
			dx := make([]float64, n)
			for i := 0; i < n; i++ {
				if freeVar[i] {
					dx[i] = g[i]
				}
			}
			for a, ra := range rows {
				for j, i := range ra.idx {
					if freeVar[i] {
						dx[i] -= ra.coef[j] * rhs[a]
					}
				}
			}
			step, moved := 1.0, 0.0
			for i := 0; i < n; i++ {
				dx[i] *= hinv[i]
				if dx[i] > 0 {
					step = min(step, (r.hi[i]-x[i])/dx[i])
				} else if dx[i] < 0 {
					step = min(step, (r.lo[i]-x[i])/dx[i])
				}
				moved = max(moved, math.Abs(dx[i]))
			}
			if moved <= 1e-15*X || step <= 0 {
				break
			}
			before := p.relaxObjective(r, x)
			trial := append([]float64(nil), x...)
			for i := range trial {
				trial[i] = clamp(trial[i]+step*dx[i], r.lo[i], r.hi[i])
			}
			project(trial)
			if p.relaxObjective(r, trial) < before || !p.feasibleLinear(trial, r.lo, r.hi, 1e-12) {
				break
			}
			x = trial
		}
	}
	// Keep the polished point only if it is feasible and no worse.
	if p.feasibleLinear(x, r.lo, r.hi, 1e-12) && p.floorsHold(r, x) &&
		p.relaxObjective(r, x) >= p.relaxObjective(r, res.x)-1e-9*max(1, math.Abs(p.relaxObjective(r, res.x))) {
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
		if v < f.rhs-1e-9*max(1, math.Abs(f.rhs)) {
			return false
		}
	}
	return true
}

// activeBound is a second proven bound, from multipliers fitted exactly at a polished
// point: on the channels strictly inside their boxes, stationarity says the slope equals
// the priced sum of the active rows, which determines the multipliers by least squares.
// Where the interior-point multipliers are only accurate to ~1e-9 (linear curves make the
// dual bound sensitive to them), these give the vertex's exact prices.
func (r *relax) activeBound(x []float64) (float64, dualCert) {
	p := r.p
	n := p.n()
	X := 1.0
	for i := 0; i < n; i++ {
		X = max(X, r.hi[i])
	}
	const snap = 1e-9
	type act struct {
		idx  []int
		coef []float64
		rhs  float64
		sign float64 // +1: at its maximum (ν ≥ 0), −1: at its minimum (ν ≤ 0), 0: equality
		// floor ≥ 0 marks an active KPI floor, linearised as −∇G·x ≤ −F: its multiplier
		// scales the KPI's curves in the dual instead of pricing spend.
		floor int
	}
	var rows []act
	all := make([]int, n)
	ones := make([]float64, n)
	for i := range all {
		all[i], ones[i] = i, 1
	}
	add := func(idx []int, coef []float64, lo, hi, v float64) {
		switch {
		case lo == hi:
			rows = append(rows, act{idx, coef, lo, 0, -1})
		case math.Abs(v-hi) <= snap*X:
			rows = append(rows, act{idx, coef, hi, 1, -1})
		case math.Abs(v-lo) <= snap*X:
			rows = append(rows, act{idx, coef, lo, -1, -1})
		}
	}
	add(all, ones, p.tlo, p.thi, sum(x))
	for k := range p.rows {
		rw := &p.rows[k]
		add(rw.idx, rw.coef, rw.lo, rw.hi, rw.eval(x))
	}
	for fi, f := range p.floors {
		v, scale := 0.0, max(1, math.Abs(f.rhs))
		coef := make([]float64, n)
		for i := 0; i < n; i++ {
			if e := &r.env[i][f.kpi]; e.t != nil {
				v += e.val(x[i])
				coef[i] = -e.d1(x[i])
			}
		}
		if v-f.rhs <= 1e-9*scale {
			rows = append(rows, act{all, coef, -f.rhs, 1, fi})
		}
	}
	m := len(rows)
	if m == 0 {
		return math.Inf(1), dualCert{}
	}
	// Each free channel's stationarity equation is weighted by its inverse curvature:
	// a slope mismatch on a linear channel costs |mismatch|·(box width) in the bound, on a
	// curved one only second-order, so the fit must be exact where curvature is nil.
	free := make([]bool, n)
	g := make([]float64, n)
	wt := make([]float64, n)
	nfree := 0
	for i := 0; i < n; i++ {
		if x[i] > r.lo[i]+snap*X && x[i] < r.hi[i]-snap*X {
			free[i] = true
			nfree++
			g[i] = r.chanD1(i, p.w, x[i]) - p.cost
			h := -r.chanD2(i, p.w, x[i]) * X
			floor := 1e-8 * (math.Abs(g[i]) + 1e-300)
			wt[i] = 1 / max(h, floor)
		}
	}
	if nfree == 0 {
		return math.Inf(1), dualCert{}
	}
	G, rhs, ok := weightedGram(m, n, func(a int) ([]int, []float64) { return rows[a].idx, rows[a].coef }, wt, g, 1e-13)
	if !ok {
		return math.Inf(1), dualCert{}
	}
	cholSolve(G, m, rhs)
	lam := make([]float64, n)
	for i := range lam {
		lam[i] = p.cost
	}
	coef := append([]float64(nil), p.w...)
	bound := 0.0
	for a, ra := range rows {
		nu := rhs[a]
		if ra.sign*nu < 0 {
			nu = 0
		}
		bound += nu * ra.rhs
		if ra.floor >= 0 {
			coef[p.floors[ra.floor].kpi] += nu
			continue
		}
		for j, i := range ra.idx {
			lam[i] += nu * ra.coef[j]
		}
	}
	konst := bound
	for i := 0; i < n; i++ {
		xi, _ := r.chanArgmax(i, coef, lam[i])
		bound += r.chanVal(i, coef, xi) - lam[i]*xi
	}
	return bound, dualCert{lam: lam, coef: coef, konst: konst, bound: bound, anyBox: true}
}

// weightedGram forms and factors G = A·diag(w)·Aᵀ over the m rows given by row (channel
// indices and coefficients), with a relative ridge on the diagonal, and returns it with
// rhs = A·diag(w)·g (nil when g is). Channels with w = 0 take no part. It reports false
// when G is not positive definite.
func weightedGram(m, n int, row func(a int) ([]int, []float64), w, g []float64, ridge float64) ([]float64, []float64, bool) {
	G := make([]float64, m*m)
	var rhs []float64
	if g != nil {
		rhs = make([]float64, m)
	}
	dense := make([]float64, n)
	for a := 0; a < m; a++ {
		ia, ca := row(a)
		for j, i := range ia {
			if w[i] != 0 {
				dense[i] = ca[j] * w[i]
				if g != nil {
					rhs[a] += ca[j] * w[i] * g[i]
				}
			}
		}
		for b := a; b < m; b++ {
			ib, cb := row(b)
			v := 0.0
			for j, i := range ib {
				v += cb[j] * dense[i]
			}
			G[a*m+b], G[b*m+a] = v, v
		}
		for _, i := range ia {
			dense[i] = 0
		}
		G[a*m+a] += ridge * (1 + G[a*m+a])
	}
	return G, rhs, cholesky(G, m)
}
