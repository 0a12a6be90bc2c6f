package engine

import (
	"container/heap"
	"math"
)

// outcome is what the core solver found for one problem.
type outcome struct {
	x         []float64 // best feasible plan (nil when none)
	value     float64   // its true objective
	ub        float64   // proven upper bound on the objective
	iters     int       // relaxation iterations (price evaluations or IPM steps)
	nodes     int       // branch-and-bound nodes
	algorithm string
	complete  bool // the search finished (not stopped by the node cap)
}

// relaxSolve solves the relaxation on a box and returns a point feasible for the linear
// constraints (and the relaxed floors), a proven upper bound, and the work done.
func relaxSolve(p *problem, lo, hi []float64) (r *relax, x []float64, ub float64, iters int, ok bool) {
	r = newRelax(p, lo, hi)
	r.root = true
	return solveRelax(r)
}

// solveRelax solves a relaxation built by newRelax or relax.child.
func solveRelax(in *relax) (r *relax, x []float64, ub float64, iters int, ok bool) {
	r = in
	p, lo, hi := r.p, r.lo, r.hi
	if len(p.rows) == 0 && len(p.floors) == 0 {
		x, ub, iters, ok = r.lambdaSolve(p.w)
		return
	}
	res := r.ipmSolve()
	ub = r.dualBound(&res)
	x = r.polish(&res)
	if b := r.activeBound(x); b < ub && b >= p.objective(x)-1e-9*math.Abs(p.objective(x)) {
		ub = b
	}
	// The exact finish: an active-set Newton method from the interior-point answer.
	if rx, rb, ok := r.refine(x, &res); ok && p.feasibleLinear(rx, lo, hi, 1e-12) && p.floorsHold(r, rx) {
		if rv := p.relaxObjective(r, rx); rv >= p.relaxObjective(r, x)-1e-12*math.Abs(rv) {
			x = rx
			if rb >= rv-1e-12*math.Abs(rv) {
				ub = math.Min(ub, rb)
			}
		}
	}
	if !res.ok && !p.feasibleLinear(x, lo, hi, 1e-9) {
		if !r.root {
			// Inside the search a failed node keeps its (valid) dual bound and no
			// candidate; branching goes on without one.
			return r, nil, ub, res.iters, true
		}
		// At the root, the method failed (a feasible set without interior, say): fall
		// back on a vertex from the simplex, or prove the problem infeasible.
		v, feasible := linearFeasiblePoint(p, lo, hi)
		if !feasible {
			return r, nil, math.Inf(-1), res.iters, false
		}
		if v != nil && p.feasibleLinear(v, lo, hi, 1e-9) {
			x = v
		}
	}
	return r, x, ub, res.iters, true
}

func (p *problem) feasibleLinear(x, lo, hi []float64, tol float64) bool {
	sum := 0.0
	for i, v := range x {
		if v < lo[i]-tol*math.Max(1, lo[i]) || v > hi[i]+tol*math.Max(1, hi[i]) {
			return false
		}
		sum += v
	}
	scale := math.Max(1, sum)
	if sum < p.tlo-tol*scale || sum > p.thi+tol*scale {
		return false
	}
	for _, r := range p.rows {
		v := r.eval(x)
		if v < r.lo-tol*scale || v > r.hi+tol*scale {
			return false
		}
	}
	return true
}

// bnbNode is a box of the search.
type bnbNode struct {
	lo, hi []float64
	ub     float64 // bound inherited from the parent
	id     int
	parent *relax // to share envelopes and start from its price
	split  int    // the channel whose box differs from the parent's
}

type nodeQueue []*bnbNode

func (q nodeQueue) Len() int { return len(q) }
func (q nodeQueue) Less(i, j int) bool {
	if q[i].ub != q[j].ub {
		return q[i].ub > q[j].ub
	}
	return q[i].id < q[j].id
}
func (q nodeQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *nodeQueue) Push(x any)   { *q = append(*q, x.(*bnbNode)) }
func (q *nodeQueue) Pop() any {
	old := *q
	n := old[len(old)-1]
	*q = old[:len(old)-1]
	return n
}

