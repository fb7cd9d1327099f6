"""Delivery semantics on a real broker: dedup, the spool's byte-identical records, readiness."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest
from starlette.testclient import TestClient

from bridge.contract.parsing import event_id, parse
from bridge.delivery import Drainer, Spool
from bridge.delivery.embedded import free_port
from bridge.delivery.publisher import Publisher, PublishError, producer_config
from bridge.ingress.app import Runtime, create_app
from bridge.ops.metrics import Metrics
from bridge.settings import Settings
from tests.integration.conftest import FaultyKafka
from tests.scrape import parse_metrics, total, value
from tests.support import (
    EXAMPLES,
    SECRET,
    KafkaCluster,
    read_topic,
    signed_headers,
    topic_counts,
    wait_until,
)

PATH = "/webhooks/unit21"
BODY = (EXAMPLES / "alert_created.json").read_bytes()


def post(client: TestClient, body: bytes = BODY, **kw: Any) -> httpx2.Response:
    return client.post(PATH, content=body, headers=signed_headers(body, **kw))


def test_the_same_body_posted_three_times_is_one_record(
    client: TestClient, kafka: KafkaCluster, prefix: str
) -> None:
    now = int(time.time())
    answers = [post(client, timestamp=now + i) for i in range(3)]  # Unit21's retries: new signature
    assert [a.status_code for a in answers] == [200, 200, 200]
    first = answers[0].json()
    assert "duplicate" not in first
    assert [a.json() for a in answers[1:]] == [{**first, "duplicate": True}] * 2
    assert value(parse_metrics(client.get("/metrics").text), "unit21_bridge_dedup_hits_total") == 2
    # No wait: a 200 is an acknowledged record, so the count is final once the answers are in.
    assert topic_counts(kafka.bootstrap_servers, [f"{prefix}alert"])[f"{prefix}alert"] == 1


def test_concurrent_copies_of_one_webhook_are_one_record(
    client: TestClient, kafka: KafkaCluster, prefix: str
) -> None:
    body = BODY.replace(b"11532778", b"11532779")
    answers: list[httpx2.Response] = []
    threads = [threading.Thread(target=lambda: answers.append(post(client, body))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(a.status_code for a in answers) == [200, 200, 200]
    assert sum(1 for a in answers if a.json().get("duplicate")) == 2
    assert topic_counts(kafka.bootstrap_servers, [f"{prefix}alert"])[f"{prefix}alert"] == 1


def test_readiness_reports_the_spool(client: TestClient) -> None:
    detail = client.get("/readyz").json()["detail"]
    assert detail["spool"]["enabled"] is True
    assert detail["spool"]["depth"] == 0 and detail["spool"]["bytes"] == 0
    assert detail["spool"]["oldest_age_seconds"] == 0


def test_a_spooled_record_is_byte_identical_to_a_direct_one(
    kafka: KafkaCluster, prefix: str, settings: Settings, tmp_path: Path
) -> None:
    builder = Runtime.from_settings(settings).builder
    direct_body = BODY.replace(b"11532778", b"1")
    spooled_body = BODY.replace(b"11532778", b"2")
    messages = [
        builder.build(
            b, parse(b), event_id=event_id(b), received_at_ms=1_700_000_000_000, signature_timestamp=1
        )
        for b in (direct_body, spooled_body)
    ]

    async def scenario() -> None:
        publisher = Publisher(producer_config(settings), delivery_timeout=5)
        publisher.start()
        try:
            direct = messages[0]
            await publisher.publish(direct.topic, direct.key, direct.value, direct.headers)
            spool = Spool(tmp_path / "spool", 1 << 20)
            message = messages[1]
            await spool.append(message.topic, message.key, message.value, message.headers, message.event_id)
            drainer = Drainer(spool, publisher).start()
            for _ in range(200):
                if not spool.depth():
                    break
                await asyncio.sleep(0.05)
            await drainer.stop(grace=2)
            assert spool.depth() == 0
            await spool.close()
        finally:
            publisher.close(5)

    asyncio.run(asyncio.wait_for(scenario(), 60))
    records = read_topic(kafka.bootstrap_servers, f"{prefix}alert", 2)
    by_id = {r.headers["event_id"].decode(): r for r in records}
    for message in messages:
        record = by_id[message.event_id]
        assert record.topic == message.topic
        assert record.key == message.key
        assert record.value == message.value
        assert list(record.headers.items()) == message.headers


def test_unreachable_kafka_is_spooled_then_delivered_by_the_next_process(
    cuttable: FaultyKafka, settings: Settings, tmp_path: Path
) -> None:
    prefix = cuttable.topics()
    spool_dir = tmp_path / "shared-spool"
    offline = settings.model_copy(
        update={
            "kafka_bootstrap_servers": cuttable.bootstrap,
            "topic_prefix": prefix,
            "delivery_timeout_seconds": 0.5,
            "readiness_cache_seconds": 0,
            "spool_dir": spool_dir,
        }
    )
    with TestClient(create_app(offline)) as client:
        cuttable.proxy.cut()  # Kafka goes away from a bridge that was connected
        started = time.monotonic()
        answer = post(client)
        elapsed = time.monotonic() - started
        ready = client.get("/readyz")
        metrics = parse_metrics(client.get("/metrics").text)
    cuttable.proxy.restore()
    assert answer.status_code == 202, answer.text
    assert answer.json() == {
        "event_id": event_id(BODY),
        "topic": f"{prefix}alert",
        "spooled": True,
        "outcome": "published",
    }
    assert elapsed < 2
    # Kafka is unreachable but the spool has room: stay in the Service, keep taking webhooks.
    assert ready.status_code == 200, ready.text
    assert ready.json()["detail"]["kafka"].startswith("unreachable")
    assert ready.json()["detail"]["spool"]["depth"] == 1
    assert total(metrics, "unit21_bridge_spooled_total") == 1  # reason: timeout or kafka_disconnected
    assert value(metrics, "unit21_bridge_spool_messages") == 1
    assert any(p.suffix == ".db" for p in spool_dir.iterdir())

    online = offline.model_copy(update={"spool_dir": spool_dir})
    with TestClient(create_app(online)) as client:
        wait_until(
            lambda: client.get("/readyz").json()["detail"]["spool"]["depth"] == 0,
            30,
            "the next process draining the spool",
        )
    records = read_topic(cuttable.bootstrap, f"{prefix}alert", 1)
    assert [r.headers["event_id"].decode() for r in records] == [event_id(BODY)]
    assert not list(spool_dir.iterdir()), "an empty spool leaves no file behind"


def test_a_bridge_that_never_reached_kafka_is_not_ready_and_spools_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    wrong = settings.model_copy(
        update={
            "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",  # a wrong address: nobody listens
            "readiness_cache_seconds": 0,
            "spool_dir": tmp_path / "spool",
        }
    )
    with TestClient(create_app(wrong)) as client:
        ready = client.get("/readyz")
        answer = post(client)
        metrics = parse_metrics(client.get("/metrics").text)
    assert ready.status_code == 503, ready.text
    assert ready.json()["failing"] == ["kafka"]
    assert ready.json()["detail"]["kafka"] == "never connected"
    assert ready.json()["detail"]["kafka_detail"].startswith("unreachable")
    assert ready.json()["detail"]["spool"]["depth"] == 0  # the spool had room: that is not enough
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "not_ready"
    assert "has not been reachable since the bridge started" in answer.json()["detail"]
    assert answer.headers["retry-after"] == "1"
    assert value(metrics, "unit21_bridge_ready", check="kafka") == 0
    assert value(metrics, "unit21_bridge_kafka_connected") == 0
    assert value(metrics, "unit21_bridge_refusals_total", reason="not_ready") == 1
    assert value(metrics, "unit21_bridge_spooled_total", reason="timeout") == 0
    assert not [p for p in (tmp_path / "spool").iterdir() if p.suffix == ".db"], "an empty spool is removed"


def test_the_concurrency_limit_answers_503_at_the_door(prefix: str, tmp_path: Path) -> None:
    settings = Settings.from_env(
        {},
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
        webhook_secrets=(SECRET,),
        topic_prefix=prefix,
        delivery_timeout_seconds=2.0,
        spool_enabled=False,  # so the first request waits out its deadline
        max_concurrency=1,
    )
    with TestClient(create_app(settings)) as client:
        slow = threading.Thread(target=lambda: post(client))
        slow.start()
        holding(client)
        answer = post(client, BODY.replace(b"11532778", b"3"))
        refused_while_held = slow.is_alive()
        slow.join(timeout=10)
    assert answer.status_code == 503
    assert answer.json()["error"] == "overloaded" and answer.headers["retry-after"] == "1"
    assert refused_while_held, "the refusal waited for the slot instead of answering at the door"


REQUESTS = "unit21_bridge_webhook_requests_total"


def holding(client: TestClient) -> None:
    """Returns once a webhook holds the only slot (BRIDGE_MAX_CONCURRENCY=1)."""
    wait_until(
        lambda: value(parse_metrics(client.get("/metrics").text), "unit21_bridge_webhook_requests_in_flight"),
        10,
        "the first webhook taking the only slot",
    )


def test_refusals_at_the_door_are_logged_once_per_second_and_counted(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.from_env(
        {},
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
        webhook_secrets=(SECRET,),
        topic_prefix=prefix,
        delivery_timeout_seconds=3.0,  # the slow request holds its slot while the 30 are refused
        spool_enabled=False,  # so the first request waits out its deadline
        max_concurrency=1,
    )
    with caplog.at_level(logging.WARNING, logger="bridge.app"), TestClient(create_app(settings)) as client:
        slow_answers: list[int] = []
        slow = threading.Thread(target=lambda: slow_answers.append(post(client).status_code))
        slow.start()
        holding(client)
        statuses = [post(client, BODY.replace(b"11532778", str(n).encode())).status_code for n in range(30)]

        def door() -> list[logging.LogRecord]:
            return [r for r in list(caplog.records) if getattr(r, "error", None) == "overloaded"]

        wait_until(lambda: len(door()) >= 2, 10, "the summary line at the end of the window")
        slow.join(timeout=10)
        metrics = parse_metrics(client.get("/metrics").text)
    assert statuses == [503] * 30
    assert slow_answers == [503]  # the first webhook waited out its deadline: one more 503
    refused = sum(
        v for (name, labels), v in metrics.items() if name == REQUESTS and ("status", "503") in labels
    )
    assert refused == 30 + 1  # counted one by one, whatever the log says
    assert [r.getMessage() for r in door()] == [
        "webhook answered 503",
        "29 more webhook request(s) answered 503 (overloaded) in the last 1.0 s; logged once per window",
    ]
    assert door()[1].refused == 29  # type: ignore[attr-defined]


def test_turning_the_spool_off_is_a_warning(
    prefix: str, kafka: KafkaCluster, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.from_env(
        {},
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        webhook_secrets=(SECRET,),
        topic_prefix=prefix,
        spool_enabled=False,
    )
    with caplog.at_level(logging.WARNING, logger="bridge.app"), TestClient(create_app(settings)) as client:
        detail = client.get("/readyz").json()["detail"]
    assert detail["spool"] == {"enabled": False}
    assert any(
        "BRIDGE_SPOOL_ENABLED=false" in r.message and r.levelno == logging.WARNING for r in caplog.records
    )


class _MetricsThatFailOnce:
    """Fault injection: the first delivery report's bookkeeping raises (as a bug would)."""

    def __init__(self) -> None:
        self.failed = False
        self.producer_queue = self
        self.delivery_failures = self
        self.kafka_connected = self

    def set(self, value: float) -> None:
        pass

    def labels(self, *values: str) -> _MetricsThatFailOnce:
        return self

    def inc(self) -> None:
        pass

    def observe_delivery(self, topic: str, seconds: float, acknowledged: bool, path: str = "request") -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("bookkeeping bug")


