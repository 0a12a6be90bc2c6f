package engine

import "math"

// The dual active-set method solves a relaxation whose coupling constraints are all
// linear (the total, groups, shares, ratios; no KPI floors). With m such rows the
// Lagrangian dual
//
//	g(μ) = Σ_i max_{x_i in its box} [G_i(x_i) − λ_i·x_i] + Σ_j σ_j(μ_j),
//	λ_i = cost + Σ_j μ_j·a_ji,  σ_j(μ) = μ·hi_j for μ > 0, μ·lo_j for μ < 0,
//
// is a convex function of the m multipliers whose every evaluation is separable: each
// channel's maximiser at its price is the one-dimensional inverse the price search uses
// (chanArgmax). g bounds the relaxation, and so the problem, for any μ; at its minimum
// the maximisers meet the rows and the bound is the relaxation's optimum.
//
// g is smooth except where a channel's price equals the slope of a linear piece of its
// envelope (a bridge), where the channel's spend jumps across the piece. The method is
// Newton's on the active rows, with such channels "pinned": their price is held at the
// kink (one linear equation in μ) and their spend on the piece is an unknown of the
// Newton system, so that it is a small dense system in (μ of the active rows, spend of
// the pinned channels). A step stops at the first kink it reaches (the channel is
// pinned there) and at the first multiplier that would change sign (its row is dropped),
// and backtracks until g decreases. Once the face is solved, a pinned channel whose
// spend falls outside its piece is released toward the end it wants, and rows that the
// plan breaks are added. The point it ends on satisfies every optimality condition of
// the relaxation, and the bound is g at its multipliers, evaluated exactly.
//
// It is the first choice for coupled relaxations: a few evaluations of the channels'
// maximisers per node instead of the interior-point method's hundred Newton steps,
// and children start from their parent's multipliers and pins. Where it does not settle
// (a degenerate face, a curve with several terms, floors) solveRelax falls back on the
// interior-point method, which answers every request it did before.

// dualRows are the linear rows by channel: row 0 is the total, row k+1 is p.rows[k].
type dualRows struct {
	lo, hi []float64 // per row
	cmax   []float64 // each row's largest |coefficient|
	start  []int     // channel i's entries are row[start[i]:start[i+1]], coef likewise
	row    []int
	coef   []float64
}

func newDualRows(p *problem) *dualRows {
	n, m := p.n(), 1+len(p.rows)
	d := &dualRows{lo: make([]float64, m), hi: make([]float64, m), cmax: make([]float64, m), start: make([]int, n+1)}
	d.lo[0], d.hi[0], d.cmax[0] = p.tlo, p.thi, 1
	cnt := d.start[1:]
	for i := range cnt {
		cnt[i] = 1
	}
	for k := range p.rows {
		rw := &p.rows[k]
		d.lo[k+1], d.hi[k+1] = rw.lo, rw.hi
		for j, i := range rw.idx {
			if rw.coef[j] != 0 {
				cnt[i]++
				d.cmax[k+1] = max(d.cmax[k+1], math.Abs(rw.coef[j]))
			}
		}
	}
	for i := 0; i < n; i++ {
		d.start[i+1] += d.start[i]
	}
	d.row = make([]int, d.start[n])
	d.coef = make([]float64, d.start[n])
	fill := make([]int, n)
	copy(fill, d.start[:n])
	for i := 0; i < n; i++ {
		d.row[fill[i]], d.coef[fill[i]] = 0, 1
		fill[i]++
	}
	for k := range p.rows {
		rw := &p.rows[k]
		for j, i := range rw.idx {
			if rw.coef[j] != 0 {
				d.row[fill[i]], d.coef[fill[i]] = k+1, rw.coef[j]
				fill[i]++
			}
		}
	}
	return d
}

// dualWarm is where a dual solve ended: its multipliers, active rows and pinned
// channels, for the children of its node to start from.
type dualWarm struct {
	rows   *dualRows
	lo, hi []float64 // the box it was found on
	mu     []float64 // per row
	side   []int8    // per row: +1 at its maximum (or an equality), −1 at its minimum, 0 inactive
	pinK   []float64 // per channel: the price it is pinned at (NaN: not pinned)
	pinIdx []int     // and which kink of its envelope
	// unbounded: the method failed on a step that nothing stopped, a direction along
	// which the dual seemed to fall without end (the box is likely infeasible; the
	// simplex decides where it matters)
	unbounded bool
}

