#!/usr/bin/env bash
# run.sh — `make run`: a PostgreSQL (unless DATABASE_URL is set), migrations, and the gateway
# with the dev configuration in the foreground. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/toolchain.sh
config=${CONFIG:-deploy/dev/switchboard.yaml}

started_pg=
if [ -z "${DATABASE_URL:-}" ]; then
  scripts/deps.sh run
  scripts/pg.sh status .data/pg 2>/dev/null || started_pg=1
  DATABASE_URL=$(scripts/pg.sh start .data/pg switchboard)
  export DATABASE_URL
fi
stop_pg() { [ -n "$started_pg" ] && scripts/pg.sh stop .data/pg || true; }
trap stop_pg EXIT

mkdir -p bin
echo "run.sh: $(go version)" >&2
go build -o bin/switchboard ./cmd/switchboard
bin/switchboard migrate --config "$config"

bin/switchboard serve --config "$config" &
pid=$!
# Ctrl-C reaches the gateway too (same process group); forward TERM for `kill`.
trap 'kill -TERM $pid 2>/dev/null || true' INT TERM
status=0
wait $pid || status=$?
# wait returns early when a trapped signal arrives: wait for the gateway to finish shutting down.
while kill -0 $pid 2>/dev/null; do wait $pid || status=$?; done
exit $status
