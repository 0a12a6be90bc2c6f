package engine

import (
	"math"
)

// The interior-point method solves the relaxation when there are coupling constraints
// beyond the total (groups, shares, ratios) or KPI floors. It is a primal-dual method
// with Mehrotra's predictor-corrector on
//
//	maximise φ(x) = Σ_i [Σ_k w_k env_ik(x_i) − cost·x_i]
//	subject to E x = e, g_j(x) ≥ 0 (linear rows and concave floors), l ≤ x ≤ u.
//
// The objective is separable, so the Newton system reduces to a dense system with one
// row per coupling constraint. Its answer is only used as a guide: the bound reported is
// recomputed exactly from its multipliers (Lagrangian duality holds for any multipliers),
// and the point is snapped onto the active constraints before it is used.

type ipmRow struct {
	idx  []int // positions in the free-variable vector
	coef []float64
	rhs  float64 // row: coef·x̃ − rhs (≥ 0 for inequalities, = 0 for equalities)
	// floor rows are nonlinear: Σ_i env_i,kpi(x_i) − rhs ≥ 0
	floor int // index into p.floors, or -1
	scale float64
	label string
	src   int // which constraint: 0 the total, k+1 for p.rows[k], or the floor
	side  int // +1: the constraint's maximum, −1: its minimum
}

type ipmResult struct {
	// active lists the constraints (by src) the method ends on, with their side, and
	// atBound the channels it drives to a bound (−1 lower, +1 upper): the complementary
	// multiplier has outgrown the slack. refine starts from this guess.
	active  map[int]int
	atBound []int
	x       []float64 // unscaled, all channels
	y       []float64 // multipliers of equality rows (unscaled)
	z       []float64 // multipliers of inequality rows (unscaled, ≥ 0)
	eq      []ipmRow
	ineq    []ipmRow
	iters   int
	ok      bool
}

