package api

import (
	"fmt"
	"net/http"

	"github.com/atlas-mmm/atlas/engine"
)

// Size limits beyond the body's: a 10 MB body can still carry a hundred thousand
// channels, which would make every solve against that model slow for everyone. A
// refusal is 413 naming the field, as for the body.

func (s *Server) tooMany(w http.ResponseWriter, field, what string, n, limit int) bool {
	if n <= limit {
		return true
	}
	writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("%s: %d %s, at most %d are accepted", field, n, what, limit), field)
	return false
}

// checkModel bounds a model's channels (prefix: where the model sits in the body).
func (s *Server) checkModel(w http.ResponseWriter, m *engine.Model, prefix string) bool {
	limit := s.cfg.Security.MaxChannels
	if !s.tooMany(w, prefix+"channels", "channels", len(m.Channels), limit) {
		return false
	}
	for name, k := range m.KPIs {
		if !s.tooMany(w, prefix+"kpis."+name+".channels", "channels", len(k.Channels), limit) {
			return false
		}
	}
	return true
}

// checkRequest bounds a request's per-channel maps and its inline model.
func (s *Server) checkRequest(w http.ResponseWriter, req *engine.Request) bool {
	limit := s.cfg.Security.MaxChannels
	if req.Model != nil && !s.checkModel(w, req.Model, "model.") {
		return false
	}
	return s.tooMany(w, "budget", "channels", len(req.Budget), limit) &&
		s.tooMany(w, "constraints.channels", "channels", len(req.Constraints.Channels), limit)
}

// checkAllocations bounds a what-if batch: the number of allocations and the channels
// of each.
func (s *Server) checkAllocations(w http.ResponseWriter, allocs []map[string]float64) bool {
	if !s.tooMany(w, "allocations", "allocations", len(allocs), s.cfg.Security.MaxAllocations) {
		return false
	}
	for i, a := range allocs {
		if !s.tooMany(w, fmt.Sprintf("allocations[%d]", i), "channels", len(a), s.cfg.Security.MaxChannels) {
			return false
		}
	}
	return true
}
