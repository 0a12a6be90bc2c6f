#!/usr/bin/env bash
# Local ClickHouse server (Debian's clickhouse-server package, 18.16) run in the
# foreground-style under our own config; never uses the package's init/systemd unit.
#
#   deploy/local/clickhouse.sh start|stop|restart|status|reset|env|logs|client [args]
#
# See deploy/local/README.md for ports, env vars and locations.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

CH_HOST="127.0.0.1"
CLICKHOUSE_TCP_PORT="${CLICKHOUSE_TCP_PORT:-19000}"
CLICKHOUSE_HTTP_PORT="${CLICKHOUSE_HTTP_PORT:-18123}"
CLICKHOUSE_USERS_CONFIG="${CLICKHOUSE_USERS_CONFIG:-/etc/clickhouse-server/users.xml}"
CLICKHOUSE_LOG_LEVEL="${CLICKHOUSE_LOG_LEVEL:-information}"
CLICKHOUSE_START_TIMEOUT="${CLICKHOUSE_START_TIMEOUT:-60}"
CLICKHOUSE_STOP_TIMEOUT="${CLICKHOUSE_STOP_TIMEOUT:-30}"
CH_SERVER_BIN="${CH_SERVER_BIN:-clickhouse-server}"
CH_CLIENT_BIN="${CH_CLIENT_BIN:-clickhouse-client}"

LOCAL_ROOT="${ATLAS_LOCAL_DIR:-$REPO_ROOT/.local}"
WORK_DIR="$LOCAL_ROOT/clickhouse"
DATA_DIR="$WORK_DIR/data"
LOG_DIR="$WORK_DIR/logs"
CONF_FILE="$WORK_DIR/config.xml"
PID_FILE="$WORK_DIR/clickhouse.pid"
CONSOLE_LOG="$LOG_DIR/console.out"
LOCK_FILE="$WORK_DIR/.lock"