// ipmSolve runs the interior-point method on the relaxation r.
func (r *relax) ipmSolve() ipmResult {
	p := r.p
	n := p.n()
	// Fixed channels (zero-width boxes) are constants, the rest are variables.
	free := make([]int, 0, n)
	pos := make([]int, n)
	fixedX := make([]float64, n)
	X := 1.0
	for i := 0; i < n; i++ {
		X = max(X, r.hi[i])
		if r.hi[i]-r.lo[i] > 1e-12*max(1, r.hi[i]) {
			pos[i] = len(free)
			free = append(free, i)
		} else {
			pos[i] = -1
			fixedX[i] = r.lo[i]
		}
	}
	nf := len(free)

	// Value scale: the objective's range over the box.
	V := 0.0
	for _, i := range free {
		V += math.Abs(r.chanVal(i, p.w, r.hi[i])-r.chanVal(i, p.w, r.lo[i])) + p.cost*(r.hi[i]-r.lo[i])
	}
	if !(V > 0) {
		V = 1
	}

	// Rows in scaled units. A linear row lo ≤ a·x ≤ hi becomes equalities or ≥ rows on
	// the free variables, with the fixed channels moved to the right-hand side.
	var eq, ineq []ipmRow
	addLinear := func(src int, idx []int, coef []float64, lo, hi float64, label string) {
		fidx, fcoef := []int{}, []float64{}
		konst := 0.0
		for j, i := range idx {
			if pos[i] < 0 {
				konst += coef[j] * fixedX[i]
			} else if coef[j] != 0 {
				fidx = append(fidx, pos[i])
				fcoef = append(fcoef, coef[j])
			}
		}
		lo, hi = (lo-konst)/X, (hi-konst)/X
		if len(fidx) == 0 {
			return // checked by the caller's feasibility test
		}
		if lo == hi {
			eq = append(eq, ipmRow{idx: fidx, coef: fcoef, rhs: lo, floor: -1, scale: X, label: label, src: src, side: 1})
			return
		}
		if !math.IsInf(lo, -1) {
			ineq = append(ineq, ipmRow{idx: fidx, coef: fcoef, rhs: lo, floor: -1, scale: X, label: label, src: src, side: -1})
		}
		if !math.IsInf(hi, 1) {
			neg := make([]float64, len(fcoef))
			for j := range fcoef {
				neg[j] = -fcoef[j]
			}
			ineq = append(ineq, ipmRow{idx: fidx, coef: neg, rhs: -hi, floor: -1, scale: X, label: label, src: src, side: 1})
		}
	}
	all := make([]int, n)
	ones := make([]float64, n)
	for i := range all {
		all[i], ones[i] = i, 1
	}
	tlo := p.tlo
	sumLo := 0.0
	for i := 0; i < n; i++ {
		sumLo += r.lo[i]
	}
	if tlo <= sumLo && p.tlo != p.thi {
		tlo = math.Inf(-1) // implied by the boxes
	}
	addLinear(0, all, ones, tlo, p.thi, "total")
	for k, rw := range p.rows {
		addLinear(k+1, rw.idx, rw.coef, rw.lo, rw.hi, rw.label)
	}
	for fi, f := range p.floors {
		konst, rng := 0.0, 0.0
		var fidx []int
		for i := 0; i < n; i++ {
			e := &r.env[i][f.kpi]
			if e.t == nil {
				continue
			}
			if pos[i] < 0 {
				konst += e.val(fixedX[i])
			} else {
				fidx = append(fidx, pos[i])
				rng += e.val(r.hi[i]) - e.val(r.lo[i])
			}
		}
		sc := max(max(math.Abs(f.rhs), rng), 1e-300)
		ineq = append(ineq, ipmRow{idx: fidx, rhs: (f.rhs - konst) / sc, floor: fi, scale: sc, label: f.label, src: 1 + len(p.rows) + fi, side: -1})
	}
	ne, nq := len(eq), len(ineq)

	// Scaled box and state.
	l, u := make([]float64, nf), make([]float64, nf)
	x := make([]float64, nf)
	for j, i := range free {
		l[j], u[j] = r.lo[i]/X, r.hi[i]/X
		x[j] = l[j] + (u[j]-l[j])/2
	}
	s, z := make([]float64, nq), make([]float64, nq)
	y := make([]float64, ne)
	zl, zu := make([]float64, nf), make([]float64, nf)
	for j := range zl {
		zl[j], zu[j] = 1, 1
	}
	// work arrays
	grad, hess := make([]float64, nf), make([]float64, nf)
	gval := make([]float64, nq)
	jac := make([][]float64, nq) // dense per row over its idx
	for q := range ineq {
		jac[q] = make([]float64, len(ineq[q].idx))
	}
	D := make([]float64, nf)
	m := nq + ne
	M := make([]float64, m*m)
	rhsM := make([]float64, m)
	sol := make([]float64, m)
	h := make([]float64, nf)
	rd, rc, rp := make([]float64, nf), make([]float64, nq), make([]float64, ne)
	dx, ds, dz, dzl, dzu, dy := make([]float64, nf), make([]float64, nq), make([]float64, nq), make([]float64, nf), make([]float64, nf), make([]float64, ne)
	adx, ads, adz, adzl, adzu := make([]float64, nf), make([]float64, nq), make([]float64, nq), make([]float64, nf), make([]float64, nf)
	floorHess := make([]float64, nf)

	evalRows := func() {
		for q := range ineq {
			rw := &ineq[q]
			if rw.floor < 0 {
				v := -rw.rhs
				for j, fi := range rw.idx {
					v += rw.coef[j] * x[fi]
					jac[q][j] = rw.coef[j]
				}
				gval[q] = v
				continue
			}
			k := p.floors[rw.floor].kpi
			v := -rw.rhs
			for j, fi := range rw.idx {
				e := &r.env[free[fi]][k]
				xx := x[fi] * X
				v += e.val(xx) / rw.scale
				jac[q][j] = e.d1(xx) * X / rw.scale
			}
			gval[q] = v
		}
	}
	evalRows()
	for q := range s {
		s[q], z[q] = max(gval[q], 1), 1
	}

	// residuals and barrier parameter at the current point
	residuals := func() (float64, float64, float64, float64) {
		for j, i := range free {
			xx := x[j] * X
			grad[j] = (r.chanD1(i, p.w, xx) - p.cost) * X / V
			hess[j] = r.chanD2(i, p.w, xx) * X * X / V
			floorHess[j] = 0
		}
		evalRows()
		for j := range rd {
			rd[j] = grad[j] + zl[j] - zu[j]
		}
		for q := range ineq {
			rw := &ineq[q]
			for j, fi := range rw.idx {
				rd[fi] += jac[q][j] * z[q]
			}
			if rw.floor >= 0 {
				k := p.floors[rw.floor].kpi
				for _, fi := range rw.idx {
					e := &r.env[free[fi]][k]
					floorHess[fi] += z[q] * e.d2(x[fi]*X) * X * X / rw.scale
				}
			}
			rc[q] = gval[q] - s[q]
		}
		for q := range eq {
			rw := &eq[q]
			v := -rw.rhs
			for j, fi := range rw.idx {
				v += rw.coef[j] * x[fi]
				rd[fi] -= rw.coef[j] * y[q]
			}
			rp[q] = v
		}
		mu := 0.0
		for q := range s {
			mu += s[q] * z[q]
		}
		for j := range x {
			mu += (x[j]-l[j])*zl[j] + (u[j]-x[j])*zu[j]
		}
		cnt := float64(nq + 2*nf)
		if cnt > 0 {
			mu /= cnt
		}
		return infNorm(rd), infNorm(rc), infNorm(rp), mu
	}

	// solve fills dx, ds, dz, dzl, dzu, dy for complementarity targets given by the
	// callback (rho for s·z, lower and upper bounds).
	factorOK := true
	factor := func() {
		for j := range D {
			D[j] = -hess[j] - floorHess[j] + zl[j]/(x[j]-l[j]) + zu[j]/(u[j]-x[j])
			if D[j] < 1e-300 {
				D[j] = 1e-300
			}
		}
		for a := 0; a < m*m; a++ {
			M[a] = 0
		}
		// M = A D⁻¹ Aᵀ + diag(s/z, 0); rows of A: ineq (jac) then eq (coef)
		rowOf := func(a int) ([]int, []float64) {
			if a < nq {
				return ineq[a].idx, jac[a]
			}
			return eq[a-nq].idx, eq[a-nq].coef
		}
		dense := make([]float64, nf)
		for a := 0; a < m; a++ {
			ia, ca := rowOf(a)
			for j, fi := range ia {
				dense[fi] = ca[j] / D[fi]
			}
			for b := a; b < m; b++ {
				ib, cb := rowOf(b)
				v := 0.0
				for j, fi := range ib {
					v += cb[j] * dense[fi]
				}
				M[a*m+b], M[b*m+a] = v, v
			}
			for _, fi := range ia {
				dense[fi] = 0
			}
			if a < nq {
				M[a*m+a] += s[a] / z[a]
			} else {
				M[a*m+a] += 1e-14 * (1 + M[a*m+a])
			}
		}
		factorOK = cholesky(M, m)
	}
	solve := func(rhoS func(q int) float64, rhoL, rhoU func(j int) float64) {
		for j := range h {
			h[j] = rd[j] + rhoL(j)/(x[j]-l[j]) - rhoU(j)/(u[j]-x[j])
		}
		for q := range ineq {
			t := (rhoS(q) - z[q]*rc[q]) / s[q]
			for j, fi := range ineq[q].idx {
				h[fi] += jac[q][j] * t
			}
		}
		for a := 0; a < m; a++ {
			var idx []int
			var cf []float64
			if a < nq {
				idx, cf = ineq[a].idx, jac[a]
			} else {
				idx, cf = eq[a-nq].idx, eq[a-nq].coef
			}
			v := 0.0
			for j, fi := range idx {
				v += cf[j] * h[fi] / D[fi]
			}
			if a >= nq {
				v += rp[a-nq]
			}
			rhsM[a] = v
		}
		copy(sol, rhsM)
		cholSolve(M, m, sol)
		for j := range dx {
			dx[j] = h[j]
		}
		for a := 0; a < m; a++ {
			var idx []int
			var cf []float64
			if a < nq {
				idx, cf = ineq[a].idx, jac[a]
			} else {
				idx, cf = eq[a-nq].idx, eq[a-nq].coef
			}
			for j, fi := range idx {
				dx[fi] -= cf[j] * sol[a]
			}
		}
		for j := range dx {
			dx[j] /= D[j]
		}
		for q := range ineq {
			v := rc[q]
			for j, fi := range ineq[q].idx {
				v += jac[q][j] * dx[fi]
			}
			ds[q] = v
			dz[q] = (rhoS(q) - z[q]*ds[q]) / s[q]
		}
		for q := range eq {
			dy[q] = sol[nq+q]
		}
		for j := range dx {
			dzl[j] = (rhoL(j) - zl[j]*dx[j]) / (x[j] - l[j])
			dzu[j] = (rhoU(j) + zu[j]*dx[j]) / (u[j] - x[j])
		}
	}
	steps := func(tau float64) (float64, float64) {
		ap, ad := 1.0, 1.0
		for j := range x {
			if dx[j] < 0 {
				ap = min(ap, -tau*(x[j]-l[j])/dx[j])
			} else if dx[j] > 0 {
				ap = min(ap, tau*(u[j]-x[j])/dx[j])
			}
			if dzl[j] < 0 {
				ad = min(ad, -tau*zl[j]/dzl[j])
			}
			if dzu[j] < 0 {
				ad = min(ad, -tau*zu[j]/dzu[j])
			}
		}
		for q := range s {
			if ds[q] < 0 {
				ap = min(ap, -tau*s[q]/ds[q])
			}
			if dz[q] < 0 {
				ad = min(ad, -tau*z[q]/dz[q])
			}
		}
		return ap, ad
	}

	// nonlinearSteep: a channel's slope is unbounded at its lower bound (x^α, α < 1, or a
	// Hill curve with α < 1, from zero); only then is a line search worth its evaluations.
	nonlinearSteep := false
	for _, i := range free {
		if math.IsInf(r.chanD1(i, p.w, r.lo[i]), 1) {
			nonlinearSteep = true
		}
	}
	xt, st := make([]float64, nf), make([]float64, nq)
	meritFn := func(xv, sv []float64, mu, rho float64) float64 {
		f, infeas := 0.0, 0.0
		for j, i := range free {
			xx := xv[j] * X
			f -= (r.chanVal(i, p.w, xx) - p.cost*xx) / V
			f -= mu * (math.Log(xv[j]-l[j]) + math.Log(u[j]-xv[j]))
		}
		for q := range ineq {
			rw := &ineq[q]
			v := -rw.rhs
			if rw.floor < 0 {
				for j, fi := range rw.idx {
					v += rw.coef[j] * xv[fi]
				}
			} else {
				k := p.floors[rw.floor].kpi
				for _, fi := range rw.idx {
					v += r.env[free[fi]][k].val(xv[fi]*X) / rw.scale
				}
			}
			f -= mu * math.Log(sv[q])
			infeas += math.Abs(v - sv[q])
		}
		for q := range eq {
			rw := &eq[q]
			v := -rw.rhs
			for j, fi := range rw.idx {
				v += rw.coef[j] * xv[fi]
			}
			infeas += math.Abs(v)
		}
		return f + rho*infeas
	}
	res := ipmResult{eq: eq, ineq: ineq}
	// The iterate with the smallest residuals is kept: near the end, rounding can make
	// later steps worse rather than better.
	bestMerit := math.Inf(1)
	bx, bs, bz, by, bzl, bzu := make([]float64, nf), make([]float64, nq), make([]float64, nq), make([]float64, ne), make([]float64, nf), make([]float64, nf)
	const maxIter = 100
	for it := 0; it < maxIter; it++ {
		res.iters = it + 1
		nd, nc, np, mu := residuals()
		gscale := 1 + infNorm(grad)
		merit := max(max(nd/gscale, nc), max(np, mu))
		if math.IsNaN(merit) {
			break
		}
		if merit < bestMerit {
			bestMerit = merit
			copy(bx, x)
			copy(bs, s)
			copy(bz, z)
			copy(by, y)
			copy(bzl, zl)
			copy(bzu, zu)
		}
		if nd <= 1e-9*gscale && nc <= 1e-11 && np <= 1e-12 && mu <= 1e-13 {
			res.ok = true
			break
		}
		if mu < 1e-15 && merit > 1e3*bestMerit {
			break // diverging on rounding noise
		}
		factor()
		if !factorOK {
			break
		}
		// predictor
		solve(func(q int) float64 { return -s[q] * z[q] },
			func(j int) float64 { return -(x[j] - l[j]) * zl[j] },
			func(j int) float64 { return -(u[j] - x[j]) * zu[j] })
		ap, ad := steps(1)
		muAff := 0.0
		for q := range s {
			muAff += (s[q] + ap*ds[q]) * (z[q] + ad*dz[q])
		}
		for j := range x {
			muAff += (x[j] + ap*dx[j] - l[j]) * (zl[j] + ad*dzl[j])
			muAff += (u[j] - x[j] - ap*dx[j]) * (zu[j] + ad*dzu[j])
		}
		if cnt := float64(nq + 2*nf); cnt > 0 {
			muAff /= cnt
		}
		sigma := 0.0
		if mu > 0 {
			sigma = math.Pow(muAff/mu, 3)
		}
		sigma = min(sigma, 1)
		copy(adx, dx)
		copy(ads, ds)
		copy(adz, dz)
		copy(adzl, dzl)
		copy(adzu, dzu)
		// corrector
		// Keep the centring target from racing ahead of the residuals: with nonlinear
		// floors a complementarity far below the infeasibility stalls the method.
		smu := sigma * mu
		if len(p.floors) > 0 {
			smu = max(smu, 0.01*min(mu, max(max(nd/gscale, nc), np)))
		}
		solve(func(q int) float64 { return smu - s[q]*z[q] - ads[q]*adz[q] },
			func(j int) float64 { return smu - (x[j]-l[j])*zl[j] - adx[j]*adzl[j] },
			func(j int) float64 { return smu - (u[j]-x[j])*zu[j] + adx[j]*adzu[j] })
		tau := max(0.9, 1-mu)
		ap, ad = steps(tau)
		// Backtrack the primal step on a merit function (barrier objective plus an exact
		// penalty on the residuals): a full Newton step on curves with a steep end, such
		// as x^α with small α near zero, can land where the quadratic model is useless.
		if nonlinearSteep {
			rho := 1 + max(infNorm(y), infNorm(z))
			m0 := meritFn(x, s, mu, rho)
			for k := 0; k < 30; k++ {
				for j := range x {
					xt[j] = x[j] + ap*dx[j]
				}
				for q := range s {
					st[q] = s[q] + ap*ds[q]
				}
				if meritFn(xt, st, mu, rho) <= m0 {
					break
				}
				ap /= 2
			}
		}
		for j := range x {
			x[j] += ap * dx[j]
			zl[j] += ad * dzl[j]
			zu[j] += ad * dzu[j]
		}
		for q := range s {
			s[q] += ap * ds[q]
			z[q] += ad * dz[q]
		}
		for q := range y {
			y[q] += ad * dy[q]
		}
		if ap < 1e-14 && ad < 1e-14 {
			break
		}
	}
	copy(x, bx)
	copy(y, by)
	copy(z, bz)
	copy(s, bs)
	copy(zl, bzl)
	copy(zu, bzu)
	res.active = map[int]int{}
	for q := range eq {
		res.active[eq[q].src] = 1
	}
	for q := range ineq {
		if z[q] > s[q] {
			res.active[ineq[q].src] = ineq[q].side
		}
	}
	res.atBound = make([]int, n)
	for i := 0; i < n; i++ {
		if pos[i] < 0 {
			res.atBound[i] = -1
			continue
		}
		j := pos[i]
		if zl[j] > x[j]-l[j] {
			res.atBound[i] = -1
		} else if zu[j] > u[j]-x[j] {
			res.atBound[i] = 1
		}
	}
	res.ok = res.ok || bestMerit <= 1e-7
	res.x = make([]float64, n)
	for i := 0; i < n; i++ {
		if pos[i] < 0 {
			res.x[i] = fixedX[i]
		} else {
			res.x[i] = clamp(x[pos[i]]*X, r.lo[i], r.hi[i])
		}
	}
	res.y = make([]float64, ne)
	for q := range eq {
		res.y[q] = V * y[q] / eq[q].scale
	}
	res.z = make([]float64, nq)
	for q := range ineq {
		res.z[q] = max(0, V*z[q]/ineq[q].scale)
	}
	return res
}

