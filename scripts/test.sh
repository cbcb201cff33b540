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
# -timeout bounds a hung package, not the suite's speed: cmd/switchboard's end-to-end tests take
# about 12 minutes on an idle 2-core machine and a slower CI machine must not turn that into a
# timeout panic (it did at 14m under load). The whole run stays near 15 minutes.
go test -race -count=1 -timeout 30m ${GOTESTFLAGS:-} ./...
