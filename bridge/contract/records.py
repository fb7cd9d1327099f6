"""Parsed webhook -> the Kafka message to publish: topic, key, encoded value, headers.

Pure: no I/O. The HTTP handler, the DLQ replay and the benchmarks all build messages here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from bridge import __version__
from bridge.contract import routes
from bridge.contract.codec import Codec
from bridge.contract.normalize import (
    NormalizationError,
    RecordNormalizer,
    ValidationIssue,
    compile_normalizer,
)
from bridge.contract.parsing import Classified, classify, dumps, loads, record_key
from bridge.contract.schemas import SchemaSet, TopicSchema
from bridge.settings import topic_name

Outcome = Literal["published", "unrecognized", "dead_lettered"]

# A dead-letter or unrecognized record is the body, once, plus at most a bounded overhead, so
# every body that fits BRIDGE_MAX_BODY_BYTES (900 KiB by default) also fits Kafka's 1,000,000
# bytes as a record. What the sender controls beyond the body is cut, saying how much:
MAX_DERIVED_CHARS = 256  # action, object_type and change copied out of the body
MAX_LISTED_ISSUES = 20  # validation errors listed; one more entry counts the rest
MAX_ISSUE_CHARS = 256  # per path and per reason
MAX_KEPT_HEADER_BYTES = 16 * 1024  # request headers kept in a dead-letter record, names + values
MAX_KEPT_HEADER_VALUE = 2048
MAX_KEY_BYTES = 1024  # a longer key keeps its start and a digest of the whole, so it stays stable
# Never a real header name (HTTP/1.1 names cannot start with ':'): says what was not kept.
HEADERS_CUT_ENTRY = ":bridge-headers-cut"

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
        key = _bounded_key(record_key(doc, classified, event_id))
        bridge = {
            "event_id": event_id,
            "action": cut_text(classified.action, MAX_DERIVED_CHARS),
            "object_type": cut_text(classified.object_type, MAX_DERIVED_CHARS),
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
            object_type = doc.get("object_type")
            record = {
                "bridge": bridge,
                "object_type": None if object_type is None else bridge["object_type"],
                # The whole value is in `payload`; this copy is for filtering, so it is cut.
                "change": None
                if change is None
                else cut_text(change if isinstance(change, str) else dumps(change), MAX_DERIVED_CHARS),
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
        issues = listed_issues(issues)
        record = {
            "bridge": bridge,
            "target_topic": self.topic(classified.route.topic_suffix),
            "errors": [{"path": i.path, "reason": i.reason} for i in issues],
            "payload": body.decode("utf-8"),
            "headers": kept_headers(request_headers),
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


def cut_text(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more characters cut]"


def listed_issues(issues: tuple[ValidationIssue, ...]) -> tuple[ValidationIssue, ...]:
    """The first MAX_LISTED_ISSUES issues, each cut to MAX_ISSUE_CHARS, and one entry that
    counts the ones not listed."""
    listed = tuple(
        ValidationIssue(cut_text(i.path, MAX_ISSUE_CHARS), cut_text(i.reason, MAX_ISSUE_CHARS))
        for i in issues[:MAX_LISTED_ISSUES]
    )
    if len(issues) > MAX_LISTED_ISSUES:
        more = len(issues) - MAX_LISTED_ISSUES
        listed += (ValidationIssue("", f"{more} more issue(s) not listed ({len(issues)} in all)"),)
    return listed


def kept_headers(request_headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The request's headers minus credentials, up to MAX_KEPT_HEADER_BYTES; values cut to
    MAX_KEPT_HEADER_VALUE. What was left out is counted under HEADERS_CUT_ENTRY."""
    kept: dict[str, str] = {}
    size = dropped = shortened = 0
    for name, value in request_headers:
        name = name.lower()
        if name in SECRET_HEADERS:
            continue
        if len(value) > MAX_KEPT_HEADER_VALUE:
            value = cut_text(value, MAX_KEPT_HEADER_VALUE)
            shortened += 1
        cost = len(name) + len(value)
        if size + cost > MAX_KEPT_HEADER_BYTES or len(name) > MAX_DERIVED_CHARS:
            dropped += 1
            continue
        size += cost
        kept[name] = value
    if dropped or shortened:
        kept[HEADERS_CUT_ENTRY] = (
            f"{dropped} header(s) not kept and {shortened} value(s) cut to {MAX_KEPT_HEADER_VALUE} chars "
            f"(at most {MAX_KEPT_HEADER_BYTES} bytes of headers are kept)"
        )
    return kept


def _bounded_key(key: bytes) -> bytes:
    if len(key) <= MAX_KEY_BYTES:
        return key
    return key[: MAX_KEY_BYTES - 48] + b"...sha256:" + hashlib.sha256(key).hexdigest()[:32].encode()
