# planb: the commands the README names. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        ?= .venv
PYTHON      ?= python3
CARGO       ?= cargo
# The shipped proxy's CPU: aarch64 (Graviton, the infra default) or x86_64.
ARCH        ?= aarch64
MUSL_TARGET := $(ARCH)-unknown-linux-musl
PROXY_MUSL  := target/$(MUSL_TARGET)/release/planb-proxy
# `file` names the machine this way in its ELF line.
FILE_ARCH_aarch64 := ARM aarch64
FILE_ARCH_x86_64  := x86-64
# A foreign-CPU build runs its config check under QEMU's user-mode emulator (no binfmt needed).
PROXY_RUN := $(if $(filter $(ARCH),$(shell uname -m)),,qemu-$(ARCH)-static)
# The shipped proxy: no debug info (the S3 asset is downloaded by every new
# instance), and whole-program LTO in one codegen unit: 3.5% fewer instructions
# per request than the workspace's thin LTO (callgrind: 82.3k against 85.5k with
# the log on), for a slower build (x86_64 from cold: 14 min against ~6 on 2 cores).
SHIP_PROFILE := CARGO_PROFILE_RELEASE_STRIP=debuginfo CARGO_PROFILE_RELEASE_LTO=fat CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1

.PHONY: help venv build release proxy-release proxy-test-asset lint test test-rust test-infra test-docker test-systemd test-musl test-actionlint test-bootstrap test-verifier-outside

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

proxy-release: venv ## the static musl planb-proxy that infra ships (ARCH=aarch64 default, or x86_64): target/$(ARCH)-unknown-linux-musl/release/planb-proxy
	@case "$(ARCH)" in aarch64|x86_64) ;; *) echo "ARCH must be aarch64 or x86_64, not '$(ARCH)'" >&2; exit 1;; esac
	@rustup target list --installed 2>/dev/null | grep -qx $(MUSL_TARGET) || rustup target add $(MUSL_TARGET)
ifeq ($(ARCH),x86_64)
	@command -v musl-gcc >/dev/null || { echo "musl-gcc is missing: apt-get install -y musl-tools" >&2; exit 1; }
	CC_x86_64_unknown_linux_musl=musl-gcc $(SHIP_PROFILE) \
	  $(CARGO) build --release --target $(MUSL_TARGET) -p planb-proxy
else
	# Cross-compiled, no emulation: zig (PyPI ziglang, in the venv) is the C compiler
	# and linker for the C parts (zlib-ng, aws-lc, mimalloc) and the final link.
	PATH="$(abspath $(VENV))/bin:$$PATH" $(SHIP_PROFILE) \
	  $(VENV)/bin/cargo-zigbuild zigbuild --release --target $(MUSL_TARGET) -p planb-proxy
endif
	@ls -l $(PROXY_MUSL)

test-musl: proxy-release ## the shipped proxy is a static ELF for $(ARCH) and checks the production config
	@# Rust links musl binaries static-pie by default; `file` calls either form static.
	@file -L $(PROXY_MUSL) | tee /dev/stderr | grep -Eq 'ELF 64-bit .*$(FILE_ARCH_$(ARCH)),.*(statically linked|static-pie linked)' \
	  || { echo "$(PROXY_MUSL) is not a statically linked $(ARCH) ELF" >&2; exit 1; }
	@[ -z "$(PROXY_RUN)" ] || command -v $(PROXY_RUN) >/dev/null \
	  || { echo "$(PROXY_RUN) is missing (checks the $(ARCH) build here): apt-get install -y qemu-user-static" >&2; exit 1; }
	$(PROXY_RUN) $(PROXY_MUSL) -t -c systemd/proxy.yaml

# The bootstrap test's asset: the x86_64 musl proxy as a plain release build (thin LTO, minutes
# faster than proxy-release's fat LTO; same target, same path).
PROXY_X86_64 := target/x86_64-unknown-linux-musl/release/planb-proxy

