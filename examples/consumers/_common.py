"""Shared by the two example consumers: read a topic's partitions from the beginning to the end."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition


def read_to_end(consumer: Consumer, topic: str, timeout: float) -> Iterator[Message]:
    """Every record now in the topic (assign, not subscribe: no consumer-group rebalance to wait for).

    A long-running job would `subscribe([topic])` with its own group.id and commit offsets instead.
    """
    metadata = consumer.list_topics(topic, timeout=10)
    if topic not in metadata.topics or metadata.topics[topic].error is not None:
        raise SystemExit(f"topic {topic} does not exist")
    partitions = [
        TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(metadata.topics[topic].partitions)
    ]
    ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
    remaining = {p for p, end in ends.items() if end > 0}
    consumer.assign(partitions)
    deadline = time.monotonic() + timeout
    while remaining and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            raise SystemExit(f"kafka error: {msg.error()}")
        if msg.offset() + 1 >= ends[msg.partition()]:
            remaining.discard(msg.partition())
        yield msg


def print_record(
    msg: Message, record: dict[str, Any], schema_label: str, emit: Callable[[str], None]
) -> None:
    def default(value: object) -> object:
        if isinstance(value, datetime):  # timestamp-millis fields decode to aware datetimes
            return value.isoformat()
        raise TypeError(type(value).__name__)

    line = {
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "key": (msg.key() or b"").decode("utf-8", "replace"),
        "headers": {k: v.decode("utf-8", "replace") for k, v in (msg.headers() or [])},
        "schema": schema_label,
        "value": record,
    }
    emit(json.dumps(line, default=default, ensure_ascii=False))
