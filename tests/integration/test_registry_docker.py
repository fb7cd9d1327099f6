"""Schema Registry mode against a real Confluent Schema Registry (Docker only).

Without a Docker engine this module is skipped; the same behaviour runs on every machine
against confluent-kafka's in-process mock:// registry (test_registry_mode.py,
test_example_consumers.py, tests/unit/test_registry_codec.py).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from starlette.testclient import TestClient

from bridge.cli.schemas import check_schemas, register_schemas
from bridge.contract.registry import new_registry_client
from bridge.delivery.topics import create_topics
from bridge.ingress.app import Runtime, create_app
from bridge.settings import Settings
from tests.support import EXAMPLES, SECRET, all_topics, docker_available, read_topic, signed_headers

pytestmark = pytest.mark.skipif(
    not docker_available(), reason="needs a Docker engine (mock:// covers the rest)"
)


@dataclass(frozen=True)
class Stack:
    bootstrap_servers: str
    registry_url: str


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.network import Network
    from testcontainers.core.waiting_utils import wait_for_logs
    from testcontainers.kafka import KafkaContainer

    with Network() as network:
        kafka = (
            KafkaContainer("confluentinc/cp-kafka:7.6.1").with_network(network).with_network_aliases("kafka")
        )
        with kafka:
            registry = (
                DockerContainer("confluentinc/cp-schema-registry:7.6.1")
                .with_network(network)
                .with_env("SCHEMA_REGISTRY_HOST_NAME", "schema-registry")
                .with_env("SCHEMA_REGISTRY_LISTENERS", "http://0.0.0.0:8081")
                .with_env("SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS", "PLAINTEXT://kafka:9092")
                .with_exposed_ports(8081)
            )
            with registry:
                wait_for_logs(registry, "Server started, listening for requests", timeout=120)
                url = f"http://{registry.get_container_host_ip()}:{registry.get_exposed_port(8081)}"
                yield Stack(kafka.get_bootstrap_server(), url)


def test_register_publish_and_check_against_a_real_registry(stack: Stack) -> None:
    prefix = "docker."
    create_topics({"bootstrap.servers": stack.bootstrap_servers}, all_topics(prefix), partitions=3)
    settings = Settings.from_env(
        {},
        kafka_bootstrap_servers=stack.bootstrap_servers,
        webhook_secrets=(SECRET,),
        topic_prefix=prefix,
        schema_registry_url=stack.registry_url,
        readiness_cache_seconds=0,
    )
    runtime = Runtime.from_settings(settings)
    client = new_registry_client(settings)
    with TestClient(create_app(settings, runtime)) as http:
        assert http.get("/readyz").json()["detail"]["schema_registry_subject"] == f"{prefix}alert-value"
        out = io.StringIO()
        assert register_schemas(settings, runtime.builder.schemas, client, out, io.StringIO()) == 0
        again = io.StringIO()
        assert register_schemas(settings, runtime.builder.schemas, client, again, io.StringIO()) == 0
        assert out.getvalue() == again.getvalue()
        assert http.get("/readyz").status_code == 200
        body = (EXAMPLES / "alert_created.json").read_bytes()
        assert http.post("/webhooks/unit21", content=body, headers=signed_headers(body)).status_code == 200
    assert runtime.registry is not None
    [message] = read_topic(stack.bootstrap_servers, f"{prefix}alert", 1)
    assert message.value[:5] == b"\x00" + struct.pack(">I", runtime.registry.ids["alert"])
    assert runtime.registry.decode(message.value)[1]["bridge"]["action"] == "ALERT_CREATED"
    assert check_schemas(settings, runtime.builder.schemas, client, io.StringIO()) == 0
