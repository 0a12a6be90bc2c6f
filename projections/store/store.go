// Package store is Atlas's read-model storage: what the projector writes (results, their
// per-channel allocations, model versions, the audit trail of events, dead letters) and
// what the query API reads (contract §3, §5, §6).
//
// Two backends implement Store with the same behaviour, held to one conformance suite
// (package storetest):
//
//   - sqlite: an embedded file (modernc.org/sqlite, no cgo) for single-machine use; the
//     projector's checkpoint is committed in the same transaction as the rows.
//   - clickhouse: ReplacingMergeTree tables read with FINAL; the checkpoint is written
//     after the rows, so a crash in between only re-applies rows, which is harmless.
//
// # Writes are idempotent upserts
//
// Every row has a key: the request id for a Result, (request id, channel) for an
// Allocation, (model id, version) for a Model, (event id, topic, partition, offset) for an
// AuditEvent, (topic, partition, offset) for a DeadLetter, and (projector, topic,
// partition) for a checkpoint entry. Apply upserts by key, last write wins: applying a
// batch twice leaves exactly what applying it once did, and a later write of a key (a
// model marked retired, a recomputed result) replaces the earlier one. "Later" is apply
// order, which is log order because the projector applies the log in order and resumes
// from its checkpoint. (A log-position version was considered and rejected: a model
// retirement updates rows published at earlier offsets, and allocations carry no
// position of their own.)
//
// An allocation row is upserted on its own key: a later result for the same request that
// names fewer channels leaves the other channels' rows in place. The engine is
// deterministic, so a request's channels do not change in practice.
//
// # Reads
//
// Results lists newest first by (ResultTime, RequestID), both descending, with keyset
// pagination: the opaque cursor holds the last row's (ResultTime, RequestID), so pages
// neither repeat nor skip rows while new results arrive. A malformed cursor is an error
// wrapping ErrBadCursor (an API answers it with 400).
//
// Times are stored as Unix nanoseconds and read back in UTC: exact from 1678 to 2262,
// saturated beyond (any time is accepted, so a producer's clock cannot stall the
// projection); a zero time stays zero. Empty maps and lists read back as nil.
package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/atlas-mmm/atlas/engine"
)

// FieldError is a field error of a rejected request: the engine's type, so that a
// rejection's errors round-trip unchanged.
type FieldError = engine.FieldError

// Result is one optimization result (an atlas.optimization.completed.v1 event) or
// rejection (atlas.optimization.rejected.v1, Rejected set, Errors filled). Data is the
// event's data exactly as published; the other fields are what the API filters, sorts
// and lists by.
type Result struct {
	RequestID    string
	ModelID      string
	ModelVersion int
	ModelHash    string
	Status       string
	Objective    string
	TotalSpend   float64
	Expected     map[string]float64
	UpperBound   *float64
	LowerBound   *float64
	Gap          float64
	Messages     []string
	Errors       []FieldError // for a rejection
	Rejected     bool
	RequestTime  time.Time
	ResultTime   time.Time
	EventID      string
	Partition    int
	Offset       int64
	Data         json.RawMessage
}

// Allocation is one channel of a result (contract §3 "channels"), for the primary KPI.
type Allocation struct {
	RequestID string
	Channel   string
	Spend     float64
	Response  float64
	ROI       *float64 // nil at zero spend
	MROI      *float64 // nil where the slope is infinite
	AtBound   string
}

// Model is one published version of a model. Retired is the model's state (the projector
// rewrites a model's versions when it is retired).
type Model struct {
	ModelID   string
	Version   int
	Hash      string
	Retired   bool
	Published time.Time
	EventID   string
	Partition int
	Offset    int64
	Data      json.RawMessage
}

// AuditEvent is one event of the log as read, for the audit trail of a request: the
// request, the model version it used, the result.
type AuditEvent struct {
	EventID     string
	Type        string
	Topic       string
	Partition   int
	Offset      int64
	Key         string
	Subject     string
	Time        time.Time
	ContentHash string // sha256 of the raw value, e.g. "sha256:<hex>"
	RequestID   string
	ModelID     string
	Raw         json.RawMessage
}

// DeadLetter is a record that could not be decoded, kept untouched with the reason.
type DeadLetter struct {
	Topic     string
	Partition int
	Offset    int64
	Reason    string
	Time      time.Time
	Raw       string // the record's bytes, not necessarily UTF-8
}

