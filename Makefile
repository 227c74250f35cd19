# Condenser — see README.md. Run as root: containers, mounts and image
# unpacking need it.
export PATH := /usr/local/go/bin:$(PATH)

GO       ?= go
BIN      ?= bin
ARGS     ?=
# Fuzzing budgets are counts of executions (about 20 s each here), not
# durations: go1.26's fuzz coordinator can fail a duration-bounded run at
# its very end with "context deadline exceeded" and no crasher
# (golang/go#75804, fixed in Go 1.27). FUZZTIME=5m (or =N x) sets all.
FUZZTIME ?=
FUZZ_EXTRACT := $(or $(FUZZTIME),25000x)
FUZZ_REST    := $(or $(FUZZTIME),300000x)
# Minimizing a new input may otherwise take a fuzzer's whole time (seen:
# FuzzExtract stuck at 26 executions for 18 of its 20 s).
FUZZMINIMIZE ?= 1s
# Debian packages the tests use, installed without Recommends, so what a
# Recommends would bring is named: libprotobuf-dev (google/protobuf/*.proto
# for make proto), gcc and libc6-dev (cgo, which -race needs); git
# (gofmt's file list, check-proto, go build's VCS stamp), ca-certificates
# (the Go module proxy), iptables (iptables-save: the network tests check
# the host's rules are as before), iproute2 (the tests' topologies),
# containernetworking-plugins (CNI conflist networks), jq (the
# fake Droplet the driver's tests run), procps (ps: docker top -o, as
# Docker's daemon runs the host's ps). .ci/run installs the same list; .ci/fresh-root
# checks it on a fresh Debian 12 root.
DEPS     := runc crun docker-registry busybox-static skopeo protobuf-compiler libprotobuf-dev systemd \
	make git ca-certificates gcc libc6-dev iptables iproute2 containernetworking-plugins jq procps

.PHONY: all build run test test-reliability unit fuzz bench bench-peers bench-micro deps vet lint clean proto check-proto tools install

all: build

# condenser-shim is static (no libc mapped) and stripped: its resident size
# per container is a headline figure. It is built without Go 1.26's Green
# Tea GC (SHIM_GOEXPERIMENT; shim/shim_test.go builds it the same way): an
# idle shim never collects, and Green Tea writes the mark bits inside every
# small-object span it allocates, which made ~75 KiB more of each shim's
# heap resident (0.96 -> 0.88 MiB PSS, measured). Go 1.27 is to drop the
# opt-out; the build then fails loudly here.
SHIM_GOEXPERIMENT := nogreenteagc
build:
	$(GO) build -trimpath -o $(BIN)/ ./cmd/condenser ./cmd/condenserctl
	CGO_ENABLED=0 GOEXPERIMENT=$(SHIM_GOEXPERIMENT) $(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/ ./cmd/condenser-shim

# Installs the binaries, the systemd units (contrib/systemd) and, when
# bin/condenserctl exists and can print them, its shell completions.
# bin/condenserctl is optional. Staged installs: make install DESTDIR=/tmp/stage PREFIX=/usr
# (the service's ExecStart names /usr/local/bin/condenser; a different
# PREFIX needs a drop-in, see contrib/README.md).
PREFIX      ?= /usr/local
DESTDIR     ?=
BINDIR      ?= $(PREFIX)/bin
UNITDIR     ?= /etc/systemd/system
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR)
	install -m 0755 $(BIN)/condenser $(BIN)/condenser-shim $(DESTDIR)$(BINDIR)/
	if [ -x $(BIN)/condenserctl ]; then install -m 0755 $(BIN)/condenserctl $(DESTDIR)$(BINDIR)/; fi
	install -m 0644 contrib/systemd/condenser.socket contrib/systemd/condenser-tls.socket contrib/systemd/condenser-docker.socket contrib/systemd/condenser.service $(DESTDIR)$(UNITDIR)/
	if [ -x $(BIN)/condenserctl ] && $(BIN)/condenserctl completion bash >$(BIN)/condenserctl.bash 2>/dev/null; then \
		install -d $(DESTDIR)$(BASHCOMPDIR) && install -m 0644 $(BIN)/condenserctl.bash $(DESTDIR)$(BASHCOMPDIR)/condenserctl; \
	fi
	if [ -x $(BIN)/condenserctl ] && $(BIN)/condenserctl completion zsh >$(BIN)/condenserctl.zsh 2>/dev/null; then \
		install -d $(DESTDIR)$(ZSHCOMPDIR) && install -m 0644 $(BIN)/condenserctl.zsh $(DESTDIR)$(ZSHCOMPDIR)/_condenserctl; \
	fi

