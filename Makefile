# Switchyard — see README.md. `make test` is what CI runs.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
export GOTOOLCHAIN = local

.PHONY: build test test-short bench bench-failover bench-syscalls demo deps lint fuzz clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/switchyard ./cmd/switchyard

deps:
	@bash scripts/deps.sh

# Unit and integration tests against real PostgreSQL, with the race detector.
test: deps lint
	$(GO) test -race -count=1 -timeout 30m ./...

# Unit tests only (no servers started).
test-short: lint
	$(GO) test -race -short -count=1 ./...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzStartup -fuzztime 60s ./proxy

# gofmt, go vet, and go.mod tidy (direct dependencies not marked // indirect).
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	 if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }

bench: deps build
	$(GO) run ./bench/relay -switchyard bin/switchyard
	$(GO) run ./bench/pooling -switchyard bin/switchyard -duration 10s

# System calls and context switches per transaction (strace), per proxy.
bench-syscalls: deps build
	$(GO) run ./bench/syscalls -switchyard bin/switchyard

bench-failover: deps build
	$(GO) run ./bench/failover -switchyard bin/switchyard

# DEMO_ARGS=-smoke runs one switchover by itself, prints the summary and stops.
demo: deps build
	$(GO) run ./scripts/demo -switchyard bin/switchyard $(DEMO_ARGS)

clean:
	rm -rf bin