proxy-test-asset: ## the x86_64 musl planb-proxy, plain --release (the bootstrap test's asset): target/x86_64-unknown-linux-musl/release/planb-proxy
	@rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl
	@command -v musl-gcc >/dev/null || { echo "musl-gcc is missing: apt-get install -y musl-tools" >&2; exit 1; }
	CC_x86_64_unknown_linux_musl=musl-gcc $(CARGO) build --release --target x86_64-unknown-linux-musl -p planb-proxy

infra/node_modules/.package-lock.json: infra/package-lock.json
	cd infra && npm ci --no-audit --no-fund

test-bootstrap: venv proxy-test-asset infra/node_modules/.package-lock.json ## the synthesized user data booted in a Debian systemd container against moto (root; testkit/bootstrap/README.md)
	PLANB_BOOT_PROXY=$(abspath $(PROXY_X86_64)) PYTHON=$(abspath $(VENV))/bin/python testkit/bootstrap/run.sh

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust: venv ## every Rust test (unit, integration, moto)
	$(CARGO) test --workspace

test-infra: venv ## the CDK app's gates: tsc --noEmit, jest (wiring + cdk-nag), synth + cfn-lint
	@command -v node >/dev/null && node -e 'process.exit(parseInt(process.versions.node) >= 20 ? 0 : 1)' \
	  || { echo "infra needs Node.js 20 or newer (aws-cdk-lib): install it from nodejs.org or NodeSource" >&2; exit 1; }
	cd infra && npm ci --no-audit --no-fund && npm test

test-docker: venv ## hadolint on Dockerfile.backend and the sidecars' (no Docker engine here: the images build at deploy)
	$(VENV)/bin/hadolint Dockerfile.backend infra/images/cloudwatch-agent/Dockerfile infra/images/otel-collector/Dockerfile

test-actionlint: venv ## actionlint on .github/workflows (shellcheck on their scripts), shellcheck on scripts/smoke.sh
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/actionlint
	bash -n scripts/smoke.sh
	$(VENV)/bin/shellcheck scripts/smoke.sh

test-verifier-outside: venv ## cognito-verifier as a team uses it: a crate outside the workspace guards axum routes with real tokens from moto's Cognito
	scripts/check-verifier-outside.sh

test-systemd: ## systemd-analyze verify and security (exposure at most 2.0) on the proxy's unit
	scripts/check-systemd.sh

test: lint test-rust test-verifier-outside test-e2e test-browser test-systemd test-docker test-actionlint bench-lint test-infra test-musl test-bootstrap ## every test and gate (what CI runs)

# --- the local stack (scripts/stack.sh): moto + planb-backend + planb-proxy + the ALB1 stand-in on loopback ---
.PHONY: demo up down loadtest test-e2e test-browser
CONNECTIONS ?= 50
DURATION    ?= 10s

demo: ## the whole Plan B path locally through the ALB1 stand-in: sign-in, 200, 401s, notes, a machine client, oha on the proxy; stops everything
	@CONNECTIONS=$(CONNECTIONS) DURATION=$(DURATION) scripts/stack.sh demo

up: ## start the local stack and keep it running (prints the URL to sign in at, curl and oha commands; BACKEND=team-service runs examples/team-service in place of planb-backend; TRACES=1 sends the backend's spans to the testkit's OTLP receiver, .run/spans.jsonl)
	@scripts/stack.sh up

down: ## stop the local stack
	@scripts/stack.sh down

loadtest: ## oha through the proxy of a running stack (CONNECTIONS=50 DURATION=10s)
	@CONNECTIONS=$(CONNECTIONS) DURATION=$(DURATION) scripts/stack.sh loadtest

test-e2e: venv ## end-to-end tests through the local stack (debug builds)
	$(CARGO) build --workspace --bins
	PLANB_PROFILE=debug $(VENV)/bin/pytest -q testkit/e2e

