"""`unit21-bridge dlq replay`: stored webhooks re-processed by today's code, dry run by default."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from bridge.cli import ExitCode
from bridge.cli.main import main
from bridge.contract.codec import SingleObjectCodec
from bridge.contract.parsing import event_id, parse
from bridge.contract.records import MessageBuilder
from bridge.contract.schemas import SchemaSet
from tests.support import EXAMPLES, KafkaCluster, read_topic, topic_counts

SCHEMAS = SchemaSet.load()
CODEC = SingleObjectCodec(SCHEMAS)
ALERT = (EXAMPLES / "alert_created.json").read_bytes()
RECEIVED_MS = 1_700_000_000_123


def meta(body: bytes, action: str, object_type: str) -> dict[str, Any]:
    return {
        "event_id": event_id(body),
        "action": action,
        "object_type": object_type,
        "received_at": RECEIVED_MS,
        "signature_timestamp": 1_700_000_000_000,
        "bridge_version": "0.0.1",
    }


@pytest.fixture
def stored(kafka: KafkaCluster, prefix: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """A DLQ and an unrecognized topic as an older bridge version could have left them."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    monkeypatch.setenv("BRIDGE_TOPIC_PREFIX", prefix)
    builder = MessageBuilder(SCHEMAS, CODEC, prefix)
    invalid_doc = orjson.loads(ALERT)
    invalid_doc["unit21_id"] = "not-a-number"
    invalid = orjson.dumps(invalid_doc)
    still_invalid = builder.build(
        invalid,
        parse(invalid),
        event_id=event_id(invalid),
        received_at_ms=RECEIVED_MS,
        signature_timestamp=None,
    )
    assert still_invalid.outcome == "dead_lettered"
    fixed = {  # rejected by an older schema, valid today
        "bridge": meta(ALERT, "ALERT_CREATED", "ALERT"),
        "target_topic": f"{prefix}alert",
        "errors": [{"path": "status", "reason": "an older schema's complaint"}],
        "payload": ALERT.decode(),
        "headers": {"content-type": "application/json"},
    }
    widget = b'{"object_type": "WIDGET", "change": "SPUN"}'
    case = (EXAMPLES / "case_created.json").read_bytes()
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    for topic, value in [
        (f"{prefix}dlq", CODEC.encode(SCHEMAS["dlq"], fixed)),
        (f"{prefix}dlq", still_invalid.value),
        (
            f"{prefix}unrecognized",
            CODEC.encode(
                SCHEMAS["unrecognized"],
                {
                    "bridge": meta(case, "CASE_CREATED", "CASE"),
                    "object_type": "CASE",
                    "payload": case.decode(),
                },
            ),
        ),
        (
            f"{prefix}unrecognized",
            CODEC.encode(
                SCHEMAS["unrecognized"],
                {
                    "bridge": meta(widget, "WIDGET_SPUN", "WIDGET"),
                    "object_type": "WIDGET",
                    "payload": widget.decode(),
                },
            ),
        ),
    ]:
        producer.produce(topic, value)
    assert producer.flush(10) == 0
    return {"alert": ALERT, "case": case}


def test_dry_run_reports_and_publishes_nothing(
    stored: dict[str, bytes], kafka: KafkaCluster, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dlq", "replay"]) == 0
    out = capsys.readouterr().out
    assert "dry run" in out
    assert "read            2" in out
    assert f"would publish   1  ({prefix}alert 1)" in out
    assert "still failing   1" in out
    assert "unit21_id: expected an integer, got string" in out
    assert topic_counts(kafka.bootstrap_servers, [f"{prefix}alert"])[f"{prefix}alert"] == 0


def test_apply_publishes_what_now_validates_under_its_original_identity(
    stored: dict[str, bytes], kafka: KafkaCluster, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dlq", "replay", "--apply"]) == 0
    assert "published       1" in capsys.readouterr().out
    [record] = read_topic(kafka.bootstrap_servers, f"{prefix}alert", 1)
    assert record.headers["event_id"] == event_id(stored["alert"]).encode()
    assert record.headers["action"] == b"ALERT_CREATED"
    schema, value = CODEC.decode(record.value)
    assert schema.suffix == "alert"
    assert value["bridge"]["event_id"] == event_id(stored["alert"])
    assert value["bridge"]["received_at"] == datetime.fromtimestamp(RECEIVED_MS / 1000, UTC)
    assert value["unit21_id"] == 11532778


def test_unrecognized_types_the_bridge_now_knows_are_replayed(
    stored: dict[str, bytes], kafka: KafkaCluster, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dlq", "replay", "--topic", "unrecognized", "--apply"]) == 0
    out = capsys.readouterr().out
    assert "published       1" in out
    assert "object_type WIDGET is still unknown" in out
    [record] = read_topic(kafka.bootstrap_servers, f"{prefix}case", 1)
    assert record.headers["event_id"] == event_id(stored["case"]).encode()


def test_replay_of_a_missing_topic_says_so(
    kafka: KafkaCluster, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    monkeypatch.setenv("BRIDGE_TOPIC_PREFIX", "nowhere.")
    assert main(["dlq", "replay"]) == ExitCode.UNAVAILABLE
    assert "nowhere.dlq does not exist" in capsys.readouterr().err
