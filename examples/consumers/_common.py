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
    watermarks = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10) for tp in partitions}
    # A partition emptied by retention has high == low: nothing to wait for there.
    ends = {partition: high for partition, (low, high) in watermarks.items() if high > low}
    consumer.assign(partitions)
    deadline = time.monotonic() + timeout
    while ends and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            raise SystemExit(f"kafka error: {msg.error()}")
        partition, offset = msg.partition() or 0, msg.offset() or 0
        if offset + 1 >= ends.get(partition, 0):
            ends.pop(partition, None)
        yield msg


def header_pairs(msg: Message) -> list[tuple[str, str | bytes | None]]:
    headers = msg.headers() or []
    return list(headers.items()) if isinstance(headers, dict) else list(headers)


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
        "headers": {k: v.decode("utf-8", "replace") for k, v in header_pairs(msg) if isinstance(v, bytes)},
        "schema": schema_label,
        "value": record,
    }
    emit(json.dumps(line, default=default, ensure_ascii=False))
