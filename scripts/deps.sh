#!/usr/bin/env bash
# deps.sh PURPOSE — make sure the Debian packages that `make PURPOSE` needs are installed.
# As root with apt-get it installs what is missing; otherwise it prints the command and fails.
set -euo pipefail

purpose=${1:-run}
want=() # optional: installed when apt has them, never a failure
# command-to-check:debian-package
case "$purpose" in
  run) need=("initdb:postgresql") ;;
  # SIPp and baresip are the carriers and far ends of the SIP tests, sox checks recordings,
  # Chromium with node and npm (playwright-core from npm) runs the softphone test.
  # Prometheus (promtool) and Kamailio check the files under deploy/; Kamailio and HAProxy are
  # the cluster test's SIP and HTTP fronts.
  test) need=("initdb:postgresql" "sipp:sip-tester" "baresip:baresip" "sox:sox" "chromium:chromium" "node:nodejs" "npm:npm"
              "prometheus:prometheus" "kamailio:kamailio" "haproxy:haproxy") ;;
  cluster) need=("initdb:postgresql" "kamailio:kamailio" "haproxy:haproxy") ;;
  bench) need=("initdb:postgresql" "sipp:sip-tester")
         # rtpengine is the peer `make bench` compares the gateway with; the bench runs without it.
         want=("rtpengine:rtpengine-daemon") ;;
  *) echo "deps.sh: unknown purpose $purpose" >&2; exit 2 ;;
esac

have() {
  case "$1" in
    initdb) ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 ;;
    # Daemons (kamailio, haproxy) live in /usr/sbin, outside a user's PATH.
    *) command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] ;;
  esac
}

root_apt=
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then root_apt=1; fi
for pair in "${want[@]}"; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  have "$cmd" && continue
  if [ -n "$root_apt" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-cache show "$pkg" >/dev/null 2>&1 || apt-get update -qq >&2 || true
    if apt-cache show "$pkg" >/dev/null 2>&1; then
      echo "deps.sh: installing $pkg (optional) with apt-get" >&2
      apt-get install -y -qq --no-install-recommends "$pkg" >&2 || echo "deps.sh: $pkg did not install; going on without it" >&2
    else
      echo "deps.sh: $pkg is not in the apt sources; going on without it" >&2
    fi
  else
    echo "deps.sh: optional $pkg missing (sudo apt-get install -y $pkg); going on without it" >&2
  fi
done

missing=()
for pair in "${need[@]}"; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  have "$cmd" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ -n "$root_apt" ]; then
  echo "deps.sh: installing ${missing[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  exit 0
fi
echo "deps.sh: missing Debian packages: ${missing[*]}. Install them with:" >&2
echo "    sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
exit 1
