package engine

import (
	"container/heap"
	"math"
	"strings"
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
	return solveRelaxAs(in, false)
}

// solveRelaxAs is solveRelax; probe marks a relaxation solved only for a plan (the
// rounding heuristic's), which is given up (ok false) where the dual method finds its
// box likely infeasible, rather than proven so by the simplex or handed to the
// interior-point method.
func solveRelaxAs(in *relax, probe bool) (r *relax, x []float64, ub float64, iters int, ok bool) {
	r = in
	p, lo, hi := r.p, r.lo, r.hi
	if len(p.rows) == 0 && len(p.floors) == 0 {
		x, ub, iters, ok = r.lambdaSolve(p.w)
		r.cert = nil // the price search's: r.lam on every channel
		return
	}
	if len(p.floors) == 0 {
		// Where the dual method does not settle, the interior-point method runs as it
		// would have alone: the warm starts the attempt moved are put back.
		cs, memo, lam := p.ws.chanStates(len(r.cs)), []argmaxMemo(nil), r.lam
		copy(cs, r.cs)
		if r.memo != nil {
			memo = p.ws.memos(len(r.memo))
			copy(memo, r.memo)
		}
		x, ub, cert, st, it, ok := r.dualSolve(r.dual)
		if ok {
			r.dual = st
			if r.root {
				r.cert = &cert
			}
			return r, x, ub, it, true
		}
		copy(r.cs, cs)
		copy(r.memo, memo)
		r.lam = lam
		if probe && st != nil && st.unbounded {
			return r, nil, math.Inf(1), it, false
		}
		if !r.root && !probe && !linearFeasible(p, lo, hi) {
			// No plan in the box meets the rows (the usual reason the dual method finds
			// no face): the node is closed, as the interior-point method's diverging
			// multipliers would close it less surely.
			return r, nil, math.Inf(-1), it, false
		}
	}
	res := r.ipmSolve()
	ub, cert := r.dualBound(&res)
	x = r.polish(&res)
	if b, c := r.activeBound(x); b < ub && b >= p.objective(x)-1e-9*math.Abs(p.objective(x)) {
		ub, cert = b, c
	}
	// The exact finish: an active-set Newton method from the interior-point answer.
	if rx, rb, c, ok := r.refine(x, &res); ok && p.feasibleLinear(rx, lo, hi, 1e-12) && p.floorsHold(r, rx) {
		if rv := p.relaxObjective(r, rx); rv >= p.relaxObjective(r, x)-1e-12*math.Abs(rv) {
			x = rx
			if rb >= rv-1e-12*math.Abs(rv) && rb < ub {
				ub, cert = rb, c
			}
		}
	}
	if r.root { // only a root's box is ever narrowed
		c := cert
		r.cert = &c
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
//
// When the search leaves the gap open — it finished without closing it, or it is near
// the end of its budget and far from closing it — the root box is narrowed to the plans
// that can beat the best plan found (see narrow), and a second search runs there. Wide
// boxes, such as spend caps that constraints push far past the price points of
// target_mroi, are where the relaxation's bound degrades (the interior-point method's
// scaling and the S-curve envelopes both follow the box). The last few nodes of the
// budget are kept for that. The first search runs exactly as it would alone until then,
// so an answer it certifies is unchanged, and it resumes where the box does not narrow.
func solveCore(p *problem, gapTol float64, maxNodes int, narrow bool) outcome {
	sr := &search{p: p, gapTol: gapTol, stopAt: math.Inf(1),
		out: outcome{value: math.Inf(-1), ub: math.Inf(1), algorithm: "lagrangian-price-search"}}
	out := &sr.out
	if len(p.rows) > 0 || len(p.floors) > 0 {
		out.algorithm = "interior-point"
	}
	r, x, ub, it, ok := relaxSolve(p, p.lo, p.hi)
	out.iters += it
	out.nodes = 1
	if r.dual != nil {
		out.algorithm = "dual-active-set" // the root's method (nodes fall back on the interior point)
	}
	if !ok {
		out.ub = math.Inf(-1)
		out.complete = true
		return *out
	}
	out.ub = ub
	sr.consider(x)
	reserve := 0
	if narrow && !p.concave() { // a concave problem's search ends at the root unless it has kinks
		reserve = min(maxNodes/10, narrowReserve)
	}
	var first tree
	sr.plant(&first, r, x, ub)
	sr.grow(&first, maxNodes-reserve)
	t := &first
	far := out.x != nil && out.ub-out.value > 10*gapTol*p.gapScale(out.x, out.value)
	if narrow && out.x != nil && !sr.certified() && (first.closed || far) {
		for restart := 0; restart < 3 && out.nodes < maxNodes; restart++ {
			gap := out.ub - out.value
			r, x, ub, narrowed := sr.narrow(t.root, t.x, t.rootUB, maxNodes)
			if !narrowed || sr.certified() {
				break
			}
			if t == &first && !first.closed && out.ub-out.value > gap/2 {
				// The narrowed root did not halve the gap: the first search, further
				// along, keeps the nodes left.
				break
			}
			// Search the narrowed box, and start over from a narrower one when a plan
			// halves the distance to its bound.
			t = new(tree)
			sr.plant(t, r, x, ub)
			halfway := out.value + (ub-out.value)/2
			sr.stopAt = halfway
			sr.grow(t, maxNodes)
			sr.stopAt = math.Inf(1)
			if !(out.value > halfway) {
				break
			}
		}
	}
	sr.grow(t, maxNodes) // whatever search is open goes on with what is left
	out.complete = first.closed || t.closed || sr.certified()
	return *out
}

// narrowRounds bounds the relaxations narrow solves in a row; narrowReserve is the
// part of the node budget the first search leaves for narrowing and searching the
// narrowed box (at most a tenth).
const (
	narrowRounds  = 4
	narrowReserve = 12
)

// narrow shrinks the box of the root relaxation r (point x, bound ub) to the plans that
// can beat the best plan found, by the duality argument of relax.tighten with several
// sets of multipliers: the relaxation's own; zero on every constraint (each channel on
// its own, spend at the objective's price — what capSpend's caps rest on); and those of
// relaxations on smaller boxes solved for plans (trustRegion, and target_mroi's price-
// point caps), which also bound r's box directly. Every plan at least as good as the
// best one lies in the narrowed box, so the bound of the relaxation there, or the best
// plan's value if larger, bounds the optimum as well; it goes into the outcome. It
// solves the relaxation again (a node each) while the box narrows and returns the last
// root.
func (sr *search) narrow(r *relax, x []float64, ub float64, maxNodes int) (*relax, []float64, float64, bool) {
	p, out := sr.p, &sr.out
	narrowed := false
	for round := 0; round < narrowRounds && !sr.gapOK(ub) && out.nodes < maxNodes; round++ {
		// Plans first: the better the best plan, the narrower the box. The Lagrangians'
		// maximisers are worth trying, and relaxations on smaller boxes around them
		// (which also give multipliers to bound r's box with).
		certs := []*dualCert{r.certificate(ub), r.priceCert()}
		_, _, xa, _, _ := r.tighten(certs[0], out.value, r.lo, r.hi)
		sr.considerToward(xa)
		if xa != nil && !p.feasible(xa, 0) && out.nodes < maxNodes {
			certs = append(certs, sr.trustRegion(r, xa))
		}
		if round == 0 && p.pointCaps != nil && out.nodes < maxNodes {
			// target_mroi's spend caps at the price points that forcedCap widened: the
			// box engines before 1.1.2 searched, and where constraints do not force
			// spend past them, the place of the best plan
			certs = append(certs, sr.capped(r, p.pointCaps))
		}
		lo, hi, shrunk := r.lo, r.hi, false
		for k, c := range certs {
			if c == nil {
				continue
			}
			var xs []float64
			var b float64
			var s bool
			lo, hi, xs, b, s = r.tighten(c, out.value, lo, hi)
			shrunk = shrunk || s
			if k == 1 {
				sr.considerToward(xs)
			}
			if k >= 2 { // multipliers from another box: a bound on this one too
				ub = min(ub, max(b, out.value))
				out.ub = min(out.ub, ub)
			}
		}
		if !shrunk || sr.gapOK(ub) {
			break
		}
		r2, x2, ub2, it, ok := relaxSolve(p, lo, hi)
		out.iters += it
		out.nodes++
		if !ok {
			break // only rounding can leave the best plan out: keep the wider box
		}
		sr.consider(x2)
		r, x, ub, narrowed = r2, x2, math.Min(ub, math.Max(ub2, out.value)), true
		out.ub = math.Min(out.ub, ub)
	}
	return r, x, ub, narrowed
}

// search is the state solveCore's searches share: the best plan, the best bound and
// the work done.
type search struct {
	p      *problem
	gapTol float64
	out    outcome
	// stopAt ends a search early once the best plan is worth more (+Inf: never)
	stopAt float64
}

// consider keeps x when it is feasible and better than the best plan so far.
func (sr *search) consider(x []float64) {
	if x == nil || !sr.p.feasible(x, 1e-9) {
		return
	}
	if v := sr.p.objective(x); v > sr.out.value {
		sr.out.value, sr.out.x = v, x
	}
}

// trustRegion looks for a plan near xa, the maximiser of a Lagrangian that misses a
// constraint, in r's box with each channel capped at twice its spend there or the best
// plan's: the relaxation there usually converges where r's own solve failed (the
// interior-point method on a box far wider than the plans worth having).
func (sr *search) trustRegion(r *relax, xa []float64) *dualCert {
	hi := make([]float64, len(xa))
	for i := range hi {
		hi[i] = max(r.lo[i], 2*xa[i], sr.out.x[i])
	}
	return sr.capped(r, hi)
}

// capped solves the relaxation on r's box with the caps hi where they are lower, for a
// plan (a node): its point is one, its bound (over a smaller box) is not one. It returns
// the relaxation's multipliers where they make a Lagrangian over any box (nil otherwise):
// converged there, they are often nearly right for r's box as well.
func (sr *search) capped(r *relax, hi []float64) *dualCert {
	p, out := sr.p, &sr.out
	caps := make([]float64, len(hi))
	narrower := false
	for i := range caps {
		caps[i] = max(r.lo[i], min(r.hi[i], hi[i]))
		narrower = narrower || caps[i] < r.hi[i]
	}
	if !narrower {
		return nil
	}
	rc, y, ub, it, ok := relaxSolve(p, r.lo, caps)
	out.iters += it
	out.nodes++
	if !ok {
		return nil
	}
	sr.consider(y)
	if c := rc.certificate(ub); c != nil && c.anyBox {
		return c
	}
	return nil
}

// considerToward considers the plan on the segment from the best plan so far to x that
// lies furthest toward x and meets every constraint exactly (x itself where it does):
// the maximisers of a Lagrangian are plans worth trying, but they sit a little off the
// constraints' faces. Along the segment the linear constraints hold on an interval from
// the best plan, which bisection finds.
func (sr *search) considerToward(x []float64) {
	p, x0 := sr.p, sr.out.x
	if x == nil || p.feasible(x, 0) {
		sr.consider(x)
		return
	}
	if x0 == nil {
		return
	}
	y := make([]float64, len(x))
	at := func(t float64) []float64 {
		for i := range y {
			y[i] = x0[i] + t*(x[i]-x0[i])
		}
		return y
	}
	lo, hi := 0.0, 1.0
	for it := 0; it < 50; it++ {
		if t := lo + (hi-lo)/2; p.feasible(at(t), 0) {
			lo = t
		} else {
			hi = t
		}
	}
	if lo > 0 && p.feasible(at(lo), 0) {
		sr.consider(append([]float64(nil), y...))
	}
}

// gapOK reports whether bound is within the gap tolerance of the best plan.
func (sr *search) gapOK(bound float64) bool {
	return bound-sr.out.value <= sr.gapTol*sr.p.gapScale(sr.out.x, sr.out.value)
}

// certified reports whether the best plan is within the gap of the best bound.
func (sr *search) certified() bool {
	return sr.out.x != nil && sr.gapOK(sr.out.ub)
}

// tree is one branch-and-bound search over the box of its root relaxation.
type tree struct {
	root     *relax
	x        []float64  // the root relaxation's point
	rootUB   float64    // its bound
	q        *nodeQueue // open nodes (nil before the first branching)
	nextID   int
	prunedUB float64 // the largest bound of a node closed without branching
	closed   bool    // nothing left to search
}

// plant starts the search t at the root relaxation r (point x, bound ub): the rounding
// heuristic and the first branching. A concave problem without kinks needs no search.
// The root's bound goes into the outcome.
func (sr *search) plant(t *tree, r *relax, x []float64, ub float64) {
	p, out := sr.p, &sr.out
	*t = tree{root: r, x: x, rootUB: ub, prunedUB: math.Inf(-1)}
	out.ub = math.Min(out.ub, ub)
	if p.concave() && (out.x == nil || sr.gapOK(ub) || !p.hasKinks()) {
		t.closed = true
		return
	}
	if !strings.HasPrefix(out.algorithm, "branch-and-bound/") {
		out.algorithm = "branch-and-bound/" + out.algorithm
	}
	sr.consider(p.roundBridges(r, x, out))
	t.closed = (out.x != nil && sr.gapOK(ub)) || !sr.branch(t, r, x, ub)
}

// branch splits the box of the node relaxation r (point x, bound ub) in two, or
// reports false when there is nothing to split.
func (sr *search) branch(t *tree, r *relax, x []float64, ub float64) bool {
	p := sr.p
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
	for _, b := range [2][2][]float64{{lo, lhi}, {rlo, hi}} {
		t.nextID++
		if t.q == nil {
			t.q = &nodeQueue{}
		}
		heap.Push(t.q, &bnbNode{lo: b[0], hi: b[1], ub: ub, id: t.nextID, parent: r, split: j})
	}
	return true
}

// grow searches the tree best first until the gap closes, the node count reaches
// maxNodes or the best plan passes sr.stopAt, and brings the outcome's bound down to
// the tree's (at least the best plan's value: what is not open was searched or pruned).
func (sr *search) grow(t *tree, maxNodes int) {
	p, out := sr.p, &sr.out
	if t.closed {
		return
	}
	q := t.q // not nil: a tree that is not closed has branched
	for q.Len() > 0 {
		nd := (*q)[0]
		if out.x != nil && sr.gapOK(nd.ub) {
			break // best-first: every open node is within the gap
		}
		if out.nodes >= maxNodes || out.value > sr.stopAt || sr.certified() {
			break
		}
		heap.Pop(q)
		out.nodes++
		c := nd.parent.child(nd.lo, nd.hi, nd.split)
		c.dual = nd.parent.dual
		r, x, ub, it, ok := solveRelax(c)
		nd.parent = nil // let the parent's relaxation go once both children are built
		out.iters += it
		if !ok {
			continue
		}
		ub = math.Min(ub, nd.ub)
		sr.consider(x)
		if out.x == nil || len(p.floors) > 0 {
			// With an incumbent, the node's own point and its children refine it; the
			// rounding heuristic (a second relaxation per node) is kept for finding one.
			sr.consider(p.roundBridges(r, x, out))
		}
		if out.x != nil && sr.gapOK(ub) {
			t.prunedUB = math.Max(t.prunedUB, ub)
			continue
		}
		if !sr.branch(t, r, x, ub) {
			t.prunedUB = math.Max(t.prunedUB, ub)
		}
	}
	bound := t.prunedUB
	for _, nd := range *q {
		bound = math.Max(bound, nd.ub)
	}
	t.closed = q.Len() == 0
	out.ub = math.Min(out.ub, math.Max(bound, out.value))
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
	c := r.child(nlo, nhi, changed...)
	c.dual = r.dual
	_, y, _, it, ok := solveRelaxAs(c, true)
	out.iters += it
	if !ok {
		return nil
	}
	return y
}
