#!/usr/bin/env bash
# bench-cluster.sh — calls per second of `make cluster` through its Kamailio front, beside the
# same calls sent straight to one of its nodes, on this machine (BENCHMARKS.md, "Cluster").
# Not part of `make test` or `make bench`: run it by hand, on a quiet machine if you can.
#
# It starts scripts/cluster.sh (three nodes and the front, on the ports below, one fresh
# database), a SIPp far end on the dev configuration's desk port (127.0.0.1:5090, behind line
# +15550197; the carrier's calls_per_second turned off), and for each target (front, node1)
# and each rate a step of zero-length calls
# (bench/scenarios/cps_carrier.xml: INVITE → 200 → ACK → BYE, a new caller each, so a new
# ticket each). A step passes when every call SIPp reports failed is a late 180 (below) and
# every call has its own ticket within 30 s. One line per step on stdout:
#   target rate placed ok failed tickets wall_s loadavg_start loadavg_end why_failed
#
# Environment: DATABASE_URL (required: an empty database), RATES ["25 50 100 150 200"],
# TARGETS ["front node1"], SIPP_PORT_BASE [16000] (SIPp carrier port of step N: BASE+N),
# STEP_SECONDS [10], BENCH_DIR [.data/bench-cluster], the CLUSTER_* ports of cluster.sh
# (defaults below, clear of make run's).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATABASE_URL:?set DATABASE_URL to an empty database}"
rates=${RATES:-25 50 100 150 200}
secs=${STEP_SECONDS:-10}
dir=${BENCH_DIR:-.data/bench-cluster}
export CLUSTER_DIR="$dir/cluster"
export CLUSTER_FRONT_PORT=${CLUSTER_FRONT_PORT:-15060}
export CLUSTER_SIP_PORTS=${CLUSTER_SIP_PORTS:-"15071 15072 15073"}
export CLUSTER_HTTP_PORTS=${CLUSTER_HTTP_PORTS:-"18081 18082 18083"}
export CLUSTER_WEB_PORT=${CLUSTER_WEB_PORT:-18080}
export CLUSTER_RTP_BASE=${CLUSTER_RTP_BASE:-40000}
export CLUSTER_RTP_SIZE=${CLUSTER_RTP_SIZE:-1000}
read -r -a sip_ports <<<"$CLUSTER_SIP_PORTS"
log() { printf 'bench-cluster.sh: %s\n' "$*" >&2; }
rm -rf "$dir"
mkdir -p "$dir"
# The dev configuration with the carrier's calls_per_second off (default 20 per node): the
# benchmark measures the gateways, not that limit. max_calls stays at its 250.
sed -e 's|^      allow: \[127.0.0.0/8\]$|      allow: [127.0.0.0/8]\n      calls_per_second: 0|' deploy/dev/switchboard.yaml >"$dir/dev.yaml"
grep -q "calls_per_second: 0" "$dir/dev.yaml" || { log "deploy/dev/switchboard.yaml changed: could not turn calls_per_second off"; exit 1; }
export CONFIG="$dir/dev.yaml"

