-- Atlas read model, ClickHouse flavour (projections/store/clickhouse).
--
-- Written for what ClickHouse 18.16 (Debian's package, used by the tests) and current
-- releases both accept: no DateTime64, Map, JSON, TTL, window functions, no IF NOT EXISTS
-- on columns, no codecs. Run in the target database; every statement is idempotent.
--
-- Conventions:
-- * Every table is a ReplacingMergeTree(row_version) whose ORDER BY is the row's dedup
--   key. row_version is assigned by the writer in apply order, so a later write of the
--   same key wins, and redelivered rows are harmless. Readers use FINAL (never PREWHERE:
--   on 18.16 an explicit PREWHERE is evaluated before replacing and can surface a stale
--   version).
-- * Times are DateTime (seconds, UTC, clamped to 1970..2106; for people and partitions)
--   plus an Int64 *_ns column (Unix nanoseconds) that carries the exact value and every
--   ordering.
-- * JSON values (the event data, maps, lists) are stored as String.
-- * Log positions are log_topic/log_partition/log_offset ("partition" and "offset" are
--   keywords).
-- * Only append-only tables whose time is part of the record's identity (audit, dead
--   letters) are partitioned by month: ReplacingMergeTree only replaces within a
--   partition, so a key whose partition expression could change must not be partitioned.
--   Old months can be dropped with ALTER TABLE ... DROP PARTITION (18.16 has no TTL).

CREATE TABLE IF NOT EXISTS results (
    request_id      String,
    model_id        String,
    model_version   Int64,
    model_hash      String,
    status          String,
    objective       String,
    total_spend     Float64,
    expected        String,
    upper_bound     Nullable(Float64),
    lower_bound     Nullable(Float64),
    gap             Float64,
    messages        String,
    errors          String,
    rejected        UInt8,
    request_time    DateTime,
    request_time_ns Int64,
    result_time     DateTime,
    result_time_ns  Int64,
    event_id        String,
    log_partition   Int64,
    log_offset      Int64,
    data            String,
    row_version     UInt64
) ENGINE = ReplacingMergeTree(row_version)
ORDER BY request_id;

CREATE TABLE IF NOT EXISTS allocations (
    request_id  String,
    channel     String,
    spend       Float64,
    response    Float64,
    roi         Nullable(Float64),
    mroi        Nullable(Float64),
    at_bound    String,
    row_version UInt64
) ENGINE = ReplacingMergeTree(row_version)
ORDER BY (request_id, channel);

CREATE TABLE IF NOT EXISTS models (
    model_id      String,
    version       Int64,
    hash          String,
    retired       UInt8,
    published     DateTime,
    published_ns  Int64,
    event_id      String,
    log_partition Int64,
    log_offset    Int64,
    data          String,
    row_version   UInt64
) ENGINE = ReplacingMergeTree(row_version)
ORDER BY (model_id, version);

CREATE TABLE IF NOT EXISTS audit (
    request_id    String,
    event_id      String,
    log_topic     String,
    log_partition Int64,
    log_offset    Int64,
    type          String,
    key           String,
    subject       String,
    time          DateTime,
    time_ns       Int64,
    content_hash  String,
    model_id      String,
    raw           String,
    row_version   UInt64
) ENGINE = ReplacingMergeTree(row_version)
PARTITION BY toYYYYMM(time)
ORDER BY (request_id, event_id, log_topic, log_partition, log_offset);

CREATE TABLE IF NOT EXISTS dead_letters (
    log_topic     String,
    log_partition Int64,
    log_offset    Int64,
    reason        String,
    time          DateTime,
    time_ns       Int64,
    raw           String,
    row_version   UInt64
) ENGINE = ReplacingMergeTree(row_version)
PARTITION BY toYYYYMM(time)
ORDER BY (log_topic, log_partition, log_offset);

CREATE TABLE IF NOT EXISTS checkpoints (
    projector     String,
    log_topic     String,
    log_partition Int64,
    next_offset   Int64,
    row_version   UInt64
) ENGINE = ReplacingMergeTree(row_version)
ORDER BY (projector, log_topic, log_partition);

-- Which build the tables hold (store.Generation as JSON, one row, id 1): the live
-- projector's, or a replay's (projections/replay), whose switch renames every table
-- of this file, this one included, between the live database and a replay database.
CREATE TABLE IF NOT EXISTS generation (
    id          UInt8,
    body        String,
    row_version UInt64
) ENGINE = ReplacingMergeTree(row_version)
ORDER BY id;
