// Package engine is Atlas's optimizer core: given a marketing-mix model (per-channel
// response curves) and an optimization request (budget, constraints, objective) it
// returns the globally optimal allocation together with a proven bound on how far from
// optimal it can be.
//
// The package is pure and deterministic: no I/O, no clocks, no global state (a pool of
// zeroed scratch memory aside, which cannot change a result), no goroutines. The same
// model and request always give bit-identical results, which is what lets the rest of
// Atlas replay and audit history.
package engine

// Model is a marketing-mix model as published by an upstream system (contract §1).
type Model struct {
	ModelID  string              `json:"model_id"`
	KPI      string              `json:"kpi,omitempty"`
	Baseline float64             `json:"baseline"`
	Channels map[string]Channel  `json:"channels"`
	KPIs     map[string]KPIModel `json:"kpis,omitempty"`
}

// KPIModel is a secondary KPI: the same shape as the primary one.
type KPIModel struct {
	Baseline float64            `json:"baseline"`
	Channels map[string]Channel `json:"channels"`
}

// Channel is one marketing channel's response to spend.
type Channel struct {
	Curve   Curve    `json:"curve"`
	Adstock *Adstock `json:"adstock,omitempty"`
}

// Curve is a response curve f with f(0) = 0, increasing in spend. Parameters are
// pointers so that a missing parameter can be told apart from a zero one.
type Curve struct {
	Type   string      `json:"type"`
	Beta   *float64    `json:"beta,omitempty"`
	Alpha  *float64    `json:"alpha,omitempty"`
	Kappa  *float64    `json:"kappa,omitempty"`
	K      *float64    `json:"k,omitempty"`
	X0     *float64    `json:"x0,omitempty"`
	Points [][]float64 `json:"points,omitempty"` // each [x, y]
}

// Adstock carries over spend between periods. For a steady per-period spend x the
// geometric adstock acts as an effective spend x/(1−decay).
type Adstock struct {
	Type  string   `json:"type"`
	Decay *float64 `json:"decay"`
}

// Request is an optimization request (contract §2).
type Request struct {
	RequestID   string             `json:"request_id,omitempty"`
	ModelID     string             `json:"model_id,omitempty"`
	Model       *Model             `json:"model,omitempty"`
	Budget      map[string]float64 `json:"budget,omitempty"`
	Constraints Constraints        `json:"constraints"`
	Objective   Objective          `json:"objective"`
	Options     *Options           `json:"options,omitempty"`
}

// Constraints restrict the allocation.
type Constraints struct {
	Total     *Total                   `json:"total,omitempty"`
	Channels  map[string]ChannelBounds `json:"channels,omitempty"`
	MaxChange *float64                 `json:"max_change,omitempty"`
	MaxShare  *float64                 `json:"max_share,omitempty"`
	Groups    []Group                  `json:"groups,omitempty"`
	Ratios    []Ratio                  `json:"ratios,omitempty"`
}

// Total is the total spend: either an exact amount or a range. In JSON it is a number
// (exact) or an object {"min": a, "max": b}.
type Total struct {
	Exact *float64
	Min   *float64
	Max   *float64
}

// ChannelBounds bounds one channel's spend.
type ChannelBounds struct {
	Min   *float64 `json:"min,omitempty"`
	Max   *float64 `json:"max,omitempty"`
	Fixed bool     `json:"fixed,omitempty"`
}

// Group bounds the summed spend of several channels, absolutely or as a share of the
// total spend.
type Group struct {
	Name     string   `json:"name,omitempty"`
	Channels []string `json:"channels"`
	Min      *float64 `json:"min,omitempty"`
	Max      *float64 `json:"max,omitempty"`
	MinShare *float64 `json:"min_share,omitempty"`
	MaxShare *float64 `json:"max_share,omitempty"`
}

// Ratio bounds spend(numerator)/spend(denominator).
type Ratio struct {
	Numerator   string   `json:"numerator"`
	Denominator string   `json:"denominator"`
	Min         *float64 `json:"min,omitempty"`
	Max         *float64 `json:"max,omitempty"`
}

// Objective types.
const (
	ObjMaxKPI     = "max_kpi"
	ObjWeighted   = "weighted"
	ObjMinSpend   = "min_spend"
	ObjTargetROI  = "target_roi"
	ObjTargetMROI = "target_mroi"
)

