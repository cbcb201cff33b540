#!/usr/bin/env bash
# bench.sh — `make bench` (BENCHMARKS.md): the SIPp load benchmarks of the gateway.
#
# Provisions SIPp, PostgreSQL and, when apt has it, rtpengine (scripts/deps.sh bench), builds the
# gateway and bench/cmd/sbbench, starts a throwaway PostgreSQL cluster in .data/pgbench (unless it
# already runs), and runs `sbbench run`, which starts its own gateway, SIPp processes, RTP
# generator, bare relay and (when installed) rtpengine on 127.0.0.1, prints one table and writes bench/results/latest.json (BENCHMARKS.md explains every
# figure). The gateway is pinned to core 0, the load generators to core 1 (taskset).
# Everything it started is stopped on exit, Ctrl-C included. Extra arguments go to `sbbench run`
# (e.g. `scripts/bench.sh -quick -cps 100,200 -conc 100`); `sbbench run -h` lists them.
# Then it runs the event log's 300,000-event spool drain test, too long for `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/toolchain.sh

scripts/deps.sh bench
mkdir -p bin
echo "bench.sh: $(go version)" >&2
go build -o bin/switchboard ./cmd/switchboard
go build -o bin/sbbench ./bench/cmd/sbbench

started_pg=
scripts/pg.sh status .data/pgbench 2>/dev/null || started_pg=1
stop_pg() { if [ -n "$started_pg" ]; then scripts/pg.sh stop .data/pgbench || true; fi; }
trap stop_pg EXIT
# pg_stat_statements (shipped with Debian's postgresql) for the PostgreSQL profile of each CPS
# step (BENCHMARKS.md). A cluster left running by an earlier run without it is restarted.
pg_opts="-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
if [ -z "$started_pg" ] && ! grep -q pg_stat_statements .data/pgbench/data/postmaster.opts 2>/dev/null; then
  scripts/pg.sh stop .data/pgbench
  started_pg=1
fi
url=$(SWITCHBOARD_PG_OPTS="$pg_opts" scripts/pg.sh start .data/pgbench switchboard_bench)

# The gateway (and the relay) on core 0; SIPp, the RTP generator and sbbench on core 1.
gw_cpus=0 load_cpus=1
if [ "$(nproc)" -lt 2 ] || ! command -v taskset >/dev/null; then
  echo "bench.sh: fewer than 2 cores or no taskset: nothing is pinned" >&2
  gw_cpus= load_cpus=
fi
run=(bin/sbbench run -database-url "$url" -gateway-cpus "$gw_cpus" -load-cpus "$load_cpus")
if [ -n "$load_cpus" ]; then run=(taskset -c "$load_cpus" "${run[@]}"); fi
"${run[@]}" "$@"

# The long fault test of the event log: a 300,000-event spool drained while the gateway runs and
# takes new events (make test drains 30,000 under the race detector). Its databases are created
# and dropped on the bench cluster.
SWITCHBOARD_TEST_DATABASE_URL=$url SWITCHBOARD_REQUIRE_PG=1 SWITCHBOARD_SPOOL_TEST_EVENTS=300000 \
  go test -count=1 -timeout 10m -run '^TestSpoolDrainsAtRuntimeWhileAcceptingEvents$' -v ./ticketing/eventlog/ |
  grep -E '^(---|ok|FAIL|PASS)|drained'
