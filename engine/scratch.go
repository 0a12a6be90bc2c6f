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
	price []float64 // the price search's work arrays, reused call after call
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// maxScratch bounds what a pooled scratch keeps between solves (in elements of each kind).
const maxScratch = 1 << 17

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func putScratch(w *scratch) {
	w.fOff, w.sOff, w.lOff, w.eOff, w.rOff = 0, 0, 0, 0, 0
	if cap(w.f) > maxScratch || cap(w.price) > maxScratch || cap(w.env) > maxScratch {
		return // a very large problem's memory is not worth keeping
	}
	// What the slabs still point to (labels, curves) stays reachable until the pool lets
	// the scratch go at a collection; carving zeroes them again.
	scratchPool.Put(w)
}

func grow(n, have, used int) int { return max(2*have, used+n, 64) }

// floats returns n zeroed float64s (capacity n).
func (w *scratch) floats(n int) []float64 {
	if w == nil {
		return make([]float64, n)
	}
	if w.fOff+n > len(w.f) {
		w.f, w.fOff = make([]float64, grow(n, len(w.f), 0)), 0
	}
	out := w.f[w.fOff : w.fOff+n : w.fOff+n]
	w.fOff += n
	clear(out)
	return out
}

// strs returns an empty string slice with capacity n.
func (w *scratch) strs(n int) []string {
	if w == nil {
		return make([]string, 0, n)
	}
	if w.sOff+n > len(w.s) {
		w.s, w.sOff = make([]string, grow(n, len(w.s), 0)), 0
	}
	out := w.s[w.sOff : w.sOff : w.sOff+n]
	w.sOff += n
	return out
}

// lists returns n nil string slices.
func (w *scratch) lists(n int) [][]string {
	if w == nil {
		return make([][]string, n)
	}
	if w.lOff+n > len(w.l) {
		w.l, w.lOff = make([][]string, grow(n, len(w.l), 0)), 0
	}
	out := w.l[w.lOff : w.lOff+n : w.lOff+n]
	w.lOff += n
	clear(out)
	return out
}

// envelopes returns n zero envelopes.
func (w *scratch) envelopes(n int) []envelope {
	if w == nil {
		return make([]envelope, n)
	}
	if w.eOff+n > len(w.env) {
		w.env, w.eOff = make([]envelope, grow(n, len(w.env), 0)), 0
	}
	out := w.env[w.eOff : w.eOff+n : w.eOff+n]
	w.eOff += n
	clear(out)
	return out
}

// envRows returns n nil envelope rows.
func (w *scratch) envRows(n int) [][]envelope {
	if w == nil {
		return make([][]envelope, n)
	}
	if w.rOff+n > len(w.rows) {
		w.rows, w.rOff = make([][]envelope, grow(n, len(w.rows), 0)), 0
	}
	out := w.rows[w.rOff : w.rOff+n : w.rOff+n]
	w.rOff += n
	clear(out)
	return out
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