// Objective says what to optimise.
type Objective struct {
	Type    string             `json:"type,omitempty"`
	KPI     string             `json:"kpi,omitempty"`
	Weights map[string]float64 `json:"weights,omitempty"`
	Floors  map[string]float64 `json:"floors,omitempty"`
	Target  map[string]float64 `json:"target,omitempty"`
	ROI     *float64           `json:"roi,omitempty"`
	MROI    *float64           `json:"mroi,omitempty"`
}

// Options tune the solver. They travel with the request so that a replay of the request
// reproduces the same answer; zero values mean the engine defaults.
type Options struct {
	// Gap is the relative optimality gap accepted as "optimal" for problems whose
	// curves are all concave (default 1e-9).
	Gap float64 `json:"gap,omitempty"`
	// GapNonConcave is the same for problems with S-shaped or convex curves (default 1e-7).
	GapNonConcave float64 `json:"gap_nonconcave,omitempty"`
	// MaxNodes caps the branch-and-bound search (default 20000). The cap is a count, not
	// a time, so that an early stop is deterministic too.
	MaxNodes int `json:"max_nodes,omitempty"`
}

// Result statuses.
const (
	StatusOptimal    = "optimal"
	StatusFeasible   = "feasible"
	StatusInfeasible = "infeasible"
	StatusInvalid    = "invalid"
)

// Result is the answer to a request (contract §3).
type Result struct {
	RequestID    string                   `json:"request_id,omitempty"`
	ModelID      string                   `json:"model_id,omitempty"`
	ModelVersion int                      `json:"model_version,omitempty"`
	ModelHash    string                   `json:"model_hash,omitempty"`
	Status       string                   `json:"status"`
	Objective    string                   `json:"objective,omitempty"`
	Allocation   map[string]float64       `json:"allocation,omitempty"`
	TotalSpend   float64                  `json:"total_spend"`
	Expected     map[string]float64       `json:"expected,omitempty"`
	Current      *Evaluation              `json:"current,omitempty"`
	Channels     map[string]ChannelResult `json:"channels,omitempty"`
	Certificate  *Certificate             `json:"certificate,omitempty"`
	Messages     []string                 `json:"messages,omitempty"`
	Errors       []FieldError             `json:"errors,omitempty"`
	Engine       EngineInfo               `json:"engine"`
}

// Evaluation is a plan's spend and KPIs (the "current" block and what-if answers).
type Evaluation struct {
	TotalSpend float64                  `json:"total_spend"`
	Expected   map[string]float64       `json:"expected"`
	Channels   map[string]ChannelResult `json:"channels,omitempty"`
}

// ChannelResult describes one channel of a plan, for the primary KPI. ROI is null at
// zero spend and MROI is null where the curve's slope is infinite (x^α with α<1 at 0),
// so that no NaN or Inf ever reaches JSON.
type ChannelResult struct {
	Spend    float64  `json:"spend"`
	Response float64  `json:"response"`
	ROI      *float64 `json:"roi"`
	MROI     *float64 `json:"mroi"`
	AtBound  string   `json:"at_bound,omitempty"`
}

// Certificate proves how far the plan can be from the best possible one.
// For maximisation objectives UpperBound is a proven upper bound on the objective; for
// min_spend LowerBound is a proven lower bound on the spend. Gap is
// |bound − objective|/|objective|.
type Certificate struct {
	Objective  float64  `json:"objective"`
	UpperBound *float64 `json:"upper_bound,omitempty"`
	LowerBound *float64 `json:"lower_bound,omitempty"`
	Gap        float64  `json:"gap"`
}

// EngineInfo says how the answer was found. ElapsedMicros is filled in by callers that
// time the solve; it is the one field that is not deterministic.
type EngineInfo struct {
	Version       string `json:"version"`
	Algorithm     string `json:"algorithm,omitempty"`
	Iterations    int    `json:"iterations"`
	Nodes         int    `json:"nodes,omitempty"`
	ElapsedMicros int64  `json:"elapsed_us"`
}

// Version identifies the engine build in results. Bump it whenever a change may alter
// any allocation bit, so that audits can tell which engine produced a result.
const Version = "atlas-engine/1.3.6"
