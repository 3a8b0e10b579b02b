# One entry point for developers and CI. `make help` lists the targets.
#
# Everything the project needs beyond a Rust toolchain and Python 3 is installed here, pinned,
# each tool set in its own virtualenv under .venv/ so their dependencies never meet: the AWS
# emulator (moto server) in .venv/, the template checks in .venv/lint, the Lambda build tools
# in .venv/build, the SAM CLI in .venv/deploy. `make test` needs only the first two. The
# emulator listens on loopback only.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
STATE := .local
EMULATOR_HOST := 127.0.0.1
EMULATOR_PORT ?= 4566
EMULATOR_URL := http://$(EMULATOR_HOST):$(EMULATOR_PORT)
MOTO_VERSION := 5.2.5
# The emulator's pid and log. A second emulator on another port keeps its own files, so
# `make test EMULATOR_PORT=4599` runs beside a `make dev` without touching its emulator.
MOTO := $(STATE)/moto$(if $(filter 4566,$(EMULATOR_PORT)),,-$(EMULATOR_PORT))
# The stamp names the version, so a bump reinstalls and unrelated Makefile edits do not.
VENV_STAMP := $(VENV)/.moto-$(MOTO_VERSION)
LISTEN ?= 127.0.0.1:3000
# How `make dev` hands webhooks to the ingress: api-gateway or function-url (IngressFront).
FRONT ?= api-gateway
# Events per flow the cost meter counts (after one that warms the functions).
COST_EVENTS ?= 20

# Template checks, run by `make lint`.
CFN_LINT_VERSION := 1.58.0
CHECKOV_VERSION := 3.3.30
OPENAPI_VALIDATOR_VERSION := 0.9.0
LINT_VENV := $(VENV)/lint
LINT_STAMP := $(LINT_VENV)/.lint-$(CFN_LINT_VERSION)-$(CHECKOV_VERSION)-$(OPENAPI_VALIDATOR_VERSION)
# The providers' own libraries, which the interop tests sign (and verify) with.
INTEROP_VENV := $(VENV)/interop
INTEROP_PACKAGES := stripe==16.1.0 svix==2.9.1 standardwebhooks==1.1.0 slack-sdk==3.47.0 twilio==9.13.0 \
	PyNaCl==1.6.2 sendgrid==6.12.5 squareup==46.0.0.20260916 paddle-python-sdk==1.16.1 \
	google-auth==2.40.3 cryptography==51.0.1 braintree==4.48.0