// kinkCount is the number of prices at which channel i's maximiser jumps (the slopes
// of its envelope's linear pieces, weighted); kink returns the k-th (in decreasing
// order) and the piece's ends. Only channels with one term (or none) are asked.
func (r *relax) kinkCount(i int) int {
	if r.hi[i] <= r.lo[i] {
		return 0
	}
	s := r.cs[i].single
	if s == -1 {
		return 1
	}
	e := &r.env[i][s]
	switch {
	case e.h != nil:
		return len(e.h.s) - 1
	case e.z > e.a, e.t.kind == kindLinear || e.t.kind == kindPower && e.t.alpha == 1:
		return 1
	}
	return 0
}

func (r *relax) kink(i, k int) (price, xl, xh float64) {
	s := r.cs[i].single
	if s == -1 {
		return 0, r.lo[i], r.hi[i]
	}
	e, cf := &r.env[i][s], r.p.w[s]
	switch {
	case e.h != nil:
		return e.h.s[k] * cf, e.h.x[k], e.h.x[k+1]
	case e.z > e.a:
		return e.m * cf, e.a, e.z
	}
	return e.t.d1(e.a) * cf, e.a, e.b
}

// nextKink is the nearest kink price of channel i strictly beyond lam in the direction
// dir (+1 up, −1 down), other than skip; ok is false when there is none.
func (r *relax) nextKink(i int, lam float64, dir int, skip float64) (price float64, k int, ok bool) {
	nk := r.kinkCount(i)
	for q := 0; q < nk; q++ {
		pr, _, _ := r.kink(i, q)
		if pr == skip {
			continue
		}
		if dir > 0 && pr > lam && (!ok || pr < price) || dir < 0 && pr < lam && (!ok || pr > price) {
			price, k, ok = pr, q, true
		}
	}
	return
}

// nearestKink is the kink of channel i whose price is nearest lam.
func (r *relax) nearestKink(i int, lam float64) int {
	best, dist := -1, math.Inf(1)
	for q := 0; q < r.kinkCount(i); q++ {
		pr, _, _ := r.kink(i, q)
		if d := math.Abs(pr - lam); d < dist {
			best, dist = q, d
		}
	}
	return best
}

const dualMaxIter = 60

