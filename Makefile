# pgtwopass: make demo shows the main job, make test runs every test,
# make bench measures the downtime against rsync (not part of make test).
GO        ?= go
BIN       := bin/pgtwopass
FUZZTIME  ?= 60s
# Time to minimize each new input: the default 60s stalls targets whose inputs
# are kilobytes long (the manifest reader ran 9 inputs a minute).
FUZZMINIMIZE ?= 2s
DEMO_FLAGS ?=
BENCH_FLAGS ?=

.PHONY: all build test unit cover demo bench fuzz deps vet clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/pgtwopass

deps:
	@bash scripts/install-deps.sh --with-pg-versions

vet:
	$(GO) vet ./...

# Unit and integration tests against real PostgreSQL, fuzz seed corpora included.
test: deps vet
	$(GO) test -count=1 -timeout 9m ./...

# The tests that need no PostgreSQL (go test -short skips the others).
unit: vet
	$(GO) test -short -count=1 ./...

# Statement coverage of pkg/ by those tests (integration/ and bench/ left out).
cover:
	$(GO) test -short -count=1 -coverpkg=./pkg/... -coverprofile=cover.out $$($(GO) list ./... | grep -v -e /integration -e /bench) >/dev/null
	$(GO) tool cover -func=cover.out | tail -1

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

# Every fuzz target (each func Fuzz* in a _test.go file) for FUZZTIME; make
# test runs their seed corpora. A crash leaves its input in testdata/fuzz.
fuzz:
	@set -e; for f in $$(grep -rlE '^func Fuzz' --include='*_test.go' cmd pkg internal | sort); do \
		dir=./$$(dirname $$f); \
		for name in $$(sed -nE 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/p' $$f); do \
			echo "== $$name ($$dir) for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) $$dir; \
		done; \
	done

clean:
	rm -rf bin
