package engine

import (
	"fmt"
	"math"
	"strings"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize/convex/lp"
)

// linCon is one linear constraint of a problem, named for messages: a channel bound, the
// total, or a coupling row.
type linCon struct {
	label  string
	idx    []int
	coef   []float64
	lo, hi float64
	box    int // channel index for a bound (idx empty), else -1
	lower  bool
}

func (p *problem) linCons(lo, hi []float64) []linCon {
	var cs []linCon
	for i := range p.names {
		if lo[i] > 0 {
			cs = append(cs, linCon{label: boundLabel(p.loSrc[i], p.names[i], "min"), lo: lo[i], box: i, lower: true})
		}
		if !math.IsInf(hi[i], 1) {
			cs = append(cs, linCon{label: boundLabel(p.hiSrc[i], p.names[i], "max"), hi: hi[i], box: i})
		}
	}
	all := make([]int, len(p.names))
	ones := make([]float64, len(p.names))
	for i := range all {
		all[i], ones[i] = i, 1
	}
	if p.tlo > 0 || !math.IsInf(p.thi, 1) {
		cs = append(cs, linCon{label: p.totalSrc, idx: all, coef: ones, lo: p.tlo, hi: p.thi, box: -1})
	}
	for _, r := range p.rows {
		cs = append(cs, linCon{label: r.label, idx: r.idx, coef: r.coef, lo: r.lo, hi: r.hi, box: -1})
	}
	return cs
}

func boundLabel(src []string, name, side string) string {
	if len(src) == 0 {
		return fmt.Sprintf("channel %s %s", name, side)
	}
	return strings.Join(src, " and ")
}

// linearFeasible reports whether the linear constraints admit a point in the box.
func linearFeasible(p *problem, lo, hi []float64) bool {
	_, ok := linearFeasiblePoint(p, lo, hi)
	return ok
}

// feasibleWitness reports whether the plan x settles linearFeasible's question without
// the simplex: linearFeasible accepts the constraints when its phase-one optimum (the
// constraints' violations summed in units of the largest bound, after raising every
// channel to its minimum) is at most 1e-9, and x's own violations, so measured, are at
// most a tenth of that.
func (p *problem) feasibleWitness(x, lo, hi []float64) bool {
	if len(x) != len(lo) {
		return false
	}
	scale, viol := 1.0, 0.0
	bound := func(v float64) {
		if finite(v) {
			scale = max(scale, math.Abs(v))
		}
	}
	xs := p.ws.floats(len(x))
	sum := 0.0
	for i, v := range x {
		if lo[i] > 0 {
			bound(lo[i])
		}
		v = max(v, lo[i]) // the simplex's variables start at the minimums
		if !math.IsInf(hi[i], 1) {
			bound(hi[i])
			viol += max(0, v-hi[i])
		}
		xs[i] = v
		sum += v
	}
	if !(viol >= 0) {
		return false // NaN
	}
	if p.tlo > 0 || !math.IsInf(p.thi, 1) {
		bound(p.tlo)
		bound(p.thi)
		viol += max(0, p.tlo-sum, sum-p.thi)
	}
	for k := range p.rows {
		rw := &p.rows[k]
		bound(rw.lo)
		bound(rw.hi)
		v := rw.eval(xs)
		viol += max(0, rw.lo-v, v-rw.hi)
	}
	return viol <= 1e-10*scale
}

// linearFeasiblePoint also returns such a point (a vertex), when one is found.
func linearFeasiblePoint(p *problem, lo, hi []float64) ([]float64, bool) {
	cs := p.linCons(lo, hi)
	keep := make([]bool, len(cs))
	for i := range keep {
		keep[i] = true
	}
	return lpFeasibleX(len(p.names), cs, keep)
}

// lpFeasible solves a phase-one linear program (minimise the artificial slack of every
// row) with gonum's simplex. Each row has its own artificial column, so the matrix has
// full row rank whatever the constraints, and the artificials form the starting basis.
func lpFeasible(n int, cs []linCon, keep []bool) bool {
	_, ok := lpFeasibleX(n, cs, keep)
	return ok
}

func lpFeasibleX(n int, cs []linCon, keep []bool) ([]float64, bool) {
	return lpSolve(n, cs, keep, false)
}

