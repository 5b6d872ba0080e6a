# pgtwopass: make demo shows the main job, make test runs every test,
# make bench measures the downtime against rsync (not part of make test),
# make install and make deb install it with its man pages, shell completion
# and systemd units.
GO        ?= go
BIN       := bin/pgtwopass
# The version (git describe of the last v* tag) and the commit, for
# pgtwopass --version.
VERSION   := $(shell sh packaging/version.sh)
COMMIT    := $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS   := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# A static binary: no libc to depend on, in the .deb and the archives.
export CGO_ENABLED ?= 0
FUZZTIME  ?= 60s
# Time to minimize each new input: the default 60s stalls targets whose inputs
# are kilobytes long (the manifest reader ran 9 inputs a minute).
FUZZMINIMIZE ?= 2s
DEMO_FLAGS ?=
BENCH_FLAGS ?=

.PHONY: all build install uninstall deb dist test unit cover demo bench fuzz deps vet clean

all: build

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/pgtwopass

# Where make install puts pgtwopass (GNU conventions; DESTDIR for packages).
PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
MANDIR  ?= $(DATADIR)/man
DOCDIR  ?= $(DATADIR)/doc/pgtwopass
UNITDIR ?= $(PREFIX)/lib/systemd/system
BASHDIR ?= $(DATADIR)/bash-completion/completions
ZSHDIR  ?= $(DATADIR)/zsh/site-functions
FISHDIR ?= $(DATADIR)/fish/vendor_completions.d

# The binary; a man page for pgtwopass and for each command and the bash,
# zsh and fish completion, all generated from the CLI's own definitions; the
# systemd units of contrib/systemd (ExecStart names BINDIR); the docs.
install: build
	rm -rf build/man && mkdir -p build/man && ./$(BIN) man build/man && gzip -9n build/man/*.1
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHDIR) $(DESTDIR)$(ZSHDIR) \
		$(DESTDIR)$(FISHDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)/docs $(DESTDIR)$(DOCDIR)/examples
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/pgtwopass
	install -m 0644 build/man/*.1.gz $(DESTDIR)$(MANDIR)/man1/
	./$(BIN) completion bash > $(DESTDIR)$(BASHDIR)/pgtwopass
	./$(BIN) completion zsh > $(DESTDIR)$(ZSHDIR)/_pgtwopass
	./$(BIN) completion fish > $(DESTDIR)$(FISHDIR)/pgtwopass.fish
	sed 's|/usr/local/bin/pgtwopass|$(BINDIR)/pgtwopass|' contrib/systemd/pgtwopass-prepare@.service \
		> $(DESTDIR)$(UNITDIR)/pgtwopass-prepare@.service
	install -m 0644 contrib/systemd/pgtwopass-prepare@.timer $(DESTDIR)$(UNITDIR)/
	install -m 0644 README.md CHANGELOG.md $(DESTDIR)$(DOCDIR)/
	install -m 0644 docs/*.md $(DESTDIR)$(DOCDIR)/docs/
	install -m 0644 contrib/systemd/pgtwopass.env.example $(DESTDIR)$(DOCDIR)/examples/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/pgtwopass $(DESTDIR)$(MANDIR)/man1/pgtwopass.1.gz $(DESTDIR)$(MANDIR)/man1/pgtwopass-*.1.gz \
		$(DESTDIR)$(BASHDIR)/pgtwopass $(DESTDIR)$(ZSHDIR)/_pgtwopass $(DESTDIR)$(FISHDIR)/pgtwopass.fish \
		$(DESTDIR)$(UNITDIR)/pgtwopass-prepare@.service $(DESTDIR)$(UNITDIR)/pgtwopass-prepare@.timer
	rm -rf $(DESTDIR)$(DOCDIR)

# build/pgtwopass_VERSION-1_ARCH.deb, made by nfpm (fetched from the Go
# module proxy the first time) from what make install puts in build/deb.
NFPM ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
deb:
	rm -rf build/deb && mkdir -p build/deb
	$(MAKE) install DESTDIR=$(CURDIR)/build/deb/root PREFIX=/usr UNITDIR=/usr/lib/systemd/system \
		ZSHDIR=/usr/share/zsh/vendor-completions
	VERSION=$$(sh packaging/version.sh --deb) ARCH=$$($(GO) env GOARCH) \
		$(NFPM) package --config packaging/nfpm.yaml --packager deb --target build/

# Release archives (tar.gz) and their checksums in dist/, as .goreleaser.yaml
# says; a snapshot, nothing is published. goreleaser is fetched from the Go
# module proxy the first time (a few minutes).
GORELEASER ?= $(GO) run github.com/goreleaser/goreleaser/v2@v2.15.1
dist:
	$(GORELEASER) release --snapshot --clean

deps:
	@bash scripts/install-deps.sh --with-pg-versions

vet:
	$(GO) vet ./...

# Unit and integration tests against real PostgreSQL, fuzz seed corpora included.
test: deps vet
	$(GO) test -count=1 -timeout 30m ./...

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
# the cold pass over a remote shell, the downtime prediction, the cold pass
# modes against a switchover, and clusters of many small tables
# (docs/benchmarks.md; BENCH_FLAGS=-only walmode or -only manyfiles runs one
# scenario).
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
	rm -rf bin build dist
