#!/usr/bin/env bash
# Backs up Atlas: the event log (the source of truth, with `atlas export`) and the
# ClickHouse read models (which the projector can also rebuild from the log).
set -euo pipefail
PROG=backup.sh
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<'USAGE'
Usage: backup.sh [options] DEST_DIR

Writes DEST_DIR/atlas-backup-<UTC time>/ holding
  log.ndjson.zst        the event log, from `atlas export` (models, requests, results,
                        dead letters, with ids, order and times)
  clickhouse/           the read models: every table's CREATE statement, and its rows
                        (dump) or a server-side snapshot (snapshot)
  MANIFEST, SHA256SUMS  what was taken, from where, with which versions; checksums
Restore with restore.sh.

The log is read with atlas's own settings: ATLAS_LOG, ATLAS_KAFKA_BROKERS,
ATLAS_DATA_DIR, ATLAS_NATS_URL, ... or ATLAS_CONFIG (see `atlas export -h`).

Options:
  --atlas BIN                the atlas binary (default: atlas on PATH, or $ATLAS_BIN)
  --no-log                   skip the event log
  --no-clickhouse            skip ClickHouse
  --clickhouse-url URL       HTTP interface (default $CLICKHOUSE_URL or http://127.0.0.1:8123)
  --clickhouse-database DB   (default $ATLAS_CLICKHOUSE_DATABASE or atlas)
  --clickhouse-mode MODE     dump (default): rows in Native format over HTTP, restorable
                             on any server version.
                             snapshot: on the server, BACKUP DATABASE ... TO
                             Disk('backups', NAME) where the server has it (22.8 or later
                             with a 'backups' disk), else ALTER TABLE ... FREEZE WITH
                             NAME (any version; hard links under the server's shadow/).
                             A frozen snapshot is moved into the backup when this machine
                             sees the server's data directory, else it stays on the server.
  --retention-days N         then delete atlas-backup-* in DEST_DIR older than N days
  --dry-run                  query, but write nothing: print what would be done
  -h, --help                 this text

ClickHouse credentials: CLICKHOUSE_USER and CLICKHOUSE_PASSWORD (or ATLAS_CLICKHOUSE_USER
and ATLAS_CLICKHOUSE_PASSWORD); default user "default", no password.
USAGE
}

DRY_RUN=0
ATLAS=${ATLAS_BIN:-atlas}
DO_LOG=1
DO_CH=1
CH_URL_ARG=${CLICKHOUSE_URL:-http://127.0.0.1:8123}
CH_DB=${ATLAS_CLICKHOUSE_DATABASE:-atlas}
CH_MODE=dump
RETENTION=""
DEST=""

while (($#)); do
  case $1 in
    --atlas) ATLAS=${2:?--atlas needs a value}; shift ;;
    --no-log) DO_LOG=0 ;;
    --no-clickhouse) DO_CH=0 ;;
    --clickhouse-url) CH_URL_ARG=${2:?--clickhouse-url needs a value}; shift ;;
    --clickhouse-database) CH_DB=${2:?--clickhouse-database needs a value}; shift ;;
    --clickhouse-mode) CH_MODE=${2:?--clickhouse-mode needs a value}; shift ;;
    --retention-days) RETENTION=${2:?--retention-days needs a value}; shift ;;
    --dry-run) DRY_RUN=1 ;;
    -h | --help) usage; exit 0 ;;
    -*) printf '%s: unknown option %s\n\n' "$PROG" "$1" >&2; usage >&2; exit 2 ;;
    *)
      [[ -z $DEST ]] || { printf '%s: one DEST_DIR only\n' "$PROG" >&2; exit 2; }
      DEST=$1 ;;
  esac
  shift
done
[[ -n $DEST ]] || { usage >&2; exit 2; }
[[ $CH_MODE == dump || $CH_MODE == snapshot ]] || die "--clickhouse-mode: dump or snapshot, not $CH_MODE"
[[ -z $RETENTION || $RETENTION =~ ^[0-9]+$ ]] || die "--retention-days: a number of days, not $RETENTION"
((DO_LOG || DO_CH)) || die "nothing to back up (--no-log and --no-clickhouse)"
need date sha256sum
((DO_LOG)) && need "$ATLAS"
((DO_CH)) && need curl gzip

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
NAME=atlas-backup-$STAMP
OUT=$DEST/$NAME
# A backup that fails half-way is removed: a directory that exists is a whole backup.
DONE=0
CREATED=0
cleanup() {
  ch_cleanup
  if ((CREATED && !DONE)); then
    rm -rf "$OUT"
  fi
}
trap cleanup EXIT

run mkdir -p "$DEST"
run mkdir "$OUT" # not -p: two backups never share a directory
[[ $DRY_RUN == 1 ]] || CREATED=1
manifest() {
  if [[ $DRY_RUN == 1 ]]; then
    printf 'dry-run: MANIFEST: %s\n' "$*" >&2
  else
    printf '%s\n' "$*" >>"$OUT/MANIFEST"
  fi
}
manifest "name=$NAME"
manifest "created=$(date -u +%Y-%m-%dT%H:%M:%SZ)"