// lpSolve finds a point meeting the kept constraints; with spread it finds the one that
// spends the most above the channels' minimums (big-M on the artificial columns).
func lpSolve(n int, cs []linCon, keep []bool, spread bool) ([]float64, bool) {
	lo := make([]float64, n)
	hi := make([]float64, n)
	for i := range hi {
		hi[i] = math.Inf(1)
	}
	scale := 1.0
	for k, c := range cs {
		if !keep[k] {
			continue
		}
		if c.box >= 0 {
			if c.lower {
				lo[c.box] = max(lo[c.box], c.lo)
			} else {
				hi[c.box] = min(hi[c.box], c.hi)
			}
		}
		for _, v := range []float64{c.lo, c.hi} {
			if finite(v) {
				scale = max(scale, math.Abs(v))
			}
		}
	}
	for i := range lo {
		if lo[i] > hi[i] {
			return nil, false
		}
	}
	type eqRow struct {
		coef map[int]float64 // column → coefficient
		rhs  float64
	}
	var rows []eqRow
	ncol := n
	newSlack := func() int { ncol++; return ncol - 1 }
	for i := 0; i < n; i++ {
		if !math.IsInf(hi[i], 1) {
			rows = append(rows, eqRow{coef: map[int]float64{i: 1, newSlack(): 1}, rhs: (hi[i] - lo[i]) / scale})
		}
	}
	for k, c := range cs {
		if !keep[k] || c.box >= 0 {
			continue
		}
		shift := 0.0
		base := map[int]float64{}
		for j, i := range c.idx {
			shift += c.coef[j] * lo[i]
			base[i] += c.coef[j]
		}
		with := func(extra int, sign float64) map[int]float64 {
			m := make(map[int]float64, len(base)+1)
			for i, v := range base {
				m[i] = v
			}
			if extra >= 0 {
				m[extra] = sign
			}
			return m
		}
		switch {
		case c.lo == c.hi:
			rows = append(rows, eqRow{coef: with(-1, 0), rhs: (c.lo - shift) / scale})
		default:
			if !math.IsInf(c.lo, -1) {
				rows = append(rows, eqRow{coef: with(newSlack(), -1), rhs: (c.lo - shift) / scale})
			}
			if !math.IsInf(c.hi, 1) {
				rows = append(rows, eqRow{coef: with(newSlack(), 1), rhs: (c.hi - shift) / scale})
			}
		}
	}
	if len(rows) == 0 {
		return lo, true
	}
	m := len(rows)
	total := ncol + m
	A := mat.NewDense(m, total, nil)
	b := make([]float64, m)
	cost := make([]float64, total)
	basic := make([]int, m)
	for r, rw := range rows {
		sign := 1.0
		if rw.rhs < 0 {
			sign = -1
		}
		for col, v := range rw.coef {
			A.Set(r, col, sign*v)
		}
		b[r] = sign * rw.rhs
		A.Set(r, ncol+r, 1)
		cost[ncol+r] = 1
		basic[r] = ncol + r
	}
	if spread {
		for col := 0; col < n; col++ {
			cost[col] = -1
		}
		for r := 0; r < m; r++ {
			cost[ncol+r] = 1e6 * float64(n+1)
		}
	}
	// Columns that appear in no row (a channel with no bound and no row) would make
	// gonum refuse the matrix; give them a harmless zero-cost presence by dropping them.
	keepCol := make([]int, 0, total)
	for col := 0; col < total; col++ {
		nz := false
		for r := 0; r < m && !nz; r++ {
			nz = A.At(r, col) != 0
		}
		if nz {
			keepCol = append(keepCol, col)
		}
	}
	colOf := make([]int, n) // where each channel's column ended up, -1 if dropped
	for i := range colOf {
		colOf[i] = -1
	}
	for j, col := range keepCol {
		if col < n {
			colOf[col] = j
		}
	}
	if len(keepCol) < total {
		B := mat.NewDense(m, len(keepCol), nil)
		c2 := make([]float64, len(keepCol))
		remap := map[int]int{}
		for j, col := range keepCol {
			remap[col] = j
			c2[j] = cost[col]
			for r := 0; r < m; r++ {
				B.Set(r, j, A.At(r, col))
			}
		}
		for r := range basic {
			basic[r] = remap[basic[r]]
		}
		A, cost = B, c2
	}
	opt, sol, err := lp.Simplex(cost, A, b, 1e-12, basic)
	if err != nil {
		return nil, err != lp.ErrInfeasible // numerical trouble: let the solver try
	}
	if !spread && opt > 1e-9 {
		return nil, false
	}
	x := make([]float64, n)
	for i := range x {
		x[i] = lo[i]
		if colOf[i] >= 0 && sol != nil {
			x[i] += sol[colOf[i]] * scale
		}
	}
	return x, true
}

// explainInfeasible names a smallest set of constraints that cannot hold together, found
// by a deletion filter over the linear constraints.
func (p *problem) explainInfeasible() string {
	sumLo, sumHi := 0.0, 0.0
	for i := range p.names {
		sumLo += p.lo[i]
		sumHi += p.hi[i]
	}
	if sumLo > p.thi*(1+1e-12) {
		return fmt.Sprintf("sum of channel minimums %s exceeds total %s", num(sumLo), num(p.thi))
	}
	if sumHi < p.tlo*(1-1e-12) {
		return fmt.Sprintf("sum of channel maximums %s is below total %s", num(sumHi), num(p.tlo))
	}
	for i, name := range p.names {
		if p.lo[i] > p.hi[i] {
			return fmt.Sprintf("channel %s: minimum %s (%s) exceeds maximum %s (%s)", name,
				num(p.lo[i]), boundLabel(p.loSrc[i], name, "min"), num(p.hi[i]), boundLabel(p.hiSrc[i], name, "max"))
		}
	}
	cs := p.linCons(p.lo, p.hi)
	keep := make([]bool, len(cs))
	for i := range keep {
		keep[i] = true
	}
	if lpFeasible(len(p.names), cs, keep) {
		return ""
	}
	for k := range cs {
		keep[k] = false
		if lpFeasible(len(p.names), cs, keep) {
			keep[k] = true // needed for the conflict
		}
	}
	var parts []string
	for k, c := range cs {
		if !keep[k] {
			continue
		}
		parts = append(parts, c.describe())
	}
	return "these constraints cannot all hold: " + strings.Join(parts, "; ")
}

func (c *linCon) describe() string {
	switch {
	case c.box >= 0 && c.lower:
		return fmt.Sprintf("%s (≥ %s)", c.label, num(c.lo))
	case c.box >= 0:
		return fmt.Sprintf("%s (≤ %s)", c.label, num(c.hi))
	case c.lo == c.hi:
		return fmt.Sprintf("%s (= %s)", c.label, num(c.lo))
	case math.IsInf(c.hi, 1):
		return fmt.Sprintf("%s (≥ %s)", c.label, num(c.lo))
	case math.IsInf(c.lo, -1):
		return fmt.Sprintf("%s (≤ %s)", c.label, num(c.hi))
	}
	return fmt.Sprintf("%s (between %s and %s)", c.label, num(c.lo), num(c.hi))
}

// num formats an amount for messages: integers without a fraction, others briefly.
func num(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.6g", v)
}