log() { printf '[clickhouse.sh] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- helpers ---

lock() {
  mkdir -p "$WORK_DIR"
  exec 9>"$LOCK_FILE"
  if command -v flock >/dev/null 2>&1; then
    flock -w 300 9 || die "could not acquire $LOCK_FILE"
  fi
}

port_open() { # host port
  (exec 3<>"/dev/tcp/$1/$2") >/dev/null 2>&1
}

read_pid() {
  if [[ -s "$PID_FILE" ]]; then tr -dc '0-9' <"$PID_FILE"; fi
}

# pid of *our* server if alive (guards against recycled pids / other instances)
live_pid() {
  local pid
  pid="$(read_pid)"
  [[ -n "$pid" ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--config-file=$CONF_FILE" || return 1
  echo "$pid"
}

ch_client() {
  "$CH_CLIENT_BIN" --host "$CH_HOST" --port "$CLICKHOUSE_TCP_PORT" "$@"
}

select1_ok() {
  [[ "$(timeout 10 "$CH_CLIENT_BIN" --host "$CH_HOST" --port "$CLICKHOUSE_TCP_PORT" \
        --query 'SELECT 1' 2>/dev/null)" == "1" ]]
}

tail_logs() {
  local f
  for f in "$LOG_DIR/clickhouse-server.err.log" "$LOG_DIR/clickhouse-server.log" "$CONSOLE_LOG"; do
    if [[ -s "$f" ]]; then
      echo "----- last 40 lines of $f -----" >&2
      tail -n 40 "$f" >&2
    fi
  done
}

# ---------------------------------------------------------------- install ---

as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root (or sudo) to run: $*"
  fi
}

ensure_installed() {
  if command -v "$CH_SERVER_BIN" >/dev/null 2>&1 && command -v "$CH_CLIENT_BIN" >/dev/null 2>&1; then
    return 0
  fi
  log "installing Debian clickhouse-server/clickhouse-client (one-time)"
  export DEBIAN_FRONTEND=noninteractive
  # The package's postinst tries to start the service; without an init system
  # that is refused harmlessly ("policy-rc.d denied" / "could not determine runlevel").
  if ! as_root apt-get install -y -q clickhouse-server clickhouse-client >/tmp/atlas-clickhouse-apt.log 2>&1; then
    log "apt-get install failed; running apt-get update and retrying"
    as_root apt-get update -q >>/tmp/atlas-clickhouse-apt.log 2>&1 || true
    as_root apt-get install -y -q clickhouse-server clickhouse-client >>/tmp/atlas-clickhouse-apt.log 2>&1 || {
      tail -n 30 /tmp/atlas-clickhouse-apt.log >&2
      die "could not install clickhouse-server"
    }
  fi
  command -v "$CH_SERVER_BIN" >/dev/null 2>&1 || die "clickhouse-server still not on PATH after install"
}

# ----------------------------------------------------------------- config ---

write_config() {
  mkdir -p "$DATA_DIR" "$DATA_DIR/tmp" "$DATA_DIR/user_files" "$DATA_DIR/format_schemas" "$LOG_DIR"
  local users="$CLICKHOUSE_USERS_CONFIG"
  if [[ ! -r "$users" ]]; then
    # Package config purged or unreadable: fall back to an equivalent minimal
    # users file (user "default", no password, loopback only).
    users="$WORK_DIR/users.xml"
    log "$CLICKHOUSE_USERS_CONFIG not readable; using generated $users"
    cat >"$users" <<'EOF2'
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>10000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>::1</ip>
                <ip>127.0.0.1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF2
  fi
  cat >"$CONF_FILE" <<EOF
<?xml version="1.0"?>
<!-- generated by deploy/local/clickhouse.sh on every start; edit the script, not this file -->
<yandex>
    <logger>
        <level>$CLICKHOUSE_LOG_LEVEL</level>
        <log>$LOG_DIR/clickhouse-server.log</log>
        <errorlog>$LOG_DIR/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>3</count>
    </logger>

    <listen_host>$CH_HOST</listen_host>
    <tcp_port>$CLICKHOUSE_TCP_PORT</tcp_port>
    <http_port>$CLICKHOUSE_HTTP_PORT</http_port>

    <max_connections>1024</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>1073741824</uncompressed_cache_size>
    <mark_cache_size>536870912</mark_cache_size>

    <path>$DATA_DIR/</path>
    <tmp_path>$DATA_DIR/tmp/</tmp_path>
    <user_files_path>$DATA_DIR/user_files/</user_files_path>
    <format_schema_path>$DATA_DIR/format_schemas/</format_schema_path>

    <users_config>$users</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <umask>022</umask>

    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>

    <query_log>
        <database>system</database>
        <table>query_log</table>
        <partition_by>toYYYYMM(event_date)</partition_by>
        <flush_interval_milliseconds>7500</flush_interval_milliseconds>
    </query_log>

    <max_table_size_to_drop>0</max_table_size_to_drop>
    <max_partition_size_to_drop>0</max_partition_size_to_drop>
</yandex>
EOF
}

# --------------------------------------------------------------- commands ---

wait_ready() { # pid
  local pid="$1" deadline=$((SECONDS + CLICKHOUSE_START_TIMEOUT))
  while (( SECONDS < deadline )); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "clickhouse-server process $pid exited during startup"
      tail_logs
      rm -f "$PID_FILE"
      return 1
    fi
    if select1_ok; then
      return 0
    fi
    sleep 0.5
  done
  log "clickhouse-server not ready after ${CLICKHOUSE_START_TIMEOUT}s"
  tail_logs
  return 1
}

stop_pid() { # pid
  local pid="$1" deadline
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + CLICKHOUSE_STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do
    sleep 0.3
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid did not exit after ${CLICKHOUSE_STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$PID_FILE"
}

cmd_start() {
  lock
  local t0=$SECONDS pid
  if pid="$(live_pid)"; then
    if select1_ok; then
      log "already running (pid $pid) on $CH_HOST:$CLICKHOUSE_TCP_PORT"
      return 0
    fi
    log "pid $pid alive but not answering yet; waiting"
    if wait_ready "$pid"; then
      log "ready on $CH_HOST:$CLICKHOUSE_TCP_PORT (pid $pid)"
      return 0
    fi
    log "giving up on pid $pid; stopping it"
    stop_pid "$pid"
    exit 1
  fi
  rm -f "$PID_FILE"
  local p
  for p in "$CLICKHOUSE_TCP_PORT" "$CLICKHOUSE_HTTP_PORT"; do
    if port_open "$CH_HOST" "$p"; then
      die "port $p is already in use by another process (set CLICKHOUSE_TCP_PORT / CLICKHOUSE_HTTP_PORT)"
    fi
  done

  ensure_installed
  write_config

  log "starting clickhouse-server on $CH_HOST:$CLICKHOUSE_TCP_PORT (http $CLICKHOUSE_HTTP_PORT)"
  : >"$CONSOLE_LOG"
  # setsid+nohup: detached from the caller; every fd redirected; fd 9 (lock) closed.
  # cwd = work dir: the server resolves relative paths and writes
  # preprocessed configs there.
  # shellcheck disable=SC2016
  (
    exec 9>&- </dev/null >>"$CONSOLE_LOG" 2>&1
    cd "$WORK_DIR"
    exec setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
      "$CH_SERVER_BIN" --config-file="$CONF_FILE"
  ) &
  local _
  for _ in $(seq 1 50); do
    pid="$(read_pid)"
    [[ -n "$pid" ]] && break
    sleep 0.1
  done
  [[ -n "$pid" ]] || die "clickhouse-server did not record its pid"

  if ! wait_ready "$pid"; then
    stop_pid "$pid"
    exit 1
  fi
  log "ready on $CH_HOST:$CLICKHOUSE_TCP_PORT (pid $pid) in $((SECONDS - t0))s"
}

cmd_stop() {
  lock
  local pid
  if pid="$(live_pid)"; then
    log "stopping clickhouse-server (pid $pid)"
    stop_pid "$pid"
    log "stopped"
  else
    rm -f "$PID_FILE"
    log "not running"
  fi
}

cmd_status() {
  local pid
  if ! pid="$(live_pid)"; then
    echo "clickhouse: not running"
    return 1
  fi
  if ! select1_ok; then
    echo "clickhouse: process $pid alive but $CH_HOST:$CLICKHOUSE_TCP_PORT not answering"
    return 1
  fi
  echo "clickhouse: running (pid $pid) on $CH_HOST:$CLICKHOUSE_TCP_PORT (http $CLICKHOUSE_HTTP_PORT), version $(ch_client --query 'SELECT version()' 2>/dev/null)"
}

cmd_reset() {
  cmd_stop
  log "wiping $WORK_DIR"
  rm -rf "$DATA_DIR" "$LOG_DIR" "$CONF_FILE" "$PID_FILE" "$WORK_DIR/users.xml" \
    "$WORK_DIR"/config-preprocessed.xml "$WORK_DIR"/preprocessed_configs
}

cmd_env() {
  cat <<EOF
export CLICKHOUSE_HOST=$CH_HOST
export CLICKHOUSE_TCP_PORT=$CLICKHOUSE_TCP_PORT
export CLICKHOUSE_HTTP_PORT=$CLICKHOUSE_HTTP_PORT
export CLICKHOUSE_ADDR=$CH_HOST:$CLICKHOUSE_TCP_PORT
export CLICKHOUSE_HTTP_URL=http://$CH_HOST:$CLICKHOUSE_HTTP_PORT/
export CLICKHOUSE_DSN=tcp://$CH_HOST:$CLICKHOUSE_TCP_PORT?username=default
export ATLAS_CLICKHOUSE_ADDR=$CH_HOST:$CLICKHOUSE_TCP_PORT
EOF
}

usage() {
  cat >&2 <<EOF
usage: $0 start|stop|restart|status|reset|env|logs|client [clickhouse-client args]
  CLICKHOUSE_TCP_PORT=$CLICKHOUSE_TCP_PORT CLICKHOUSE_HTTP_PORT=$CLICKHOUSE_HTTP_PORT
  data: $WORK_DIR
EOF
  exit 2
}

case "${1:-}" in
  start)   cmd_start ;;
  stop)    cmd_stop ;;
  restart) cmd_stop; cmd_start ;;
  status)  cmd_status ;;
  reset)   cmd_reset ;;
  env)     cmd_env ;;
  logs)    tail -n "${2:-100}" "$LOG_DIR/clickhouse-server.log" ;;
  client)  shift; ch_client "$@" ;;
  *)       usage ;;
esac
