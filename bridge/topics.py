"""Create the bridge's topics (idempotently) with an AdminClient; read one with an assigned consumer."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]


def create_topics(
    admin_config: Mapping[str, Any],
    names: Sequence[str],
    *,
    partitions: int = 6,
    replication_factor: int = -1,
    config: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> dict[str, str]:
    """Create missing topics; returns topic -> "created" | "exists". Raises on any other error."""
    admin = AdminClient(dict(admin_config))
    new = [
        NewTopic(
            name, num_partitions=partitions, replication_factor=replication_factor, config=dict(config or {})
        )
        for name in names
    ]
    # Keep `admin` referenced until every future resolved: destroying it early fails them all.
    futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
    result: dict[str, str] = {}
    errors: list[str] = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            result[name] = "created"
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                result[name] = "exists"
            else:
                errors.append(f"{name}: {err.str()}")
    del admin
    if errors:
        raise RuntimeError("could not create topics: " + "; ".join(errors))
    return result


# Some Kafka-compatible brokers (Tansu) answer a partition's high watermark as its newest batch's
# first offset + 1. The rest of that batch comes in the same fetch, so a reader that stops at the
# watermarks reads on until nothing has arrived for this long.
END_OF_BATCH_GRACE_SECONDS = 0.5


def assigned_consumer(
    client_config: Mapping[str, Any], topic: str, purpose: str, start: int
) -> tuple[Consumer, dict[int, tuple[int, int]]]:
    """A consumer assigned to every partition of `topic` from offset `start` (no group, nothing
    committed), and each partition's (low, high) watermarks when it was assigned (a lower
    bound on some brokers: see END_OF_BATCH_GRACE_SECONDS).

    Raises LookupError when the topic does not exist; the caller closes the consumer."""
    consumer = Consumer(
        {
            **client_config,
            "group.id": f"unit21-bridge-{purpose}-{secrets.token_hex(4)}",
            "enable.auto.commit": False,
        }
    )
    try:
        info = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise LookupError(f"topic {topic} does not exist")
        partitions = [TopicPartition(topic, p, start) for p in sorted(info.partitions)]
        watermarks = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10) for tp in partitions}
        consumer.assign(partitions)
    except BaseException:
        consumer.close()
        raise
    return consumer, watermarks