// solveCore maximises the problem's objective to within gapTol, by the relaxation alone
// when the problem is concave and by best-first branch and bound on the channels whose
// envelope is not tight otherwise (Udell & Boyd, "Maximizing a Sum of Sigmoids").
func solveCore(p *problem, gapTol float64, maxNodes int) outcome {
	out := outcome{value: math.Inf(-1), ub: math.Inf(1), algorithm: "lagrangian-price-search"}
	if len(p.rows) > 0 || len(p.floors) > 0 {
		out.algorithm = "interior-point"
	}
	floorTol := 1e-9
	consider := func(x []float64) {
		if x == nil || !p.feasible(x, floorTol) {
			return
		}
		if v := p.objective(x); v > out.value {
			out.value, out.x = v, x
		}
	}
	r, x, ub, it, ok := relaxSolve(p, p.lo, p.hi)
	out.iters += it
	out.nodes = 1
	if !ok {
		out.ub = math.Inf(-1)
		out.complete = true
		return out
	}
	out.ub = ub
	consider(x)
	gapOK := func(bound float64) bool {
		return bound-out.value <= gapTol*p.gapScale(out.x, out.value)
	}
	if p.concave() && (out.x == nil || gapOK(ub) || !p.hasKinks()) {
		out.complete = true
		return out
	}
	out.algorithm = "branch-and-bound/" + out.algorithm
	consider(p.roundBridges(r, x, &out))
	if out.x != nil && gapOK(ub) {
		out.complete = true
		return out
	}

	q := &nodeQueue{}
	nextID := 0
	push := func(parent *relax, split int, lo, hi []float64, ub float64) {
		nextID++
		heap.Push(q, &bnbNode{lo: lo, hi: hi, ub: ub, id: nextID, parent: parent, split: split})
	}
	prunedUB := math.Inf(-1)
	branch := func(r *relax, x []float64, ub float64) bool {
		lo, hi := r.lo, r.hi
		j, at := -1, 0.0
		if x != nil {
			j, at = p.branchChannel(r, x)
		} else {
			j, at = p.bridgeSplit(r)
		}
		if j < 0 {
			return false
		}
		lhi := append([]float64(nil), hi...)
		lhi[j] = at
		rlo := append([]float64(nil), lo...)
		rlo[j] = at
		push(r, j, lo, lhi, ub)
		push(r, j, rlo, hi, ub)
		return true
	}
	if !branch(r, x, ub) {
		out.complete = true
		return out
	}
	for q.Len() > 0 {
		nd := (*q)[0]
		if out.x != nil && gapOK(nd.ub) {
			break // best-first: every open node is within the gap
		}
		if out.nodes >= maxNodes {
			break
		}
		heap.Pop(q)
		out.nodes++
		r, x, ub, it, ok := solveRelax(nd.parent.child(nd.lo, nd.hi, nd.split))
		nd.parent = nil // let the parent's relaxation go once both children are built
		out.iters += it
		if !ok {
			continue
		}
		ub = math.Min(ub, nd.ub)
		consider(x)
		if out.x == nil || len(p.floors) > 0 {
			// With an incumbent, the node's own point and its children refine it; the
			// rounding heuristic (a second relaxation per node) is kept for finding one.
			consider(p.roundBridges(r, x, &out))
		}
		if out.x != nil && gapOK(ub) {
			prunedUB = math.Max(prunedUB, ub)
			continue
		}
		if !branch(r, x, ub) {
			prunedUB = math.Max(prunedUB, ub)
		}
	}
	bound := prunedUB
	for _, nd := range *q {
		bound = math.Max(bound, nd.ub)
	}
	out.complete = q.Len() == 0 || (out.x != nil && gapOK(bound))
	out.ub = math.Min(out.ub, math.Max(bound, out.value))
	return out
}

// gapScale is the denominator of the relative gap: the objective's own size, or the
// size of its response part when spend is priced in and the two nearly cancel.
func (p *problem) gapScale(x []float64, v float64) float64 {
	s := math.Abs(v)
	if x != nil && p.cost > 0 {
		s = math.Max(s, v+p.cost*sum(x))
	}
	return math.Max(s, 1e-300)
}

func sum(x []float64) float64 {
	s := 0.0
	for _, v := range x {
		s += v
	}
	return s
}