if ((DO_LOG)); then
  log "exporting the event log with $ATLAS"
  manifest "atlas=$("$ATLAS" version | head -n1)"
  run "$ATLAS" export --out "$OUT/log.ndjson.zst"
  manifest "log=log.ndjson.zst"
fi

backup_clickhouse() {
  ch_ident "$CH_DB"
  ch_init "$CH_URL_ARG" "${CLICKHOUSE_USER:-${ATLAS_CLICKHOUSE_USER:-default}}" "${CLICKHOUSE_PASSWORD:-${ATLAS_CLICKHOUSE_PASSWORD:-}}"
  local version tables t mode
  version=$(ch_query 'SELECT version()') || die "ClickHouse at $CH_URL does not answer"
  tables=$(ch_query "SELECT name FROM system.tables WHERE database = '$CH_DB' AND engine LIKE '%MergeTree' ORDER BY name FORMAT TSV")
  [[ -n $tables ]] || die "ClickHouse database $CH_DB has no tables to back up"
  log "ClickHouse $version, database $CH_DB: $(echo "$tables" | wc -l) tables, mode $CH_MODE"
  manifest "clickhouse.version=$version"
  manifest "clickhouse.database=$CH_DB"
  run mkdir -p "$OUT/clickhouse"
  for t in $tables; do
    ch_ident "$t"
    if [[ $DRY_RUN == 1 ]]; then
      printf 'dry-run: SHOW CREATE TABLE %s.%s > %s\n' "$CH_DB" "$t" "$OUT/clickhouse/$t.sql" >&2
    else
      ch_query "SHOW CREATE TABLE $CH_DB.$t FORMAT TabSeparatedRaw" >"$OUT/clickhouse/$t.sql"
    fi
  done
  manifest "clickhouse.tables=$(echo "$tables" | tr '\n' ' ' | sed 's/ $//')"

  if [[ $CH_MODE == dump ]]; then
    mode=dump
    for t in $tables; do
      log "dumping $CH_DB.$t"
      if [[ $DRY_RUN == 1 ]]; then
        printf 'dry-run: SELECT * FROM %s.%s FORMAT Native | gzip > %s\n' "$CH_DB" "$t" "$OUT/clickhouse/$t.native.gz" >&2
        continue
      fi
      ch_query_to "$OUT/clickhouse/$t.native" "SELECT * FROM $CH_DB.$t FORMAT Native" || die "dumping $CH_DB.$t failed"
      gzip "$OUT/clickhouse/$t.native"
    done
  elif ch_version_at_least 22 8 && [[ $(ch_query "SELECT count() FROM system.disks WHERE name = 'backups'") == 1 ]]; then
    mode=backup
    log "BACKUP DATABASE $CH_DB TO Disk('backups', '$NAME')"
    run ch_query "BACKUP DATABASE $CH_DB TO Disk('backups', '$NAME')" >/dev/null
    manifest "clickhouse.backup=Disk('backups', '$NAME')"
  else
    mode=freeze
    # The server escapes other characters in the directory name: keep to [A-Za-z0-9_].
    local server shadow path rel freeze=${NAME//-/_}
    server=$(ch_server_path "$CH_DB" "${tables%%$'\n'*}")
    shadow=${server%/}/shadow/$freeze
    for t in $tables; do
      log "ALTER TABLE $CH_DB.$t FREEZE WITH NAME '$freeze'"
      run ch_query "ALTER TABLE $CH_DB.$t FREEZE WITH NAME '$freeze'" >/dev/null
    done
    if [[ $DRY_RUN == 0 && -d $shadow ]]; then
      # This machine sees the server's files: take the snapshot along, one directory
      # of parts per table, and leave nothing behind in shadow/.
      for t in $tables; do
        path=$(ch_table_path "$CH_DB" "$t")
        rel=${path#"${server%/}"/}
        mkdir -p "$OUT/clickhouse/freeze/$t"
        if [[ -d $shadow/$rel ]]; then
          cp -a "$shadow/$rel/." "$OUT/clickhouse/freeze/$t/"
        fi
      done
      rm -rf "$shadow"
      manifest "clickhouse.freeze=clickhouse/freeze"
    else
      log "the snapshot stays on the ClickHouse server, in $shadow"
      manifest "clickhouse.freeze.server=$shadow"
    fi
  fi
  manifest "clickhouse.mode=$mode"
}

if ((DO_CH)); then
  backup_clickhouse
fi

if [[ $DRY_RUN == 0 ]]; then
  sums=$(cd "$OUT" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
  printf '%s\n' "$sums" >"$OUT/SHA256SUMS"
fi
DONE=1
log "backup written to $OUT"

if [[ -n $RETENTION ]]; then
  while IFS= read -r -d '' old; do
    log "removing $old (older than $RETENTION days)"
    run rm -rf "$old"
  done < <(find "$DEST" -mindepth 1 -maxdepth 1 -type d -name 'atlas-backup-*' -mtime "+$RETENTION" -print0)
fi
printf '%s\n' "$OUT"
