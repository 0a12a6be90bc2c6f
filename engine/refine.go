package engine

import "math"

// refine finishes an interior-point answer exactly with a small active-set method: the
// constraints and bounds that hold at x are taken as equalities, Newton's method solves
// the Karush-Kuhn-Tucker system on that face to machine precision, and the face is
// corrected (a free channel that leaves its box is fixed at the bound, a constraint or a
// bound whose multiplier has the wrong sign is released) until the point satisfies every
// optimality condition. It returns the refined point and the bound certified by its
// multipliers, or ok = false when the face is degenerate (the system is singular) or the
// corrections do not settle, in which case the caller keeps the interior-point answer.
func (r *relax) refine(x0 []float64, hint *ipmResult) (x []float64, ub float64, cert dualCert, ok bool) {
	p := r.p
	n := p.n()
	if n > 200 {
		return nil, 0, dualCert{}, false // dense factorisation: keep it to small problems
	}
	X := 1.0
	for i := 0; i < n; i++ {
		X = max(X, r.hi[i])
	}
	const snap = 1e-8
	x = append([]float64(nil), x0...)

	// Constraints in one list: linear rows (total first) and floors.
	type con = refCon
	all := make([]int, n)
	ones := make([]float64, n)
	for i := range all {
		all[i], ones[i] = i, 1
	}
	cons := []con{{all, ones, p.tlo, p.thi, -1}}
	for _, rw := range p.rows {
		cons = append(cons, con{rw.idx, rw.coef, rw.lo, rw.hi, -1})
	}
	for fi, f := range p.floors {
		cons = append(cons, con{nil, nil, f.rhs, math.Inf(1), fi})
	}
	value := func(c *con, x []float64) float64 {
		if c.floor < 0 {
			v := 0.0
			for j, i := range c.idx {
				v += c.coef[j] * x[i]
			}
			return v
		}
		v := 0.0
		k := p.floors[c.floor].kpi
		for i := 0; i < n; i++ {
			if e := &r.env[i][k]; e.t != nil {
				v += e.val(x[i])
			}
		}
		return v
	}
	scaleOf := func(c *con) float64 {
		if c.floor < 0 {
			return X
		}
		return max(1, math.Abs(c.lo))
	}
	// Active set: side[j] = +1 at hi, −1 at lo, 0 inactive (equalities count as +1). The
	// interior-point method's multipliers say which constraints it ends on, more reliably
	// than distances when it stopped early; distances decide otherwise.
	side := make([]int, len(cons))
	for j := range cons {
		c := &cons[j]
		if hint != nil {
			side[j] = hint.active[j]
		}
		if c.lo == c.hi {
			side[j] = 1
		}
		if side[j] != 0 {
			continue
		}
		v := value(c, x)
		switch {
		case math.Abs(v-c.hi) <= snap*scaleOf(c):
			side[j] = 1
		case math.Abs(v-c.lo) <= snap*scaleOf(c):
			side[j] = -1
		}
	}
	// Bounds: at[i] = −1 at lo, +1 at hi, 0 free.
	at := make([]int, n)
	for i := 0; i < n; i++ {
		hb := 0
		if hint != nil {
			hb = hint.atBound[i]
		}
		switch {
		case r.hi[i]-r.lo[i] <= 1e-12*max(1, r.hi[i]) || x[i]-r.lo[i] <= snap*X || hb < 0:
			at[i], x[i] = -1, r.lo[i]
		case r.hi[i]-x[i] <= snap*X || hb > 0:
			at[i], x[i] = 1, r.hi[i]
		}
	}
	coefAt := func(j, i int) float64 { // ∂c_j/∂x_i
		c := &cons[j]
		if c.floor >= 0 {
			if e := &r.env[i][p.floors[c.floor].kpi]; e.t != nil {
				return e.d1(x[i])
			}
			return 0
		}
		for jj, ii := range c.idx {
			if ii == i {
				return c.coef[jj]
			}
		}
		return 0
	}
	var mu []float64
	for round := 0; round < 12; round++ {
		var free, act []int
		for i := 0; i < n; i++ {
			if at[i] == 0 {
				free = append(free, i)
			}
		}
		for j := range cons {
			if side[j] != 0 {
				act = append(act, j)
			}
		}
		nf, m := len(free), len(act)
		mu = make([]float64, m)
		converged := false
		for it := 0; it < 30; it++ {
			// Newton on the face: [H −Cᵀ; C 0][dx; μ] = [−∇φ; −c], with H the Hessian of
			// the Lagrangian (diagonal: the problem is separable).
			N := nf + m
			K := make([]float64, N*N)
			rhs := make([]float64, N)
			for a, i := range free {
				h := r.chanD2(i, p.w, x[i])
				for b, j := range act {
					if c := &cons[j]; c.floor >= 0 {
						if e := &r.env[i][p.floors[c.floor].kpi]; e.t != nil {
							h -= mu[b] * e.d2(x[i])
						}
					}
				}
				K[a*N+a] = h
				rhs[a] = -(r.chanD1(i, p.w, x[i]) - p.cost)
				for b, j := range act {
					d := coefAt(j, i)
					K[a*N+nf+b] = -d
					K[(nf+b)*N+a] = d
				}
			}
			for b, j := range act {
				c := &cons[j]
				target := c.hi
				if side[j] < 0 {
					target = c.lo
				}
				rhs[nf+b] = -(value(c, x) - target)
			}
			if !solveDense(K, rhs, N) {
				return nil, 0, dualCert{}, false
			}
			step := 0.0
			for a, i := range free {
				x[i] += rhs[a]
				step = max(step, math.Abs(rhs[a]))
			}
			copy(mu, rhs[nf:])
			if step <= 1e-14*X {
				converged = true
				break
			}
		}
		if !converged {
			return nil, 0, dualCert{}, false
		}
		// Corrections: a free channel outside its box goes onto the bound it crossed.
		changed := false
		for _, i := range free {
			if x[i] < r.lo[i] {
				at[i], x[i], changed = -1, r.lo[i], true
			} else if x[i] > r.hi[i] {
				at[i], x[i], changed = 1, r.hi[i], true
			}
		}
		if changed {
			continue
		}
		// Inactive constraints must hold.
		for j := range cons {
			if side[j] != 0 {
				continue
			}
			c := &cons[j]
			v := value(c, x)
			tol := 1e-12 * scaleOf(c)
			if v > c.hi+tol {
				side[j], changed = 1, true
			} else if v < c.lo-tol {
				side[j], changed = -1, true
			}
		}
		if changed {
			continue
		}
		// Multiplier signs: at a maximum μ ≥ 0, at a minimum μ ≤ 0 (equalities free).
		worst, wj := 0.0, -1
		for b, j := range act {
			c := &cons[j]
			if c.lo == c.hi {
				continue
			}
			if v := -float64(side[j]) * mu[b]; v > worst {
				worst, wj = v, j
			}
		}
		// Reduced gradients of channels at bounds: at the minimum it must not pay to
		// increase, at the maximum not to decrease.
		wi := -1
		for i := 0; i < n; i++ {
			if at[i] == 0 || r.hi[i]-r.lo[i] <= 1e-12*max(1, r.hi[i]) {
				continue
			}
			g := r.chanD1(i, p.w, x[i]) - p.cost
			for b, j := range act {
				g -= mu[b] * coefAt(j, i)
			}
			scale := 1e-9 * (math.Abs(r.chanD1(i, p.w, x[i])) + p.cost + 1e-300)
			if v := float64(-at[i]) * g; v > scale && v > worst {
				worst, wi, wj = v, i, -1
			}
		}
		switch {
		case wi >= 0:
			at[wi] = 0
		case wj >= 0:
			side[wj] = 0
		default:
			// KKT holds: x is the relaxation's optimum. Certify it with these multipliers.
			refs := make([]conRef, 0, len(act))
			for b, j := range act {
				c := cons[j]
				rhs := c.hi
				if side[j] < 0 {
					rhs = c.lo
				}
				refs = append(refs, conRef{idx: c.idx, coef: c.coef, rhs: rhs, floor: c.floor, mu: mu[b], linear: c.floor < 0})
			}
			ub, cert := r.multiplierBound(refs)
			return x, ub, cert, true
		}
	}
	return nil, 0, dualCert{}, false
}