// dualSolve runs the dual active-set method on r, from warm (a parent's final state)
// or, with warm nil, from the price search's answer with the total alone. It returns
// the relaxation's optimal point (feasible for the linear rows to rounding, exactly on
// the active ones), the bound g(μ), the multipliers behind it, its final state, and
// the channel evaluations it made (in units of n); ok is false where it did not settle.
func (r *relax) dualSolve(warm *dualWarm) (x []float64, ub float64, cert dualCert, st *dualWarm, iters int, ok bool) {
	p := r.p
	n := p.n()
	if len(p.floors) > 0 || n == 0 {
		return
	}
	X := 1.0
	for i := 0; i < n; i++ {
		if s := r.cs[i].single; s == -2 || (s >= 0 && !(p.w[s] > 0)) || !(r.hi[i] < math.Inf(1)) {
			return
		}
		X = max(X, r.hi[i])
	}
	rows := (*dualRows)(nil)
	if warm != nil {
		rows = warm.rows
	} else {
		rows = newDualRows(p)
	}
	m := len(rows.lo)
	c := p.cost
	st = &dualWarm{rows: rows, lo: r.lo, hi: r.hi, mu: make([]float64, m), side: make([]int8, m),
		pinK: make([]float64, n), pinIdx: make([]int, n)}
	mu, side, pinK, pinIdx := st.mu, st.side, st.pinK, st.pinIdx
	for i := range pinK {
		pinK[i] = math.NaN()
	}
	tolR := make([]float64, m)
	for j := range tolR {
		tolR[j] = 1e-12 * X * rows.cmax[j]
	}
	f := p.ws.floats(13*n + 6*m)
	lam, x, D, hv := f[:n:n], f[n:2*n:2*n], f[2*n:3*n:3*n], f[3*n:4*n:4*n]
	lamT, xT, DT, hvT := f[4*n:5*n:5*n], f[5*n:6*n:6*n], f[6*n:7*n:7*n], f[7*n:8*n:8*n]
	xhT := f[8*n : 9*n : 9*n]
	pinL, pinH, tp := f[9*n:10*n:10*n], f[10*n:11*n:11*n], f[11*n:12*n:12*n]
	delta := f[12*n : 13*n : 13*n]
	f = f[13*n:]
	muT, dmu, rv := f[:m:m], f[m:2*m:2*m], f[2*m:3*m:3*m]
	// Released channels: the kink a channel was just unpinned from, the way it leaves it
	// (+1: toward a lower price and the piece's high end, −1: the other way), and how it
	// is modelled until its price has moved off the kink.
	var relDir []int8
	var relX, relD, relKs []float64
	released := func(i int) bool { return relKs != nil && !math.IsNaN(relKs[i]) }
	// atRelease: a released channel's price is still at the price it was released at, to
	// rounding, so that the end it is modelled at is one of its maximisers
	atRelease := func(i int, l float64) bool {
		k := relKs[i]
		return math.Abs(l-k) <= 1e-13*max(math.Abs(k), math.Abs(l), 1e-300)
	}
	release := func(i int, k float64, dir int8, xe, de float64) {
		if relKs == nil {
			relKs, relX, relD = make([]float64, n), make([]float64, n), make([]float64, n)
			relDir = make([]int8, n)
			for i := range relKs {
				relKs[i] = math.NaN()
			}
		}
		relKs[i], relDir[i], relX[i], relD[i] = k, dir, xe, de
	}

	equality := func(j int) bool { return rows.lo[j] == rows.hi[j] }
	sigma := func(j int, v float64) float64 {
		switch {
		case v > 0:
			return v * rows.hi[j]
		case v < 0:
			return v * rows.lo[j]
		}
		return 0
	}
	price := func(mu []float64, i int) float64 {
		l := c
		for e := rows.start[i]; e < rows.start[i+1]; e++ {
			if v := mu[rows.row[e]]; v != 0 {
				l += v * rows.coef[e]
			}
		}
		return l
	}
	// eval evaluates the maximiser of every channel that is not pinned at the
	// multipliers mu (and D, its rate of change with the price).
	eval := func(mu, lam, x, D, xh []float64) {
		iters++
		for i := 0; i < n; i++ {
			l := price(mu, i)
			lam[i] = l
			if !math.IsNaN(pinK[i]) {
				continue
			}
			if released(i) && atRelease(i, l) {
				xi := relX[i]
				x[i], xh[i], D[i] = xi, xi, relD[i]
				continue
			}
			xl, xhi := r.chanArgmax(i, p.w, l)
			x[i], xh[i], D[i] = xl, xhi, 0
			if xl > r.lo[i] && xl < r.hi[i] && xl == xhi {
				d2 := r.cs[i].d2
				if d2 == 0 {
					d2 = r.chanD2(i, p.w, xl)
				}
				if d2 < 0 {
					D[i] = -1 / d2
				}
			}
		}
	}
	// values fills hv with the channels' terms of the dual at the maximisers x (the
	// pinned channels' left out: their price is fixed) and returns the restricted dual
	// and its scale. The line search asks for them only where the slope cannot decide.
	values := func(mu, lam, x, hv []float64) (float64, float64) {
		phi, scale := 0.0, 0.0
		for i := 0; i < n; i++ {
			if math.IsNaN(pinK[i]) {
				hv[i] = r.chanVal(i, p.w, x[i]) - lam[i]*x[i]
				phi += hv[i]
				scale += math.Abs(hv[i])
			}
		}
		for j := range mu {
			v := sigma(j, mu[j])
			phi += v
			scale += math.Abs(v)
		}
		return phi, scale
	}
	hvOK := false
	pin := func(i int, k float64, q int) {
		pinK[i], pinIdx[i] = k, q
		_, pinL[i], pinH[i] = r.kink(i, q)
		tp[i] = x[i]
		if released(i) {
			relKs[i] = math.NaN()
		}
	}

	if warm != nil {
		copy(mu, warm.mu)
		copy(side, warm.side)
		for i := 0; i < n; i++ {
			if k := warm.pinK[i]; !math.IsNaN(k) && r.lo[i] == warm.lo[i] && r.hi[i] == warm.hi[i] {
				if q := warm.pinIdx[i]; q < r.kinkCount(i) {
					if pr, _, _ := r.kink(i, q); pr == k || math.Abs(pr-k) <= 1e-13*math.Abs(pr) {
						pinK[i], pinIdx[i] = k, q
						_, pinL[i], pinH[i] = r.kink(i, q)
					}
				}
			}
		}
	} else {
		x0, _, ev, ok0 := r.lambdaSolve(p.w)
		iters += ev
		if !ok0 || x0 == nil {
			return
		}
		mu[0] = r.lam - c
		switch {
		case equality(0) || mu[0] > 0:
			side[0] = 1
		case mu[0] < 0:
			side[0] = -1
		default:
			mu[0] = 0
		}
		for j := 1; j < m; j++ {
			v := p.rows[j-1].eval(x0)
			switch {
			case equality(j) || v > rows.hi[j]+tolR[j]:
				side[j] = 1
			case v < rows.lo[j]-tolR[j]:
				side[j] = -1
			}
		}
	}
	eval(mu, lam, x, D, xhT)
	for i := 0; i < n; i++ {
		if math.IsNaN(pinK[i]) && x[i] != xhT[i] {
			if q := r.nearestKink(i, lam[i]); q >= 0 {
				pin(i, lam[i], q)
			}
		}
	}

	// Newton system: unknowns dμ of the active rows, then the pinned channels' spend.
	var act, pins []int
	rowPos := make([]int, m)
	var K, rhs, work, Kc, rc []float64
	var perm []int
	lastRelease, lastReleaseK := -1, 0.0
	converged := false
	for it := 0; it < dualMaxIter; it++ {
		act, pins = act[:0], pins[:0]
		for j := 0; j < m; j++ {
			rowPos[j] = -1
			if side[j] != 0 {
				rowPos[j] = len(act)
				act = append(act, j)
			}
		}
		for i := 0; i < n; i++ {
			if !math.IsNaN(pinK[i]) {
				pins = append(pins, i)
			}
		}
		ma := len(act)
		N := ma + len(pins)
		if N == 0 {
			break // nothing couples the channels: x is the optimum
		}
		// row values over the channels that are not pinned
		for j := range rv {
			rv[j] = 0
		}
		for i := 0; i < n; i++ {
			if !math.IsNaN(pinK[i]) {
				continue
			}
			for e := rows.start[i]; e < rows.start[i+1]; e++ {
				rv[rows.row[e]] += rows.coef[e] * x[i]
			}
		}
		if cap(K) < N*N {
			K, rhs = make([]float64, N*N), make([]float64, N)
		}
		K, rhs = K[:N*N], rhs[:N]
		clear(K)
		for a, j := range act {
			target := rows.hi[j]
			if side[j] < 0 {
				target = rows.lo[j]
			}
			rhs[a] = -(rv[j] - target)
		}
		for i := 0; i < n; i++ {
			if D[i] == 0 || !math.IsNaN(pinK[i]) {
				continue
			}
			for e := rows.start[i]; e < rows.start[i+1]; e++ {
				pa := rowPos[rows.row[e]]
				if pa < 0 {
					continue
				}
				ca := rows.coef[e] * D[i]
				for g := rows.start[i]; g < rows.start[i+1]; g++ {
					if pb := rowPos[rows.row[g]]; pb >= 0 {
						K[pa*N+pb] -= ca * rows.coef[g]
					}
				}
			}
		}
		for q, i := range pins {
			for e := rows.start[i]; e < rows.start[i+1]; e++ {
				if pa := rowPos[rows.row[e]]; pa >= 0 {
					K[pa*N+ma+q] = rows.coef[e]
					K[(ma+q)*N+pa] = rows.coef[e]
				}
			}
			rhs[ma+q] = pinK[i] - lam[i]
		}
		if len(work) < 2*N {
			work, perm = make([]float64, 2*N), make([]int, N)
		}
		if len(Kc) < N*N {
			Kc, rc = make([]float64, N*N), make([]float64, N)
		}
		copy(Kc, K)
		copy(rc, rhs)
		singular := false
		if !solveDegenerate(K, rhs, N, work, perm) {
			// The active rows ask more than the channels that can move smoothly can give:
			// channels at their bounds must leave them. A small proximal term makes the
			// step a descent on g along which the dual is linear, stopped below at the
			// first channel that leaves a bound (or a kink, or a sign change).
			eps := 0.0
			for a := 0; a < ma; a++ {
				eps = max(eps, math.Abs(Kc[a*N+a]))
			}
			eps = 1e-9*eps + 1e-300
			copy(K, Kc)
			copy(rhs, rc)
			for a := 0; a < ma; a++ {
				K[a*N+a] -= eps
			}
			if !solveDegenerate(K, rhs, N, work, perm) {
				return
			}
			singular = true
		}
		clear(dmu)
		for a, j := range act {
			dmu[j] = rhs[a]
		}
		for q, i := range pins {
			tp[i] = rhs[ma+q]
		}
		// The face is solved when the rows hold with the pinned channels' spend: what
		// is left is the step's effect through the curved channels.
		faceDone := true
		for _, j := range act {
			v := rv[j] - rows.hi[j]
			if side[j] < 0 {
				v = rv[j] - rows.lo[j]
			}
			for _, i := range pins {
				for e := rows.start[i]; e < rows.start[i+1]; e++ {
					if rows.row[e] == j {
						v += rows.coef[e] * tp[i]
					}
				}
			}
			if math.Abs(v) > tolR[j] {
				faceDone = false
			}
		}
		if faceDone {
			// Optimality: every pinned channel's spend on its piece, every inactive row
			// met. Release the worst pin first, else add the broken rows.
			worst, wi, dir := 0.0, -1, int8(0)
			tolX := 1e-12 * X
			for _, i := range pins {
				if v := pinL[i] - tp[i]; v > tolX && v > worst {
					worst, wi, dir = v, i, -1
				}
				if v := tp[i] - pinH[i]; v > tolX && v > worst {
					worst, wi, dir = v, i, 1
				}
			}
			if wi >= 0 {
				k := pinK[wi]
				pinK[wi] = math.NaN()
				xe, de := pinL[wi], 0.0
				if dir > 0 {
					xe = pinH[wi]
					if xe < r.hi[wi] {
						if d2 := r.chanD2(wi, p.w, xe); d2 < 0 {
							de = -1 / d2
						}
					}
				}
				release(wi, k, dir, xe, de)
				x[wi], D[wi] = xe, de
				hvOK = false
				lastRelease, lastReleaseK = wi, k
				continue
			}
			added := false
			// row values with the pinned spend
			for j := range rv {
				if side[j] != 0 {
					continue
				}
				v := rv[j]
				for _, i := range pins {
					for e := rows.start[i]; e < rows.start[i+1]; e++ {
						if rows.row[e] == j {
							v += rows.coef[e] * tp[i]
						}
					}
				}
				switch {
				case v > rows.hi[j]+tolR[j]:
					side[j], added = 1, true
				case v < rows.lo[j]-tolR[j]:
					side[j], added = -1, true
				}
			}
			if added {
				continue
			}
			converged = true
			break
		}
		// Step: stop at the first kink and the first multiplier that changes sign.
		for i := 0; i < n; i++ {
			d := 0.0
			for e := rows.start[i]; e < rows.start[i+1]; e++ {
				d += dmu[rows.row[e]] * rows.coef[e]
			}
			delta[i] = d
		}
		alpha, blockRow, blockChan, blockK, blockQ := 1.0, -1, -1, 0.0, 0
		for _, j := range act {
			if equality(j) || dmu[j] == 0 {
				continue
			}
			if float64(side[j])*(mu[j]+dmu[j]) < 0 {
				if a := -mu[j] / dmu[j]; a < alpha {
					alpha, blockRow, blockChan = max(a, 0), j, -1
				}
			}
		}
		for i := 0; i < n; i++ {
			if !math.IsNaN(pinK[i]) || delta[i] == 0 {
				continue
			}
			dir := 1
			if delta[i] < 0 {
				dir = -1
			}
			skip := math.NaN()
			if released(i) && int8(dir) == -relDir[i] {
				skip = relKs[i] // leaving it the way it was released
			}
			if k, q, found := r.nextKink(i, lam[i], dir, skip); found {
				if a := (k - lam[i]) / delta[i]; a < alpha {
					alpha, blockRow, blockChan, blockK, blockQ = max(a, 0), -1, i, k, q
				}
			}
		}
		leave, leaveK := -1, 0.0
		if singular {
			// channels on a smooth part of their curve at a bound, whose price moves the
			// way that takes them off it
			for i := 0; i < n; i++ {
				if !math.IsNaN(pinK[i]) || delta[i] == 0 || D[i] != 0 || released(i) || r.kinkCount(i) > 0 && !r.bridgeOnly(i) {
					continue
				}
				var at float64
				switch {
				case x[i] >= r.hi[i] && delta[i] > 0:
					at = r.hi[i]
				case x[i] <= r.lo[i] && delta[i] < 0:
					at = r.lo[i]
				default:
					continue
				}
				if r.onBridge(i, at) {
					continue // it leaves at the bridge's slope: a kink
				}
				k := r.chanD1(i, p.w, at)
				if a := (k - lam[i]) / delta[i]; finite(k) && a >= 0 && a < alpha {
					alpha, blockRow, blockChan, leave, leaveK = a, -1, -1, i, k
				}
			}
			if blockRow < 0 && blockChan < 0 && leave < 0 {
				st.unbounded = true // nothing stops the step: no plan in the box meets the rows, likely
				return
			}
		}
		if blockChan >= 0 && blockChan == lastRelease && blockK == lastReleaseK && alpha == 0 {
			return // released and caught again at once: a degenerate face
		}
		// The step is taken where the restricted dual's slope along it has fallen to
		// half its size (or turned) — convex, so no higher than where it started — and
		// otherwise where its value does not rise.
		slope := func(x []float64) float64 {
			v := 0.0
			for _, j := range act {
				t := rows.hi[j]
				if side[j] < 0 {
					t = rows.lo[j]
				}
				v += dmu[j] * t
			}
			for i := 0; i < n; i++ {
				if math.IsNaN(pinK[i]) {
					v -= delta[i] * x[i]
				}
			}
			return v
		}
		s0 := slope(x)
		accepted, valsT := false, false
		for ls := 0; ls < 30; ls++ {
			for j := range muT {
				muT[j] = mu[j] + alpha*dmu[j]
			}
			if blockRow >= 0 {
				muT[blockRow] = 0
			}
			eval(muT, lamT, xT, DT, xhT)
			if alpha == 0 || s0 < 0 && slope(xT) <= -0.5*s0 {
				accepted, valsT = true, false
				break
			}
			var phiRef, scale float64
			if hvOK {
				phiRef, scale = 0, 0
				for i := 0; i < n; i++ {
					if math.IsNaN(pinK[i]) {
						phiRef += hv[i]
						scale += math.Abs(hv[i])
					}
				}
				for j := range mu {
					v := sigma(j, mu[j])
					phiRef += v
					scale += math.Abs(v)
				}
			} else {
				phiRef, scale = values(mu, lam, x, hv)
				hvOK = true
			}
			if phiT, _ := values(muT, lamT, xT, hvT); phiT <= phiRef+1e-12*scale {
				accepted, valsT = true, true
				break
			}
			alpha /= 2
			blockRow, blockChan, leave = -1, -1, -1
		}
		if !accepted {
			return
		}
		copy(mu, muT)
		lam, lamT = lamT, lam
		x, xT = xT, x
		D, DT = DT, D
		hv, hvT = hvT, hv
		hvOK = valsT
		lastRelease = -1
		if blockRow >= 0 {
			mu[blockRow], side[blockRow] = 0, 0
		}
		if blockChan >= 0 {
			pin(blockChan, blockK, blockQ)
		}
		if leave >= 0 {
			// modelled on the curve at its bound until its price has moved past the slope
			// there, as a released channel is
			at, dir := x[leave], int8(1)
			if delta[leave] > 0 {
				dir = -1
			}
			de := 0.0
			if d2 := r.chanD2(leave, p.w, at); d2 < 0 {
				de = -1 / d2
			}
			release(leave, leaveK, dir, at, de)
		}
		for i := 0; i < n; i++ {
			if math.IsNaN(pinK[i]) && x[i] != xhT[i] {
				// exactly at a kink: pinned there
				if q := r.nearestKink(i, lam[i]); q >= 0 {
					pin(i, lam[i], q)
				}
			}
			if released(i) && !atRelease(i, lam[i]) {
				relKs[i] = math.NaN() // off the price it was released at (either way)
			}
		}
	}
	if !converged {
		return
	}
	for i := 0; i < n; i++ {
		if !math.IsNaN(pinK[i]) {
			x[i] = clamp(tp[i], pinL[i], pinH[i])
		}
	}
	xs := p.ws.floats(n)
	copy(xs, x)
	r.dualProject(xs, rows, side, pinK, D, X)
	if !p.feasibleLinear(xs, r.lo, r.hi, 1e-12) {
		return
	}
	// The bound: g at μ over every channel, the pinned ones at their own price; and the
	// relaxation's objective at the point (before its last rounding-level projection).
	clam := make([]float64, n)
	ub = 0
	robj := 0.0
	for i := 0; i < n; i++ {
		l, xi := lam[i], x[i]
		if released(i) && math.IsNaN(pinK[i]) {
			// (x is the end it was modelled at: a maximiser only to rounding)
			xi, _ = r.chanArgmax(i, p.w, l)
			robj -= c * x[i]
			robj += r.chanVal(i, p.w, x[i])
			clam[i] = l
			v := r.chanVal(i, p.w, xi)
			ub += v - l*xi
			continue
		}
		if !math.IsNaN(pinK[i]) {
			l = price(mu, i)
			xi, _ = r.chanArgmax(i, p.w, l)
			robj += r.chanVal(i, p.w, x[i]) - c*x[i]
		}
		clam[i] = l
		v := r.chanVal(i, p.w, xi)
		ub += v - l*xi
		if math.IsNaN(pinK[i]) {
			robj += v - c*xi
		}
	}
	konst := 0.0
	for j := range mu {
		konst += sigma(j, mu[j])
	}
	ub += konst
	if !finite(ub) {
		return
	}
	// The point must be the relaxation's maximiser and the bound its value, to rounding:
	// a row met only to an absolute tolerance can leave the bound loose where a curve's
	// slope is unbounded at the end of its box.
	if !(math.Abs(ub-robj) <= 1e-10*max(math.Abs(ub), math.Abs(robj), 1e-300)) {
		return
	}
	cert = dualCert{lam: clam, coef: append([]float64(nil), p.w...), konst: konst, bound: ub, anyBox: true}
	return xs, ub, cert, st, iters, true
}

