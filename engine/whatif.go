package engine

import "fmt"

// Evaluate is the what-if evaluation: the spend, KPIs, ROI and marginal ROI of each given
// allocation against a model, with no optimisation. Channels missing from an allocation
// spend 0; a channel the model does not know is an error naming it.
func Evaluate(m *Model, allocations []map[string]float64) ([]Evaluation, error) {
	pm, err := Prepare(m)
	if err != nil {
		errs := err.(FieldErrors)
		for i := range errs {
			errs[i].Field = "model." + errs[i].Field
		}
		return nil, errs
	}
	return pm.Evaluate(allocations)
}

// Evaluate is the what-if evaluation against the prepared model.
func (pm *Prepared) Evaluate(allocations []map[string]float64) ([]Evaluation, error) {
	p, errs := compile(pm, &Request{Constraints: Constraints{Total: &Total{Exact: new(float64)}}})
	if len(errs) > 0 {
		return nil, errs
	}
	out := make([]Evaluation, len(allocations))
	var bad FieldErrors
	for a, alloc := range allocations {
		x := make([]float64, p.n())
		for _, name := range sortedKeys(alloc) {
			field := fmt.Sprintf("allocations[%d].%s", a, name)
			i, ok := p.index[name]
			if !ok {
				bad = append(bad, fieldErr(field, "unknown channel %q", name))
				continue
			}
			v := alloc[name]
			if !finite(v) || v < 0 || v > maxParam {
				bad = append(bad, fieldErr(field, "must be a non-negative amount at most %g, got %g", maxParam, v))
				continue
			}
			x[i] = v
		}
		out[a] = p.evaluate(x, nil)
	}
	if len(bad) > 0 {
		return nil, bad
	}
	return out, nil
}
