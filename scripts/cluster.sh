#!/usr/bin/env bash
# cluster.sh — `make cluster`: Kamailio on 127.0.0.1:5060 in front of three gateway nodes that
# share one throwaway PostgreSQL (unless DATABASE_URL is set), each node with the dev
# configuration's lines, queues and agents, and HAProxy on 127.0.0.1:8080 in front of the
# nodes' HTTP (the agent page and the API). Ctrl-C stops everything it started.
#
# The nodes' configurations are generated from deploy/dev/switchboard.yaml (CONFIG) with only
# the node name, the ports, the RTP range, the local files, the trusted front (the front's
# 127.0.0.1: its X-Switchboard-Source names the real caller) and http.public_url (the HTTP
# front's URL: API links are built on it, and an agent page opened at a node's own address goes
# there when that node stops answering) changed; the front is
# deploy/kamailio/kamailio.cfg itself, its listen address, dispatcher list and control sockets
# given as defines (kamailio -A). Everything generated lives under CLUSTER_DIR.
#
# Environment (defaults in brackets; the test sets them to free loopback ports):
#   CLUSTER_DIR          generated files, logs, spools, recordings      [.data/cluster]
#   CLUSTER_FRONT_PORT   Kamailio's SIP port on 127.0.0.1 (UDP and TCP) [5060]
#   CLUSTER_SIP_PORTS    the nodes' SIP ports on 127.0.0.1               ["5071 5072 5073"]
#   CLUSTER_HTTP_PORTS   the nodes' HTTP ports on 127.0.0.1              ["8081 8082 8083"]
#   CLUSTER_WEB_PORT     HAProxy's HTTP port on 127.0.0.1 (the pages)    [8080]
#   CLUSTER_RTP_BASE     node N's RTP ports: BASE+(N-1)*SIZE, SIZE ports [21000]
#   CLUSTER_RTP_SIZE     RTP ports per node                              [1000]
#   CLUSTER_PING         seconds between the front's OPTIONS probes      [2]
#   CLUSTER_SECRET       the nodes' cluster secret (internal SIP leg)    [random, per run]
#   SWITCHBOARD_BIN      a built binary to use instead of building one
#
# The nodes answer each other's agents over the cluster's internal SIP leg: each node's
# configuration gets cluster.internal_networks (loopback: 127.0.0.1/32) and its own
# cluster.internal_address (its SIP port); the shared secret reaches them through
# SWITCHBOARD_CLUSTER_SECRET, never written to disk.
#
# The HTTP front is HAProxy (deploy/haproxy/haproxy.cfg with this cluster's addresses, in
# CLUSTER_DIR/haproxy.cfg): it checks each node's /readyz every second, keeps a browser on one
# node (cookie SWITCHBOARD_NODE: the page's WebSocket, its WebRTC leg and its POST /calls must
# meet on the node its softphone is attached to), and sends a page whose node is gone to another
# live node (redispatch), where its login — kept in PostgreSQL — still holds.
#
# Ready (CLUSTER_DIR/ready written, "cluster ready" logged) once every node answers /readyz, the
# SIP front holds all three nodes active and the HTTP front answers.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/toolchain.sh
config=${CONFIG:-deploy/dev/switchboard.yaml}
dir=${CLUSTER_DIR:-.data/cluster}
front_port=${CLUSTER_FRONT_PORT:-5060}
read -r -a sip_ports <<<"${CLUSTER_SIP_PORTS:-5071 5072 5073}"
read -r -a http_ports <<<"${CLUSTER_HTTP_PORTS:-8081 8082 8083}"
web_port=${CLUSTER_WEB_PORT:-8080}
rtp_base=${CLUSTER_RTP_BASE:-21000}
rtp_size=${CLUSTER_RTP_SIZE:-1000}
ping=${CLUSTER_PING:-2}
log() { printf 'cluster.sh: %s\n' "$*" >&2; }
if [ ${#sip_ports[@]} -ne 3 ] || [ ${#http_ports[@]} -ne 3 ]; then
  log "CLUSTER_SIP_PORTS and CLUSTER_HTTP_PORTS must name three ports each"; exit 2
fi

# The cluster secret: random for each run unless given (at least 32 characters).
if [ -z "${CLUSTER_SECRET:-}" ]; then
  CLUSTER_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
fi
SWITCHBOARD_CLUSTER_SECRET=$CLUSTER_SECRET
export SWITCHBOARD_CLUSTER_SECRET

pids=()
started_pg=
run=
stop_all() {
  trap - EXIT INT TERM
  local p
  if [ ${#pids[@]} -gt 0 ]; then log "stopping: SIGTERM to the nodes and the fronts"; fi
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    # Bounded: a node gets its shutdown_grace (set to 5 s below), then is killed.
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  if [ -n "$run" ]; then rm -rf "$run"; fi
  if [ -n "$started_pg" ]; then scripts/pg.sh stop .data/pg || true; fi
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -z "${DATABASE_URL:-}" ]; then
  scripts/deps.sh cluster
  scripts/pg.sh status .data/pg 2>/dev/null || started_pg=1
  DATABASE_URL=$(scripts/pg.sh start .data/pg switchboard)
  export DATABASE_URL
elif ! command -v kamailio >/dev/null || ! command -v haproxy >/dev/null; then
  scripts/deps.sh cluster
fi
kamailio=$(command -v kamailio || echo /usr/sbin/kamailio)
haproxy=$(command -v haproxy || echo /usr/sbin/haproxy)

mkdir -p "$dir"
rm -f "$dir/ready"
bin=${SWITCHBOARD_BIN:-}
if [ -z "$bin" ]; then
  mkdir -p bin
  log "$(go version)"
  go build -o bin/switchboard ./cmd/switchboard
  bin=bin/switchboard
fi

# One node's configuration: the dev one with its node name, ports, RTP range and files.
# Each edit must find its line: a changed dev configuration fails here, loudly.
node_config() {
  local n=$1 sip=$2 http=$3 out=$4 rtp_min=$(( rtp_base + ($1 - 1) * rtp_size ))
  local nd="$dir/node$n"
  mkdir -p "$nd"
  sed -e "s|^node: dev\$|node: node$n|" \
      -e "s|^shutdown_grace: 30s\$|shutdown_grace: 5s|" \
      -e "s|^  listen: 127.0.0.1:8080\$|  listen: 127.0.0.1:$http\n  public_url: http://127.0.0.1:$web_port|" \
      -e "s|address: 127.0.0.1:5060}|address: 127.0.0.1:$sip}|" \
      -e "s|^  max_calls: 250\$|  max_calls: 250\n  trusted_fronts: [127.0.0.1/32]|" \
      -e "s|^  port_min: 20000\$|  port_min: $rtp_min|" \
      -e "s|^  port_max: 20999\$|  port_max: $(( rtp_min + rtp_size - 1 ))|" \
      -e "s|^  dir: .data/recordings\$|  dir: $nd/recordings|" \
      -e "s|^  migrate_on_start: true\$|  migrate_on_start: true\n  spool: $nd/spool/events.jsonl\n  shared_queues: true|" \
      "$config" >"$out"
  # The internal leg between the nodes (the secret comes from the environment).
  printf '\ncluster:\n  internal_networks: [127.0.0.1/32]\n  internal_address: 127.0.0.1:%s\n' "$sip" >>"$out"
  local want
  for want in "node: node$n" "listen: 127.0.0.1:$http" "public_url: http://127.0.0.1:$web_port" "address: 127.0.0.1:$sip}" "port_min: $rtp_min" \
      "dir: $nd/recordings" "spool: $nd/spool/events.jsonl" "shared_queues: true" "shutdown_grace: 5s" "trusted_fronts: [127.0.0.1/32]" "internal_address: 127.0.0.1:$sip"; do
    grep -qF "$want" "$out" || { log "$config changed: could not set '$want' for node $n"; exit 1; }
  done
  [ "$(grep -cF "address: 127.0.0.1:$sip}" "$out")" -eq 2 ] || { log "$config: expected UDP and TCP on 127.0.0.1:5060"; exit 1; }
}

list="$dir/dispatcher.list"
echo "# generated by scripts/cluster.sh: set 1, the three nodes" >"$list"
for i in 1 2 3; do
  node_config "$i" "${sip_ports[$((i-1))]}" "${http_ports[$((i-1))]}" "$dir/node$i.yaml"
  echo "1 sip:127.0.0.1:${sip_ports[$((i-1))]} 0 0 duid=node$i" >>"$list"
done

# Migrate once, before the nodes start side by side.
"$bin" migrate --config "$dir/node1.yaml"

for i in 1 2 3; do
  "$bin" serve --config "$dir/node$i.yaml" 2>"$dir/node$i.log" &
  pids+=($!)
  echo $! >"$dir/node$i.pid"
  log "node$i: SIP 127.0.0.1:${sip_ports[$((i-1))]}, API http://127.0.0.1:${http_ports[$((i-1))]}/api/v2 (log $dir/node$i.log)"
done

# The nodes answer /readyz before the front starts probing them: a probe that finds a node not
# yet listening would take it out until the next probes bring it back.
# One GET /readyz with bash's own /dev/tcp (no curl needed): true on a 200.
ready_once() {
  local line
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
  IFS= read -r -t 2 line <&3 || line=
  exec 3<&- 3>&-
  [[ $line == "HTTP/1."?" 200"* ]]
}
wait_ready() {
  local port=$1 pid=$2
  for _ in $(seq 1 600); do
    kill -0 "$pid" 2>/dev/null || { log "a node exited while starting (see its log)"; exit 1; }
    ready_once "$port" && return 0
    sleep 0.1
  done
  log "node on HTTP port $port not ready within 60 s"; exit 1
}
for i in 1 2 3; do wait_ready "${http_ports[$((i-1))]}" "${pids[$((i-1))]}"; done

# The front: the shipped kamailio.cfg with this cluster's defines, in the foreground (-DD),
# logging to stderr (-E) into its log file.
# Its control sockets in a short directory of their own: a Unix socket path holds at most 107
# bytes, which a deep CLUSTER_DIR would pass.
run=$(mktemp -d /tmp/switchboard-front.XXXXXX)
"$kamailio" -DD -E -f deploy/kamailio/kamailio.cfg -Y "$run" -P "$run/kamailio.pid" \
  -A "FRONT_ADDR=127.0.0.1" -A "FRONT_PORT=$front_port" -A "DISPATCHER_LIST=\"$(realpath "$list")\"" \
  -A "DS_PING_INTERVAL=$ping" -A "CTL_SOCKET=\"unix:$run/kamailio_ctl\"" \
  -A "RPC_FIFO=\"$run/kamailio_rpc.fifo\"" 2>"$dir/kamailio.log" &
kam_pid=$!
pids+=("$kam_pid")
echo "$kam_pid" >"$dir/kamailio.pid"
log "front: Kamailio on 127.0.0.1:$front_port (UDP, TCP), dispatching over the three nodes (log $dir/kamailio.log)"
# Ready when the front's dispatcher holds all three nodes active (flags "A…" in
# `kamcmd dispatcher.list`): calls sent before that would find no node.
kamcmd=$(command -v kamcmd || echo /usr/sbin/kamcmd)
active=0
for _ in $(seq 1 300); do
  kill -0 "$kam_pid" 2>/dev/null || { log "the front exited while starting (see $dir/kamailio.log)"; exit 1; }
  active=$("$kamcmd" -s "unix:$run/kamailio_ctl" dispatcher.list 2>/dev/null | grep -cE '^[[:space:]]*FLAGS: A' || true)
  [ "$active" -ge 3 ] && break
  sleep 0.1
done
if [ "$active" -lt 3 ]; then log "the front sees $active of 3 nodes active after 30 s (see $dir/kamailio.log)"; exit 1; fi

# The HTTP front: the shipped haproxy.cfg with this cluster's listen address and nodes.
web_cfg="$dir/haproxy.cfg"
sed -e "s|^    bind 127.0.0.1:8080\$|    bind 127.0.0.1:$web_port|" \
    -e "s|^    server node1 127.0.0.1:8081 |    server node1 127.0.0.1:${http_ports[0]} |" \
    -e "s|^    server node2 127.0.0.1:8082 |    server node2 127.0.0.1:${http_ports[1]} |" \
    -e "s|^    server node3 127.0.0.1:8083 |    server node3 127.0.0.1:${http_ports[2]} |" \
    deploy/haproxy/haproxy.cfg >"$web_cfg"
for want in "bind 127.0.0.1:$web_port" "server node1 127.0.0.1:${http_ports[0]} " \
    "server node2 127.0.0.1:${http_ports[1]} " "server node3 127.0.0.1:${http_ports[2]} "; do
  grep -qF "$want" "$web_cfg" || { log "deploy/haproxy/haproxy.cfg changed: could not set '$want'"; exit 1; }
done
"$haproxy" -q -c -f "$web_cfg" >"$dir/haproxy.log" 2>&1 || { log "haproxy refuses $web_cfg (see $dir/haproxy.log)"; exit 1; }
"$haproxy" -db -f "$web_cfg" 2>>"$dir/haproxy.log" &
web_pid=$!
pids+=("$web_pid")
echo "$web_pid" >"$dir/haproxy.pid"
for _ in $(seq 1 300); do
  kill -0 "$web_pid" 2>/dev/null || { log "the HTTP front exited while starting (see $dir/haproxy.log)"; exit 1; }
  ready_once "$web_port" && break
  sleep 0.1
done
ready_once "$web_port" || { log "the HTTP front does not answer on 127.0.0.1:$web_port after 30 s (see $dir/haproxy.log)"; exit 1; }
log "HTTP front: HAProxy on http://127.0.0.1:$web_port (agent page, API), over the three nodes (log $dir/haproxy.log)"

touch "$dir/ready"
log "cluster ready: send calls to sip:127.0.0.1:$front_port, open the agent page at http://127.0.0.1:$web_port/"
log "Ctrl-C stops everything"

# Run until Ctrl-C (or a front exits). A node that dies is left dead — the fronts take it out,
# the others close its calls and its pages move to them — so that failover can be tried:
# `kill -9 $(cat $dir/node2.pid)`.
status=0
wait -n "$kam_pid" "$web_pid" || status=$?
log "a front exited (status $status); stopping everything"
exit "$status"
