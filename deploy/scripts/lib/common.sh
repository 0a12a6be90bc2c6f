# shellcheck shell=bash
# Helpers shared by the deploy scripts: logging, dry-run, and ClickHouse over HTTP.
# Sourced, not run. The caller sets PROG and DRY_RUN (0 or 1).

log() { printf '%s %s: %s\n' "$(date -u +%H:%M:%S)" "$PROG" "$*" >&2; }
die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 1; }

# run runs a command, or prints it in a dry run. Only commands that change something
# go through run; reads (queries, listings) run in a dry run too, so that it shows
# what would really be done.
run() {
  if [[ $DRY_RUN == 1 ]]; then
    case $1 in
      ch_query | ch_insert) printf 'dry-run: clickhouse: %s%s\n' "$2" "${3:+ < $3}" >&2 ;;
      *)
        printf 'dry-run:' >&2
        printf ' %q' "$@" >&2
        printf '\n' >&2
        ;;
    esac
    return 0
  fi
  "$@"
}

need() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || die "needs $c on PATH"
  done
}

# --- ClickHouse over its HTTP interface (any version: 18.16 and current) ---------

urlencode() {
  local s=$1 out='' c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      [a-zA-Z0-9.~_-]) out+=$c ;;
      *) printf -v c '%%%02X' "'$c"; out+=$c ;;
    esac
  done
  printf '%s' "$out"
}

# ch_init URL USER PASSWORD: the credentials go to a private curl config file, not the
# command line (where ps would show them).
ch_init() {
  CH_URL=${1%/}
  CH_CURL_CONFIG=$(mktemp)
  chmod 600 "$CH_CURL_CONFIG"
  local user=${2//\\/\\\\} pass=${3//\\/\\\\}
  user=${user//\"/\\\"}
  pass=${pass//\"/\\\"}
  printf 'user = "%s:%s"\n' "$user" "$pass" >"$CH_CURL_CONFIG"
}

ch_cleanup() {
  if [[ -n ${CH_CURL_CONFIG:-} ]]; then rm -f "$CH_CURL_CONFIG"; fi
}

# ch_query SQL: the result on stdout; on a server error, nothing there, ClickHouse's
# message on stderr and a non-zero status. Always POST: over HTTP, ClickHouse runs a
# GET read-only.
ch_query() {
  local out status=0
  out=$(curl -sS --fail-with-body -K "$CH_CURL_CONFIG" --data-binary "$1" "$CH_URL/") || status=$?
  if ((status != 0)); then
    printf '%s\n' "$out" >&2
    return "$status"
  fi
  printf '%s' "$out"
}

# ch_query_to FILE SQL: a (large) result streamed into FILE.
ch_query_to() {
  if ! curl -sS --fail-with-body -K "$CH_CURL_CONFIG" -o "$1" --data-binary "$2" "$CH_URL/"; then
    head -c 2000 "$1" >&2 2>/dev/null || true
    return 1
  fi
}

# ch_insert SQL FILE: INSERT ... FORMAT with FILE (gzip-compressed) as the data.
ch_insert() {
  local out status=0
  out=$(curl -sS --fail-with-body -K "$CH_CURL_CONFIG" -H 'Content-Encoding: gzip' \
    --data-binary "@$2" "$CH_URL/?query=$(urlencode "$1")") || status=$?
  if ((status != 0)); then
    printf '%s\n' "$out" >&2
    return "$status"
  fi
}

# ch_ident checks a database or table name before it is spliced into SQL.
ch_ident() {
  [[ $1 =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "unsafe ClickHouse identifier: $1"
}

# ch_version_at_least MAJOR MINOR: whether the server is that version or later.
ch_version_at_least() {
  local v major minor
  v=$(ch_query 'SELECT version()')
  IFS=. read -r major minor _ <<<"$v"
  ((major > $1 || (major == $1 && minor >= $2)))
}

# ch_table_path DB TABLE: the table's data directory on the server (data_paths on
# current releases, data_path on old ones).
ch_table_path() {
  local p
  if p=$(ch_query "SELECT data_paths[1] FROM system.tables WHERE database = '$1' AND name = '$2'" 2>/dev/null); then
    printf '%s' "$p"
    return
  fi
  ch_query "SELECT data_path FROM system.tables WHERE database = '$1' AND name = '$2'"
}

# ch_server_path DB TABLE: the server's data root (where shadow/ is), from the disks
# table where there is one, else from a table's path (data/DB/TABLE/ under the root).
ch_server_path() {
  local p
  if p=$(ch_query "SELECT path FROM system.disks WHERE name = 'default'" 2>/dev/null) && [[ -n $p ]]; then
    printf '%s' "$p"
    return
  fi
  p=$(ch_table_path "$1" "$2")
  printf '%s' "${p%data/*/*/}"
}
