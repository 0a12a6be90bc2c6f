package engine

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// problem is a request compiled against a model into the canonical form every solver
// works on:
//
//	maximise   Σ_k w_k Σ_i f_ik(x_i) − cost·Σ_i x_i
//	subject to lo_i ≤ x_i ≤ hi_i, tlo ≤ Σ_i x_i ≤ thi,
//	           rowLo_r ≤ Σ_i a_ri x_i ≤ rowHi_r   (groups, shares, ratios)
//	           Σ_i f_ik(x_i) ≥ floor_k            (KPI floors)
//
// Channels are in sorted name order, which fixes the order of every floating-point sum
// and so makes results bit-reproducible.
type problem struct {
	names    []string
	index    map[string]int
	kpiNames []string   // 0 is the primary KPI
	baseline []float64  // per KPI
	terms    [][]*term  // [channel][kpi], nil where a channel is absent from a KPI
	w        []float64  // objective weight per KPI
	cost     float64    // price of spend in the objective (target_mroi)
	budget   []float64  // current allocation
	lo, hi   []float64  // boxes; hi may be +Inf until capped
	loSrc    [][]string // which constraints set lo (for at_bound and messages)
	hiSrc    [][]string
	tlo, thi float64
	totalSrc string
	rows     []row
	floors   []floorCon

	// budgetKPI: each KPI's value (baseline excluded) at budget, once computed;
	// lastTotals: the same for the plan totals last evaluated.
	budgetKPI, lastTotals []float64

	ws *scratch // the solve's working memory (nil: allocate)

	// pointCaps: target_mroi's price-point caps where forcedCap widened them, +Inf on
	// the other channels (nil when none was widened)
	pointCaps []float64

	// lastResp: the plan objective last evaluated and each channel's primary response
	// there (see respAt)
	lastResp struct {
		x, f []float64
		ok   bool
	}
}

type row struct {
	idx    []int
	coef   []float64
	lo, hi float64
	label  string
}

type floorCon struct {
	kpi   int
	rhs   float64 // floor minus the KPI's baseline: what the channels must add up to
	label string
}

func (p *problem) n() int { return len(p.names) }

// concave reports whether every curve that matters to the objective or a floor is
// concave, in which case the relaxation is the problem itself.
func (p *problem) concave() bool {
	for k := range p.kpiNames {
		used := p.w[k] != 0
		for _, f := range p.floors {
			used = used || f.kpi == k
		}
		if !used {
			continue
		}
		for i := range p.names {
			if t := p.terms[i][k]; t != nil && !t.concave() {
				return false
			}
		}
	}
	return true
}

// objective evaluates the true objective at x.
func (p *problem) objective(x []float64) float64 {
	keep := p.ws != nil && p.w[0] != 0 // keep the primary KPI's responses for evaluate
	if keep {
		if len(p.lastResp.x) != len(x) {
			p.lastResp.x, p.lastResp.f = p.ws.floats(len(x)), p.ws.floats(len(x))
		}
		copy(p.lastResp.x, x)
	}
	v := 0.0
	for i := range x {
		for k, t := range p.terms[i] {
			if t != nil && p.w[k] != 0 {
				f := t.val(x[i])
				if k == 0 && keep {
					p.lastResp.f[i] = f
				}
				v += p.w[k] * f
			}
		}
		v -= p.cost * x[i]
	}
	p.lastResp.ok = keep
	return v
}

// respAt is the primary KPI's response of each channel at x, when objective computed
// them last (nil otherwise): the same calls on the same spends, so the same bits.
func (p *problem) respAt(x []float64) []float64 {
	c := &p.lastResp
	if !c.ok || len(c.x) != len(x) {
		return nil
	}
	for i, v := range x {
		if c.x[i] != v {
			return nil
		}
	}
	return c.f
}

