# mesolite: DC/OS on one machine. `make help` lists the targets.

GO        ?= go
BIN       := bin/mesolite
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo +dirty)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
TESTAPP   := mesolite/testapp:latest
PGIMAGE   := mesolite/postgres:15
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
ERRCHECK    := github.com/kisielk/errcheck@v1.9.0

PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
DIST      := dist

.PHONY: help build run test test-image postgres-image demo lint fuzz bench bench-quick soak cross release clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/mesolite (static: it also runs as the helper containers, FROM nothing)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/mesolite

run: build test-image ## run the agent with the shipped agent.toml
	./$(BIN) agent --config agent.toml

test: build test-image postgres-image ## run every test, Docker and PostgreSQL ones included
	@# Every API answer and event the tests see is checked against Marathon's
	@# schema (internal/conformance); each test binary appends its count here.
	@mkdir -p bin && rm -f bin/conformance.txt
	MESOLITE_CONFORMANCE_LOG=$(CURDIR)/bin/conformance.txt $(GO) test -count=1 -timeout 15m -skip '^TestE2EDockerRestart$$' ./...
	@# Restarting dockerd must not overlap any other Docker test: it runs alone, last.
	MESOLITE_CONFORMANCE_LOG=$(CURDIR)/bin/conformance.txt MESOLITE_DOCKER_RESTART=1 $(GO) test -count=1 -timeout 5m -run '^TestE2EDockerRestart$$' -v ./cmd/mesolite
	@cat bin/conformance.txt
	@# The fuzzers, for a bounded time (make fuzz runs them longer).
	$(MAKE) fuzz FUZZTIME=10s

test-image: ## build mesolite/testapp:latest from testdata/testapp (no registry needed)
	@mkdir -p bin/testapp-image
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o bin/testapp-image/testapp ./testdata/testapp
	cp testdata/testapp/Dockerfile bin/testapp-image/Dockerfile
	docker build -q -t $(TESTAPP) bin/testapp-image >/dev/null
	@echo "built $(TESTAPP)"

postgres-image: ## build mesolite/postgres:15 from Debian packages (skipped if present; FORCE=1 rebuilds)
	testdata/postgres/build.sh

demo: build postgres-image ## run the PostgreSQL tutorial step by step on a throwaway agent
	testdata/demo.sh

lint: ## gofmt, go vet, staticcheck, errcheck and function length
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@# Every error is checked, or assigned to _ with a comment saying why going
	@# on is safe; errcheck_excludes.txt lists the few calls left alone, each
	@# for a reason. Test code is not checked.
	$(GO) run $(ERRCHECK) -ignoretests -exclude errcheck_excludes.txt ./...
	@# Functions of the loop's package and of Marathon's JSON stay under 120 lines.
	$(GO) run ./internal/funclen -max 120 agent agent/marathon

fuzz: ## fuzz the app decoder, the id validator and the HTTP API for FUZZTIME each (default 1m)
	$(GO) test ./agent/marathon -run '^$$' -fuzz FuzzParse -fuzztime $${FUZZTIME:-1m}
	$(GO) test ./agent/marathon -run '^$$' -fuzz FuzzValidateID -fuzztime $${FUZZTIME:-1m}
	$(GO) test ./agent/api -run '^$$' -fuzz FuzzAPIRequest -fuzztime $${FUZZTIME:-1m}

bench: build test-image ## measure mesolite against Docker; writes BENCHMARKS.md and bench.json
	$(GO) run ./cmd/mesolite-bench

bench-quick: ## the benchmarks in their quick mode (under 2 minutes)
	BENCH_QUICK=1 $(MAKE) bench

soak: build test-image ## the fault-injection test with many more kill points
	MESOLITE_SOAK=1 $(GO) test -count=1 -timeout 60m -run TestFaultInjection -v ./cmd/mesolite

cross: ## build and vet every package for linux and darwin, amd64 and arm64
	@set -e; for p in $(PLATFORMS); do \
	  echo "cross: $$p"; \
	  GOOS=$${p%/*} GOARCH=$${p#*/} CGO_ENABLED=0 $(GO) build -trimpath ./...; \
	  GOOS=$${p%/*} GOARCH=$${p#*/} CGO_ENABLED=0 $(GO) vet ./...; \
	done

# Each archive holds the binary (static), README.md and agent.toml. The
# macOS ones also hold mesolite-linux-<arch>, the Linux build the agent
# runs as its helper container inside Docker Desktop's virtual machine.
release: ## versioned archives for the four platforms with SHA-256 checksums, in dist/
	@rm -rf $(DIST) && mkdir -p $(DIST)
	@set -e; for p in $(PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; name=mesolite-$(VERSION)-$$os-$$arch; dir=$(DIST)/$$name; \
	  mkdir -p $$dir; \
	  GOOS=$$os GOARCH=$$arch CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$dir/mesolite ./cmd/mesolite; \
	  if [ $$os = darwin ]; then \
	    GOOS=linux GOARCH=$$arch CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$dir/mesolite-linux-$$arch ./cmd/mesolite; \
	  fi; \
	  cp README.md agent.toml $$dir/; \
	  tar -C $(DIST) --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -czf $(DIST)/$$name.tar.gz $$name; \
	  rm -rf $$dir; \
	  echo "release: $(DIST)/$$name.tar.gz"; \
	done
	cd $(DIST) && sha256sum *.tar.gz > SHA256SUMS && cat SHA256SUMS

clean: ## remove build output
	rm -rf bin $(DIST)