// branchChannel picks the channel whose envelope overestimates most at x, and where to
// split its box.
func (p *problem) branchChannel(r *relax, x []float64) (int, float64) {
	lo, hi := r.lo, r.hi
	best, bestGap, at := -1, 0.0, 0.0
	for i := range x {
		if hi[i]-lo[i] <= 1e-12*math.Max(1, hi[i]) {
			continue
		}
		g := 0.0
		z := lo[i]
		for k := range r.env[i] {
			e := &r.env[i][k]
			if e.t == nil {
				continue
			}
			wt := p.w[k]
			for _, f := range p.floors {
				if f.kpi == k {
					wt = math.Max(wt, 1)
				}
			}
			g += wt * e.gap(x[i])
			z = math.Max(z, e.z)
		}
		if g > bestGap {
			split := x[i]
			// never split at an end: that would not shrink the box
			if split-lo[i] <= 1e-9*(hi[i]-lo[i]) || hi[i]-split <= 1e-9*(hi[i]-lo[i]) {
				split = lo[i] + (math.Min(z, hi[i])-lo[i])/2
			}
			if split <= lo[i] || split >= hi[i] {
				continue
			}
			best, bestGap, at = i, g, split
		}
	}
	if bestGap <= 1e-15*math.Abs(p.objective(x)) {
		// Every envelope is tight at x, yet the node's bound is not closed: the
		// interior-point method struggles where piecewise-linear curves have kinks, or
		// it failed and x is only a feasible vertex. Splitting a box at a kink makes that
		// channel smooth in both children; otherwise split the widest bridge in two, which
		// tightens the relaxation wherever its optimum lies.
		if j, at := p.kinkSplit(r, x); j >= 0 {
			return j, at
		}
		return p.bridgeSplit(r)
	}
	return best, at
}

// bridgeSplit picks the channel whose envelope overestimates the most over its box (the
// bridge's area above the curve, roughly (z−a)·slope) and splits at the bridge's middle.
func (p *problem) bridgeSplit(r *relax) (int, float64) {
	best, at, area := -1, 0.0, 0.0
	for i := range r.env {
		for k := range r.env[i] {
			e := &r.env[i][k]
			if e.t == nil || e.z <= e.a || (p.w[k] == 0 && len(p.floors) == 0) {
				continue
			}
			mid := e.a + (e.z-e.a)/2
			if g := e.gap(mid) * (e.z - e.a); g > area && mid > r.lo[i] && mid < r.hi[i] {
				best, at, area = i, mid, g
			}
		}
	}
	return best, at
}

// hasKinks reports whether some piecewise-linear curve has a breakpoint.
func (p *problem) hasKinks() bool {
	for i := range p.terms {
		for _, t := range p.terms[i] {
			if t != nil && t.kind == kindPiecewise && len(t.px) > 1 {
				return true
			}
		}
	}
	return false
}

// kinkSplit picks the piecewise-linear breakpoint strictly inside a box that lies nearest
// to the relaxation's point, relative to the box's width.
func (p *problem) kinkSplit(r *relax, x []float64) (int, float64) {
	best, at, dist := -1, 0.0, math.Inf(1)
	for i := range x {
		w := r.hi[i] - r.lo[i]
		if w <= 1e-12*math.Max(1, r.hi[i]) {
			continue
		}
		for k := range r.env[i] {
			e := &r.env[i][k]
			if e.t == nil || e.h == nil {
				continue
			}
			for _, kx := range e.h.x[1 : len(e.h.x)-1] {
				if kx-r.lo[i] <= 1e-9*w || r.hi[i]-kx <= 1e-9*w {
					continue
				}
				if d := math.Abs(kx-x[i]) / w; d < dist {
					best, at, dist = i, kx, d
				}
			}
		}
	}
	return best, at
}

// roundBridges is the primal heuristic. Channels sitting on an envelope's bridge are
// switched either off (their minimum) or onto the concave part of their curve, whichever
// is nearer, and the relaxation is solved again. With KPI floors every channel with a
// bridge is restricted that way (those already on their concave part stay there), so the
// restricted relaxation is the true problem and its answer meets the true floors.
func (p *problem) roundBridges(r *relax, x []float64, out *outcome) []float64 {
	if x == nil {
		return nil
	}
	lo, hi := r.lo, r.hi
	nlo := append([]float64(nil), lo...)
	nhi := append([]float64(nil), hi...)
	all := len(p.floors) > 0
	var changed []int
	for i := range x {
		z, gap := lo[i], 0.0
		for k := range r.env[i] {
			if e := &r.env[i][k]; e.t != nil && e.z > e.a {
				z = math.Max(z, e.z)
				gap = math.Max(gap, e.gap(x[i])/math.Max(1, math.Abs(e.t.val(x[i]))))
			}
		}
		if z <= lo[i] || (!all && (x[i] >= z || gap <= 1e-12)) {
			continue
		}
		changed = append(changed, i)
		switch {
		case x[i] >= z:
			nlo[i] = math.Min(z, hi[i])
		case x[i]-lo[i] < z-x[i]:
			nhi[i] = lo[i]
		default:
			nlo[i] = math.Min(z, hi[i])
		}
	}
	if len(changed) == 0 {
		return nil
	}
	_, y, _, it, ok := solveRelax(r.child(nlo, nhi, changed...))
	out.iters += it
	if !ok {
		return nil
	}
	return y
}
