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
# The emulator's pid and log. A second emulator on another port keeps its own files, so
# `make test EMULATOR_PORT=4599` runs beside a `make dev` without touching its emulator.
MOTO := $(STATE)/moto$(if $(filter 4566,$(EMULATOR_PORT)),,-$(EMULATOR_PORT))
# The stamp names the version, so a bump reinstalls and unrelated Makefile edits do not.
VENV_STAMP := $(VENV)/.moto-$(MOTO_VERSION)
LISTEN ?= 127.0.0.1:3000

# What the SDK clients of tests, the local stack and hookctl need to reach the emulator.
EMULATOR_ENV := AWS_ENDPOINT_URL=$(EMULATOR_URL) AWS_REGION=us-east-1 \
	AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

# --- Tools -----------------------------------------------------------------------------------

$(VENV_STAMP):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet 'moto[server]==$(MOTO_VERSION)'
	touch $@

.PHONY: tools $(VENV)
tools: $(VENV_STAMP) ## Install the AWS emulator into .venv/ (once per moto version)
$(VENV): $(VENV_STAMP)

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
