"""HTTP -> real broker in Schema Registry mode (confluent-kafka's in-process mock:// registry)."""

from __future__ import annotations

import logging
import struct
from io import BytesIO

import pytest
from fastavro import schemaless_reader
from starlette.testclient import TestClient

from bridge.contract.codec import SingleObjectCodec
from bridge.contract.registry import RegistryCodec
from bridge.contract.schemas import SchemaSet
from bridge.ingress.app import Runtime, create_app
from bridge.settings import Settings
from tests.support import EXAMPLES, SECRET, KafkaCluster, read_topic, signed_headers


def _settings(kafka: KafkaCluster, prefix: str, **overrides: object) -> Settings:
    return Settings.from_env(
        {},
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        webhook_secrets=(SECRET,),
        topic_prefix=prefix,
        schema_registry_url="mock://bridge-integration",
        readiness_cache_seconds=0,
        **overrides,
    )


def test_registry_mode_publishes_confluent_framed_records(kafka: KafkaCluster, prefix: str) -> None:
    settings = _settings(kafka, prefix, schema_registry_auto_register=True)
    runtime = Runtime.from_settings(settings)
    assert isinstance(runtime.registry, RegistryCodec)
    body = (EXAMPLES / "alert_created.json").read_bytes()
    with TestClient(create_app(settings, runtime)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert f"{prefix}alert-value=" in ready.json()["detail"]["schema_registry"]
        answer = client.post("/webhooks/unit21", content=body, headers=signed_headers(body))
        assert answer.status_code == 200, answer.text

    [message] = read_topic(kafka.bootstrap_servers, f"{prefix}alert", 1)
    schema_id = runtime.registry.ids["alert"]
    assert message.value[:5] == b"\x00" + struct.pack(">I", schema_id)
    assert runtime.registry.client.get_schema(schema_id).schema_str is not None
    schemas = SchemaSet.load()
    record = schemaless_reader(BytesIO(message.value[5:]), schemas["alert"].parsed, None)
    assert isinstance(record, dict)
    assert record["bridge"]["event_id"] == answer.json()["event_id"]
    # Same record bytes as single-object mode would write.
    assert message.value[5:] == SingleObjectCodec(schemas).encode(schemas["alert"], record)[10:]
    assert message.headers["schema_fingerprint"] == schemas["alert"].fingerprint_hex.encode()


def test_missing_subject_fails_readiness_and_webhooks_until_registered(
    kafka: KafkaCluster, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(kafka, prefix)
    runtime = Runtime.from_settings(settings)
    assert runtime.registry is not None
    body = (EXAMPLES / "case_created.json").read_bytes()
    with (
        caplog.at_level(logging.ERROR, logger="bridge.app"),
        TestClient(create_app(settings, runtime)) as client,
    ):
        assert f"subject {prefix}alert-value: not registered" in caplog.text

        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["detail"]["schema_registry_subject"] == f"{prefix}alert-value"
        refused = client.post("/webhooks/unit21", content=body, headers=signed_headers(body))
        assert refused.status_code == 503
        assert refused.json()["error"] == "not_ready"
        assert f"{prefix}alert-value" in refused.json()["detail"]
        assert refused.headers["retry-after"] == "1"

        # An operator runs `unit21-bridge schemas register`; the next probe resolves the ids.
        from bridge.contract.registry import registry_schema

        for suffix, subject in ((s, runtime.registry.subject(s)) for s in runtime.registry.schemas.by_suffix):
            runtime.registry.client.register_schema(
                subject, registry_schema(runtime.registry.schemas[suffix])
            )
        assert client.get("/readyz").status_code == 200
        accepted = client.post("/webhooks/unit21", content=body, headers=signed_headers(body))
        assert accepted.status_code == 200, accepted.text
    [message] = read_topic(kafka.bootstrap_servers, f"{prefix}case", 1)
    assert message.value[:5] == b"\x00" + struct.pack(">I", runtime.registry.ids["case"])