// kpiValue is Σ_i f_ik(x_i), without the baseline.
func (p *problem) kpiValue(k int, x []float64) float64 {
	v := 0.0
	for i := range x {
		if t := p.terms[i][k]; t != nil {
			v += t.val(x[i])
		}
	}
	return v
}

// feasible checks x against every constraint with a relative tolerance.
func (p *problem) feasible(x []float64, tol float64) bool {
	sum := 0.0
	for i, v := range x {
		if v < p.lo[i]-tol*max(1, p.lo[i]) || v > p.hi[i]+tol*max(1, p.hi[i]) {
			return false
		}
		sum += v
	}
	scale := max(1, sum)
	if sum < p.tlo-tol*scale || sum > p.thi+tol*scale {
		return false
	}
	for _, r := range p.rows {
		v := r.eval(x)
		if v < r.lo-tol*scale || v > r.hi+tol*scale {
			return false
		}
	}
	for _, f := range p.floors {
		if p.kpiValue(f.kpi, x) < f.rhs-tol*max(1, math.Abs(f.rhs)) {
			return false
		}
	}
	return true
}

func (r *row) eval(x []float64) float64 {
	v := 0.0
	for j, i := range r.idx {
		v += r.coef[j] * x[i]
	}
	return v
}

// Prepared is a validated model with its curves compiled, ready to answer many requests.
// It is immutable and safe for concurrent use; a processor keeps one per model version.
type Prepared struct {
	model    *Model
	labels   []boundLabels // per channel, for at_bound and messages
	names    []string
	index    map[string]int
	kpiNames []string
	baseline []float64
	terms    [][]*term
	hash     string
}

// Prepare validates a model and compiles its curves.
func Prepare(m *Model) (*Prepared, error) {
	if errs := ValidateModel(m); len(errs) > 0 {
		return nil, errs
	}
	pm := &Prepared{model: m, index: map[string]int{}}
	pm.names = sortedKeys(m.Channels)
	for i, name := range pm.names {
		pm.index[name] = i
	}
	pm.kpiNames = append([]string{m.PrimaryKPI()}, sortedKeys(m.KPIs)...)
	pm.baseline = make([]float64, len(pm.kpiNames))
	pm.baseline[0] = m.Baseline
	pm.terms = make([][]*term, len(pm.names))
	for i, name := range pm.names {
		pm.terms[i] = make([]*term, len(pm.kpiNames))
		ch := m.Channels[name]
		pm.terms[i][0] = newTerm(&ch.Curve, ch.Adstock)
	}
	for k := 1; k < len(pm.kpiNames); k++ {
		km := m.KPIs[pm.kpiNames[k]]
		pm.baseline[k] = km.Baseline
		for name, ch := range km.Channels {
			if i, ok := pm.index[name]; ok {
				ch := ch
				pm.terms[i][k] = newTerm(&ch.Curve, ch.Adstock)
			}
		}
	}
	pm.labels = make([]boundLabels, len(pm.names))
	for i, name := range pm.names {
		// one string holds the four labels: base.min base.max base.fixed, cut apart
		const c = "constraints.channels."
		all := c + name + ".min" + c + name + ".max" + c + name + ".fixed"
		n := len(c) + len(name)
		pm.labels[i] = boundLabels{base: all[:n], min: all[:n+4], max: all[n+4 : 2*n+8], fixed: all[2*n+8:]}
	}
	pm.hash = ModelHash(m)
	return pm, nil
}

// boundLabels name a channel's bounds in messages.
type boundLabels struct{ base, min, max, fixed string }

// Model returns the model this was prepared from.
func (pm *Prepared) Model() *Model { return pm.model }

// Hash is the model's content hash (see ModelHash).
func (pm *Prepared) Hash() string { return pm.hash }

// compile turns a prepared model and a request into a problem, or returns the request's
// field errors.
func compile(pm *Prepared, req *Request) (*problem, FieldErrors) { return compileWith(pm, req, nil) }