def test_a_failing_delivery_callback_neither_hangs_its_request_nor_stops_the_next(
    kafka: KafkaCluster, prefix: str, settings: Settings
) -> None:
    async def scenario() -> tuple[str, float, int]:
        publisher = Publisher(
            producer_config(settings),
            delivery_timeout=0.5,
            metrics=_MetricsThatFailOnce(),  # type: ignore[arg-type]
        )
        publisher.start()
        try:
            started = time.monotonic()
            try:
                await publisher.publish(f"{prefix}alert", b"k1", b"v1", [])
                first = "acknowledged"
            except PublishError as exc:
                first = exc.reason
            waited = time.monotonic() - started
            second = await publisher.publish(f"{prefix}alert", b"k2", b"v2", [])
            return first, waited, second.offset
        finally:
            publisher.close(5)

    first, waited, offset = asyncio.run(asyncio.wait_for(scenario(), 20))
    # The first report's callback raised before completing its request: the safety deadline
    # (delivery timeout + 1 s) answers it; the polling task survives and serves the next one.
    assert (first, offset >= 0) == ("timeout", True)
    assert 1.3 <= waited < 5


def test_a_spooled_record_kafka_refuses_for_good_is_parked_and_delivered_after_a_restart(
    kafka: KafkaCluster, prefix: str, settings: Settings, tmp_path: Path
) -> None:
    builder = Runtime.from_settings(settings).builder
    big_body = orjson.dumps({**orjson.loads(BODY), "unit21_id": 7001, "analyst_notes": "x" * 3000})
    bodies = [BODY.replace(b"11532778", b"7000"), big_body, BODY.replace(b"11532778", b"7002")]
    bodies.append(BODY.replace(b"11532778", b"7003"))
    messages = [
        builder.build(
            b, parse(b), event_id=event_id(b), received_at_ms=1_700_000_000_000, signature_timestamp=1
        )
        for b in bodies
    ]
    spool_dir = tmp_path / "parked-spool"

    async def wait_for_depth(spool: Spool, depth: int) -> float:
        started = time.monotonic()
        for _ in range(750):
            if spool.depth() <= depth:
                break
            await asyncio.sleep(0.02)
        return time.monotonic() - started

    metrics = Metrics()

    async def first_process() -> tuple[float, dict[str, Any]]:
        spool = Spool(spool_dir, 1 << 20)
        for m in messages[:3]:
            await spool.append(m.topic, m.key, m.value, m.headers, m.event_id)
        # This producer's message.max.bytes is below the big record: Kafka refuses it for good.
        publisher = Publisher(
            {**producer_config(settings), "message.max.bytes": 1000}, delivery_timeout=5, metrics=metrics
        )
        publisher.start()
        drainer = Drainer(spool, publisher).start()
        try:
            await wait_for_depth(spool, 1)
            await asyncio.sleep(3)  # retried all along, the refused record would push the backoff to 2-4 s
            late = messages[3]
            await spool.append(late.topic, late.key, late.value, late.headers, late.event_id)
            took = await wait_for_depth(spool, 1)
            detail = spool.detail()
        finally:
            await drainer.stop(grace=2)
            publisher.close(5)
        await spool.close()  # the parked record stays on disk for the next process
        return took, detail

    took, detail = asyncio.run(asyncio.wait_for(first_process(), 60))
    refusals = value(
        parse_metrics(metrics.render().decode()),
        "unit21_bridge_delivery_failures_total",
        reason="too_large",
        path="drain",
    )
    assert refusals == 1  # tried once, then parked: not retried every backoff for 3 s
    assert took < 1.0, f"a record spooled after the refusal waited {took:.2f} s"
    assert (detail["depth"], detail["parked"]) == (1, 1)
    delivered = read_topic(kafka.bootstrap_servers, f"{prefix}alert", 3)
    assert {r.headers["event_id"].decode() for r in delivered} == {messages[i].event_id for i in (0, 2, 3)}

    async def next_process() -> int:
        spool = Spool(spool_dir, 1 << 20)  # adopts the earlier file, parked record included
        publisher = Publisher(producer_config(settings), delivery_timeout=5)
        publisher.start()
        drainer = Drainer(spool, publisher).start()
        try:
            await wait_for_depth(spool, 0)
        finally:
            await drainer.stop(grace=2)
            publisher.close(5)
        depth = spool.depth()
        await spool.close()
        return depth

    assert asyncio.run(asyncio.wait_for(next_process(), 60)) == 0
    records = read_topic(kafka.bootstrap_servers, f"{prefix}alert", 4)
    by_id = {r.headers["event_id"].decode(): r for r in records}
    assert by_id[messages[1].event_id].value == messages[1].value
