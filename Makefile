# Switchboard — see README.md. `make run` and `make test` provision what they need.
.PHONY: run test bench cluster build vet fmt clean

GO ?= go
# Build with go.mod's `toolchain` line (go1.26.10: the November standard-library fixes) even where
# `go env GOTOOLCHAIN` is local: auto fetches that toolchain from the module proxy when the
# installed Go is older. An explicit GOTOOLCHAIN other than local is respected
# (scripts/toolchain.sh does the same for the scripts).
ifeq ($(filter-out local,$(GOTOOLCHAIN)),)
export GOTOOLCHAIN := auto
endif

run:
	@scripts/run.sh

test:
	@scripts/test.sh

bench:
	@scripts/bench.sh

# Kamailio on 127.0.0.1:5060 in front of three nodes (APIs on :8081-:8083) on one database.
cluster:
	@scripts/cluster.sh

build:
	mkdir -p bin
	$(GO) version
	$(GO) build -o bin/switchboard ./cmd/switchboard

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# Stops the throwaway clusters and removes everything under .data/ (recordings included).
clean:
	-scripts/pg.sh stop .data/pg
	-scripts/pg.sh stop .data/pgtest
	rm -rf .data bin
