# planb: the commands the README names. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        ?= .venv
PYTHON      ?= python3
CARGO       ?= cargo
MUSL_TARGET := x86_64-unknown-linux-musl
PROXY_MUSL  := target/$(MUSL_TARGET)/release/planb-proxy

.PHONY: help venv build release proxy-release lint test test-rust test-infra test-docker test-systemd test-musl

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

venv: $(VENV)/.ready ## the Python venv with moto's server, boto3, hadolint and cfn-lint

$(VENV)/.ready: testkit/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r testkit/requirements.txt
	touch $@

build: ## debug builds of both binaries
	$(CARGO) build --workspace

release: ## release builds of both binaries (target/release/planb-{proxy,backend})
	$(CARGO) build --release --workspace --bins

proxy-release: ## the static musl planb-proxy that infra ships (target/x86_64-unknown-linux-musl/release/planb-proxy)
	@rustup target list --installed 2>/dev/null | grep -qx $(MUSL_TARGET) || rustup target add $(MUSL_TARGET)
	@command -v musl-gcc >/dev/null || { echo "musl-gcc is missing: apt-get install -y musl-tools" >&2; exit 1; }
	# Shipped without debug info: the S3 asset is downloaded by every new instance.
	CC_x86_64_unknown_linux_musl=musl-gcc CARGO_PROFILE_RELEASE_STRIP=debuginfo \
	  $(CARGO) build --release --target $(MUSL_TARGET) -p planb-proxy
	@ls -l $(PROXY_MUSL)

test-musl: proxy-release ## the shipped proxy builds static and checks the production config
	@file $(PROXY_MUSL) | grep -q 'static' || { echo "$(PROXY_MUSL) is not statically linked" >&2; exit 1; }
	$(PROXY_MUSL) -t -c systemd/proxy.yaml

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust: venv ## every Rust test (unit, integration, moto)
	$(CARGO) test --workspace

test-infra: venv ## the CDK app's gates: tsc --noEmit, jest (wiring + cdk-nag), synth + cfn-lint
	@command -v node >/dev/null && node -e 'process.exit(parseInt(process.versions.node) >= 20 ? 0 : 1)' \
	  || { echo "infra needs Node.js 20 or newer (aws-cdk-lib): install it from nodejs.org or NodeSource" >&2; exit 1; }
	cd infra && npm ci --no-audit --no-fund && npm test

test-docker: venv ## hadolint on Dockerfile.backend (no Docker engine here: the image builds at deploy)
	$(VENV)/bin/hadolint Dockerfile.backend

test-systemd: ## systemd-analyze verify and security (exposure at most 2.0) on the proxy's unit
	scripts/check-systemd.sh

test: lint test-rust test-e2e test-systemd test-docker test-infra test-musl ## every test and gate (what CI runs)

# --- the local stack (scripts/stack.sh): moto + planb-backend + planb-proxy on loopback ---
.PHONY: demo up down loadtest test-e2e
CONNECTIONS ?= 50
DURATION    ?= 10s

demo: ## the whole Plan B path locally: 200, two 401s, an oha run through the proxy; stops everything
	@CONNECTIONS=$(CONNECTIONS) DURATION=$(DURATION) scripts/stack.sh demo

up: ## start the local stack and keep it running (prints curl and oha commands)
	@scripts/stack.sh up

down: ## stop the local stack
	@scripts/stack.sh down

loadtest: ## oha through the proxy of a running stack (CONNECTIONS=50 DURATION=10s)
	@CONNECTIONS=$(CONNECTIONS) DURATION=$(DURATION) scripts/stack.sh loadtest

test-e2e: venv ## end-to-end tests through the local stack (debug builds)
	$(CARGO) build --workspace --bins
	PLANB_PROFILE=debug $(VENV)/bin/pytest -q testkit/e2e

# --- side-by-side benchmarks (../shared/anchors/bench.py: nginx/haproxy; aws-jwt-verify/the seed) ---
.PHONY: bench-proxy bench-verify
BENCH ?= ../shared/anchors/bench.py

bench-proxy: release ## planb-proxy beside tuned nginx and haproxy (needs oha, nginx, haproxy)
	$(PYTHON) $(BENCH) proxy -- scripts/bench-proxy-candidate.sh

bench-verify: release ## planb-backend beside aws-jwt-verify and the seed's FastAPI (needs oha, node)
	$(PYTHON) $(BENCH) verify -- target/release/planb-backend

.PHONY: bench-notes
bench-notes: ## GET of one note beside /api/me through its own local stack with oha (moto is the limit)
	@CONNECTIONS=$(CONNECTIONS) DURATION=$(DURATION) scripts/stack.sh bench-notes
