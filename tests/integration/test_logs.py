"""Log lines as an operator's pipeline sees them: parsed as JSON, with the fields, without secrets."""

from __future__ import annotations

import io
import json
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.ingress.app import create_app
from bridge.ops.logs import configure_logging
from bridge.settings import Settings
from tests.support import EXAMPLES, SECRET, KafkaCluster, read_topic, signed_headers


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The bridge's real logging set-up writing into a buffer; the root logger is restored after."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]  # every line must be JSON


def test_one_structured_line_per_request_without_body_or_secrets(
    kafka: KafkaCluster, prefix: str, json_log: io.StringIO
) -> None:
    marker = "body-marker-must-never-be-logged"
    doc = json.loads((EXAMPLES / "alert_created.json").read_bytes())
    doc["marker"] = marker
    body = json.dumps(doc).encode()
    headers = signed_headers(body)
    bad_headers = signed_headers(body, secret="the-wrong-secret-0000")
    settings = Settings.from_env(
        {}, kafka_bootstrap_servers=kafka.bootstrap_servers, webhook_secrets=(SECRET,), topic_prefix=prefix
    )
    with TestClient(create_app(settings)) as client:
        ok = client.post("/webhooks/unit21", content=body, headers=headers)
        refused = client.post("/webhooks/unit21", content=body, headers=bad_headers)
    assert (ok.status_code, refused.status_code) == (200, 401)

    parsed = lines(json_log)
    webhook = [
        line for line in parsed if line["logger"] == "bridge.app" and line["message"].startswith("webhook")
    ]
    assert len(webhook) == 2
    accepted, rejected = webhook
    [record] = read_topic(kafka.bootstrap_servers, prefix + "alert", 1)
    assert accepted["level"] == "INFO"
    assert accepted["message"] == "webhook answered 200"
    assert accepted["event_id"] == ok.json()["event_id"] == record.headers["event_id"].decode()
    assert accepted["action"] == "ALERT_CREATED"
    assert accepted["topic"] == prefix + "alert"
    assert (accepted["partition"], accepted["offset"]) == (record.partition, record.offset)
    assert accepted["status"] == 200
    assert accepted["outcome"] == "published"
    assert isinstance(accepted["latency_ms"], float)
    assert accepted["ts"].endswith("+00:00")
    assert rejected["status"] == 401
    assert (rejected["error"], rejected["cause"]) == ("invalid_signature", "no_matching_signature")

    everything = json_log.getvalue()
    for forbidden in (
        marker,
        SECRET,
        "the-wrong-secret-0000",
        headers["Unit21-Signature"],
        bad_headers["Unit21-Signature"],
    ):
        assert forbidden not in everything


def test_librdkafka_errors_arrive_as_json_lines(prefix: str, json_log: io.StringIO) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings.from_env(
        {}, kafka_bootstrap_servers=dead, webhook_secrets=(SECRET,), topic_prefix=prefix
    )
    with TestClient(create_app(settings)):
        pass
    kafka_lines = [line for line in lines(json_log) if line.get("kafka_error")]
    assert kafka_lines, json_log.getvalue()
    assert kafka_lines[0]["logger"] == "bridge.publisher"
    assert kafka_lines[0]["kafka_error"] in {"_TRANSPORT", "_ALL_BROKERS_DOWN"}
    assert kafka_lines[0]["fatal"] is False
