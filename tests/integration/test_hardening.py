"""Issue 12, in process: unforeseen errors become JSON 500s, no redirect from client input, and
dead-letter and unrecognized records stay the body plus a bounded overhead."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from bridge.contract.codec import SingleObjectCodec
from bridge.contract.parsing import event_id
from bridge.contract.records import MessageBuilder, OutgoingMessage
from bridge.contract.schemas import SchemaSet
from bridge.delivery.publisher import ReadyState
from bridge.ingress.app import Runtime, create_app
from bridge.settings import Settings
from tests.scrape import parse_metrics, value
from tests.support import EXAMPLES, SECRET, KafkaCluster, read_topic, signed_headers

BODY = (EXAMPLES / "alert_created.json").read_bytes()
ALERT: dict[str, Any] = orjson.loads(BODY)
SCHEMAS = SchemaSet.load()
CODEC = SingleObjectCodec(SCHEMAS)
REQUESTS = "unit21_bridge_webhook_requests_total"


def make_settings(kafka: KafkaCluster, prefix: str, tmp_path: Path) -> Settings:
    return Settings.from_env(
        {},
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        webhook_secrets=(SECRET,),
        topic_prefix=prefix,
        spool_dir=tmp_path / "spool",
    )


class FailingBuilder(MessageBuilder):
    """A builder with a bug: what the catch-all is for."""

    def build(self, *args: Any, **kwargs: Any) -> OutgoingMessage:
        raise KeyError("a bug in the builder")


def test_an_unforeseen_error_is_a_json_500_logged_and_counted(
    kafka: KafkaCluster, prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(kafka, prefix, tmp_path)
    runtime = Runtime(settings, FailingBuilder(SCHEMAS, SingleObjectCodec(SCHEMAS), prefix))

    async def broken_check() -> ReadyState:
        raise RuntimeError("a bug in a readiness check")

    runtime.readiness["broken"] = broken_check
    with caplog.at_level(logging.INFO), TestClient(create_app(settings, runtime)) as client:
        answer = client.post("/webhooks/unit21", content=BODY, headers=signed_headers(BODY))
        ready = client.get("/readyz")
        metrics = parse_metrics(client.get("/metrics").text)
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"] == "internal_error"
    assert "Traceback" not in answer.text and "builder" not in answer.text
    assert ready.status_code == 500 and ready.json()["error"] == "internal_error"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "bridge.app"]
    assert len(errors) == 2
    assert errors[0].exc_info is not None and "a bug in the builder" in str(errors[0].exc_info[1])
    assert errors[1].exc_info is not None and "a bug in a readiness check" in str(errors[1].exc_info[1])
    assert value(metrics, REQUESTS, action="none", status="500") == 2


def test_a_trailing_slash_is_a_json_404_not_a_redirect(
    kafka: KafkaCluster, prefix: str, tmp_path: Path
) -> None:
    with TestClient(create_app(make_settings(kafka, prefix, tmp_path))) as client:
        answer = client.post(
            "/webhooks/unit21/",
            content=BODY,
            headers={**signed_headers(BODY), "Host": "evil.example"},
            follow_redirects=False,
        )
    assert answer.status_code == 404
    assert "location" not in answer.headers
    assert answer.json()["error"] == "not_found"


def _wrong_entities(count: int) -> dict[str, Any]:
    return {**ALERT, "entities": [1] * count}


def test_dead_letters_and_unrecognized_bodies_always_fit(
    kafka: KafkaCluster, prefix: str, tmp_path: Path
) -> None:
    many_errors = orjson.dumps(_wrong_entities(100_000))  # 200 KB
    unknown = orjson.dumps({"object_type": "MYSTERY", "change": "X" * 300_000, "note": "kept once"})
    padded = _wrong_entities(5000)
    padded["description"] = "z" * (850_000 - len(orjson.dumps(padded)))
    big_dead_letter = orjson.dumps(padded)  # 850 KB, and 57 KB of ordinary headers below
    headers = {f"X-Forwarded-Extra-{i}": "v" * 1900 for i in range(30)}
    with TestClient(create_app(make_settings(kafka, prefix, tmp_path))) as client:
        answers = [
            client.post("/webhooks/unit21", content=body, headers={**extra, **signed_headers(body)})
            for body, extra in ((many_errors, {}), (unknown, {}), (big_dead_letter, headers))
        ]
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text[:300] for a in answers]
    assert [a.json()["outcome"] for a in answers] == ["dead_lettered", "unrecognized", "dead_lettered"]
    assert len(answers[0].content) < 10_000
    dlq = {r.headers["event_id"].decode(): r for r in read_topic(kafka.bootstrap_servers, f"{prefix}dlq", 2)}
    [unrecognized] = read_topic(kafka.bootstrap_servers, f"{prefix}unrecognized", 1)
    for body, record in (
        (many_errors, dlq[event_id(many_errors)]),
        (unknown, unrecognized),
        (big_dead_letter, dlq[event_id(big_dead_letter)]),
    ):
        size = (
            len(record.value)
            + len(record.key or b"")
            + sum(len(k) + len(v) for k, v in record.headers.items())
        )
        assert size < len(body) + 40_000, (len(body), size)
    first = CODEC.decode(dlq[event_id(many_errors)].value)[1]
    assert len(first["errors"]) == 21
    assert first["errors"][-1]["reason"] == "99980 more issue(s) not listed (100000 in all)"
    assert first["payload"].encode() == many_errors
    assert CODEC.decode(unrecognized.value)[1]["payload"].encode() == unknown
    third = CODEC.decode(dlq[event_id(big_dead_letter)].value)[1]
    assert third["payload"].encode() == big_dead_letter
    assert third["headers"][":bridge-headers-cut"].startswith("22 header(s) not kept")