# On failure the screenshot, HTML and console log land beside the stack's logs here.
BROWSER_LOGS ?= target/test-logs

test-browser: venv ## headless Chromium through the ALB1 stand-in: sign in, notes, sign out (needs chromium, chromium-driver)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null \
	  || { echo "the browser test needs Chromium: apt-get install -y chromium chromium-driver" >&2; exit 1; }
	$(CARGO) build --workspace --bins
	mkdir -p $(BROWSER_LOGS)
	PLANB_PROFILE=debug PLANB_TEST_LOGS=$(abspath $(BROWSER_LOGS)) $(VENV)/bin/pytest -q testkit/browser

# --- side-by-side benchmarks (bench/; docs/benchmarks.md has the figures and how to read them) ---
.PHONY: bench-proxy bench-proxy-cpu bench-proxy-instructions bench-verify bench-bare bench-lint
ROUNDS     ?= 3
WORKERS    ?= 1,2
LOG        ?= off,on
BENCH_ARGS  = --rounds $(ROUNDS) --duration $(DURATION) --connections $(CONNECTIONS)
BENCH_TARGET_DIR = $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
BARE_PINGORA     = $(BENCH_TARGET_DIR)/release/bare-pingora

bench-proxy: release ## planb-proxy beside tuned nginx, haproxy and bare Pingora (WORKERS=1,2 LOG=off,on ROUNDS=3 DURATION=10s); JSON in bench/results/
	$(PYTHON) bench/bench.py proxy $(BENCH_ARGS) --workers $(WORKERS) --access-log $(LOG)

bench-verify: release venv ## planb-backend (token cache on and off) beside aws-jwt-verify (node:cluster), the seed (uvicorn) and bare axum, as many workers each (WORKERS=1,2 ROUNDS=3 DURATION=10s); JSON in bench/results/
	$(PYTHON) bench/bench.py verify $(BENCH_ARGS) --workers $(WORKERS)

bench-bare: ## the floors, each its own workspace built with the repository's Cargo.lock: target/release/bare-pingora (proxy), target/release/bare-axum (verify)
	for floor in bare-pingora bare-axum; do \
	  cp Cargo.lock bench/$$floor/Cargo.lock && \
	  CARGO_TARGET_DIR=$(BENCH_TARGET_DIR) $(CARGO) build -q --release --manifest-path bench/$$floor/Cargo.toml || exit 1; \
	done

bench-proxy-cpu: release bench-bare ## CPU time per request of planb-proxy beside bare Pingora, nginx and haproxy, log on (steadier than req/s on a noisy host)
	$(PYTHON) bench/cpu-per-request.py --access-log bare=$(BARE_PINGORA) planb=scripts/bench-proxy-candidate.sh

bench-proxy-instructions: release bench-bare ## instructions per request (callgrind, deterministic) of planb-proxy beside bare Pingora, log off then on (needs valgrind)
	bench/instructions-per-request.sh bare=$(BARE_PINGORA) planb=scripts/bench-proxy-candidate.sh
	ACCESS_LOG=true bench/instructions-per-request.sh planb-log-on=scripts/bench-proxy-candidate.sh

bench-lint: venv ## syntax and lint checks of the bench/ harness (py_compile, shellcheck)
	$(PYTHON) -m py_compile bench/bench.py bench/cpu-per-request.py bench/verify-cpu-per-request.py bench/verify-instructions-per-request.py bench/report.py bench/seed-fastapi/app/*.py
	node --check bench/aws-jwt-verify/server.mjs
	bash -n bench/instructions-per-request.sh scripts/bench-proxy-candidate.sh
	$(VENV)/bin/shellcheck bench/instructions-per-request.sh scripts/bench-proxy-candidate.sh

.PHONY: bench-notes
bench-notes: ## GET of one note beside /api/me through its own local stack with oha (moto is the limit)
	@CONNECTIONS=$(CONNECTIONS) DURATION=$(DURATION) scripts/stack.sh bench-notes
