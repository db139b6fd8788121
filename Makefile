# kubectl-nautes: build, test bed, tests, demo, benchmarks, release archive.
# `make demo` shows the main job; `make test` is the test command (CI runs it).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
TB_DIR := target/testbed
LAUNCHER := $(TB_DIR)/nautes-testbed
BIN_FILE := $(TB_DIR)/bin-dir
VCLUSTER_FILE := $(TB_DIR)/vcluster-path
# integration tests start real control planes: two at a time fit 2 cores
TEST_THREADS ?= 2

.PHONY: all build testbed test test-unit lint demo bench dist testbed-up testbed-down clean fuzz

all: build

build:
	$(CARGO) build --release

## testbed: build (once, cached outside the repo) the real control plane, helm, kwok, krew, vcluster
testbed:
	@mkdir -p $(TB_DIR)
	@bin=$$(testbed/build.sh) && echo "$$bin" > $(BIN_FILE)
	@vc=$$(testbed/vcluster/build.sh) && echo "$$vc" > $(VCLUSTER_FILE)
	@cd testbed && CGO_ENABLED=0 go build -o ../$(LAUNCHER) ./cmd/nautes-testbed
	@echo "test bed: $$(cat $(BIN_FILE)), vcluster: $$(cat $(VCLUSTER_FILE))"

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

## test: formatting, lints, unit tests, and integration tests against the test bed
test: testbed lint
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }
	INSTA_UPDATE=no NAUTES_TESTBED_BIN=$$(cat $(BIN_FILE)) NAUTES_TESTBED_LAUNCHER=$(CURDIR)/$(LAUNCHER) \
	  NAUTES_TESTBED_VCLUSTER=$$(cat $(VCLUSTER_FILE)) \
	  $(CARGO) test --all-targets -- --test-threads=$(TEST_THREADS)

test-unit:
	$(CARGO) test --lib --bins

## testbed-up / testbed-down: four clusters for manual use, kubeconfigs in .testbed/
testbed-up: testbed
	@scripts/testbed-up.sh $$(cat $(BIN_FILE)) $(CURDIR)/$(LAUNCHER) $$(cat $(VCLUSTER_FILE))

testbed-down:
	@scripts/testbed-down.sh $(CURDIR)/$(LAUNCHER)

## demo: register, list, status and destroy the demo physical worker on a local test bed
demo: testbed build
	@scripts/demo.sh $$(cat $(BIN_FILE)) $(CURDIR)/$(LAUNCHER)

## bench: benchmarks against the usual tools, on the test bed (reports, never fails)
bench: testbed build
	@command -v python3 >/dev/null && command -v curl >/dev/null && [ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq python3 curl time; }
	@scripts/bench.py $$(cat $(BIN_FILE)) $(CURDIR)/$(LAUNCHER)

## dist: the release archive for this machine and a krew manifest pointing at it
dist: build
	@scripts/dist.sh

clean:
	$(CARGO) clean
	rm -rf .testbed dist
