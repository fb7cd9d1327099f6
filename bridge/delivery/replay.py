"""`unit21-bridge dlq replay`: run dead-lettered and unrecognized webhooks through the current code.

After a schema fix (or once the bridge learns a new object type), webhooks that were kept
whole in `<prefix>dlq` or `<prefix>unrecognized` may now validate. Replay reads the topic
from the beginning up to its end at start (with `assign()`: no consumer group, nothing is
committed, so a replay can be repeated), rebuilds each stored body with `MessageBuilder.build`
under its original `event_id`, `received_at` and signature time, and — only with `--apply` —
publishes the ones that now validate to their topics, with the bridge's idempotent producer
settings. The DLQ itself is never changed (Kafka is append-only): replaying twice publishes
twice, under the same `event_id`, which consumers already dedupe on (docs/delivery.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from bridge.contract import routes
from bridge.contract.codec import DecodeError, SingleObjectCodec
from bridge.contract.parsing import PayloadError, parse
from bridge.contract.records import MessageBuilder, OutgoingMessage
from bridge.contract.schemas import SchemaSet
from bridge.delivery.publisher import producer_config
from bridge.delivery.topics import read_to_end
from bridge.settings import Settings

# A replay is not answering an HTTP request: give the broker time rather than fail fast.
REPLAY_DELIVERY_TIMEOUT_MS = 60_000


@dataclass
class ReplaySummary:
    topic: str
    applied: bool
    read: int = 0
    replayable: Counter[str] = field(default_factory=Counter)  # target topic -> records that now validate
    published: int = 0
    publish_failures: Counter[str] = field(default_factory=Counter)  # Kafka error -> count
    still_failing: int = 0
    reasons: Counter[str] = field(default_factory=Counter)  # why they still fail -> records

    def render(self, top: int = 10) -> str:
        mode = "applied" if self.applied else "dry run: nothing published; add --apply to publish"
        verb = "published" if self.applied else "would publish"
        total = sum(self.replayable.values())
        lines = [f"replay of {self.topic} ({mode})", f"  read            {self.read}"]
        by_topic = ", ".join(f"{topic} {n}" for topic, n in self.replayable.most_common())
        lines.append(
            f"  {verb:<15} {self.published if self.applied else total}" + (f"  ({by_topic})" if total else "")
        )
        if self.publish_failures:
            lines.append(f"  not published   {sum(self.publish_failures.values())}")
            lines += [f"    {n:>6}  {reason}" for reason, n in self.publish_failures.most_common(top)]
        lines.append(f"  still failing   {self.still_failing}")
        lines += [f"    {n:>6}  {reason}" for reason, n in self.reasons.most_common(top)]
        if len(self.reasons) > top:
            lines.append(f"    ... and {len(self.reasons) - top} more reason(s)")
        return "\n".join(lines)


def read_values(client_config: dict[str, Any], topic: str, timeout: float = 60.0) -> Iterator[bytes]:
    """The value of every record of `topic`, from the beginning to its end when the call started."""
    try:
        for msg in read_to_end(client_config, topic, "replay", timeout=timeout):
            yield msg.value() or b""
    except KafkaException as exc:
        raise RuntimeError(f"{topic}: {exc.args[0].str()}") from None


def _millis(value: datetime) -> int:
    return round(value.timestamp() * 1000)


def rebuild(builder: MessageBuilder, record: dict[str, Any]) -> OutgoingMessage:
    """The message today's code makes of a stored webhook, under its original identity."""
    body = record["payload"].encode("utf-8")
    meta = record["bridge"]
    signed: datetime | None = meta.get("signature_timestamp")
    return builder.build(
        body,
        parse(body),
        event_id=meta["event_id"],
        received_at_ms=_millis(meta["received_at"]),
        signature_timestamp=None if signed is None else _millis(signed) // 1000,
        request_headers=(record.get("headers") or {}).items(),
    )


def replay(settings: Settings, source: str = routes.DLQ_SUFFIX, *, apply: bool = False) -> ReplaySummary:
    schemas = SchemaSet.load()
    codec = SingleObjectCodec(schemas)
    builder = MessageBuilder(schemas, codec, settings.topic_prefix)
    topic = settings.topic(source)
    summary = ReplaySummary(topic, apply)
    client = settings.kafka_client_config()
    producer: Producer | None = None
    if apply:
        producer = Producer({**producer_config(settings), "message.timeout.ms": REPLAY_DELIVERY_TIMEOUT_MS})

    def on_delivery(err: KafkaError | None, msg: Any) -> None:
        if err is None:
            summary.published += 1
        else:
            summary.publish_failures[err.str()] += 1

    for value in read_values(client, topic):
        summary.read += 1
        try:
            schema, record = codec.decode(value)
            if schema.suffix != source:
                raise DecodeError(f"a {schema.full_name} record, not {source}")
            message = rebuild(builder, record)
        except (DecodeError, PayloadError, KeyError, UnicodeError) as exc:
            summary.still_failing += 1
            summary.reasons[f"unreadable record: {exc}"] += 1
            continue
        if message.outcome == "published":
            summary.replayable[message.topic] += 1
            if producer is not None:
                producer.produce(
                    message.topic,
                    value=message.value,
                    key=message.key,
                    headers=list(message.headers),
                    on_delivery=on_delivery,
                )
                producer.poll(0)
        elif message.outcome == "unrecognized":
            summary.still_failing += 1
            summary.reasons[f"object_type {message.object_type} is still unknown"] += 1
        else:
            summary.still_failing += 1
            for reason in {f"{issue.path or '<body>'}: {issue.reason}" for issue in message.issues}:
                summary.reasons[reason] += 1
    if producer is not None:
        left = producer.flush(REPLAY_DELIVERY_TIMEOUT_MS / 1000 + 5)
        if left:
            summary.publish_failures["not acknowledged before the timeout"] += left
    return summary
