# Switchboard — see README.md. `make run` and `make test` provision what they need.
.PHONY: run test bench build vet fmt clean

GO ?= go

run:
	@scripts/run.sh

test:
	@scripts/test.sh

bench:
	@scripts/bench.sh

build:
	mkdir -p bin
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
