# One entry point for developers and CI. `make help` lists the targets.
#
# Everything the project needs beyond a Rust toolchain and Python 3 is installed here: the AWS
# emulator (moto server) into .venv/. The emulator listens on loopback only.
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
LISTEN ?= 127.0.0.1:3000

# What the SDK clients of tests, the local stack and hookctl need to reach the emulator.
EMULATOR_ENV := AWS_ENDPOINT_URL=$(EMULATOR_URL) AWS_REGION=us-east-1 \
	AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

# --- Tools -----------------------------------------------------------------------------------

$(VENV)/.installed: Makefile
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet 'moto[server]==$(MOTO_VERSION)'
	touch $@

.PHONY: tools
tools: $(VENV)/.installed ## Install the AWS emulator into .venv/

# --- The AWS emulator ------------------------------------------------------------------------

.PHONY: emulator-start
emulator-start: $(VENV)/.installed ## Start moto server on loopback (no-op if running)
	@mkdir -p $(STATE)
	@if [ -f $(STATE)/moto.pid ] && kill -0 $$(cat $(STATE)/moto.pid) 2>/dev/null; then \
		echo "emulator already running at $(EMULATOR_URL)"; exit 0; fi; \
	$(VENV)/bin/moto_server -H $(EMULATOR_HOST) -p $(EMULATOR_PORT) > $(STATE)/moto.log 2>&1 & \
	echo $$! > $(STATE)/moto.pid; \
	for i in $$(seq 1 60); do \
		if $(PYTHON) -c "import urllib.request; urllib.request.urlopen('$(EMULATOR_URL)/moto-api/', timeout=1)" 2>/dev/null; then \
			echo "emulator up at $(EMULATOR_URL)"; exit 0; fi; \
		if ! kill -0 $$(cat $(STATE)/moto.pid) 2>/dev/null; then break; fi; \
		sleep 0.5; \
	done; \
	echo "emulator did not start; its log:" >&2; cat $(STATE)/moto.log >&2; exit 1

.PHONY: emulator-stop
emulator-stop: ## Stop the emulator started by emulator-start
	@if [ -f $(STATE)/moto.pid ]; then kill $$(cat $(STATE)/moto.pid) 2>/dev/null || true; rm -f $(STATE)/moto.pid; fi

# --- Develop ---------------------------------------------------------------------------------

.PHONY: dev
dev: emulator-start ## Run the system locally: emulator, tables, queues, demo tenant, ingress on $(LISTEN)
	$(EMULATOR_ENV) $(CARGO) run -p local-stack -- dev --listen $(LISTEN)

.PHONY: provision
provision: emulator-start ## Create template.yaml's tables and queues in the emulator
	$(EMULATOR_ENV) $(CARGO) run -p local-stack -- provision

# --- Check -----------------------------------------------------------------------------------

.PHONY: test
test: lint ## Everything CI checks: format, lints, unit, property and integration tests
	@$(MAKE) --no-print-directory emulator-start
	@status=0; $(EMULATOR_ENV) $(CARGO) test --workspace || status=$$?; \
	$(MAKE) --no-print-directory emulator-stop; exit $$status

.PHONY: lint
lint: ## cargo fmt --check and clippy -D warnings
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

.PHONY: bench
bench: ## Criterion benchmarks (figures in target/criterion)
	$(CARGO) bench -p shared

.PHONY: fmt
fmt: ## Format the code
	$(CARGO) fmt --all

.PHONY: clean
clean: emulator-stop ## Remove build output, the virtualenv and local state
	rm -rf target $(VENV) $(STATE)