// Batch is what one Apply writes. Checkpoint is topic → partition → next offset to read;
// it is stored with the rows under the name Projector (see Store.Apply).
type Batch struct {
	Results     []Result
	Allocations []Allocation
	Models      []Model
	Audit       []AuditEvent
	DeadLetters []DeadLetter
	Checkpoint  map[string]map[int]int64
	Projector   string
	// More says that the caller applies further batches right after this one (a
	// replay): the store may hold this batch's rows back and commit them, with its
	// checkpoint, together with a later batch's, writing fewer and larger parts
	// (ClickHouse does; SQLite commits every batch). Until that commit the stored
	// checkpoint stays where it was, so a failure in between only makes the projector
	// re-apply rows; held rows may become visible before it, as re-applied rows are
	// harmless.
	More bool
}

// Rows is the number of rows the batch writes, checkpoint entries excluded.
func (b Batch) Rows() int {
	return len(b.Results) + len(b.Allocations) + len(b.Models) + len(b.Audit) + len(b.DeadLetters)
}

// ResultQuery selects results. Empty fields do not filter. Since is inclusive and Until
// exclusive, on ResultTime. Limit defaults to DefaultLimit and is capped at MaxLimit.
// Cursor is the next cursor of the previous page, "" for the first page.
type ResultQuery struct {
	ModelID string
	Status  string
	Since   time.Time
	Until   time.Time
	Limit   int
	Cursor  string
}

// Page sizes of Results and DeadLetters.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

// Store is the read model.
type Store interface {
	// Migrate creates what is missing (tables, indexes; the ClickHouse database too when
	// it does not exist). It is idempotent.
	Migrate(ctx context.Context) error
	// Apply upserts the batch's rows and records its checkpoint (nothing when
	// b.Checkpoint is empty). It is idempotent: applying the same batch again changes
	// nothing visible. The checkpoint is never visible before the rows it covers: on
	// SQLite both commit together; on ClickHouse the checkpoint is written last, so a
	// failure in between leaves the old checkpoint and the projector re-applies the rows.
	// A batch with More set may be held back until a later Apply without it (see
	// Batch.More); Close drops what is held. A batch Validate rejects (a caller's bug,
	// never data) is refused before anything is written, with an error wrapping
	// ErrInvalidBatch.
	Apply(ctx context.Context, b Batch) error
	// Checkpoint returns the projector's checkpoint (empty, not nil, when none).
	Checkpoint(ctx context.Context, projector string) (map[string]map[int]int64, error)
	// Result returns one result; false when there is none.
	Result(ctx context.Context, requestID string) (Result, bool, error)
	// Results lists results newest first by (ResultTime, RequestID); next is "" on the
	// last page.
	Results(ctx context.Context, q ResultQuery) (rows []Result, next string, err error)
	// Allocations returns a result's channels, by channel name.
	Allocations(ctx context.Context, requestID string) ([]Allocation, error)
	// Models returns every model version, by model id then version.
	Models(ctx context.Context) ([]Model, error)
	// ModelVersions returns one model's versions in order (empty when unknown).
	ModelVersions(ctx context.Context, modelID string) ([]Model, error)
	// Audit returns the events of a request in log order: by Time, then topic,
	// partition and offset (within a partition, log order is offset order; across topics
	// the events' time is the only shared clock).
	Audit(ctx context.Context, requestID string) ([]AuditEvent, error)
	// DeadLetters returns the newest dead letters first (by Time, then topic, partition
	// and offset, descending); limit defaults to DefaultLimit and is capped at MaxLimit.
	DeadLetters(ctx context.Context, limit int) ([]DeadLetter, error)
	// Ping checks that the store answers (a readiness check).
	Ping(ctx context.Context) error
	Close() error
}

// Generation says how a store's read models were built: by the live projector (the zero
// Generation) or by a replay (projections/replay), which records its range, when it
// started and, once it has reached its end, when it finished and the checkpoint it
// ended at. It travels with the tables when a replay is switched in, so the store shows
// which generation it serves.
type Generation struct {
	Name       string                   `json:"name,omitempty"`
	From       string                   `json:"from,omitempty"` // the range asked for, as given
	To         string                   `json:"to,omitempty"`
	Started    time.Time                `json:"started,omitzero"`
	Finished   time.Time                `json:"finished,omitzero"` // zero while the build runs
	Checkpoint map[string]map[int]int64 `json:"checkpoint,omitempty"`
	Messages   int64                    `json:"messages,omitempty"` // log messages the build projected
	Switched   time.Time                `json:"switched,omitzero"`  // when it last went live
}

// Same reports whether g and h describe the same build (a projector uses it to notice
// that its store was switched).
func (g Generation) Same(h Generation) bool {
	return g.Name == h.Name && g.Started.Equal(h.Started)
}

// Generations is implemented by stores that record their Generation (both backends).
type Generations interface {
	// Generation returns the store's generation, the zero value when none was set.
	Generation(ctx context.Context) (Generation, error)
	// SetGeneration replaces it.
	SetGeneration(ctx context.Context, g Generation) error
}
