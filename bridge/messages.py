"""Parsed webhook -> the Kafka message to publish: topic, key, encoded value, headers.

Pure: no I/O. The HTTP handler, the DLQ replay and the benchmarks all build messages here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from bridge import __version__, routes
from bridge.codec import Codec
from bridge.config import topic_name
from bridge.normalize import NormalizationError, RecordNormalizer, ValidationIssue, compile_normalizer
from bridge.payload import Classified, classify, dumps, loads, record_key
from bridge.schemas import SchemaSet, TopicSchema

Outcome = Literal["published", "unrecognized", "dead_lettered"]

# Never copied into a dead-letter record: they authenticate the sender.
SECRET_HEADERS = frozenset(
    {"unit21-signature", "authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token"}
)


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    event_id: str
    action: str
    object_type: str
    outcome: Outcome
    issues: tuple[ValidationIssue, ...] = ()


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where an acknowledged message landed."""

    topic: str
    partition: int
    offset: int


class MessageBuilder:
    """Built once at start-up: compiled normalizers, schemas and codec for every topic."""

    def __init__(self, schemas: SchemaSet, codec: Codec, topic_prefix: str) -> None:
        self.schemas = schemas
        self.codec = codec
        self.topic_prefix = topic_prefix
        self.normalizers: dict[str, RecordNormalizer] = {
            suffix: compile_normalizer(schemas[suffix].parsed) for suffix in routes.RECORD_SUFFIXES
        }

    def topic(self, suffix: str) -> str:
        return topic_name(self.topic_prefix, suffix)

    def build(
        self,
        body: bytes,
        doc: dict[str, Any],
        *,
        event_id: str,
        received_at_ms: int,
        signature_timestamp: int | None,
        request_headers: Iterable[tuple[str, str]] = (),
    ) -> OutgoingMessage:
        classified = classify(doc)
        key = record_key(doc, classified, event_id)
        bridge = {
            "event_id": event_id,
            "action": classified.action,
            "object_type": classified.object_type,
            "received_at": received_at_ms,
            "signature_timestamp": None if signature_timestamp is None else signature_timestamp * 1000,
            "bridge_version": __version__,
        }
        if not classified.valid_object_type:
            issue = ValidationIssue("object_type", "expected a non-empty string")
            return self._dead_letter(body, bridge, classified, key, (issue,), request_headers)
        suffix = classified.route.topic_suffix
        if classified.route is routes.UNRECOGNIZED:
            change = doc.get("change")
            record = {
                "bridge": bridge,
                "object_type": doc.get("object_type"),
                "change": change if change is None or isinstance(change, str) else dumps(change),
                "payload": body.decode("utf-8"),
            }
            return self._message(suffix, key, record, bridge, "unrecognized")
        try:
            record = self.normalizers[suffix].normalize(doc)
        except NormalizationError as exc:
            return self._dead_letter(body, bridge, classified, key, tuple(exc.issues), request_headers)
        record["bridge"] = bridge
        return self._message(suffix, key, record, bridge, "published")

    def _dead_letter(
        self,
        body: bytes,
        bridge: dict[str, Any],
        classified: Classified,
        key: bytes,
        issues: tuple[ValidationIssue, ...],
        request_headers: Iterable[tuple[str, str]],
    ) -> OutgoingMessage:
        record = {
            "bridge": bridge,
            "target_topic": self.topic(classified.route.topic_suffix),
            "errors": [{"path": i.path, "reason": i.reason} for i in issues],
            "payload": body.decode("utf-8"),
            "headers": {k.lower(): v for k, v in request_headers if k.lower() not in SECRET_HEADERS},
        }
        return self._message(routes.DLQ_SUFFIX, key, record, bridge, "dead_lettered", issues)

    def _message(
        self,
        suffix: str,
        key: bytes,
        record: dict[str, Any],
        bridge: dict[str, Any],
        outcome: Outcome,
        issues: tuple[ValidationIssue, ...] = (),
    ) -> OutgoingMessage:
        schema = self.schemas[suffix]
        return OutgoingMessage(
            topic=self.topic(suffix),
            key=key,
            value=self.codec.encode(schema, record),
            headers=[
                ("event_id", bridge["event_id"].encode()),
                ("action", bridge["action"].encode()),
                ("object_type", bridge["object_type"].encode()),
                ("schema_fingerprint", schema.fingerprint_hex.encode()),
            ],
            event_id=bridge["event_id"],
            action=bridge["action"],
            object_type=bridge["object_type"],
            outcome=outcome,
            issues=issues,
        )

    def reassemble(self, schema: TopicSchema, record: dict[str, Any]) -> dict[str, Any]:
        """The Unit21 JSON a decoded record came from (the exact body for unrecognized and DLQ)."""
        if schema.suffix in self.normalizers:
            return self.normalizers[schema.suffix].reassemble(record)
        result = loads(record["payload"])
        assert isinstance(result, dict)
        return result
