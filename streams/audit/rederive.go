package audit

import (
	"errors"
	"fmt"

	"github.com/atlas-mmm/atlas/engine"
	"github.com/atlas-mmm/atlas/streams"
	"github.com/atlas-mmm/atlas/streams/event"
	"github.com/atlas-mmm/atlas/streams/processor"
)

// The processor's answer to a request is a pure function of the request message, the
// model version it resolved and the source it signs with; this file recomputes it. It
// follows processor.handle step for step (the tests run the real processor and require
// the audit to find nothing, so the two cannot drift apart unnoticed).

// request is a request message as the processor decodes it.
type request struct {
	msg       streams.Message
	env       event.Envelope
	requestID string
	modelID   string // data.model_id, "" for the default model or an inline one
	// Exactly one of the following holds: the request is not a request at all (the
	// processor dead-letters it), it is rejected for its own content, or it is to be
	// solved.
	dead     string             // why it is dead-lettered
	rejected bool               // rejected for its content, because of reject
	reject   engine.FieldErrors // the errors, with the paths the processor uses
	req      engine.Request
	inline   *engine.Prepared // the request's inline model, prepared
}

func decodeRequest(m streams.Message) *request {
	r := &request{msg: m}
	env, err := event.DecodeTrusted(m.Value)
	if err != nil {
		env, err = event.Decode(m.Value)
	}
	r.env = env
	var derr *event.DecodeError
	switch {
	case err == nil && env.Type != event.OptimizationRequested:
		r.dead = fmt.Sprintf("event type %s does not belong on the request topic", env.Type)
		return r
	case err != nil && errors.As(err, &derr) && derr.DataOnly && env.Type == event.OptimizationRequested:
		r.requestID = env.RequestID()
		r.rejected, r.reject = true, derr.DataErrors()
		return r
	case err != nil:
		r.dead = err.Error()
		return r
	}
	req, err := engine.DecodeRequest(env.Data)
	if err != nil {
		var fes engine.FieldErrors
		if !errors.As(err, &fes) {
			fes = engine.FieldErrors{{Message: err.Error()}}
		}
		r.requestID = env.RequestID()
		r.rejected, r.reject = true, fes
		return r
	}
	r.requestID = req.RequestID
	if r.requestID == "" {
		r.requestID = env.ID
	}
	req.RequestID = r.requestID
	r.modelID = req.ModelID
	if req.Model != nil {
		pm, err := engine.Prepare(req.Model)
		if err != nil {
			var fes engine.FieldErrors
			errors.As(err, &fes)
			for i := range fes {
				fes[i].Field = "model." + fes[i].Field
			}
			r.rejected, r.reject = true, fes
			return r
		}
		r.inline = pm
		r.modelID = req.Model.ModelID
	}
	r.req = req
	return r
}

// rejection is the bytes of the rejection the processor writes for r.
func (r *request) rejection(source string, errs engine.FieldErrors) ([]byte, error) {
	if len(errs) == 0 {
		errs = engine.FieldErrors{{Message: "invalid request"}}
	}
	id := r.requestID
	if id == "" {
		id = r.env.ID
	}
	return r.emit(source, id, event.OptimizationRejected, event.Rejection{RequestID: id, Errors: errs})
}

// solved is the bytes of the result the processor writes for r solved against pm
// (version 0 for an inline model).
func (r *request) solved(source string, pm *engine.Prepared, modelID string, version int) ([]byte, error) {
	req := r.req // Solve may not modify it, but the request is shared by nothing else
	res := pm.Solve(&req)
	res.RequestID, res.ModelID, res.ModelVersion, res.ModelHash = r.requestID, modelID, version, pm.Hash()
	res.Engine.ElapsedMicros = 0
	if res.Status == engine.StatusInvalid {
		errs := res.Errors
		if len(errs) == 0 {
			for _, msg := range res.Messages {
				errs = append(errs, engine.FieldError{Message: msg})
			}
		}
		return r.rejection(source, errs)
	}
	return r.emit(source, r.requestID, event.OptimizationCompleted, res)
}

func (r *request) emit(source, requestID, typ string, data any) ([]byte, error) {
	t := r.env.Time
	if t.IsZero() {
		t = r.msg.Time
	}
	return event.EncodeTrusted(typ, source, requestID, event.ResultID(requestID, typ), t, data)
}

// modelRejection reports whether errs is what the processor writes when it cannot
// resolve a request's model (processor.Registry.Resolve): that depends on the registry
// at the moment the request was processed, which the log does not record, so such a
// rejection is checked for its form only.
func modelRejection(errs engine.FieldErrors) bool {
	return len(errs) == 1 && errs[0].Field == "model_id"
}

// versionOf finds the model version a result names.
func versionOf(reg *processor.Registry, modelID string, version int) (*processor.ModelVersion, bool) {
	if modelID == "" || version < 1 {
		return nil, false
	}
	return reg.Version(modelID, version)
}