// refCon is a constraint as refine sees it: a linear row (or the total) lo ≤ a·x ≤ hi, or
// a KPI floor G(x) ≥ lo.
type refCon struct {
	idx    []int
	coef   []float64
	lo, hi float64
	floor  int // index into p.floors, or -1
}

// conRef is an active constraint with its multiplier.
type conRef struct {
	idx    []int
	coef   []float64
	rhs    float64
	floor  int
	mu     float64
	linear bool
}

// multiplierBound is the Lagrangian dual at multipliers μ of the active constraints
// (L = φ − Σ μ_j (c_j(x) − rhs_j)); inactive ones have μ = 0. Valid for any μ with the
// right signs, which refine has checked.
func (r *relax) multiplierBound(cs []conRef) (float64, dualCert) {
	p := r.p
	n := p.n()
	lam := make([]float64, n)
	for i := range lam {
		lam[i] = p.cost
	}
	coef := append([]float64(nil), p.w...)
	bound := 0.0
	for _, c := range cs {
		bound += c.mu * c.rhs
		if !c.linear {
			coef[p.floors[c.floor].kpi] -= c.mu // L = φ − μ(G − F), μ ≤ 0
			continue
		}
		for j, i := range c.idx {
			lam[i] += c.mu * c.coef[j]
		}
	}
	for _, w := range coef {
		if w < 0 {
			return math.Inf(1), dualCert{}
		}
	}
	konst := bound
	for i := 0; i < n; i++ {
		xi, _ := r.chanArgmax(i, coef, lam[i])
		bound += r.chanVal(i, coef, xi) - lam[i]*xi
	}
	return bound, dualCert{lam: lam, coef: coef, konst: konst, bound: bound, anyBox: true}
}

// solveDense solves the N×N system K·s = b in place by Gaussian elimination with partial
// pivoting (b receives s). It reports false for a singular matrix.
func solveDense(K, b []float64, N int) bool {
	scale := 0.0
	for _, v := range K {
		scale = max(scale, math.Abs(v))
	}
	if scale == 0 {
		return N == 0
	}
	for col := 0; col < N; col++ {
		piv, best := -1, 0.0
		for r := col; r < N; r++ {
			if v := math.Abs(K[r*N+col]); v > best {
				piv, best = r, v
			}
		}
		if piv < 0 || best <= 1e-14*scale {
			return false
		}
		if piv != col {
			for c := 0; c < N; c++ {
				K[col*N+c], K[piv*N+c] = K[piv*N+c], K[col*N+c]
			}
			b[col], b[piv] = b[piv], b[col]
		}
		for r := col + 1; r < N; r++ {
			f := K[r*N+col] / K[col*N+col]
			if f == 0 {
				continue
			}
			for c := col; c < N; c++ {
				K[r*N+c] -= f * K[col*N+c]
			}
			b[r] -= f * b[col]
		}
	}
	for r := N - 1; r >= 0; r-- {
		v := b[r]
		for c := r + 1; c < N; c++ {
			v -= K[r*N+c] * b[c]
		}
		b[r] = v / K[r*N+r]
	}
	return true
}
