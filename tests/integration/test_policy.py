"""The delivery policy without HTTP: `DeliveryPolicy.deliver(message)` against the real
embedded broker, its outcome checked against what Kafka and the spool hold."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import orjson

from bridge.contract.parsing import event_id, parse
from bridge.contract.records import OutgoingMessage
from bridge.delivery import (
    DeliveryPolicy,
    Outcome,
    OutcomeKind,
    Publisher,
    RecentDeliveries,
    Spool,
    producer_config,
)
from bridge.errors import ErrorCode
from bridge.ingress import Runtime
from bridge.settings import Settings
from tests.integration.conftest import FaultyKafka
from tests.support import EXAMPLES, KafkaCluster, read_topic, topic_counts

BODY = (EXAMPLES / "alert_created.json").read_bytes()
T = TypeVar("T")


def message_of(settings: Settings, body: bytes = BODY) -> OutgoingMessage:
    builder = Runtime.from_settings(settings).builder
    return builder.build(
        body,
        parse(body),
        event_id=event_id(body),
        received_at_ms=int(time.time() * 1000),
        signature_timestamp=None,
    )


def with_policy(
    settings: Settings, spool_dir: Path, scenario: Callable[[DeliveryPolicy, Publisher], Awaitable[T]]
) -> T:
    """Run `scenario` with a started publisher, a spool and a policy over them; all closed after."""
    runtime = Runtime.from_settings(settings)

    async def run() -> T:
        publisher = Publisher(
            producer_config(settings),
            delivery_timeout=settings.delivery_timeout_seconds,
            metrics=runtime.metrics,
        )
        publisher.start()
        spool = Spool(spool_dir, settings.spool_max_bytes)
        policy = DeliveryPolicy(
            publisher,
            spool,
            RecentDeliveries(settings.dedup_window_seconds, settings.dedup_max_entries),
            runtime.metrics,
            runtime.tracing,
        )
        try:
            await publisher.ready(runtime.topics, 0)  # connected first: a cut is then an outage
            return await scenario(policy, publisher)
        finally:
            await asyncio.to_thread(publisher.close, 5)
            await spool.close()

    return asyncio.run(asyncio.wait_for(run(), 60))


def test_acknowledged_carries_where_kafka_put_the_record_and_a_repeat_is_a_duplicate(
    settings: Settings, kafka: KafkaCluster, prefix: str, tmp_path: Path
) -> None:
    message = message_of(settings)

    async def scenario(policy: DeliveryPolicy, publisher: Publisher) -> tuple[Outcome, Outcome, int]:
        first = await policy.deliver(message)
        again = await policy.deliver(message)
        assert policy.spool is not None
        return first, again, policy.spool.depth()

    first, again, depth = with_policy(settings, tmp_path / "spool", scenario)
    [record] = read_topic(kafka.bootstrap_servers, f"{prefix}alert", 1)
    assert first.kind is OutcomeKind.ACKNOWLEDGED and first.delivered and first.error is None
    assert first.delivery is not None
    assert (first.delivery.topic, first.delivery.partition, first.delivery.offset) == (
        f"{prefix}alert",
        record.partition,
        record.offset,
    )
    assert record.headers["event_id"].decode() == message.event_id
    assert first.receipt == {
        "event_id": message.event_id,
        "topic": f"{prefix}alert",
        "partition": record.partition,
        "offset": record.offset,
        "outcome": "published",
    }
    assert again.kind is OutcomeKind.DUPLICATE and again.receipt == first.receipt
    assert depth == 0
    assert topic_counts(kafka.bootstrap_servers, [f"{prefix}alert"]) == {f"{prefix}alert": 1}


def test_spooled_while_kafka_is_cut(cuttable: FaultyKafka, tmp_path: Path) -> None:
    prefix = cuttable.topics()
    settings = Settings.from_env(
        {},
        kafka_bootstrap_servers=cuttable.bootstrap,
        topic_prefix=prefix,
        delivery_timeout_seconds=0.5,
        spool_dir=tmp_path / "spool",
    )
    message = message_of(settings)

    async def scenario(policy: DeliveryPolicy, publisher: Publisher) -> tuple[Outcome, int, bool]:
        assert publisher.ever_connected
        cuttable.proxy.cut()
        outcome = await policy.deliver(message)
        assert policy.spool is not None
        return outcome, policy.spool.depth(), policy.spool.holds(message.topic, message.key)

    outcome, depth, holds = with_policy(settings, tmp_path / "spool", scenario)
    assert outcome.kind is OutcomeKind.SPOOLED and outcome.delivered
    assert outcome.spool_reason in ("timeout", "broker_error", "kafka_disconnected")
    assert outcome.receipt == {
        "event_id": message.event_id,
        "topic": f"{prefix}alert",
        "spooled": True,
        "outcome": "published",
    }
    assert (depth, holds) == (1, True)


def test_a_record_kafka_refuses_for_good_is_refused_and_not_spooled(
    kafka: KafkaCluster, prefix: str, tmp_path: Path
) -> None:
    settings = Settings.from_env(
        {"KAFKA_MESSAGE_MAX_BYTES": "1000"},
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        topic_prefix=prefix,
        spool_dir=tmp_path / "spool",
    )
    big = orjson.dumps({**orjson.loads(BODY), "analyst_notes": "x" * 3000})
    message = message_of(settings, big)

    async def scenario(policy: DeliveryPolicy, publisher: Publisher) -> tuple[Outcome, int]:
        outcome = await policy.deliver(message)
        assert policy.spool is not None
        return outcome, policy.spool.depth()

    outcome, depth = with_policy(settings, tmp_path / "spool", scenario)
    assert outcome.kind is OutcomeKind.REFUSED and not outcome.delivered
    assert (outcome.error, outcome.cause) == (ErrorCode.RECORD_TOO_LARGE, "too_large")
    assert "message.max.bytes" in outcome.detail and outcome.receipt is None
    assert depth == 0
    assert topic_counts(kafka.bootstrap_servers, [f"{prefix}alert"]) == {f"{prefix}alert": 0}


def test_without_a_producer_the_policy_refuses_not_ready_and_counts_it(settings: Settings) -> None:
    runtime = Runtime.from_settings(settings)
    policy = DeliveryPolicy(None, None, runtime.recent, runtime.metrics, runtime.tracing)
    outcome = asyncio.run(policy.deliver(message_of(settings)))
    assert (outcome.kind, outcome.error) == (OutcomeKind.REFUSED, ErrorCode.NOT_READY)
    rendered = runtime.metrics.render().decode()
    assert 'unit21_bridge_delivery_failures_total{path="request",reason="not_ready"} 1.0' in rendered