// dualBound evaluates the Lagrangian dual function of the relaxation at the multipliers
// of an interior-point run: a proven upper bound on the relaxation and hence on the
// problem, whatever the multipliers' accuracy.
func (r *relax) dualBound(res *ipmResult) (float64, dualCert) {
	p := r.p
	n := p.n()
	// Map rows back to channel space: the ipm rows index free variables; rebuild from
	// the problem's rows in the same order ipmSolve used.
	lam := make([]float64, n)
	for i := range lam {
		lam[i] = p.cost
	}
	coefs := make([][]float64, n)
	konst := 0.0
	free := make([]int, 0, n)
	for i := 0; i < n; i++ {
		if r.hi[i]-r.lo[i] > 1e-12*max(1, r.hi[i]) {
			free = append(free, i)
		}
	}
	floorZ := make([]float64, len(p.floors))
	for q, rw := range res.eq {
		for j, fi := range rw.idx {
			lam[free[fi]] += res.y[q] * rw.coef[j]
		}
		konst += res.y[q] * rw.rhs * rw.scale
	}
	for q, rw := range res.ineq {
		zq := res.z[q]
		if rw.floor >= 0 {
			floorZ[rw.floor] += zq
			konst -= zq * rw.rhs * rw.scale
			continue
		}
		for j, fi := range rw.idx {
			lam[free[fi]] -= zq * rw.coef[j]
		}
		konst -= zq * rw.rhs * rw.scale
	}
	v := konst
	for i := 0; i < n; i++ {
		coefs[i] = append([]float64(nil), p.w...)
		for fi, f := range p.floors {
			coefs[i][f.kpi] += floorZ[fi]
		}
		xi, _ := r.chanArgmax(i, coefs[i], lam[i])
		v += r.chanVal(i, coefs[i], xi) - lam[i]*xi
	}
	// With a channel fixed, its terms went into konst: valid on this box only.
	return v, dualCert{lam: lam, coef: coefs[0], konst: konst, bound: v, anyBox: len(free) == n}
}

func infNorm(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = max(m, math.Abs(x))
	}
	return m
}

// cholesky factors the symmetric positive definite m×m matrix a in place (lower
// triangle). It reports false when a pivot is not positive.
func cholesky(a []float64, m int) bool {
	for j := 0; j < m; j++ {
		d := a[j*m+j]
		for k := 0; k < j; k++ {
			d -= a[j*m+k] * a[j*m+k]
		}
		if !(d > 0) {
			return false
		}
		d = math.Sqrt(d)
		a[j*m+j] = d
		for i := j + 1; i < m; i++ {
			v := a[i*m+j]
			for k := 0; k < j; k++ {
				v -= a[i*m+k] * a[j*m+k]
			}
			a[i*m+j] = v / d
		}
	}
	return true
}

func cholSolve(a []float64, m int, b []float64) {
	for i := 0; i < m; i++ {
		v := b[i]
		for k := 0; k < i; k++ {
			v -= a[i*m+k] * b[k]
		}
		b[i] = v / a[i*m+i]
	}
	for i := m - 1; i >= 0; i-- {
		v := b[i]
		for k := i + 1; k < m; k++ {
			v -= a[k*m+i] * b[k]
		}
		b[i] = v / a[i*m+i]
	}
}