# Runs the daemon (REST API on /run/condenser/condenser.sock). Flags and
# offline commands go in ARGS, e.g.
# make run ARGS="--registry-mirror docker.io=http://127.0.0.1:5000"
# make run ARGS="pull busybox"
run: build
	@echo 'make run: $(BIN)/condenser $(ARGS) in the foreground. Ctrl-C stops it (the daemon leaves containers running); make run ARGS="$(ARGS)" starts it again.'
	$(BIN)/condenser $(ARGS)

# The whole suite: vet, staticcheck, unit and integration tests (with the
# race detector, the reliability tests included), and bounded fuzzing.
test: deps vet lint check-proto unit fuzz

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

# staticcheck (its default checks; a false positive gets a targeted
# //lint:ignore CHECK reason where it is reported).
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	GOBIN=$(TOOLS) $(GO) install $(STATICCHECK)
	$(TOOLS)/staticcheck ./...

unit:
	$(GO) test -race -count=1 -timeout 30m ./...

# Each fuzzer for its budget: the layer extractor, the REST request
# decoding (bodies, queries) and the Docker API's parsers (filters, create
# requests, binds, ps output, log times, image references).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzExtract$$' -fuzztime $(FUZZ_EXTRACT) -fuzzminimizetime $(FUZZMINIMIZE) ./imagestore/archive/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeCreate$$' -fuzztime $(FUZZ_REST) -fuzzminimizetime $(FUZZMINIMIZE) ./rest/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodePull$$' -fuzztime $(FUZZ_REST) -fuzzminimizetime $(FUZZMINIMIZE) ./rest/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeQuery$$' -fuzztime $(FUZZ_REST) -fuzzminimizetime $(FUZZMINIMIZE) ./rest/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeExec$$' -fuzztime $(FUZZ_REST) -fuzzminimizetime $(FUZZMINIMIZE) ./rest/
	$(GO) test -run '^$$' -fuzz '^FuzzParseDetachKeys$$' -fuzztime $(FUZZ_REST) -fuzzminimizetime $(FUZZMINIMIZE) ./rest/
	$(GO) test -run '^$$' -fuzz '^FuzzScanner$$' -fuzztime $(FUZZ_REST) -fuzzminimizetime $(FUZZMINIMIZE) ./internal/detachkeys/
	$(GO) test -run '^$$' -fuzz '^FuzzWireUnmarshal$$' -fuzztime $(FUZZ_REST) -fuzzminimizetime $(FUZZMINIMIZE) ./shim/api/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeFilters$$' -fuzztime $(FUZZ_REST) -fuzzminimizetime $(FUZZMINIMIZE) ./rest/docker/
	$(GO) test -run '^$$' -fuzz '^FuzzCreateRequest$$' -fuzztime $(FUZZ_REST) -fuzzminimizetime $(FUZZMINIMIZE) ./rest/docker/
	$(GO) test -run '^$$' -fuzz '^FuzzParseBind$$' -fuzztime $(FUZZ_REST) -fuzzminimizetime $(FUZZMINIMIZE) ./rest/docker/
	$(GO) test -run '^$$' -fuzz '^FuzzParsePS$$' -fuzztime $(FUZZ_REST) -fuzzminimizetime $(FUZZMINIMIZE) ./rest/docker/
	$(GO) test -run '^$$' -fuzz '^FuzzParseLogTime$$' -fuzztime $(FUZZ_REST) -fuzzminimizetime $(FUZZMINIMIZE) ./rest/docker/
	$(GO) test -run '^$$' -fuzz '^FuzzPullRef$$' -fuzztime $(FUZZ_REST) -fuzzminimizetime $(FUZZMINIMIZE) ./rest/docker/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeCreateNetwork$$' -fuzztime $(FUZZ_REST) -fuzzminimizetime $(FUZZMINIMIZE) ./rest/

