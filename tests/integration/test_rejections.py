"""Bad requests get a precise 4xx with a JSON reason, and nothing reaches Kafka."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from bridge.delivery.embedded import free_port
from bridge.ingress.app import create_app
from bridge.settings import Settings
from tests.integration.conftest import FaultyKafka
from tests.support import EXAMPLES, SECRET, KafkaCluster, all_topics, read_topic, signed_headers, topic_counts

BODY = (EXAMPLES / "alert_created.json").read_bytes()
PATH = "/webhooks/unit21"


def sig(body: bytes = BODY, **kw: object) -> dict[str, str]:
    return signed_headers(body, **kw)  # type: ignore[arg-type]


def cases() -> list[tuple[str, dict[str, str], bytes, int, str | None]]:
    """Built when the test runs: a signature made at collection time goes stale after 300 s."""
    return [
        ("GET", {}, b"", 405, "method_not_allowed"),
        ("PUT", sig(), BODY, 405, "method_not_allowed"),
        ("POST", sig() | {"Content-Type": "text/plain"}, BODY, 415, "unsupported_media_type"),
        ("POST", {"Unit21-Signature": sig()["Unit21-Signature"]}, BODY, 415, "unsupported_media_type"),
        ("POST", {"Content-Type": "application/json"}, BODY, 401, "invalid_signature"),
        (
            "POST",
            {"Content-Type": "application/json", "Unit21-Signature": "nonsense"},
            BODY,
            401,
            "invalid_signature",
        ),
        ("POST", sig(timestamp=int(time.time()) - 3600), BODY, 401, "invalid_signature"),
        ("POST", sig(secret="some-other-secret"), BODY, 401, "invalid_signature"),
        ("POST", sig(b"{}"), BODY, 401, "invalid_signature"),
        ("POST", sig(b"not json"), b"not json", 400, "invalid_json"),
        ("POST", sig(b"[1,2,3]"), b"[1,2,3]", 400, "invalid_json"),
        ("POST", sig(b'{"a":"\xff"}'), b'{"a":"\xff"}', 400, "invalid_json"),
        ("POST", sig(b"x" * 5000), b"x" * 5000, 413, "payload_too_large"),
        ("POST", sig() | {"Content-Type": "application/json; charset=utf-8"}, BODY, 200, None),
    ]


def test_every_bad_request_is_rejected_precisely_and_nothing_is_published(
    client: TestClient, prefix: str, kafka: KafkaCluster
) -> None:
    for method, headers, body, status, error in cases():
        answer = client.request(method, PATH, content=body, headers=headers)
        assert answer.status_code == status, (method, headers, answer.text)
        if error is None:
            continue
        payload = answer.json()
        assert payload["error"] == error
        assert payload["detail"]
    counts = topic_counts(kafka.bootstrap_servers, all_topics(prefix))
    assert counts == {t: (1 if t.endswith("alert") else 0) for t in all_topics(prefix)}


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (lambda: {"Content-Type": "application/json"}, "missing_header"),
        (lambda: {"Content-Type": "application/json", "Unit21-Signature": "t=1"}, "malformed_header"),
        (lambda: sig(timestamp=1), "stale_timestamp"),
        (lambda: sig(secret="wrong-secret"), "no_matching_signature"),
    ],
)
def test_401_names_the_reason(client: TestClient, headers: Callable[[], dict[str, str]], reason: str) -> None:
    answer = client.post(PATH, content=BODY, headers=headers())
    assert answer.status_code == 401
    assert answer.json()["reason"] == reason


def test_method_is_checked_before_anything_else(client: TestClient) -> None:
    answer = client.request("DELETE", PATH, headers={"Content-Type": "text/plain"})
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"


def test_streamed_body_over_the_limit_is_cut_off(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    answer = client.post(PATH, content=chunks(), headers=sig())
    assert "content-length" not in {k.lower() for k in answer.request.headers}
    assert answer.status_code == 413


def test_unauthenticated_caller_learns_only_about_content_type(client: TestClient) -> None:
    answer = client.post(PATH, content=b"not json", headers={"Content-Type": "application/json"})
    assert answer.status_code == 401  # not 400: the body is not looked at before the signature


def test_unknown_path_is_json_404(client: TestClient) -> None:
    answer = client.get("/nope")
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"


def test_unsigned_requests_only_when_allowed(kafka: KafkaCluster, prefix: str, tmp_path: Path) -> None:
    settings = Settings.from_env(
        {},
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        topic_prefix=prefix,
        allow_unsigned=True,
        spool_dir=tmp_path,
    )
    with TestClient(create_app(settings)) as client:
        answer = client.post(PATH, content=BODY, headers={"Content-Type": "application/json"})
    assert answer.status_code == 200


def test_no_secrets_and_no_permission_rejects_everything(
    kafka: KafkaCluster, prefix: str, tmp_path: Path
) -> None:
    settings = Settings.from_env(
        {}, kafka_bootstrap_servers=kafka.bootstrap_servers, topic_prefix=prefix, spool_dir=tmp_path
    )
    with TestClient(create_app(settings)) as client:
        unsigned = client.post(PATH, content=BODY, headers={"Content-Type": "application/json"})
        signed = client.post(PATH, content=BODY, headers=sig())
    assert (unsigned.status_code, signed.status_code) == (401, 401)
    assert signed.json()["reason"] == "no_matching_signature"
    assert sum(topic_counts(kafka.bootstrap_servers, all_topics(prefix)).values()) == 0


def test_broker_unreachable_without_spool_answers_503_with_retry_after(prefix: str) -> None:
    # With the spool (the default) the answer is 202: tests/integration/test_delivery.py.
    settings = Settings.from_env(
        {},
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
        webhook_secrets=(SECRET,),
        topic_prefix=prefix,
        delivery_timeout_seconds=0.5,
        spool_enabled=False,
    )
    with TestClient(create_app(settings)) as client:
        started = time.monotonic()
        answer = client.post(PATH, content=BODY, headers=sig())
        elapsed = time.monotonic() - started
        ready = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["error"] == "kafka_unavailable"
    assert elapsed < 3
    assert ready.status_code == 503
    assert ready.json()["ready"] is False


def test_health_and_readiness(client: TestClient, kafka: KafkaCluster) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["ready"] is True


def test_not_ready_when_topics_are_missing(kafka: KafkaCluster, tmp_path: Path) -> None:
    settings = Settings.from_env(
        {},
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        webhook_secrets=(SECRET,),
        topic_prefix="absent.",
        spool_dir=tmp_path,
    )
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "absent.alert" in ready.json()["detail"]["missing_topics"]


def test_a_record_kafka_can_never_take_is_refused_with_413_not_spooled(
    kafka: KafkaCluster, prefix: str, tmp_path: Path
) -> None:
    # message.max.bytes=1000 (librdkafka's minimum): produce() refuses the big record for good.
    # Spooled, it would have been answered 202 and retried forever.
    settings = Settings.from_env(
        {"KAFKA_MESSAGE_MAX_BYTES": "1000"},
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        webhook_secrets=(SECRET,),
        topic_prefix=prefix,
        spool_dir=tmp_path / "spool",
    )
    big = orjson.dumps({**orjson.loads(BODY), "analyst_notes": "x" * 3000})  # kept in `extras`
    with TestClient(create_app(settings)) as client:
        refused = client.post(PATH, content=big, headers=sig(big))
        accepted = client.post(PATH, content=BODY, headers=sig())
        spool = client.get("/readyz").json()["detail"]["spool"]
    assert refused.status_code == 413, refused.text
    assert refused.json()["error"] == "record_too_large"
    assert "message.max.bytes" in refused.json()["detail"]
    assert accepted.status_code == 200, accepted.text
    assert spool["depth"] == 0
    records = read_topic(kafka.bootstrap_servers, f"{prefix}alert", 1)
    assert [r.headers["event_id"].decode() for r in records] == [accepted.json()["event_id"]]
    assert refused.json()["event_id"] != accepted.json()["event_id"]


def test_a_record_too_large_for_kafka_is_refused_even_while_kafka_is_away(
    cuttable: FaultyKafka, tmp_path: Path
) -> None:
    # Kafka unreachable, spool on: a record that fits is spooled (202); one over message.max.bytes
    # would be spooled and then refused on every drain, so it is answered 413 at once.
    settings = Settings.from_env(
        {"KAFKA_MESSAGE_MAX_BYTES": "1000"},
        kafka_bootstrap_servers=cuttable.bootstrap,
        webhook_secrets=(SECRET,),
        topic_prefix=cuttable.topics(),
        delivery_timeout_seconds=0.5,
        spool_dir=tmp_path / "spool",
    )
    big = orjson.dumps({**orjson.loads(BODY), "analyst_notes": "x" * 3000})
    with TestClient(create_app(settings)) as client:
        cuttable.proxy.cut()  # after the bridge connected: an outage, not a wrong address
        spooled = client.post(PATH, content=BODY, headers=sig())
        refused = client.post(PATH, content=big, headers=sig(big))
        spool = client.get("/readyz").json()["detail"]["spool"]
    assert spooled.status_code == 202, spooled.text
    assert refused.status_code == 413, refused.text
    assert refused.json()["error"] == "record_too_large"
    assert spool["depth"] == 1
