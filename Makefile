# pgtwopass: make demo shows the main job, make test runs every test.
GO        ?= go
BIN       := bin/pgtwopass
FUZZTIME  ?= 60s
DEMO_FLAGS ?=

.PHONY: all build test demo fuzz deps vet clean

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

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) ./pkg/manifest

clean:
	rm -rf bin
