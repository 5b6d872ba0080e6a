# pgtwopass: make demo shows the main job, make test runs every test,
# make bench measures the downtime against rsync (not part of make test).
GO        ?= go
BIN       := bin/pgtwopass
FUZZTIME  ?= 60s
DEMO_FLAGS ?=
BENCH_FLAGS ?=

.PHONY: all build test demo bench fuzz deps vet clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/pgtwopass

deps:
	@bash scripts/install-deps.sh

vet:
	$(GO) vet ./...

# Unit and integration tests against real PostgreSQL, fuzz seed corpora included.
test: deps vet
	$(GO) test -count=1 -timeout 9m ./...

# A scratch cluster under pgbench load, copied by sync, the copy started and compared.
demo: deps build
	./$(BIN) demo $(DEMO_FLAGS)

# The cold pass against rsync --checksum and a raw read, the first live pass,
# the cold pass over a remote shell, the downtime prediction (docs/benchmarks.md).
# Writes nothing into the repository unless BENCH_FLAGS has -write FILE;
# go run ./bench -h lists the flags. Run as root for the cold-cache runs.
bench: deps
	@bash scripts/install-deps.sh --with-rsync --with-time
	$(GO) run ./bench $(BENCH_FLAGS)

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) ./pkg/manifest

clean:
	rm -rf bin