cluster_pid= desk_pid=
cleanup() {
  [ -n "$desk_pid" ] && kill "$desk_pid" 2>/dev/null || true
  if [ -n "$cluster_pid" ]; then
    # TERM, not INT: a background job of a script ignores SIGINT.
    kill -TERM "$cluster_pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$cluster_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$cluster_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

scripts/cluster.sh 2>"$dir/cluster.log" &
cluster_pid=$!
for _ in $(seq 1 1200); do
  [ -f "$CLUSTER_DIR/ready" ] && break
  kill -0 "$cluster_pid" 2>/dev/null || { log "cluster.sh exited (see $dir/cluster.log)"; exit 1; }
  sleep 0.1
done
[ -f "$CLUSTER_DIR/ready" ] || { log "cluster not ready within 120 s"; exit 1; }

sipp -sf bench/scenarios/cps_desk.xml -i 127.0.0.1 -p 5090 -nostdin -bg >/dev/null 2>&1 || true
desk_pid=$(pgrep -n -f "cps_desk.xml -i 127.0.0.1 -p 5090" || true)
[ -n "$desk_pid" ] || { log "the SIPp far end did not start on 127.0.0.1:5090 (port taken?)"; exit 1; }

step=0
for target in ${TARGETS:-front node1}; do
  case $target in
    front) addr=127.0.0.1:$CLUSTER_FRONT_PORT ;;
    node1) addr=127.0.0.1:${sip_ports[0]} ;;
  esac
  for rate in $rates; do
    step=$((step + 1))
    n=$((rate * secs))
    prefix=$(printf '+1650%02d' "$step")
    sd="$dir/$target-$rate"
    mkdir -p "$sd"
    { echo SEQUENTIAL; for i in $(seq 1 "$n"); do printf '%s%05d\n' "$prefix" "$i"; done; } >"$sd/callers.csv"
    la0=$(cut -d' ' -f1-3 /proc/loadavg)
    t0=$(date +%s.%N)
    ( cd "$sd" && sipp -sf ../../../bench/scenarios/cps_carrier.xml -inf callers.csv -i 127.0.0.1 -p $((${SIPP_PORT_BASE:-16000} + step)) \
        -r "$rate" -rp 1000 -m "$n" -l "$n" -s +15550197 "$addr" -nostdin -trace_stat -stf stat.csv \
        -trace_err -recv_timeout 10000 -timeout $((secs + 60))s -timeout_error >sipp.out 2>&1 ) || true
    t1=$(date +%s.%N)
    la1=$(cut -d' ' -f1-3 /proc/loadavg)
    last=$(tail -n 1 "$sd/stat.csv")
    hdr=$(head -n 1 "$sd/stat.csv")
    col() { awk -F';' -v h="$hdr" -v want="$1" 'BEGIN{n=split(h,a,";"); for(i=1;i<=n;i++) if(a[i]==want) c=i} {print $c}' <<<"$last"; }
    ok=$(col SuccessfulCall\(C\)); failed=$(col FailedCall\(C\)); placed=$(col TotalCallCreated)
    tickets=0
    deadline=$(( $(date +%s) + 30 ))
    while [ "$(date +%s)" -lt "$deadline" ]; do
      tickets=$(psql "$DATABASE_URL" -Atc "SELECT count(DISTINCT ticket_id) FROM calls WHERE from_number LIKE '$prefix%' AND ticket_id IS NOT NULL")
      [ "$tickets" -ge "$n" ] && break
      sleep 0.1
    done
    # Why calls failed, from SIPp's error log: the response it did not expect, or a timeout.
    # "late180" is a 180 Ringing that arrived after the 200 OK: the front's worker processes
    # relay the two over UDP in parallel and may swap them (harmless to a real UA, RFC 3261
    # §13.2.2.4 has it ignore provisionals after the final; SIPp's scenario counts it failed).
    why=$(cat "$sd"/*_errors.log 2>/dev/null | grep -o "received 'SIP/2.0 [0-9]*\|Aborting call on UDP retransmission timeout\|call-timeout" |
      sed -e "s/received 'SIP\/2.0 180/late180/" -e "s/received 'SIP\/2.0 /code/" -e 's/Aborting call on UDP retransmission timeout/retrans_timeout/' |
      sort | uniq -c | awk '{printf "%s%s=%s", (NR>1?",":""), $2, $1}' || true)
    printf '%s %s %s %s %s %s %.1f "%s" "%s" %s\n' "$target" "$rate" "$placed" "$ok" "$failed" "$tickets" \
      "$(echo "$t1 - $t0" | bc)" "$la0" "$la1" "${why:--}"
    late=$(grep -o "late180=[0-9]*" <<<"$why" | cut -d= -f2 || true)
    if [ "$((failed - ${late:-0}))" -gt 0 ] || [ "$tickets" -lt "$n" ]; then
      log "$target: $rate calls/s failed ($failed failed: ${why:--}; $tickets tickets of $n); next target"
      break
    fi
  done
done
# Where the calls landed (call.started names the node).
psql "$DATABASE_URL" -Atc "SELECT body->>'node', count(*) FROM call_events WHERE type = 'call.started' GROUP BY 1 ORDER BY 1" >&2
