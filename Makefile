# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint unit integration bench clean schema-docs config-docs schemas-check

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/unit21-bridge dev

test: $(STAMP) lint
	$(BIN)/pytest

# The pure tests only (no broker, no subprocesses): seconds, for the edit-test loop.
test-fast: $(STAMP)
	$(BIN)/pytest -q tests/unit -m "not kafka"

# The schema reference for data teams; tests/unit/test_schema_docs.py fails when it is stale.
schema-docs: $(STAMP)
	$(BIN)/unit21-bridge schemas docs --output schemas/README.md

# The configuration reference; tests/unit/test_config_docs.py fails when it is stale.
config-docs: $(STAMP)
	$(BIN)/python -m bridge.config_docs > docs/configuration.md

# FULL_TRANSITIVE gate against schemas/history (also run by `make test`, in tests/unit/test_compatibility.py).
schemas-check: $(STAMP)
	$(BIN)/unit21-bridge schemas check

lint: $(STAMP)
	$(BIN)/ruff check bridge tests bench
	$(BIN)/ruff format --check bridge tests bench
	$(BIN)/mypy
	$(BIN)/mypy bench

# Side-by-side benchmark (HTTP limit, Kafka limit, naive baseline, bridge); writes bench/results/latest.json.
bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	command -v wrk >/dev/null || (apt-get install -y wrk || (apt-get update && apt-get install -y wrk))
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Container image (needs a Docker engine); the tag follows the package version.
.PHONY: image
image: VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
image:
	docker build -t unit21-kafka-bridge:$(VERSION) .
