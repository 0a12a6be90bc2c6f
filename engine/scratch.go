package engine

import "sync"

// scratch is one solve's working memory for the arrays that live exactly as long as the
// solve: the compiled request's vectors, the root relaxation's envelopes and warm starts,
// and the price search's work arrays. Solves take one from a pool and give it back, so
// that a processor answering request after request does not allocate (and collect) them
// each time. Every slice handed out is zeroed first, exactly as make would give it, so
// reuse cannot change a result; nothing handed out may outlive the solve (results copy
// what they keep).
type scratch struct {
	f     []float64 // carved by floats
	fOff  int
	s     []string // carved by strs (capacity only)
	sOff  int
	l     [][]string // carved by lists
	lOff  int
	env   []envelope // carved by envelopes
	eOff  int
	rows  [][]envelope // carved by envRows
	rOff  int
	price []float64    // the price search's work arrays, reused call after call
	cms   []chanModel  // the price search's channel models, likewise
	brk   []float64    // the price search's breakpoints, likewise
	mem   []argmaxMemo // carved by memos
	mOff  int
	cst   []chanState // carved by chanStates
	cOff  int
	bl    []bool // carved by bools
	bOff  int
	prob  []problem // carved by problem
	pOff  int
	rel   []relax // carved by relax
	xOff  int
	kids  int // child relaxations carved so far (see forChild)
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// maxScratch bounds what a pooled scratch keeps between solves (in elements of each kind).
const maxScratch = 1 << 17

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func putScratch(w *scratch) {
	w.fOff, w.sOff, w.lOff, w.eOff, w.rOff, w.mOff, w.cOff, w.bOff, w.pOff, w.xOff = 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
	w.kids = 0
	if cap(w.f) > maxScratch || cap(w.price) > maxScratch || cap(w.env) > maxScratch || cap(w.cms) > maxScratch || cap(w.brk) > maxScratch || cap(w.mem) > maxScratch || cap(w.cst) > maxScratch {
		return // a very large problem's memory is not worth keeping
	}
	// What the slabs still point to (labels, curves) stays reachable until the pool lets
	// the scratch go at a collection; carving zeroes them again.
	scratchPool.Put(w)
}

func grow(n, have, used int) int { return max(2*have, used+n, 64) }

// carve hands out the next n zeroed elements of *slab (length and capacity n), starting
// a new slab when this one is used up: slices carved earlier keep the old array, which
// lives until the solve ends.
func carve[T any](slab *[]T, off *int, n int) []T {
	if *off+n > len(*slab) {
		*slab, *off = make([]T, grow(n, len(*slab), 0)), 0
	}
	out := (*slab)[*off : *off+n : *off+n]
	*off += n
	clear(out)
	return out
}

// floats returns n zeroed float64s (capacity n).
func (w *scratch) floats(n int) []float64 {
	if w == nil {
		return make([]float64, n)
	}
	return carve(&w.f, &w.fOff, n)
}

// strs returns an empty string slice of capacity n, to append to.
func (w *scratch) strs(n int) []string {
	if w == nil {
		return make([]string, 0, n)
	}
	return carve(&w.s, &w.sOff, n)[:0]
}

// lists returns n nil string slices.
func (w *scratch) lists(n int) [][]string {
	if w == nil {
		return make([][]string, n)
	}
	return carve(&w.l, &w.lOff, n)
}

// envelopes returns n zero envelopes.
func (w *scratch) envelopes(n int) []envelope {
	if w == nil {
		return make([]envelope, n)
	}
	return carve(&w.env, &w.eOff, n)
}

// envRows returns n nil envelope rows.
func (w *scratch) envRows(n int) [][]envelope {
	if w == nil {
		return make([][]envelope, n)
	}
	return carve(&w.rows, &w.rOff, n)
}

// priceWork returns the price search's n zeroed work values. The search is never
// re-entered, so one buffer serves every call of a solve.
func (w *scratch) priceWork(n int) []float64 {
	if w == nil {
		return make([]float64, n)
	}
	if cap(w.price) < n {
		w.price = make([]float64, n)
	}
	out := w.price[:n:n]
	clear(out)
	return out
}

// breaks returns an empty slice to append the price search's breakpoints to; keepBreaks
// takes it back once appended to (grown, perhaps), for the next search of the solve. Like
// priceWork, one buffer serves every call of a solve.
func (w *scratch) breaks() []float64 {
	if w == nil {
		return nil
	}
	return w.brk[:0]
}

func (w *scratch) keepBreaks(b []float64) {
	if w != nil && cap(b) > cap(w.brk) {
		w.brk = b
	}
}

// models returns n channel models for the price search (contents undefined: the search
// sets each before use). Like priceWork, one buffer serves every call of a solve.
func (w *scratch) models(n int) []chanModel {
	if w == nil {
		return make([]chanModel, n)
	}
	if cap(w.cms) < n {
		w.cms = make([]chanModel, n)
	}
	return w.cms[:n:n]
}

// memos returns n empty argmax memos.
func (w *scratch) memos(n int) []argmaxMemo {
	if w == nil {
		return make([]argmaxMemo, n)
	}
	return carve(&w.mem, &w.mOff, n)
}

// chanStates returns n zero channel states.
func (w *scratch) chanStates(n int) []chanState {
	if w == nil {
		return make([]chanState, n)
	}
	return carve(&w.cst, &w.cOff, n)
}

// bools returns n false values.
func (w *scratch) bools(n int) []bool {
	if w == nil {
		return make([]bool, n)
	}
	return carve(&w.bl, &w.bOff, n)
}

// problem returns a zero problem that lives as long as the solve.
func (w *scratch) problem() *problem {
	if w == nil {
		return new(problem)
	}
	return &carve(&w.prob, &w.pOff, 1)[0]
}

// relax returns a zero relaxation that lives as long as the solve.
func (w *scratch) relax() *relax {
	if w == nil {
		return new(relax)
	}
	return &carve(&w.rel, &w.xOff, 1)[0]
}

// maxScratchKids is how many child relaxations of a solve come from its scratch: enough
// for the searches most requests need, few enough that a long search does not hold the
// memory of every node it closed until it ends.
const maxScratchKids = 32

// forChild returns w for the arrays of one more child relaxation, or nil (allocate) once
// the solve has had maxScratchKids of them.
func (w *scratch) forChild() *scratch {
	if w == nil || w.kids >= maxScratchKids {
		return nil
	}
	w.kids++
	return w
}
