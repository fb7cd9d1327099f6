"""The delivery policy: the rule that makes a 2xx safe, without HTTP.

`DeliveryPolicy.deliver(message)` returns an `Outcome`; the webhook endpoint turns it into an
answer (bridge/ingress/endpoint.py). What each case gives (docs/delivery.md):

  Kafka acknowledged                            -> ACKNOWLEDGED, with the Delivery
  timeout / broker error / producer disconnected -> SPOOLED on disk (fsync'ed), with the reason
  an earlier record of the same key is spooled   -> SPOOLED behind it (key_in_spool)
  same event_id delivered recently               -> DUPLICATE, with the first receipt; not published again
  queue full, spool full or failing, no spool and Kafka failed, producer not started
                                                 -> REFUSED: kafka_unavailable, spool_full, spool_error,
                                                 not_ready
  Kafka refuses the record for good              -> REFUSED: record_too_large, kafka_rejected; never spooled
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from bridge.contract.records import Delivery, OutgoingMessage
from bridge.delivery.dedup import RecentDeliveries
from bridge.delivery.publisher import Publisher, PublishError
from bridge.delivery.spool import Spool, SpoolError, SpoolFull
from bridge.errors import ErrorCode
from bridge.ops.metrics import Metrics
from bridge.ops.tracing import PublishSpan, Tracing

__all__ = ["DeliveryPolicy", "Outcome", "OutcomeKind"]

# Spool reasons for which the record goes to the spool without a produce attempt.
_SPOOLED_UNTRIED = frozenset({"key_in_spool", "kafka_disconnected"})


class OutcomeKind(StrEnum):
    ACKNOWLEDGED = "acknowledged"  # Kafka holds the record
    SPOOLED = "spooled"  # the disk holds it and will hand it to Kafka
    DUPLICATE = "duplicate"  # delivered (acknowledged or spooled) recently; not published again
    REFUSED = "refused"  # neither holds it: the sender must retry or give up


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one message. `receipt` is what a 2xx tells the sender (and what a
    duplicate is answered with again); `error`, `detail` and `cause` say why it was refused."""

    kind: OutcomeKind
    message: OutgoingMessage
    receipt: dict[str, Any] | None = None  # ACKNOWLEDGED, SPOOLED: new; DUPLICATE: the earlier one
    delivery: Delivery | None = None  # ACKNOWLEDGED
    spool_reason: str | None = None  # SPOOLED: timeout | broker_error | kafka_disconnected | key_in_spool
    kafka_error: str | None = None  # SPOOLED after a failed attempt: "<reason>: <detail>"
    error: ErrorCode | None = None  # REFUSED
    detail: str = ""  # REFUSED: why, for the sender and the operator
    cause: str | None = None  # REFUSED: the finer cause (the publisher's reason: queue_full, too_large...)

    @property
    def delivered(self) -> bool:
        """Kafka or the disk holds the record: the sender may be answered 2xx."""
        return self.kind is not OutcomeKind.REFUSED


