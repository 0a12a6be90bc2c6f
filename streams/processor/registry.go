package processor

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/atlas-mmm/atlas/engine"
	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/event"
)

// ModelVersion is one published version of a model.
type ModelVersion struct {
	ModelID   string    `json:"model_id"`
	Version   int       `json:"version"`
	Hash      string    `json:"hash"`
	Published time.Time `json:"published"`
	EventID   string    `json:"event_id"`
	Partition int       `json:"partition"`
	Offset    int64     `json:"offset"`

	prepared *engine.Prepared
}

// Prepared is the compiled model, ready to solve requests.
func (v *ModelVersion) Prepared() *engine.Prepared { return v.prepared }

// ModelState is everything known about one model id.
type ModelState struct {
	ModelID  string          `json:"model_id"`
	Versions []*ModelVersion `json:"versions"`
	Retired  bool            `json:"retired"`
}

// Registry holds every model version, built by applying the model topic in log order.
// Versions are numbered per model in the order their events sit in the log (a model's
// events share a key, hence a partition), so a rebuild from the log gives the same
// numbers. It is safe for concurrent use.
type Registry struct {
	mu           sync.RWMutex
	models       map[string]*ModelState
	latest       *ModelVersion // the most recent publication of a model not retired since
	latestKey    [3]int64      // (time, partition, offset) of latest, to compare
	offsets      map[int]int64 // next offset to apply, per partition
	defaultModel string
}

// NewRegistry returns an empty registry. defaultModel, when set, is the model used by
// requests that name none; otherwise the most recently published model is.
func NewRegistry(defaultModel string) *Registry {
	return &Registry{models: map[string]*ModelState{}, offsets: map[int]int64{}, defaultModel: defaultModel}
}

// Offsets returns the next offset to apply per partition (a copy).
func (r *Registry) Offsets() map[int]int64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[int]int64, len(r.offsets))
	for p, o := range r.offsets {
		out[p] = o
	}
	return out
}

// Apply applies one message of the model topic. A message that is not a valid model
// event is returned as an error (the caller dead-letters it) and still counts as
// applied, so that it is not read again.
func (r *Registry) Apply(msg streams.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if next, ok := r.offsets[msg.Partition]; ok && msg.Offset < next {
		return nil // already applied (a re-read)
	}
	r.offsets[msg.Partition] = msg.Offset + 1
	env, err := event.Decode(msg.Value)
	if err != nil {
		return err
	}
	switch env.Type {
	case event.ModelPublished:
		m, err := engine.DecodeModel(env.Data)
		if err != nil {
			return fmt.Errorf("model event %s: %w", env.ID, err)
		}
		if m.ModelID == "" {
			return fmt.Errorf("model event %s: data.model_id: a published model needs an id", env.ID)
		}
		pm, err := engine.Prepare(&m)
		if err != nil {
			return fmt.Errorf("model event %s: %w", env.ID, err)
		}
		st := r.models[m.ModelID]
		if st == nil {
			st = &ModelState{ModelID: m.ModelID}
			r.models[m.ModelID] = st
		}
		t := env.Time
		if t.IsZero() {
			t = msg.Time
		}
		v := &ModelVersion{ModelID: m.ModelID, Version: len(st.Versions) + 1, Hash: pm.Hash(), Published: t,
			EventID: env.ID, Partition: msg.Partition, Offset: msg.Offset, prepared: pm}
		st.Versions = append(st.Versions, v)
		st.Retired = false
		key := [3]int64{msg.Time.UnixNano(), int64(msg.Partition), msg.Offset}
		if r.latest == nil || less(r.latestKey, key) {
			r.latest, r.latestKey = v, key
		}
	case event.ModelRetired:
		var ret event.Retirement
		if err := json.Unmarshal(env.Data, &ret); err != nil || ret.ModelID == "" {
			return fmt.Errorf("retire event %s: data.model_id missing", env.ID)
		}
		st := r.models[ret.ModelID]
		if st == nil {
			return fmt.Errorf("retire event %s: data.model_id: unknown model %q", env.ID, ret.ModelID)
		}
		st.Retired = true
		if r.latest != nil && r.latest.ModelID == ret.ModelID {
			r.latest = r.newestActive()
		}
	default:
		return fmt.Errorf("event %s: type %s does not belong on the model topic", env.ID, env.Type)
	}
	return nil
}

func less(a, b [3]int64) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// newestActive finds the most recent publication among models not retired.
func (r *Registry) newestActive() *ModelVersion {
	var best *ModelVersion
	var bestKey [3]int64
	for _, st := range r.models {
		if st.Retired || len(st.Versions) == 0 {
			continue
		}
		v := st.Versions[len(st.Versions)-1]
		k := [3]int64{v.Published.UnixNano(), int64(v.Partition), v.Offset}
		if best == nil || less(bestKey, k) {
			best, bestKey = v, k
		}
	}
	return best
}

// ErrUnknownModel and ErrRetiredModel explain why a request has no model.
type modelError struct{ msg string }

func (e *modelError) Error() string { return e.msg }

// Resolve returns the version a request should use: the latest version of modelID, or
// of the default model when modelID is empty.
func (r *Registry) Resolve(modelID string) (*ModelVersion, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if modelID == "" {
		modelID = r.defaultModel
	}
	if modelID == "" {
		if r.latest == nil {
			return nil, &modelError{"no model has been published: give model_id or an inline model"}
		}
		return r.latest, nil
	}
	st := r.models[modelID]
	if st == nil || len(st.Versions) == 0 {
		return nil, &modelError{fmt.Sprintf("unknown model %q", modelID)}
	}
	if st.Retired {
		return nil, &modelError{fmt.Sprintf("model %q is retired", modelID)}
	}
	return st.Versions[len(st.Versions)-1], nil
}

// Version returns one version of a model.
func (r *Registry) Version(modelID string, version int) (*ModelVersion, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	st := r.models[modelID]
	if st == nil || version < 1 || version > len(st.Versions) {
		return nil, false
	}
	return st.Versions[version-1], true
}

// Models returns the state of every model, sorted by id (copies of the version lists).
func (r *Registry) Models() []ModelState {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]ModelState, 0, len(r.models))
	for _, st := range r.models {
		out = append(out, ModelState{ModelID: st.ModelID, Versions: append([]*ModelVersion(nil), st.Versions...), Retired: st.Retired})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ModelID < out[j].ModelID })
	return out
}

// Len is the number of model ids known.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.models)
}