// dualProject moves the channels that are free (strictly inside their boxes, on a
// curved part or pinned on a piece) by the least amount that makes the active rows
// hold exactly, as polish does for the interior-point answer.
func (r *relax) dualProject(x []float64, rows *dualRows, side []int8, pinK, D []float64, X float64) {
	n := len(x)
	m := len(side)
	var act []int
	pos := make([]int, m)
	for j := 0; j < m; j++ {
		pos[j] = -1
		if side[j] != 0 {
			pos[j] = len(act)
			act = append(act, j)
		}
	}
	ma := len(act)
	if ma == 0 {
		return
	}
	free := make([]bool, n)
	for i := 0; i < n; i++ {
		free[i] = x[i] > r.lo[i] && x[i] < r.hi[i] && (D[i] > 0 || !math.IsNaN(pinK[i]))
	}
	G := make([]float64, ma*ma)
	res := make([]float64, ma)
	for pass := 0; pass < 3; pass++ {
		clear(res)
		for i := 0; i < n; i++ {
			for e := rows.start[i]; e < rows.start[i+1]; e++ {
				if a := pos[rows.row[e]]; a >= 0 {
					res[a] += rows.coef[e] * x[i]
				}
			}
		}
		done := true
		for a, j := range act {
			t := rows.hi[j]
			if side[j] < 0 {
				t = rows.lo[j]
			}
			res[a] = t - res[a]
			if res[a] != 0 {
				done = false
			}
		}
		if done {
			return
		}
		clear(G)
		for i := 0; i < n; i++ {
			if !free[i] {
				continue
			}
			for e := rows.start[i]; e < rows.start[i+1]; e++ {
				a := pos[rows.row[e]]
				if a < 0 {
					continue
				}
				for g := rows.start[i]; g < rows.start[i+1]; g++ {
					if b := pos[rows.row[g]]; b >= 0 {
						G[a*ma+b] += rows.coef[e] * rows.coef[g]
					}
				}
			}
		}
		for a := 0; a < ma; a++ {
			G[a*ma+a] += 1e-12 * (1 + G[a*ma+a])
		}
		if !cholesky(G, ma) {
			return
		}
		cholSolve(G, ma, res)
		for i := 0; i < n; i++ {
			if !free[i] {
				continue
			}
			d := 0.0
			for e := rows.start[i]; e < rows.start[i+1]; e++ {
				if a := pos[rows.row[e]]; a >= 0 {
					d += rows.coef[e] * res[a]
				}
			}
			x[i] = clamp(x[i]+d, r.lo[i], r.hi[i])
		}
	}
}

