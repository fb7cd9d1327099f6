"""Create the bridge's topics (idempotently) with an AdminClient; read a topic to its end."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition
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
    client_config: Mapping[str, Any], topics: str | Sequence[str], purpose: str, start: int
) -> tuple[Consumer, dict[tuple[str, int], tuple[int, int]]]:
    """A consumer assigned to every partition of `topics` from offset `start` (no group, nothing
    committed), and each (topic, partition)'s (low, high) watermarks when it was assigned (a
    lower bound on some brokers: see END_OF_BATCH_GRACE_SECONDS).

    Raises LookupError when a topic does not exist; the caller closes the consumer."""
    names = [topics] if isinstance(topics, str) else list(topics)
    consumer = Consumer(
        {
            **client_config,
            "group.id": f"unit21-bridge-{purpose}-{secrets.token_hex(4)}",
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(timeout=10).topics
        partitions: list[TopicPartition] = []
        for name in names:
            info = metadata.get(name)
            if info is None or info.error is not None or not info.partitions:
                raise LookupError(f"topic {name} does not exist")
            partitions += [TopicPartition(name, p, start) for p in sorted(info.partitions)]
        watermarks = {
            (tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=10) for tp in partitions
        }
        consumer.assign(partitions)
    except BaseException:
        consumer.close()
        raise
    return consumer, watermarks


def read_to_end(
    client_config: Mapping[str, Any], topics: str | Sequence[str], purpose: str, *, timeout: float = 60.0
) -> Iterator[Message]:
    """Every record of `topics`, from the beginning to their end as of the call: the one loop
    that `tail`, `dlq replay` and the tests read with.

    A partition is to be read when its high watermark is above its low one (one emptied by
    retention has high == low and is skipped); once each is read to its watermark, reading goes
    on until no record arrived for END_OF_BATCH_GRACE_SECONDS. Raises LookupError when a topic
    does not exist, TimeoutError when they cannot be read within `timeout`, KafkaException on a
    consumer error.
    """
    consumer, watermarks = assigned_consumer(client_config, topics, purpose, OFFSET_BEGINNING)
    try:
        ends = {place: high for place, (low, high) in watermarks.items() if high > low}
        deadline = time.monotonic() + timeout
        last_read: float | None = None
        while ends or (last_read is not None and time.monotonic() - last_read < END_OF_BATCH_GRACE_SECONDS):
            if time.monotonic() > deadline:
                raise TimeoutError(f"partitions {sorted(ends)} not read to the end in {timeout} s")
            msg = consumer.poll(0.5 if ends else 0.1)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(error)
            last_read = time.monotonic()
            place = (msg.topic() or "", msg.partition() or 0)
            if (msg.offset() or 0) + 1 >= ends.get(place, 0):
                ends.pop(place, None)
            yield msg
    finally:
        consumer.close()
