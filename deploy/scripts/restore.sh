#!/usr/bin/env bash
# Restores an Atlas backup written by backup.sh: the event log into an empty log
# (`atlas import`), and the ClickHouse read models into an empty database.
set -euo pipefail
PROG=restore.sh
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<'USAGE'
Usage: restore.sh [options] BACKUP_DIR

Checks BACKUP_DIR's checksums, then
  - imports log.ndjson.zst with `atlas import` (verified first with --check) into the
    log atlas's own settings point at (ATLAS_LOG, ATLAS_KAFKA_BROKERS, ATLAS_DATA_DIR,
    ... or ATLAS_CONFIG); atlas refuses a log that already holds messages;
  - recreates the ClickHouse tables and loads them: rows from a dump, RESTORE from a
    server-side BACKUP, or ATTACH of a frozen snapshot taken along (this machine must
    see the server's data directory). Tables that already hold rows are refused.
The read models can also be left out (--no-clickhouse): the projector rebuilds them
from the restored log, which takes longer.

Stop the processors, projector and API first; start them again afterwards.

Options:
  --atlas BIN                the atlas binary (default: atlas on PATH, or $ATLAS_BIN)
  --no-log                   skip the event log
  --no-clickhouse            skip ClickHouse
  --clickhouse-url URL       HTTP interface (default $CLICKHOUSE_URL or http://127.0.0.1:8123)
  --clickhouse-database DB   target database (default: the one backed up)
  --dry-run                  check and query, but change nothing: print what would be done
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
CH_DB=""
SRC=""

while (($#)); do
  case $1 in
    --atlas) ATLAS=${2:?--atlas needs a value}; shift ;;
    --no-log) DO_LOG=0 ;;
    --no-clickhouse) DO_CH=0 ;;
    --clickhouse-url) CH_URL_ARG=${2:?--clickhouse-url needs a value}; shift ;;
    --clickhouse-database) CH_DB=${2:?--clickhouse-database needs a value}; shift ;;
    --dry-run) DRY_RUN=1 ;;
    -h | --help) usage; exit 0 ;;
    -*) printf '%s: unknown option %s\n\n' "$PROG" "$1" >&2; usage >&2; exit 2 ;;
    *)
      [[ -z $SRC ]] || { printf '%s: one BACKUP_DIR only\n' "$PROG" >&2; exit 2; }
      SRC=$1 ;;
  esac
  shift
done
[[ -n $SRC ]] || { usage >&2; exit 2; }
[[ -f $SRC/MANIFEST && -f $SRC/SHA256SUMS ]] || die "$SRC is not a backup (no MANIFEST or SHA256SUMS)"
need sha256sum
trap ch_cleanup EXIT

# manifest KEY: a value of the backup's MANIFEST ("" when absent).
manifest() { sed -n "s/^$1=//p" "$SRC/MANIFEST" | head -n1; }

log "verifying $(wc -l <"$SRC/SHA256SUMS") checksums"
(cd "$SRC" && sha256sum --quiet -c SHA256SUMS) || die "$SRC is damaged: checksums do not match"

if ((DO_LOG)) && [[ -n $(manifest log) ]]; then
  need "$ATLAS"
  archive=$SRC/$(manifest log)
  log "checking $archive"
  "$ATLAS" import --check "$archive"
  log "importing the event log"
  run "$ATLAS" import "$archive"
elif ((DO_LOG)); then
  log "the backup holds no event log"
fi

restore_clickhouse() {
  local src_db mode tables t n sql path part
  src_db=$(manifest clickhouse.database)
  mode=$(manifest clickhouse.mode)
  tables=$(manifest clickhouse.tables)
  CH_DB=${CH_DB:-$src_db}
  ch_ident "$CH_DB"
  ch_ident "$src_db"
  need curl
  ch_init "$CH_URL_ARG" "${CLICKHOUSE_USER:-${ATLAS_CLICKHOUSE_USER:-default}}" "${CLICKHOUSE_PASSWORD:-${ATLAS_CLICKHOUSE_PASSWORD:-}}"
  log "ClickHouse $(ch_query 'SELECT version()') at $CH_URL: restoring $src_db ($mode) into $CH_DB"

  # Refuse to mix a backup into live data.
  for t in $tables; do
    ch_ident "$t"
    if [[ $(ch_query "SELECT count() FROM system.tables WHERE database = '$CH_DB' AND name = '$t'") == 1 ]]; then
      n=$(ch_query "SELECT count() FROM $CH_DB.$t")
      ((n == 0)) || die "$CH_DB.$t already holds $n rows: restore into an empty database (--clickhouse-database)"
    fi
  done

  if [[ $mode == backup ]]; then
    run ch_query "RESTORE DATABASE $src_db AS $CH_DB FROM $(manifest clickhouse.backup)" >/dev/null
    return
  fi

  run ch_query "CREATE DATABASE IF NOT EXISTS $CH_DB" >/dev/null
  for t in $tables; do
    # The statement names the backed-up database: point it at the target.
    sql=$(sed "1s/^CREATE TABLE $src_db\\.$t /CREATE TABLE IF NOT EXISTS $CH_DB.$t /" "$SRC/clickhouse/$t.sql")
    [[ $sql == "CREATE TABLE IF NOT EXISTS $CH_DB.$t "* ]] || die "$t.sql is not a CREATE TABLE of $src_db.$t"
    run ch_query "$sql" >/dev/null
  done

  case $mode in
    dump)
      for t in $tables; do
        log "loading $CH_DB.$t"
        run ch_insert "INSERT INTO $CH_DB.$t FORMAT Native" "$SRC/clickhouse/$t.native.gz"
      done
      ;;
    freeze)
      [[ -d $SRC/clickhouse/freeze ]] || die "the snapshot was left on the server ($(manifest clickhouse.freeze.server)): attach its parts by hand (README.md, Deploying)"
      for t in $tables; do
        [[ $DRY_RUN == 0 ]] || { printf 'dry-run: attach the parts of %s into %s.%s\n' "$SRC/clickhouse/freeze/$t" "$CH_DB" "$t" >&2; continue; }
        path=$(ch_table_path "$CH_DB" "$t")
        [[ -d $path ]] || die "cannot see $CH_DB.$t's data directory $path: run this on the ClickHouse server"
        for part in "$SRC/clickhouse/freeze/$t"/*/; do
          [[ -f $part/checksums.txt ]] || continue
          part=$(basename "$part")
          log "attaching $CH_DB.$t part $part"
          cp -a "$SRC/clickhouse/freeze/$t/$part" "$path/detached/"
          chown -R --reference="$path" "$path/detached/$part"
          ch_query "ALTER TABLE $CH_DB.$t ATTACH PART '$part'" >/dev/null
        done
      done
      ;;
    *) die "unknown ClickHouse backup mode \"$mode\" in MANIFEST" ;;
  esac
}

if ((DO_CH)) && [[ -n $(manifest clickhouse.mode) ]]; then
  restore_clickhouse
elif ((DO_CH)); then
  log "the backup holds no ClickHouse data"
fi
log "restored from $SRC"
