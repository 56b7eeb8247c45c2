# verbose — the commands a developer and CI use. `make help` lists them.
GO        ?= go
PKGS      ?= ./...
FUZZTIME  ?= 30s
STATICCHECK_VERSION ?= v0.8.2

.PHONY: help test test-short check fmt vet staticcheck tidy-check fuzz bench meshbench bench-nats bench-test cluster build chaos soak hosts overlay-large overlay-blast ui-test ui-screenshot

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build meshnode into ./bin
	$(GO) build -o bin/meshnode ./cmd/meshnode

test: ## the whole test suite, with the race detector; then the 200-node partial view, without it
	GO=$(GO) bash .ci/gotest-race -count=1 -timeout 15m -- $(PKGS)
	$(GO) test -count=1 -timeout 5m -run 'TestPartialViewSimulation' ./mesh

overlay-large: ## the partial-view simulation with 1,000 nodes (synctest, in memory; minutes)
	$(GO) test -count=1 -timeout 60m -run 'TestPartialViewSimulation' -v ./mesh -overlay.large

overlay-blast: ## blasts over a 16-node partial view, 5 runs: one origin (nothing lost), four at once (every event delivered or declared lost)
	$(GO) test -race -count=5 -timeout 30m -run 'TestPartialViewBlast(MultiHop|ManyOrigins)' -v ./mesh -overlay.blast

test-short: ## the fast tests only
	$(GO) test -race -count=1 -short $(PKGS)

check: fmt vet staticcheck tidy-check ## gofmt, go vet, staticcheck, go mod tidy

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

tidy-check:
	@cp go.mod /tmp/verbose-go.mod.bak; cp go.sum /tmp/verbose-go.sum.bak; \
	$(GO) mod tidy; \
	if ! git diff --quiet -- go.mod go.sum; then echo "go mod tidy changes go.mod/go.sum:"; git --no-pager diff -- go.mod go.sum; \
	  cp /tmp/verbose-go.mod.bak go.mod; cp /tmp/verbose-go.sum.bak go.sum; exit 1; fi

fuzz: ## run every fuzz target for FUZZTIME each
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

CHAOS_SEEDS   ?= 500
CHAOS_SEEDS12 ?= 100
CHAOS_FLAGS   ?=
chaos: ## long chaos run: CHAOS_SEEDS seeds per scenario on 5 nodes, CHAOS_SEEDS12 on 12 (testcluster/chaos_test.go)
	$(GO) test -race -count=1 -timeout 0 -run '^TestChaos' ./testcluster -chaos.seeds=$(CHAOS_SEEDS) $(CHAOS_FLAGS)
	$(GO) test -race -count=1 -timeout 0 -run '^TestChaos(FullMesh|Ring|Join)$$' ./testcluster -chaos.seeds=$(CHAOS_SEEDS12) -chaos.nodes=12 $(CHAOS_FLAGS)

SOAK_DURATION ?= 3m
SOAK_RATE     ?= 2000
soak: ## 5 nodes at a steady rate for SOAK_DURATION: heap and goroutine samples and a verdict
	$(GO) run ./cmd/meshsoak -duration $(SOAK_DURATION) -rate $(SOAK_RATE)

bench: ## hot-path benchmarks, then meshbench with its defaults
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	$(GO) run ./cmd/meshbench

meshbench: ## the cluster benchmark against raw TCP (MESHBENCH_FLAGS="--network=mem ...")
	$(GO) run ./cmd/meshbench $(MESHBENCH_FLAGS)

# bench/ is a module of its own (bench/go.mod), so that verbose never depends
# on NATS: the targets below download its modules; `make check` and `make
# test` never touch it.
BENCH_NATS_FLAGS ?=
bench-nats: ## verbose beside NATS core and raw TCP, 5 and 20 nodes, medians of 3 (BENCH_NATS_FLAGS="--runs=1 ...")
	cd bench && $(GO) run ./natsbench $(BENCH_NATS_FLAGS)

bench-test: ## build, vet, staticcheck and test the bench/ module (about half a minute)
	cd bench && $(GO) build -o /dev/null ./... && $(GO) vet ./... && \
	  $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./... && \
	  $(GO) test -race -count=1 ./...

cluster: ## a local 3-node cluster (see README)
	./testcluster/cluster.sh up 3

hosts: ## real hosts (root): 5 agents in network namespaces on a bridge, a link down/up, a SIGKILL and restart (testhosts/)
	GO=$(GO) ./testhosts/run.sh

# uitest/ is a module of its own (uitest/go.mod: chromedp), so that verbose
# never depends on a browser driver. Its test needs Chromium (CHROME=path
# to pick one) and skips, saying so, without it; .ci/run installs it.
ui-test: ## the cluster page (/ui) in Chromium against 5 agents: vet, staticcheck and test uitest/
	cd uitest && $(GO) vet ./... && \
	  $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./... && \
	  $(GO) test -race -count=1 -v ./...

ui-screenshot: ## write docs/ui.png, the README's picture of the cluster page, from the browser test
	cd uitest && $(GO) test -count=1 -run '^TestClusterPage$$' . -screenshot=$(CURDIR)/docs/ui.png