// compileWith is compile with the problem's arrays taken from ws (nil: allocated).
func compileWith(pm *Prepared, req *Request, ws *scratch) (*problem, FieldErrors) {
	var errs FieldErrors
	add := func(field, format string, args ...any) { errs = append(errs, fieldErr(field, format, args...)) }

	p := ws.problem()
	*p = problem{index: pm.index, names: pm.names, kpiNames: pm.kpiNames, baseline: pm.baseline, terms: pm.terms, ws: ws}
	known := func(field, name string) (int, bool) {
		i, ok := p.index[name]
		if !ok {
			add(field, "unknown channel %q (the model has %s)", name, strings.Join(p.names, ", "))
		}
		return i, ok
	}
	n := len(p.names)

	kpiIndex := func(field, name string) (int, bool) {
		for k, kn := range p.kpiNames {
			if kn == name {
				return k, true
			}
		}
		add(field, "unknown KPI %q (the model has %s)", name, strings.Join(p.kpiNames, ", "))
		return 0, false
	}

	// Budget: the current allocation.
	// In channel order, so that the sum is the same bits on every run.
	// One allocation backs the budget, the boxes and the objective weights.
	nk := len(p.kpiNames)
	vals := ws.floats(3*n + nk)
	p.budget = vals[:n:n]
	budgetSum, matched := 0.0, 0
	for i, name := range p.names {
		v, ok := req.Budget[name]
		if !ok {
			continue
		}
		matched++
		if !finite(v) || v < 0 || v > maxParam {
			add("budget."+name, "must be a non-negative amount at most %g, got %g", maxParam, v)
			continue
		}
		p.budget[i] = v
		budgetSum += v
	}
	if matched < len(req.Budget) {
		for _, name := range sortedKeys(req.Budget) {
			known("budget."+name, name)
		}
	}

	c := &req.Constraints
	obj := req.Objective
	if obj.Type == "" {
		obj.Type = ObjMaxKPI
	}

	// Total spend.
	p.tlo, p.thi = 0, math.Inf(1)
	switch {
	case c.Total == nil:
		switch obj.Type {
		case ObjMaxKPI, ObjWeighted:
			if budgetSum <= 0 {
				add("constraints.total", "missing, and the budget sums to 0: say how much to allocate")
			}
			p.tlo, p.thi, p.totalSrc = budgetSum, budgetSum, "the budget's sum (no total given)"
		default:
			p.totalSrc = "any total spend"
		}
	case c.Total.Exact != nil:
		t := *c.Total.Exact
		if !finite(t) || t < 0 || t > maxParam {
			add("constraints.total", "must be a non-negative amount at most %g, got %g", maxParam, t)
		}
		p.tlo, p.thi, p.totalSrc = t, t, "constraints.total"
	default:
		if c.Total.Min != nil {
			p.tlo = *c.Total.Min
			if !finite(p.tlo) || p.tlo < 0 || p.tlo > maxParam {
				add("constraints.total.min", "must be a non-negative amount at most %g", maxParam)
			}
		}
		if c.Total.Max != nil {
			p.thi = *c.Total.Max
			if !finite(p.thi) || p.thi < 0 || p.thi > maxParam {
				add("constraints.total.max", "must be a non-negative amount at most %g", maxParam)
			}
		}
		if p.tlo > p.thi {
			add("constraints.total", "min %g exceeds max %g", p.tlo, p.thi)
		}
		p.totalSrc = "constraints.total"
	}
	exactTotal := p.tlo == p.thi

	// Channel boxes, remembering which constraint set each side.
	p.lo, p.hi = vals[n:2*n:2*n], vals[2*n:3*n:3*n]
	srcs := ws.lists(2 * n)
	p.loSrc, p.hiSrc = srcs[:n:n], srcs[n:]
	for i := range p.hi {
		p.hi[i] = math.Inf(1)
	}
	// One-label lists come out of one backing array, each capped at its length so that
	// appending a second label copies it out.
	labels := ws.strs(2 * n)
	one := func(src string) []string {
		if len(labels) == cap(labels) {
			return []string{src}
		}
		labels = append(labels, src)
		k := len(labels)
		return labels[k-1 : k : k]
	}
	raiseLo := func(i int, v float64, src string) {
		if v > p.lo[i] {
			p.lo[i], p.loSrc[i] = v, one(src)
		} else if v == p.lo[i] && v > 0 {
			p.loSrc[i] = append(p.loSrc[i], src)
		}
	}
	lowerHi := func(i int, v float64, src string) {
		if v < p.hi[i] {
			p.hi[i], p.hiSrc[i] = v, one(src)
		} else if v == p.hi[i] {
			p.hiSrc[i] = append(p.hiSrc[i], src)
		}
	}
	amount := func(field string, v *float64) (float64, bool) {
		if v == nil {
			return 0, false
		}
		if !finite(*v) || *v < 0 || *v > maxParam {
			add(field, "must be a non-negative amount at most %g, got %g", maxParam, *v)
			return 0, false
		}
		return *v, true
	}
	fraction := func(field string, v *float64, allowZero bool) (float64, bool) {
		if v == nil {
			return 0, false
		}
		if !finite(*v) || *v < 0 || *v > 1 || (!allowZero && *v == 0) {
			add(field, "must be a fraction in (0, 1], got %g", *v)
			return 0, false
		}
		return *v, true
	}
	// In channel order (no sort), with the labels prepared with the model.
	seen := 0
	for i, name := range p.names {
		b, ok := c.Channels[name]
		if !ok {
			continue
		}
		seen++
		lb := &pm.labels[i]
		mn, hasMin := amount(lb.min, b.Min)
		mx, hasMax := amount(lb.max, b.Max)
		if hasMin && hasMax && mn > mx {
			add(lb.base, "min %g exceeds max %g", mn, mx)
		}
		if hasMin {
			raiseLo(i, mn, lb.min)
		}
		if hasMax {
			lowerHi(i, mx, lb.max)
		}
		if b.Fixed {
			raiseLo(i, p.budget[i], lb.fixed)
			lowerHi(i, p.budget[i], lb.fixed)
		}
	}
	if seen < len(c.Channels) {
		for _, name := range sortedKeys(c.Channels) {
			known("constraints.channels."+name, name)
		}
	}
	if c.MaxChange != nil {
		d := *c.MaxChange
		if !finite(d) || d < 0 || d > 1e6 {
			add("constraints.max_change", "must be a non-negative fraction, got %g", d)
		} else {
			for i := range p.names {
				if d < 1 {
					raiseLo(i, p.budget[i]*(1-d), "constraints.max_change")
				}
				lowerHi(i, p.budget[i]*(1+d), "constraints.max_change")
			}
		}
	}
	if s, ok := fraction("constraints.max_share", c.MaxShare, false); ok {
		// Every channel at most s of the total, n channels, s·n < 1: the shares cannot
		// add up to the whole, so the only plan spends nothing. Said as bounds, it needs
		// no solver (whose interior-point method has no interior to work in here).
		zeroOnly := !exactTotal && s*float64(n) < 1
		for i := range p.names {
			if zeroOnly {
				lowerHi(i, 0, "constraints.max_share")
				continue
			}
			if exactTotal {
				lowerHi(i, s*p.tlo, "constraints.max_share")
			} else if s < 1 {
				coef := make([]float64, n)
				idx := make([]int, n)
				for j := range coef {
					idx[j], coef[j] = j, -s
				}
				coef[i] += 1
				p.rows = append(p.rows, row{idx: idx, coef: coef, lo: math.Inf(-1), hi: 0,
					label: "constraints.max_share (" + p.names[i] + ")"})
			}
		}
	}

	// Groups.
	for g, grp := range c.Groups {
		base := fmt.Sprintf("constraints.groups[%d]", g)
		label := base
		if grp.Name != "" {
			label = fmt.Sprintf("%s (%s)", base, grp.Name)
		}
		if len(grp.Channels) == 0 {
			add(base+".channels", "a group needs at least one channel")
			continue
		}
		member := make([]bool, n)
		var idx []int
		for j, name := range grp.Channels {
			i, ok := known(fmt.Sprintf("%s.channels[%d]", base, j), name)
			if !ok {
				continue
			}
			if member[i] {
				add(fmt.Sprintf("%s.channels[%d]", base, j), "channel %q listed twice", name)
				continue
			}
			member[i] = true
			idx = append(idx, i)
		}
		sort.Ints(idx)
		mn, hasMin := amount(base+".min", grp.Min)
		mx, hasMax := amount(base+".max", grp.Max)
		ms, hasMS := fraction(base+".min_share", grp.MinShare, true)
		xs, hasXS := fraction(base+".max_share", grp.MaxShare, true)
		if hasMin && hasMax && mn > mx {
			add(base, "min %g exceeds max %g", mn, mx)
		}
		if hasMS && hasXS && ms > xs {
			add(base, "min_share %g exceeds max_share %g", ms, xs)
		}
		if !hasMin && !hasMax && !hasMS && !hasXS {
			add(base, "a group needs at least one of min, max, min_share, max_share")
		}
		lo, hi := math.Inf(-1), math.Inf(1)
		if hasMin {
			lo = mn
		}
		if hasMax {
			hi = mx
		}
		if exactTotal { // shares of a known total are absolute amounts
			if hasMS {
				lo = math.Max(lo, ms*p.tlo)
			}
			if hasXS {
				hi = math.Min(hi, xs*p.tlo)
			}
		} else {
			share := func(s, lo, hi float64, what string) {
				coef := make([]float64, n)
				all := make([]int, n)
				for j := range coef {
					all[j], coef[j] = j, -s
					if member[j] {
						coef[j] += 1
					}
				}
				p.rows = append(p.rows, row{idx: all, coef: coef, lo: lo, hi: hi, label: label + "." + what})
			}
			if hasMS && ms > 0 {
				share(ms, 0, math.Inf(1), "min_share")
			}
			if hasXS && xs < 1 {
				share(xs, math.Inf(-1), 0, "max_share")
			}
		}
		if math.IsInf(lo, -1) && math.IsInf(hi, 1) {
			continue
		}
		if len(idx) == 1 { // a one-channel group is a bound
			if !math.IsInf(lo, -1) {
				raiseLo(idx[0], lo, label)
			}
			if !math.IsInf(hi, 1) {
				lowerHi(idx[0], hi, label)
			}
			continue
		}
		coef := make([]float64, len(idx))
		for j := range coef {
			coef[j] = 1
		}
		p.rows = append(p.rows, row{idx: idx, coef: coef, lo: math.Max(lo, 0), hi: hi, label: label})
	}

	// Ratios: min ≤ x_num/x_den ≤ max, as linear rows.
	for r, rt := range c.Ratios {
		base := fmt.Sprintf("constraints.ratios[%d]", r)
		ni, ok1 := known(base+".numerator", rt.Numerator)
		di, ok2 := known(base+".denominator", rt.Denominator)
		if !ok1 || !ok2 {
			continue
		}
		if ni == di {
			add(base, "numerator and denominator are the same channel")
			continue
		}
		mn, hasMin := amount(base+".min", rt.Min)
		mx, hasMax := amount(base+".max", rt.Max)
		if hasMin && hasMax && mn > mx {
			add(base, "min %g exceeds max %g", mn, mx)
		}
		if !hasMin && !hasMax {
			add(base, "a ratio needs min or max")
		}
		idx, sw := []int{ni, di}, false
		if di < ni {
			idx, sw = []int{di, ni}, true
		}
		mk := func(v float64) []float64 {
			if sw {
				return []float64{-v, 1}
			}
			return []float64{1, -v}
		}
		if hasMin && mn > 0 {
			p.rows = append(p.rows, row{idx: idx, coef: mk(mn), lo: 0, hi: math.Inf(1), label: base + ".min"})
		}
		if hasMax {
			p.rows = append(p.rows, row{idx: idx, coef: mk(mx), lo: math.Inf(-1), hi: 0, label: base + ".max"})
		}
	}

	// Objective.
	p.w = vals[3*n:]
	notFor := func(field string, used bool, types string) {
		if used {
			add("objective."+field, "not used by objective %s (only by %s)", obj.Type, types)
		}
	}
	primary := 0
	if obj.KPI != "" {
		if k, ok := kpiIndex("objective.kpi", obj.KPI); ok {
			primary = k
		}
	}
	switch obj.Type {
	case ObjMaxKPI, ObjTargetROI, ObjTargetMROI:
		p.w[primary] = 1
		notFor("weights", obj.Weights != nil, ObjWeighted)
	case ObjWeighted:
		if len(obj.Weights) == 0 {
			add("objective.weights", "missing: weighted needs a weight per KPI")
		}
		anyPositive := false
		for _, name := range sortedKeys(obj.Weights) {
			v := obj.Weights[name]
			if k, ok := kpiIndex("objective.weights."+name, name); ok {
				if !finite(v) || v < 0 || v > maxParam {
					add("objective.weights."+name, "must be a non-negative number, got %g", v)
					continue
				}
				p.w[k] = v
				anyPositive = anyPositive || v > 0
			}
		}
		if len(obj.Weights) > 0 && !anyPositive {
			add("objective.weights", "at least one weight must be positive")
		}
		notFor("kpi", obj.KPI != "", "max_kpi, min_spend, target_roi, target_mroi")
	case ObjMinSpend:
		if len(obj.Target) == 0 {
			add("objective.target", "missing: min_spend needs a target such as {\"revenue\": 2e6}")
		}
		notFor("weights", obj.Weights != nil, ObjWeighted)
	default:
		add("objective.type", "unknown objective %q (one of max_kpi, weighted, min_spend, target_roi, target_mroi)", obj.Type)
	}
	notFor("target", obj.Target != nil && obj.Type != ObjMinSpend, ObjMinSpend)
	notFor("roi", obj.ROI != nil && obj.Type != ObjTargetROI, ObjTargetROI)
	notFor("mroi", obj.MROI != nil && obj.Type != ObjTargetMROI, ObjTargetMROI)
	if obj.Type == ObjTargetROI && (obj.ROI == nil || !finite(*obj.ROI) || *obj.ROI <= 0) {
		add("objective.roi", "target_roi needs a positive roi")
	}
	if obj.Type == ObjTargetMROI {
		if obj.MROI == nil || !finite(*obj.MROI) || *obj.MROI <= 0 || *obj.MROI > maxParam {
			add("objective.mroi", "target_mroi needs a positive mroi")
		} else {
			p.cost = *obj.MROI
		}
	}
	addFloor := func(field, name string, v float64) {
		if k, ok := kpiIndex(field, name); ok {
			if !finite(v) || math.Abs(v) > maxParam {
				add(field, "must be a finite number, got %g", v)
				return
			}
			p.floors = append(p.floors, floorCon{kpi: k, rhs: v - p.baseline[k], label: field})
		}
	}
	for _, name := range sortedKeys(obj.Floors) {
		addFloor("objective.floors."+name, name, obj.Floors[name])
	}
	if obj.Type == ObjMinSpend {
		for _, name := range sortedKeys(obj.Target) {
			addFloor("objective.target."+name, name, obj.Target[name])
		}
	}
	if o := req.Options; o != nil {
		if !(o.Gap >= 0 && o.Gap < 1) {
			add("options.gap", "must be in [0, 1)")
		}
		if !(o.GapNonConcave >= 0 && o.GapNonConcave < 1) {
			add("options.gap_nonconcave", "must be in [0, 1)")
		}
		if o.MaxNodes < 0 || o.MaxNodes > 10_000_000 {
			add("options.max_nodes", "must be in [0, 10000000]")
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

// capSpend makes every box finite. Spend beyond the total's maximum is impossible; for
// objectives that price spend (target_mroi) spend beyond the point where a channel's own
// marginal return falls below the price is never worth it — unless constraints force
// spend (a total minimum, a group or ratio minimum, a KPI floor), which forcedCap allows
// for. It returns an error message when the spend is unbounded, which only happens with
// curves whose return never falls.
func (p *problem) capSpend() string {
	sumLo := 0.0
	for _, v := range p.lo {
		sumLo += v
	}
	var priced []int // channels capped at their price point
	for i := range p.hi {
		if !math.IsInf(p.thi, 1) {
			p.hi[i] = math.Min(p.hi[i], math.Max(p.lo[i], p.thi-(sumLo-p.lo[i])))
		}
		if !math.IsInf(p.hi[i], 1) {
			continue
		}
		if p.cost > 0 {
			cp := p.priceCap(i)
			if !math.IsInf(cp, 1) {
				p.hi[i] = math.Max(p.lo[i], cp)
				p.hiSrc[i] = []string{"objective.mroi"}
				priced = append(priced, i)
				continue
			}
		}
		return fmt.Sprintf("spend on channel %s is unbounded: give constraints.total a max or the channel a max", p.names[i])
	}
	if len(priced) > 0 && p.forcesSpend(sumLo) {
		p.forcedCap(priced)
	}
	return ""
}

// forcesSpend reports whether a constraint other than the channels' own minimums can make
// a plan spend more on a channel than its price point.
func (p *problem) forcesSpend(sumLo float64) bool {
	if p.tlo > sumLo || len(p.floors) > 0 {
		return true
	}
	for _, r := range p.rows {
		if !math.IsInf(r.lo, -1) {
			return true
		}
		// A maximum with a negative coefficient forces spend too: a ratio's maximum
		// (numerator ≤ r·denominator) on a numerator with a minimum, a share of the total.
		if !math.IsInf(r.hi, 1) {
			for _, c := range r.coef {
				if c < 0 {
					return true
				}
			}
		}
	}
	return false
}

// respUB is channel i's weighted response at x: an upper bound on it over [0, x], the
// curves being non-decreasing and the weights non-negative.
func (p *problem) respUB(i int, x float64) float64 {
	v := 0.0
	for k, t := range p.terms[i] {
		if t != nil && p.w[k] != 0 {
			v += p.w[k] * t.val(x)
		}
	}
	return v
}

// forcedCap widens the price-point caps of the channels in priced where constraints may
// force spend past them, by duality with a feasible plan x0 of value f0: a plan better
// than x0 has h_i(x_i) ≥ f0 − Σ_{j≠i} C_j for each channel i, where h_i(x) = G_i(x) − c·x
// is the channel's share of the objective and C_j ≥ max h_j over its range. Past its
// price point h_i decreases, so this caps x_i. Without a feasible plan at hand (KPI
// floors that neither the current plan nor the ones tried reach) the price points stay
// the caps.
func (p *problem) forcedCap(priced []int) {
	// x0 is feasible without the price-point caps
	capped := make([]float64, len(priced))
	for k, i := range priced {
		capped[k], p.hi[i] = p.hi[i], math.Inf(1)
	}
	var x0 []float64
	if p.budget != nil && p.feasible(p.budget, 0) {
		x0 = p.budget
	} else if x, ok := linearFeasiblePoint(p, p.lo, p.hi); ok {
		if p.feasible(x, 0) {
			x0 = x
		} else {
			// A KPI floor the vertex misses: more spend on the uncapped channels may
			// reach it (the curves never decrease).
			y := make([]float64, len(x))
			for t := 1.0; t <= maxParam && x0 == nil; t *= 4 {
				copy(y, x)
				for _, i := range priced {
					y[i] += t
				}
				if p.feasible(y, 0) {
					x0 = y
				}
			}
		}
	}
	for k, i := range priced {
		p.hi[i] = capped[k]
	}
	if x0 == nil {
		return
	}
	f0 := p.objective(x0)
	n := p.n()
	c := make([]float64, n)
	for j := 0; j < n; j++ {
		// On a finite range max h_j is at most G_j(hi_j) − c·lo_j.
		c[j] = p.respUB(j, p.hi[j]) - p.cost*p.lo[j]
	}
	for _, j := range priced {
		// Past its price point h_j decreases; before it, the curve's slope rises and then
		// falls (or only falls), so h_j's maximum is at lo_j or at the price point, or at
		// a breakpoint of a piecewise curve. (A priced channel has one objective term.)
		h := func(x float64) float64 { return p.respUB(j, x) - p.cost*x }
		lo, cp := p.lo[j], p.hi[j]
		best := math.Max(h(lo), h(cp))
		for k, t := range p.terms[j] {
			if t != nil && p.w[k] != 0 && t.kind == kindPiecewise {
				for _, bx := range t.px {
					if x := bx / t.s; x > lo && x < cp {
						best = math.Max(best, h(x))
					}
				}
			}
		}
		// a few rounding errors of slack keep the bound sound
		c[j] = math.Min(c[j], best+1e-12*math.Max(math.Abs(best), p.respUB(j, cp)))
	}
	sumC := 0.0
	for j := 0; j < n; j++ {
		sumC += c[j]
	}
	for _, i := range priced {
		need := f0 - (sumC - c[i]) // h_i(x_i) must reach this
		h := func(x float64) float64 { return p.respUB(i, x) - p.cost*x }
		a := p.hi[i]
		if h(a) < need {
			continue
		}
		b := math.Max(2*a, 1)
		for h(b) >= need && b < maxParam*1e3 {
			a, b = b, 2*b
		}
		if h(b) >= need {
			continue // keep the price point: no finite cap found (cannot happen past it)
		}
		for it := 0; it < 200 && b-a > 1e-12*b; it++ {
			m := a + (b-a)/2
			if h(m) >= need {
				a = m
			} else {
				b = m
			}
		}
		if p.pointCaps == nil {
			p.pointCaps = make([]float64, n)
			for j := range p.pointCaps {
				p.pointCaps[j] = math.Inf(1)
			}
		}
		p.pointCaps[i] = p.hi[i]
		p.hi[i] = b
		p.hiSrc[i] = nil
	}
}

// priceCap is the spend beyond which channel i's objective terms return less than p.cost
// per unit, or +Inf when they never do.
func (p *problem) priceCap(i int) float64 {
	cp := 0.0
	for k, t := range p.terms[i] {
		if t == nil || p.w[k] == 0 {
			continue
		}
		price := p.cost / p.w[k]
		var x float64
		switch {
		case t.beta == 0 && t.kind != kindPiecewise:
			x = 0
		case t.kind == kindLinear:
			if t.d1(0) > price {
				return math.Inf(1)
			}
		case t.kind == kindPower && t.alpha >= 1:
			return math.Inf(1)
		case t.kind == kindPiecewise:
			for j := range t.ps {
				if t.ps[j]*t.s > price && j+1 < len(t.px) {
					x = t.px[j+1] / t.s
				}
			}
		default:
			x = t.invD1(price, 0)
		}
		// Several KPIs: each term alone is past its price point beyond x, so is the sum
		// of terms only if every term is — use the largest, scaled by the KPI count.
		cp = math.Max(cp, x)
	}
	nk := 0
	for k := range p.w {
		if p.w[k] != 0 && p.terms[i][k] != nil {
			nk++
		}
	}
	if nk > 1 {
		return math.Inf(1)
	}
	return cp
}
