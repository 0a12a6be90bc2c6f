-- Atlas read model, SQLite flavour (projections/store/sqlite, modernc.org/sqlite).
--
-- Idempotent: every statement is CREATE ... IF NOT EXISTS. The writer upserts with
-- INSERT ... ON CONFLICT (primary key) DO UPDATE, so a redelivered row leaves one row and
-- a later write of the same key wins. Rows and the projector's checkpoint are written in
-- one transaction.
--
-- Conventions (shared with clickhouse.sql):
-- * Times are INTEGER Unix nanoseconds (*_ns); 0 means unknown.
-- * JSON values (the event data, maps, lists) are TEXT; '' means absent.
-- * Log positions are log_topic/log_partition/log_offset.
-- * NaN and infinities never reach a REAL column (SQLite would store NaN as NULL): the
--   writer rejects them.

CREATE TABLE IF NOT EXISTS results (
    request_id      TEXT    NOT NULL PRIMARY KEY,
    model_id        TEXT    NOT NULL,
    model_version   INTEGER NOT NULL,
    model_hash      TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    objective       TEXT    NOT NULL,
    total_spend     REAL    NOT NULL,
    expected        TEXT    NOT NULL,
    upper_bound     REAL,
    lower_bound     REAL,
    gap             REAL    NOT NULL,
    messages        TEXT    NOT NULL,
    errors          TEXT    NOT NULL,
    rejected        INTEGER NOT NULL,
    request_time_ns INTEGER NOT NULL,
    result_time_ns  INTEGER NOT NULL,
    event_id        TEXT    NOT NULL,
    log_partition   INTEGER NOT NULL,
    log_offset      INTEGER NOT NULL,
    data            TEXT    NOT NULL
);

-- The list endpoint: newest first, keyset (result_time_ns, request_id), optionally by model
-- or status.
CREATE INDEX IF NOT EXISTS results_by_time ON results (result_time_ns, request_id);
CREATE INDEX IF NOT EXISTS results_by_model_time ON results (model_id, result_time_ns, request_id);
CREATE INDEX IF NOT EXISTS results_by_status_time ON results (status, result_time_ns, request_id);

CREATE TABLE IF NOT EXISTS allocations (
    request_id TEXT NOT NULL,
    channel    TEXT NOT NULL,
    spend      REAL NOT NULL,
    response   REAL NOT NULL,
    roi        REAL,
    mroi       REAL,
    at_bound   TEXT NOT NULL,
    PRIMARY KEY (request_id, channel)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS models (
    model_id      TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    hash          TEXT    NOT NULL,
    retired       INTEGER NOT NULL,
    published_ns  INTEGER NOT NULL,
    event_id      TEXT    NOT NULL,
    log_partition INTEGER NOT NULL,
    log_offset    INTEGER NOT NULL,
    data          TEXT    NOT NULL,
    PRIMARY KEY (model_id, version)
);

CREATE TABLE IF NOT EXISTS audit (
    event_id      TEXT    NOT NULL,
    log_topic     TEXT    NOT NULL,
    log_partition INTEGER NOT NULL,
    log_offset    INTEGER NOT NULL,
    request_id    TEXT    NOT NULL,
    type          TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    subject       TEXT    NOT NULL,
    time_ns       INTEGER NOT NULL,
    content_hash  TEXT    NOT NULL,
    model_id      TEXT    NOT NULL,
    raw           TEXT    NOT NULL,
    PRIMARY KEY (event_id, log_topic, log_partition, log_offset)
);

-- An audit trail in log order.
CREATE INDEX IF NOT EXISTS audit_by_request ON audit (request_id, time_ns, log_topic, log_partition, log_offset);

CREATE TABLE IF NOT EXISTS dead_letters (
    log_topic     TEXT    NOT NULL,
    log_partition INTEGER NOT NULL,
    log_offset    INTEGER NOT NULL,
    reason        TEXT    NOT NULL,
    time_ns       INTEGER NOT NULL,
    raw           BLOB    NOT NULL,
    PRIMARY KEY (log_topic, log_partition, log_offset)
);

CREATE INDEX IF NOT EXISTS dead_letters_by_time ON dead_letters (time_ns);

CREATE TABLE IF NOT EXISTS checkpoints (
    projector     TEXT    NOT NULL,
    log_topic     TEXT    NOT NULL,
    log_partition INTEGER NOT NULL,
    next_offset   INTEGER NOT NULL,
    PRIMARY KEY (projector, log_topic, log_partition)
) WITHOUT ROWID;

-- Which build the file holds (store.Generation as JSON, one row): the live projector's,
-- or a replay's (projections/replay), whose switch swaps whole files.
CREATE TABLE IF NOT EXISTS generation (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    body TEXT    NOT NULL
);