# The reliability suite alone: the daemon killed (-9) at random under 8
# concurrent clients, killed shims, a pull onto a full disk, then the
# fuzzers. CONDENSER_CHAOS_SEED=N repeats a chaos run's choices.
test-reliability: deps
	$(GO) test -race -count=1 -timeout 30m -run 'Reliability|DiskFull' ./...
	@$(MAKE) --no-print-directory fuzz

# Benchmarks side by side (docs/benchmarks.md): `make bench` prints one
# Markdown table of Condenser's workloads next to bare `runc run`;
# `make bench-peers` adds Podman and containerd (installed from Debian when
# missing) and their ratios to Condenser. The table is also kept in
# $(BIN)/bench-table.md. BENCHFLAGS tunes the counts, e.g.
# make bench BENCHFLAGS="-runs 100 -pulls 9".
BENCHFLAGS ?=
PEER_DEPS  := podman containerd
bench: deps build
	$(GO) test -run '^$$' -bench '^BenchmarkTable$$' -benchtime 1x -count 1 -timeout 60m ./internal/bench/ \
		-args -bin $(CURDIR)/$(BIN) $(BENCHFLAGS) | tee $(BIN)/bench.txt
	@grep '^|' $(BIN)/bench.txt > $(BIN)/bench-table.md

bench-peers: deps build
	@$(MAKE) --no-print-directory deps DEPS="$(PEER_DEPS)"
	$(GO) test -run '^$$' -bench '^BenchmarkTable$$' -benchtime 1x -count 1 -timeout 90m ./internal/bench/ \
		-args -bin $(CURDIR)/$(BIN) -peers $(BENCHFLAGS) | tee $(BIN)/bench.txt
	@grep '^|' $(BIN)/bench.txt > $(BIN)/bench-table.md

# Micro-benchmarks of the parts (pull, shim, daemon restart), each repeated
# BENCHCOUNT times; benchstat prints medians.
BENCHCOUNT ?= 6
BENCHSTAT  := golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
bench-micro: deps
	@mkdir -p $(BIN)
	$(GO) test -run '^$$' -bench . -benchtime 3x -count $(BENCHCOUNT) -timeout 30m ./imagestore/ | tee $(BIN)/bench-micro.txt
	$(GO) test -run '^$$' -bench . -benchtime 20x -count $(BENCHCOUNT) -timeout 30m ./shim/ | tee -a $(BIN)/bench-micro.txt
	$(GO) test -run '^$$' -bench . -benchtime 5x -count $(BENCHCOUNT) -timeout 30m ./cmd/condenser/ | tee -a $(BIN)/bench-micro.txt
	$(GO) run $(BENCHSTAT) $(BIN)/bench-micro.txt

# The shim API: shim/api/shim.proto → generated Go code (committed): the
# ttrpc service in shim/api, protoc-gen-go's messages in shim/api/pbref
# (the reference the hand-kept messages of shim/api are tested against).
TOOLS            := $(CURDIR)/$(BIN)/tools
PROTOC_GEN_GO    := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_TTRPC := github.com/containerd/ttrpc/cmd/protoc-gen-go-ttrpc@v1.2.10
tools:
	GOBIN=$(TOOLS) $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(TOOLS) $(GO) install $(PROTOC_GEN_TTRPC)

proto: tools
	cd shim/api && PATH=$(TOOLS):$$PATH protoc --go_out=pbref \
		--go_opt=paths=source_relative,'Mshim.proto=github.com/raind/condenser/shim/api/pbref;pbref' \
		--go-ttrpc_out=. --go-ttrpc_opt=paths=source_relative shim.proto

# Fails when the committed generated code is not what shim.proto gives.
check-proto: proto
	@git diff --exit-code -- shim/api || { echo "shim/api is stale: run make proto and commit"; exit 1; }

# Installs the Debian packages the tests need when any is missing.
deps:
	@missing=""; for p in $(DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

clean:
	rm -rf $(BIN)