class DeliveryPolicy:
    """Publishes to Kafka, or spools, or refuses; remembers what it delivered for dedup."""

    def __init__(
        self,
        publisher: Publisher | None,
        spool: Spool | None,
        recent: RecentDeliveries,
        metrics: Metrics,
        tracing: Tracing,
    ) -> None:
        self.publisher = publisher
        self.spool = spool
        self.recent = recent
        self.metrics = metrics
        self.tracing = tracing

    async def deliver(self, message: OutgoingMessage) -> Outcome:
        publisher = self.publisher
        if publisher is None:
            self.metrics.delivery_failures.labels("not_ready", "request").inc()
            return _refused(message, ErrorCode.NOT_READY, "the bridge is starting", "producer_not_started")
        async with self.recent.claim(message.event_id) as earlier:
            if earlier is not None:
                self.metrics.dedup_hit()
                return Outcome(OutcomeKind.DUPLICATE, message, receipt=orjson.loads(earlier))
            outcome = await self._publish_or_spool(publisher, message)
            if outcome.receipt is not None:
                # Remembered only once Kafka or the spool holds the record: a failed try leaves no trace.
                self.recent.remember(message.event_id, orjson.dumps(outcome.receipt))
                if message.outcome == "dead_lettered":
                    self.metrics.dead_lettered.inc()
                elif message.outcome == "unrecognized":
                    self.metrics.unrecognized.inc()
            return outcome

    async def _publish_or_spool(self, publisher: Publisher, message: OutgoingMessage) -> Outcome:
        spool = self.spool
        with self.tracing.publish(message.topic) as span:
            # With tracing on the record carries W3C trace context; a spooled copy carries the same.
            headers = [*message.headers, *span.headers]
            kafka_error: str | None = None
            if spool is not None and spool.holds(message.topic, message.key):
                reason = "key_in_spool"  # publishing now would overtake the earlier record of this key
            elif spool is not None and not publisher.connected and spool.writable():
                # No point waiting out the delivery deadline. But with the spool's disk failing,
                # Kafka is tried: it may be back, and only a delivery tells the producer so.
                reason = "kafka_disconnected"
            else:
                try:
                    delivery = await publisher.publish(message.topic, message.key, message.value, headers)
                except PublishError as exc:
                    span.fail(f"{exc.reason}: {exc.detail}")
                    if exc.permanent or exc.reason == "queue_full" or spool is None:
                        return _not_acknowledged(message, exc)
                    reason, kafka_error = exc.reason, f"{exc.reason}: {exc.detail}"
                else:
                    return _acknowledged(message, delivery, span)
            if reason in _SPOOLED_UNTRIED:
                # Not offered to Kafka yet: refuse now what produce() would refuse on every retry.
                refusal = publisher.refuses(message.key, message.value, headers)
                if refusal is not None:
                    span.fail(f"{refusal.reason}: {refusal.detail}")
                    return _not_acknowledged(message, refusal)
            span.set(unit21__spooled=reason)
            return await self._spool(spool, message, headers, reason, kafka_error)

    async def _spool(
        self,
        spool: Spool | None,
        message: OutgoingMessage,
        headers: list[tuple[str, bytes]],
        reason: str,
        kafka_error: str | None,
    ) -> Outcome:
        assert spool is not None  # every reason to spool above requires one
        try:
            await spool.append(message.topic, message.key, message.value, headers, message.event_id)
        except SpoolFull as exc:
            return _refused(message, ErrorCode.SPOOL_FULL, f"Kafka is unavailable and {exc}", reason)
        except SpoolError as exc:
            return _refused(message, ErrorCode.SPOOL_ERROR, f"Kafka is unavailable and {exc}", reason)
        self.metrics.spooled.labels(reason).inc()
        receipt = _receipt(message, {"topic": message.topic, "spooled": True})
        return Outcome(
            OutcomeKind.SPOOLED, message, receipt=receipt, spool_reason=reason, kafka_error=kafka_error
        )


def _acknowledged(message: OutgoingMessage, delivery: Delivery, span: PublishSpan) -> Outcome:
    span.set(
        messaging__destination__partition__id=str(delivery.partition),
        messaging__kafka__offset=delivery.offset,
    )
    where = {"topic": delivery.topic, "partition": delivery.partition, "offset": delivery.offset}
    return Outcome(OutcomeKind.ACKNOWLEDGED, message, receipt=_receipt(message, where), delivery=delivery)


def _not_acknowledged(message: OutgoingMessage, exc: PublishError) -> Outcome:
    """Refused: Kafka did not take the record and the spool may not (or need not) keep it.
    A record Kafka refuses for good is never spooled: it would be retried forever behind a
    2xx; refused, the sender and the operator both see why."""
    if exc.reason == "too_large":
        detail = (
            f"Kafka refuses the {len(message.value)}-byte record for {message.topic} as too large "
            f"({exc.detail}); raise the producer's message.max.bytes (KAFKA_MESSAGE_MAX_BYTES) and "
            "the topic's max.message.bytes, or lower BRIDGE_MAX_BODY_BYTES"
        )
        return _refused(message, ErrorCode.RECORD_TOO_LARGE, detail, exc.reason)
    if exc.permanent:
        detail = f"Kafka refuses the record for {message.topic}: {exc.detail}"
        return _refused(message, ErrorCode.KAFKA_REJECTED, detail, exc.reason)
    detail = f"the record was not acknowledged by Kafka ({exc.reason}: {exc.detail})"
    return _refused(message, ErrorCode.KAFKA_UNAVAILABLE, detail, exc.reason)


def _refused(message: OutgoingMessage, error: ErrorCode, detail: str, cause: str | None) -> Outcome:
    return Outcome(OutcomeKind.REFUSED, message, error=error, detail=detail, cause=cause)


def _receipt(message: OutgoingMessage, where: dict[str, Any]) -> dict[str, Any]:
    receipt: dict[str, Any] = {"event_id": message.event_id, **where, "outcome": message.outcome}
    if message.issues:
        receipt["errors"] = [{"path": i.path, "reason": i.reason} for i in message.issues]
    return receipt
