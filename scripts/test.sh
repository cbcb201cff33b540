#!/usr/bin/env bash
# test.sh — `make test`: provision what the suite needs, then gofmt, go vet and go test -race.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/toolchain.sh

scripts/deps.sh test
url=$(scripts/pg.sh start .data/pgtest switchboard_test)
trap 'scripts/pg.sh stop .data/pgtest >/dev/null 2>&1 || true' EXIT
export SWITCHBOARD_TEST_DATABASE_URL=$url SWITCHBOARD_REQUIRE_PG=1
# Tests that need a tool from Debian fail rather than skip when this is set.
export SWITCHBOARD_REQUIRE_PEERS=1

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.data/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2; echo "$unformatted" >&2; exit 1
fi
echo "test.sh: $(go version)" >&2
# TestBuiltWithTheToolchainOfGoMod fails if the toolchain line was not honoured.
export SWITCHBOARD_REQUIRE_TOOLCHAIN=1
go vet ./...
# -timeout bounds a hung package, not the suite's speed (a slower CI machine must not turn a
# long package into a timeout panic: it did at 14m).
if [ -n "${GOTESTFLAGS:-}" ]; then # a developer's own selection (-run, -v): one plain go test
  exec go test -race -count=1 -timeout 30m $GOTESTFLAGS ./...
fi
work=$(mktemp -d)
trap 'rm -rf "$work"; scripts/pg.sh stop .data/pgtest >/dev/null 2>&1 || true' EXIT
# cmd/switchboard's test binary and the race-built gateway its tests run, built meanwhile.
( go test -race -c -o "$work/cmd.test" ./cmd/switchboard && go build -race -o "$work/switchboard" ./cmd/switchboard ) >"$work/build.log" 2>&1 &
build=$!
pkgs=$(go list ./... | grep -v '/cmd/switchboard$')
status=0
go test -race -count=1 -timeout 30m $pkgs || status=1 # the shards below run anyway: one report
# The receiver's tests again, receiving with epoll and recvmmsg(2) as where the kernel has no
# multishot receive ring (SWITCHBOARD_MEDIA_RECEIVE=epoll; the ring is the default).
SWITCHBOARD_MEDIA_RECEIVE=epoll go test -race -count=1 -timeout 30m \
  -run 'Ring|Unwatch|Receiver|ManySockets|Forward|Leak|Baseline|Flat|Bleed' ./media/ || status=1

# cmd/switchboard holds the end-to-end tests with real binaries, peers and browsers: about 12
# of the 14 minutes the suite took when it ran as one package beside the others. It runs after
# them, in three shards at once (three processes: most of these tests wait on peers, timers and
# browsers rather than use a core — with two shards the phase took 10.8 min of a 22-min suite in
# session 11; SWITCHBOARD_CMD_SHARDS sets another count), sharing one race build of the gateway. The shards are balanced by each test's duration in
# scripts/cmd-test-seconds.tsv (longest first, each to the shard with the least so far; a test
# not listed counts 30 s). Each run writes the durations it measured to
# $SWITCHBOARD_TEST_DURATIONS when that is set: copy them over the file when tests change.
if ! wait "$build"; then
  cat "$work/build.log" >&2; exit 1
fi
export SWITCHBOARD_TEST_BINARY=$work/switchboard
mapfile -t tests < <(cd cmd/switchboard && "$work/cmd.test" -test.list '.*' | grep -E '^(Test|Example|Fuzz)')
shards=${SWITCHBOARD_CMD_SHARDS:-3}
declare -A secs
while IFS=$'\t' read -r name s; do
  [ -n "$name" ] && secs[$name]=$s
done < <(grep -v '^#' scripts/cmd-test-seconds.tsv 2>/dev/null || true)
declare -a runs loads
for ((s = 0; s < shards; s++)); do loads[s]=0; done
while IFS=$'\t' read -r s name; do
  best=0
  for ((k = 1; k < shards; k++)); do
    if ((loads[k] < loads[best])); then best=$k; fi
  done
  loads[best]=$((loads[best] + s))
  runs[best]+="${runs[best]:+|}$name"
done < <(for t in "${tests[@]}"; do printf '%s\t%s\n' "${secs[$t]:-30}" "$t"; done | sort -t$'\t' -k1,1nr -k2,2)
# failed prints, from a shard's verbose log, only what non-verbose go test would: the blocks of
# the tests that failed and whatever follows the last test (a panic, a timeout, the summary).
failed() {
  awk '/^=== RUN   [^\/]+$/ && !open { buf = ""; open = 1 }
    { buf = buf $0 "\n" }
    /^--- (PASS|SKIP): / { buf = ""; open = 0; next }
    /^--- FAIL: / { printf "%s", buf; buf = ""; open = 0; next }
    END { printf "%s", buf }' "$1"
}
declare -a pids
for ((s = 0; s < shards; s++)); do
  (
    cd cmd/switchboard
    start=$SECONDS
    if "$work/cmd.test" -test.v -test.count=1 -test.timeout=30m -test.run "^(${runs[s]})\$" >"$work/shard$s.log" 2>&1; then
      echo "ok  	github.com/switchboard-voice/switchboard/cmd/switchboard (shard $((s + 1))/$shards, planned ${loads[s]}s)	$((SECONDS - start))s"
    else
      failed "$work/shard$s.log"
      echo "FAIL	github.com/switchboard-voice/switchboard/cmd/switchboard (shard $((s + 1))/$shards, planned ${loads[s]}s)	$((SECONDS - start))s"
      exit 1
    fi
  ) &
  pids[s]=$!
done
for pid in "${pids[@]}"; do
  wait "$pid" || status=1
done
if [ -n "${SWITCHBOARD_TEST_DURATIONS:-}" ]; then
  { echo "# cmd/switchboard test durations in seconds (scripts/test.sh balances its shards by them), measured $(date -u +%F)"
    sed -nE 's/^--- (PASS|FAIL): ([^ ]+) \(([0-9]+)\.[0-9]+s\)$/\2\t\3/p' "$work"/shard*.log | sort; } >"$SWITCHBOARD_TEST_DURATIONS"
fi
exit $status