INTEROP_STAMP := $(INTEROP_VENV)/.interop-$(shell echo '$(INTEROP_PACKAGES)' | cksum | cut -d' ' -f1)
# The official Node.js library, which the portal's Node verification snippet runs with.
INTEROP_NODE := tests/interop/node
INTEROP_NODE_STAMP := $(INTEROP_NODE)/node_modules/.installed-$(shell cksum < $(INTEROP_NODE)/package-lock.json | cut -d' ' -f1)
# Lambda builds: cargo-lambda cross-compiles with zig, both shipped as PyPI wheels.
CARGO_LAMBDA_VERSION := 1.9.2
ZIG_VERSION := 0.17.1
BUILD_VENV := $(VENV)/build
BUILD_STAMP := $(BUILD_VENV)/.build-$(CARGO_LAMBDA_VERSION)-$(ZIG_VERSION)
# Deploys: the SAM CLI, installed on first `make deploy` only.
SAM_VERSION := 1.170.0
DEPLOY_VENV := $(VENV)/deploy
DEPLOY_STAMP := $(DEPLOY_VENV)/.sam-$(SAM_VERSION)
# One Lambda function per crate under functions/; each becomes target/lambda/<name>/bootstrap.
FUNCTIONS := $(notdir $(wildcard functions/*))
# `make deploy ALARM_EMAIL=ops@example.com` subscribes that address to the alarms.
ALARM_EMAIL ?=
# The SAM CLI's usage reports stay off unless asked for.
SAM_CLI_TELEMETRY ?= 0

# The oldest Rust the workspace promises to build on: Cargo.toml's rust-version, checked by
# `make msrv` (the toolchain comes from rustup, minimal profile).
MSRV := $(shell sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)

# What the SDK clients of tests, the local stack and hookctl need to reach the emulator.
EMULATOR_ENV := AWS_ENDPOINT_URL=$(EMULATOR_URL) AWS_REGION=us-east-1 \
	AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true \
	INTEROP_PYTHON=$(abspath $(INTEROP_VENV))/bin/python \
	INTEROP_NODE_MODULES=$(abspath $(INTEROP_NODE))/node_modules

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

# --- Tools -----------------------------------------------------------------------------------

$(VENV_STAMP):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet 'moto[server]==$(MOTO_VERSION)'
	touch $@

.PHONY: tools $(VENV)
tools: $(VENV_STAMP) $(LINT_STAMP) $(INTEROP_STAMP) $(INTEROP_NODE_STAMP) ## Install the AWS emulator, the template checks and the providers' libraries (once per version)
$(VENV): $(VENV_STAMP)

$(LINT_STAMP):
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/pip install --quiet 'cfn-lint==$(CFN_LINT_VERSION)' 'checkov==$(CHECKOV_VERSION)' \
		'openapi-spec-validator==$(OPENAPI_VALIDATOR_VERSION)'
	touch $@

$(INTEROP_NODE_STAMP): $(INTEROP_NODE)/package-lock.json
	npm ci --prefix $(INTEROP_NODE) --no-audit --no-fund --loglevel=error
	touch $@

$(INTEROP_STAMP):
	$(PYTHON) -m venv $(INTEROP_VENV)
	$(INTEROP_VENV)/bin/pip install --quiet $(INTEROP_PACKAGES)
	touch $@

$(BUILD_STAMP):
	$(PYTHON) -m venv $(BUILD_VENV)
	$(BUILD_VENV)/bin/pip install --quiet 'cargo-lambda==$(CARGO_LAMBDA_VERSION)' 'ziglang==$(ZIG_VERSION)'
	touch $@

$(DEPLOY_STAMP):
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet 'aws-sam-cli==$(SAM_VERSION)'
	touch $@

# --- The AWS emulator ------------------------------------------------------------------------

.PHONY: emulator-start
emulator-start: $(VENV_STAMP) ## Start moto server on loopback (no-op if running)
	@mkdir -p $(STATE)
	@if [ -f $(MOTO).pid ] && kill -0 $$(cat $(MOTO).pid) 2>/dev/null; then \
		echo "emulator already running at $(EMULATOR_URL)"; exit 0; fi; \
	$(VENV)/bin/moto_server -H $(EMULATOR_HOST) -p $(EMULATOR_PORT) > $(MOTO).log 2>&1 & \
	echo $$! > $(MOTO).pid; \
	for i in $$(seq 1 60); do \
		if $(PYTHON) -c "import urllib.request; urllib.request.urlopen('$(EMULATOR_URL)/moto-api/', timeout=1)" 2>/dev/null; then \
			echo "emulator up at $(EMULATOR_URL)"; exit 0; fi; \
		if ! kill -0 $$(cat $(MOTO).pid) 2>/dev/null; then break; fi; \
		sleep 0.5; \
	done; \
	kill $$(cat $(MOTO).pid) 2>/dev/null; rm -f $(MOTO).pid; \
	echo "emulator at $(EMULATOR_URL) did not come up (waited up to 30 s); its log ($(MOTO).log):" >&2; \
	cat $(MOTO).log >&2; exit 1

# Waits (bounded) for the process to exit, so an emulator-start right after finds the port free.
.PHONY: emulator-stop
emulator-stop: ## Stop the emulator started by emulator-start
	@if [ -f $(MOTO).pid ]; then \
		pid=$$(cat $(MOTO).pid); kill $$pid 2>/dev/null || true; \
		for i in $$(seq 1 20); do kill -0 $$pid 2>/dev/null || break; sleep 0.25; done; \
		rm -f $(MOTO).pid; fi

# --- Develop ---------------------------------------------------------------------------------

.PHONY: dev
dev: emulator-start ## Run the system locally: emulator, tables, queues, demo tenant, ingress on $(LISTEN) (FRONT=function-url: as the Function URL serves it)
	$(EMULATOR_ENV) $(CARGO) run -p local-stack -- dev --listen $(LISTEN) --front $(FRONT)

.PHONY: invoke
invoke: emulator-start ## Run a function on a console event against the local stack: make invoke FN=replay EVENT=events/replay/list.json
	$(EMULATOR_ENV) $(CARGO) run -q -p local-stack -- invoke $(FN) $(EVENT)

.PHONY: cost
cost: emulator-start ## Price every AWS call of each inbound flow and print the bill and the partition heat (COST_EVENTS per flow)
	$(EMULATOR_ENV) $(CARGO) run -q -p local-stack -- cost --events $(COST_EVENTS)

.PHONY: provision
provision: emulator-start ## Create template.yaml's tables and queues in the emulator
	$(EMULATOR_ENV) $(CARGO) run -p local-stack -- provision

# --- Check -----------------------------------------------------------------------------------

.PHONY: unit
unit: ## The inner loop, no emulator: format, clippy, unit and property tests
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings
	$(CARGO) test --workspace --exclude integration-tests

.PHONY: msrv
msrv: ## Check the workspace on the declared minimum Rust version ($(MSRV))
	rustup toolchain install $(MSRV) --profile minimal --no-self-update
	CARGO_TARGET_DIR=target/msrv $(CARGO) +$(MSRV) check --workspace --all-targets --all-features --locked

.PHONY: test
test: lint msrv $(INTEROP_STAMP) $(INTEROP_NODE_STAMP) browser ## Everything CI checks: format, lints, MSRV, unit, property, interop and integration tests
	@$(MAKE) --no-print-directory emulator-start
	@status=0; $(EMULATOR_ENV) $(CARGO) test --workspace || status=$$?; \
	$(MAKE) --no-print-directory emulator-stop; exit $$status

# The portal's tests drive Debian's Chromium over WebDriver (chromedriver).
.PHONY: browser
browser: ## Install Chromium and chromedriver for the portal's browser tests (Debian packages, where missing)
	@if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver; \
	fi

.PHONY: lint
lint: $(LINT_STAMP) ## cargo fmt --check, clippy -D warnings, cfn-lint and checkov on template.yaml, the OpenAPI document
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings
	$(LINT_VENV)/bin/cfn-lint template.yaml
	@# --skip-download: no calls home; skips are justified in the template's Metadata.
	$(LINT_VENV)/bin/checkov -f template.yaml --framework cloudformation --quiet --compact --skip-download
	$(LINT_VENV)/bin/openapi-spec-validator functions/api/openapi.json

# --- Build and deploy ------------------------------------------------------------------------

# The build venv's bin/ comes first on PATH: `cargo lambda` finds its binary there, and its
# zig lookup finds the venv's python, which carries the ziglang package.
LAMBDA_PATH := PATH="$(abspath $(BUILD_VENV))/bin:$$PATH"
# `make build` gets its own target directory, so a long arm64 build never holds the lock a
# `make test` needs. (`sam build` cannot: it collects bootstraps from target/lambda/.)
LAMBDA_ENV := $(LAMBDA_PATH) CARGO_TARGET_DIR=target/arm64

.PHONY: build
build: $(BUILD_STAMP) ## Build every function for Lambda (arm64, release) into target/lambda/<fn>/bootstrap
	@if command -v rustup >/dev/null; then rustup target add aarch64-unknown-linux-gnu; fi
	$(LAMBDA_ENV) $(CARGO) lambda build --release --arm64 --lambda-dir target/lambda \
		$(addprefix --package ,$(FUNCTIONS))
	@$(MAKE) --no-print-directory package-size

.PHONY: package-size
package-size: ## Print each built bootstrap's size (Lambda's limit: 250 MB unzipped)
	@for fn in $(FUNCTIONS); do \
		f=target/lambda/$$fn/bootstrap; \
		if [ -f $$f ]; then printf '  %-12s %8d KiB  %s\n' $$fn $$(( $$(stat -c %s $$f) / 1024 )) $$f; \
		else printf '  %-12s not built (make build)\n' $$fn; fi; \
	done

# `sam build` runs cargo-lambda itself (BuildMethod: rust-cargolambda, a beta feature enabled
# in samconfig.toml), so it needs the build venv on PATH too. Credentials and region come from
# the usual AWS configuration (AWS_PROFILE, AWS_REGION, ...).
.PHONY: deploy
deploy: $(BUILD_STAMP) $(DEPLOY_STAMP) ## sam build + sam deploy with samconfig.toml (needs AWS credentials)
	$(LAMBDA_PATH) SAM_CLI_TELEMETRY=$(SAM_CLI_TELEMETRY) \
		$(DEPLOY_VENV)/bin/sam build --config-file samconfig.toml
	$(LAMBDA_PATH) SAM_CLI_TELEMETRY=$(SAM_CLI_TELEMETRY) \
		$(DEPLOY_VENV)/bin/sam deploy --config-file samconfig.toml \
		$(if $(ALARM_EMAIL),--parameter-overrides AlarmEmail=$(ALARM_EMAIL))

.PHONY: bench
bench: bench-coldstart ## Criterion benchmarks (figures in target/criterion), then the cold starts
	$(CARGO) bench -p shared --features test-util
	$(CARGO) bench -p portal --bench pages

# Native release bootstraps (the Lambda build is arm64; the figures are for this machine).
.PHONY: bench-coldstart
bench-coldstart: emulator-start ## Each function's cold start: init, first answer and peak RSS of its release bootstrap
	$(CARGO) build --release $(addprefix -p ,$(FUNCTIONS))
	$(EMULATOR_ENV) $(CARGO) run -q -p local-stack -- coldstart --prefix coldstart- --bootstraps target/release

# Fuzzing needs a nightly toolchain (rustup, minimal profile) and cargo-fuzz; both are fetched
# on first use. Each target runs FUZZ_SECONDS; a crash leaves its input under
# fuzz/artifacts/<target>/: copy it to fuzz/regressions/<target>/ and `make test` runs it.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := signature_headers event_extraction queue_message console_event google_oidc_token
CARGO_FUZZ_VERSION := 0.13.2

.PHONY: fuzz
fuzz: ## Fuzz every parser for FUZZ_SECONDS (60) each, seeded with the kept inputs
	rustup toolchain install nightly --profile minimal --no-self-update
	@if ! $(CARGO) +nightly fuzz --version 2>/dev/null | grep -q '$(CARGO_FUZZ_VERSION)'; then \
		$(CARGO) +nightly install cargo-fuzz --version $(CARGO_FUZZ_VERSION) --locked; fi
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$t; \
		echo "fuzzing $$t for $(FUZZ_SECONDS) s"; \
		$(CARGO) +nightly fuzz run $$t fuzz/corpus/$$t fuzz/regressions/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -max_len=65536 -rss_limit_mb=2048 \
			|| { echo "$$t crashed: keep the input from fuzz/artifacts/$$t/ in fuzz/regressions/$$t/" >&2; exit 1; }; \
	done

.PHONY: fmt
fmt: ## Format the code
	$(CARGO) fmt --all

.PHONY: clean
clean: emulator-stop ## Remove build output, the virtualenv and local state
	rm -rf target $(VENV) $(STATE)
