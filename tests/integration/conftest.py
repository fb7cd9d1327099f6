from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bridge.delivery.embedded import EmbeddedBroker, free_port
from bridge.delivery.topics import create_topics
from bridge.ingress.app import create_app
from bridge.settings import Settings
from tests.faults import TcpProxy
from tests.support import SECRET, KafkaCluster, all_topics, unique_prefix


@pytest.fixture
def settings(kafka: KafkaCluster, prefix: str, tmp_path: Path) -> Settings:
    return Settings.from_env(
        {},
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        webhook_secrets=(SECRET, "second-secret-for-rotation"),
        topic_prefix=prefix,
        max_body_bytes=4096,
        spool_dir=tmp_path / "spool",
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@dataclass
class FaultyKafka:
    """A broker whose every connection crosses a TCP proxy (it advertises the proxy's port), so a
    test can cut the network of a bridge that was connected: a never-reachable address is another
    case (the bridge is then not ready and takes nothing)."""

    proxy: TcpProxy
    broker: EmbeddedBroker

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers

    def topics(self) -> str:
        """A fresh prefix with every bridge topic created on this broker."""
        value = unique_prefix()
        create_topics({"bootstrap.servers": self.bootstrap}, all_topics(value), partitions=3)
        return value


@contextmanager
def broker_behind_proxy() -> Iterator[FaultyKafka]:
    """A dedicated embedded broker that advertises a TCP proxy in front of it."""
    broker_port = free_port()
    with (
        TcpProxy(upstream_port=broker_port) as proxy,
        EmbeddedBroker(port=broker_port, advertised_port=proxy.port) as broker,
    ):
        yield FaultyKafka(proxy, broker)


@pytest.fixture(scope="session")
def cuttable_kafka() -> Iterator[FaultyKafka]:
    with broker_behind_proxy() as kafka:
        yield kafka


@pytest.fixture
def cuttable(cuttable_kafka: FaultyKafka) -> Iterator[FaultyKafka]:
    cuttable_kafka.proxy.restore()
    yield cuttable_kafka
    cuttable_kafka.proxy.restore()
