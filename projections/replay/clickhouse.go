package replay

import (
	"context"
	"fmt"
	"strings"

	"github.com/atlas-mmm/atlas/projections/store"
	"github.com/atlas-mmm/atlas/projections/store/clickhouse"
)

// ClickHouseCommitRows is the Replay.CommitRows atlas replay uses on ClickHouse: the
// store keeps one INSERT per table open across batches and ends them every million
// rows and at the end, so a build writes a few large parts per table rather than one
// per table and batch, which cut the server's CPU per event by 30-45% (bench/replay).
// A failure redoes at most that many rows from the checkpoint.
const ClickHouseCommitRows = 1_000_000

// ClickHouse keeps generations as databases beside the live one: for live database
// atlas, generation g is database atlas_replay_g, with the same tables. A switch
// renames every table between the two in one RENAME TABLE statement (see
// clickhouse.Store.SwapTables): a running atlas api keeps its connection and reads the
// new tables under the live names at once, and a running projector notices the switch
// at its next batch (the generation table changed) and continues from the replay's
// checkpoint.
type ClickHouse struct {
	cfg  clickhouse.Config
	live *clickhouse.Store
}

// NewClickHouse returns the target for the live database of cfg, creating it when
// missing.
func NewClickHouse(ctx context.Context, cfg clickhouse.Config) (*ClickHouse, error) {
	live, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// The connection's database must exist for any query: create the live read models
	// if this is the first use (as atlas project would).
	if err := live.Migrate(ctx); err != nil {
		live.Close()
		return nil, err
	}
	return &ClickHouse{cfg: live.Config(), live: live}, nil
}

func (t *ClickHouse) prefix() string { return t.cfg.Database + "_replay_" }

// Where is the generation's database ("" names the live one).
func (t *ClickHouse) Where(name string) string {
	if name == "" {
		return t.cfg.Database
	}
	return t.prefix() + name
}

// Open opens generation name's database, creating it with create.
func (t *ClickHouse) Open(ctx context.Context, name string, create bool) (store.Store, bool, error) {
	if err := CheckName(name); err != nil {
		return nil, false, err
	}
	names, err := t.Names(ctx)
	if err != nil {
		return nil, false, err
	}
	had := false
	for _, n := range names {
		had = had || n == name
	}
	if !had && !create {
		return nil, false, fmt.Errorf("%w: %q (no database %s)", ErrNotFound, name, t.Where(name))
	}
	cfg := t.cfg
	cfg.Database = t.Where(name)
	s, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		return nil, false, err
	}
	if err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, false, err
	}
	return s, had, nil
}

// OpenLive opens the live database.
func (t *ClickHouse) OpenLive(ctx context.Context) (store.Store, error) {
	s, err := clickhouse.Open(ctx, t.cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Names lists the generation databases.
func (t *ClickHouse) Names(ctx context.Context) ([]string, error) {
	dbs, err := t.live.Databases(ctx, t.prefix())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, db := range dbs {
		if n := strings.TrimPrefix(db, t.prefix()); CheckName(n) == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// Drop drops generation name's database.
func (t *ClickHouse) Drop(ctx context.Context, name string) error {
	return t.live.DropDatabase(ctx, t.Where(name))
}

// Swap renames the tables of the live database and generation name's into each
// other's place.
func (t *ClickHouse) Swap(ctx context.Context, name string) error {
	// The live database may predate a table (the generation table): create what is
	// missing so that both sides have every table.
	if err := t.live.Migrate(ctx); err != nil {
		return err
	}
	return t.live.SwapTables(ctx, t.Where(name))
}

// Close closes the connection to the live database.
func (t *ClickHouse) Close() error { return t.live.Close() }