// solveDegenerate solves the symmetric N×N system K·s = b in place (b receives s) by
// Gaussian elimination with complete pivoting on the equilibrated matrix. Where K is
// singular (more active rows than curved channels to meet them, ties between pinned
// channels) the unknowns it cannot determine are set to zero, which leaves their
// multipliers where they are; it reports false when what remains is inconsistent.
func solveDegenerate(K, b []float64, N int, work []float64, perm []int) bool {
	s := work[:N]
	for a := 0; a < N; a++ {
		m := 0.0
		for c := 0; c < N; c++ {
			m = max(m, math.Abs(K[a*N+c]))
		}
		s[a] = 1
		if m > 0 {
			s[a] = 1 / math.Sqrt(m)
		}
	}
	for a := 0; a < N; a++ {
		for c := 0; c < N; c++ {
			K[a*N+c] *= s[a] * s[c]
		}
		b[a] *= s[a]
	}
	for c := range perm[:N] {
		perm[c] = c
	}
	rank := N
	for k := 0; k < N; k++ {
		pr, pc, best := -1, -1, 0.0
		for a := k; a < N; a++ {
			for c := k; c < N; c++ {
				if v := math.Abs(K[a*N+c]); v > best {
					pr, pc, best = a, c, v
				}
			}
		}
		if best <= 1e-11 {
			rank = k
			break
		}
		if pr != k {
			for c := 0; c < N; c++ {
				K[k*N+c], K[pr*N+c] = K[pr*N+c], K[k*N+c]
			}
			b[k], b[pr] = b[pr], b[k]
		}
		if pc != k {
			for a := 0; a < N; a++ {
				K[a*N+k], K[a*N+pc] = K[a*N+pc], K[a*N+k]
			}
			perm[k], perm[pc] = perm[pc], perm[k]
		}
		for a := k + 1; a < N; a++ {
			f := K[a*N+k] / K[k*N+k]
			if f == 0 {
				continue
			}
			for c := k; c < N; c++ {
				K[a*N+c] -= f * K[k*N+c]
			}
			b[a] -= f * b[k]
		}
	}
	// what is left of b beyond the rank must vanish (to rounding)
	bs := 0.0
	for a := 0; a < rank; a++ {
		bs = max(bs, math.Abs(b[a]))
	}
	for a := rank; a < N; a++ {
		if math.Abs(b[a]) > 1e-9*max(bs, 1e-300) {
			return false
		}
	}
	y := work[N : 2*N]
	for a := N - 1; a >= 0; a-- {
		if a >= rank {
			y[a] = 0
			continue
		}
		v := b[a]
		for c := a + 1; c < N; c++ {
			v -= K[a*N+c] * y[c]
		}
		y[a] = v / K[a*N+a]
	}
	for k := 0; k < N; k++ {
		b[perm[k]] = y[k] * s[perm[k]]
	}
	return true
}

// bridgeOnly reports whether channel i's only kink is a bridge's slope (a smooth curve
// elsewhere), and onBridge whether x lies on that bridge (before its tangency point).
func (r *relax) bridgeOnly(i int) bool {
	s := r.cs[i].single
	if s < 0 {
		return false
	}
	e := &r.env[i][s]
	return e.h == nil && e.z > e.a && e.z < e.b && !(e.t.kind == kindLinear || e.t.kind == kindPower && e.t.alpha == 1)
}

func (r *relax) onBridge(i int, x float64) bool {
	s := r.cs[i].single
	if s < 0 {
		return false
	}
	e := &r.env[i][s]
	return e.h == nil && e.z > e.a && x < e.z
}
