#!/usr/bin/env bash
# pg.sh — a throwaway local PostgreSQL cluster for `make run` and `make test`.
#
#   scripts/pg.sh start DIR DBNAME   initdb DIR if needed, start it, create DBNAME,
#                                    print the DATABASE_URL on stdout
#   scripts/pg.sh stop DIR           stop the cluster in DIR if it runs
#   scripts/pg.sh url DIR DBNAME     print the DATABASE_URL of a running cluster
#   scripts/pg.sh status DIR         exit 0 when the cluster in DIR is running
#
# SWITCHBOARD_PG_OPTS adds server options at start (e.g. the benchmark's
# "-c shared_preload_libraries=pg_stat_statements"); a cluster already running keeps its own.
#
# The cluster listens on a Unix socket in DIR/run and on a free loopback port, with trust
# authentication for the superuser "postgres" (it is reachable only from this machine and
# holds nothing but development or test data). PostgreSQL refuses to run as root, so as root
# the cluster runs as the "postgres" system user that Debian's package creates.
set -euo pipefail

log() { printf 'pg.sh: %s\n' "$*" >&2; }

pg_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}

ensure_installed() {
  if pg_bindir >/dev/null; then return 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing postgresql with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    pg_bindir >/dev/null && return 0
  fi
  log "PostgreSQL server binaries not found. Install them with:"
  log "    sudo apt-get update && sudo apt-get install -y postgresql"
  exit 1
}

# as_owner runs a command as the user that owns the cluster.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

port_free() {
  # A refused connection means nothing listens there.
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_port() {
  local p i
  for i in $(seq 1 200); do
    p=$(( 40000 + (RANDOM % 20000) ))
    if port_free "$p"; then echo "$p"; return 0; fi
  done
  log "no free loopback port found"; exit 1
}

url_for() { # dir db
  local port; port=$(cat "$1/port")
  echo "postgres://postgres@127.0.0.1:${port}/$2?sslmode=disable"
}

running() { # dir
  [ -f "$1/data/postmaster.pid" ] && as_owner "$BIN/pg_ctl" -D "$1/data" status >/dev/null 2>&1
}

cmd_start() {
  local dir=$1 db=$2
  ensure_installed
  BIN=$(pg_bindir)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    chown postgres: "$dir"
    # The server must be able to reach its data directory through every parent.
    local p=$dir
    while [ "$p" != / ]; do p=$(dirname "$p"); chmod o+x "$p" 2>/dev/null || true; done
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    log "initdb $dir/data"
    as_owner "$BIN/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --no-instructions >/dev/null
    as_owner mkdir -p "$dir/run"
  fi
  if running "$dir"; then
    log "reusing the running cluster in $dir"
  else
    local try port
    for try in 1 2 3 4 5; do
      port=$(pick_port)
      as_owner sh -c "echo $port > '$dir/port'"
      if as_owner "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
          -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/run -c fsync=on -c max_connections=200 ${SWITCHBOARD_PG_OPTS:-}" \
          start >/dev/null; then
        break
      fi
      log "start on port $port failed (try $try), see $dir/server.log"
      [ "$try" = 5 ] && { tail -20 "$dir/server.log" >&2; exit 1; }
    done
  fi
  local port; port=$(cat "$dir/port")
  if ! as_owner "$BIN/psql" -h "$dir/run" -p "$port" -U postgres -d postgres -Atqc \
      "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    as_owner "$BIN/createdb" -h "$dir/run" -p "$port" -U postgres "$db"
  fi
  url_for "$dir" "$db"
}

cmd_stop() {
  local dir=$1
  [ -d "$dir/data" ] || return 0
  BIN=$(pg_bindir) || return 0
  if running "$dir"; then
    as_owner "$BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null && log "stopped the cluster in $dir"
  fi
}

case "${1:-}" in
  start) cmd_start "${2:?dir}" "${3:?dbname}" ;;
  stop) cmd_stop "${2:?dir}" ;;
  url) url_for "${2:?dir}" "${3:?dbname}" ;;
  status) BIN=$(pg_bindir) || exit 1; running "${2:?dir}" ;;
  *) echo "usage: $0 start DIR DBNAME | stop DIR | url DIR DBNAME | status DIR" >&2; exit 2 ;;
esac
