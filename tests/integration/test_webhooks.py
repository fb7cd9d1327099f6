"""Every documented payload makes the trip HTTP -> signature -> Avro -> Kafka, and back."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.contract.codec import SingleObjectCodec
from bridge.contract.parsing import event_id
from bridge.contract.records import MessageBuilder
from bridge.contract.schemas import SchemaSet
from bridge.settings import Settings
from tests.exact_json import canonical
from tests.support import EXAMPLES, SHARED_SAMPLES, KafkaCluster, read_topic, signed_headers

SCHEMAS = SchemaSet.load()
CODEC = SingleObjectCodec(SCHEMAS)

EXPECTED = {
    "alert_created.json": ("alert", "ALERT_CREATED", "ALERT", b"u-65b0bfa0-fe19-4e91-9225-c8174c7cc6d8"),
    "alert_closed.json": ("alert", "ALERT_CLOSED", "ALERT", b"u-1"),
    "case_created.json": ("case", "CASE_CREATED", "CASE", b"case:11532914"),
    "entity_action_triggered.json": (
        "entity",
        "ENTITY_ACTION_TRIGGERED",
        "ENTITY",
        b"J8OkZOrZ35TL6zoMdFX4zrxZE60UbevYNL",
    ),
    "event_action_triggered.json": (
        "event",
        "EVENT_ACTION_TRIGGERED",
        "EVENT",
        b"event:t-a57137d8-7387-4517-8f11-d2a7aa842180",
    ),
    "file_export_ready.json": ("file_export", "FILE_EXPORT_READY", "FILE_EXPORT", b"file_export:31387"),
    "rule_created.json": ("rule", "RULE_CREATED", "RULE", b"rule:11533652"),
    "rule_triggered.json": ("rule", "RULE_TRIGGERED", "RULE", b"u-7"),
    "verification_entity_initiated.json": (
        "entity",
        "VERIFICATION_ENTITY_INITIATED",
        "ENTITY",
        b"external_id",
    ),
    "verification_entity_step_completed.json": (
        "entity",
        "VERIFICATION_ENTITY_STEP_COMPLETED",
        "ENTITY",
        b"external_id",
    ),
    "verification_workflow_executed.json": (
        "entity",
        "VERIFICATION_WORKFLOW_EXECUTED",
        "ENTITY",
        b"external_id",
    ),
}


def murmur2_partition(key: bytes, partitions: int) -> int:
    """Java client's default partitioner: murmur2 (seed 0x9747b28c), positive, modulo."""
    m, r, length = 0x5BD1E995, 24, len(key)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(key[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = key[length - length % 4 :]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if len(tail) >= 1:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


def seconds(value: Any) -> Any:
    return int(value.timestamp()) if isinstance(value, datetime) else value


def post(client: TestClient, body: bytes, **kwargs: Any) -> Any:
    return client.post("/webhooks/unit21", content=body, headers=signed_headers(body, **kwargs))


# sha256 of the bodies Unit21 publishes (shared/unit21/samples), which examples/webhooks copies.
PUBLISHED = {
    "alert_created.json": "e69f836782f3cfa702653ef354accd44064762ddb315e083974b7477f097818a",
    "rule_created.json": "b7f35651fc36526587dc13bbd8c9c4f85272e15195addc28cb93bb2bb5fd8881",
    "verification_entity_initiated.json": "50d7f63acfbf028e83e1eb655b1bb62c1a927777644d0313e9e0d230051bceda",
    "verification_entity_step_completed.json": "5433b24dd39d465c96bc8a91de2bf8517fb7eb6b059df009ff0b725bbe3b28a2",
    "verification_workflow_executed.json": "313e4a881dae3e05bdb8ffd0531160cefa81e592e11111211246274ece2c60ad",
}


def test_shipped_examples_are_the_published_samples() -> None:
    for name, digest in PUBLISHED.items():
        assert hashlib.sha256((EXAMPLES / name).read_bytes()).hexdigest() == digest, name
    if SHARED_SAMPLES.is_dir():  # the reference folder beside the checkout, when present
        assert {p.name for p in SHARED_SAMPLES.glob("*.json")} == set(PUBLISHED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_payload_reaches_its_topic_losslessly(
    name: str, client: TestClient, settings: Settings, kafka: KafkaCluster
) -> None:
    suffix, action, object_type, key = EXPECTED[name]
    body = (EXAMPLES / name).read_bytes()
    answer = post(client, body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    topic = settings.topic(suffix)
    assert result["topic"] == topic
    assert result["event_id"] == event_id(body)
    assert result["outcome"] == "published"

    [message] = read_topic(kafka.bootstrap_servers, topic, 1)
    assert (message.partition, message.offset) == (result["partition"], result["offset"])
    assert message.key == key
    assert message.partition == murmur2_partition(key, 3)
    schema, record = CODEC.decode(message.value)
    assert message.headers == {
        "event_id": result["event_id"].encode(),
        "action": action.encode(),
        "object_type": object_type.encode(),
        "schema_fingerprint": schema.fingerprint_hex.encode(),
    }
    assert schema.suffix == suffix
    assert record["bridge"]["event_id"] == result["event_id"]
    assert record["bridge"]["action"] == action
    assert record["bridge"]["object_type"] == object_type
    original = json.loads(body)
    builder = MessageBuilder(SCHEMAS, CODEC, settings.topic_prefix)
    assert builder.reassemble(schema, record) == original
    for field, value in original.items():  # field by field, as a consumer sees them
        decoded = record[field]
        if field in ("change_time", "start_date", "end_date") and value is not None:
            assert int(decoded.timestamp()) == value
        elif field in ("custom_data", "content", "subdisposition", "watchers"):
            assert json.loads(decoded) == value
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            assert [{k: seconds(d[k]) for k in item} for d, item in zip(decoded, value, strict=True)] == value
        else:
            assert decoded == value, field


def test_unknown_object_type_is_kept_whole_in_unrecognized(
    client: TestClient, settings: Settings, kafka: KafkaCluster
) -> None:
    body = b'{"object_type": "ALERT_GENERATION_LIMIT", "change": "HIT", "limit": 1000}'
    answer = post(client, body)
    assert answer.status_code == 200
    assert answer.json()["outcome"] == "unrecognized"
    [message] = read_topic(kafka.bootstrap_servers, settings.topic("unrecognized"), 1)
    _, record = CODEC.decode(message.value)
    assert record["payload"] == body.decode()
    assert record["bridge"]["action"] == "ALERT_GENERATION_LIMIT_HIT"
    assert message.headers["object_type"] == b"ALERT_GENERATION_LIMIT"
    assert message.key == b"alert_generation_limit:" + answer.json()["event_id"].encode()


def test_payload_without_object_type_is_unrecognized(
    client: TestClient, settings: Settings, kafka: KafkaCluster
) -> None:
    answer = post(client, b'{"test": true}')
    assert answer.status_code == 200
    [message] = read_topic(kafka.bootstrap_servers, settings.topic("unrecognized"), 1)
    assert message.headers["action"] == b"UNKNOWN"


def test_invalid_payload_goes_to_the_dlq_with_reason_and_headers(
    client: TestClient, settings: Settings, kafka: KafkaCluster
) -> None:
    doc = json.loads((EXAMPLES / "alert_created.json").read_text())
    doc["unit21_id"] = "not-a-number"
    body = json.dumps(doc).encode()
    headers = signed_headers(body) | {"X-Request-Id": "abc-123", "Authorization": "Bearer nope"}
    answer = client.post("/webhooks/unit21", content=body, headers=headers)
    assert answer.status_code == 200
    assert answer.json()["outcome"] == "dead_lettered"
    assert answer.json()["errors"] == [{"path": "unit21_id", "reason": "expected an integer, got string"}]
    [message] = read_topic(kafka.bootstrap_servers, settings.topic("dlq"), 1)
    _, record = CODEC.decode(message.value)
    assert record["payload"] == body.decode()
    assert record["target_topic"] == settings.topic("alert")
    assert record["errors"] == [{"path": "unit21_id", "reason": "expected an integer, got string"}]
    assert record["headers"]["x-request-id"] == "abc-123"
    assert "unit21-signature" not in record["headers"]
    assert "authorization" not in record["headers"]
    assert message.headers["action"] == b"ALERT_CREATED"


def test_unicode_and_extreme_numbers_survive(
    client: TestClient, settings: Settings, kafka: KafkaCluster
) -> None:
    doc = {
        "unit21_id": 2**63 - 1,
        "object_type": "ALERT",
        "change": "CREATED",
        "title": "Überweisung 🚨 可疑交易 \u0000 end",
        "custom_data": {
            "huge": 2**90,
            "neg": -(2**70),
            "pi": 3.141592653589793,
            "nested": {"ü": ["ß", None]},
        },
        "entities": [{"entity_id": "éntité-1", "entity_type": "user", "brand_new": {"x": 1}}],
        "change_time": 253402300799,
        "future_field": [1, {"a": None}],
    }
    body = json.dumps(doc, ensure_ascii=False).encode()
    answer = post(client, body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "published"
    [message] = read_topic(kafka.bootstrap_servers, settings.topic("alert"), 1)
    assert message.key == "éntité-1".encode()
    schema, record = CODEC.decode(message.value)
    rebuilt = MessageBuilder(SCHEMAS, CODEC, settings.topic_prefix).reassemble(schema, record)
    assert canonical(rebuilt) == canonical(doc)  # pi has 16 digits: it comes back as a Decimal
