"""The one table from what happened to a webhook to what the bridge answers and logs.

Every deliberate non-2xx is an `ErrorCode` (bridge/errors.py): its status is the code's, the
JSON `error`, the log line's `error` and refusals_total's `reason` are the code's word, and the
finer cause (a publisher reason, a signature failure, a malformed header) goes in `cause`.
A delivered webhook is an `Outcome` of bridge/delivery/policy.py, answered by its kind.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

import orjson
from starlette.responses import Response

from bridge.delivery.policy import Outcome, OutcomeKind
from bridge.errors import ErrorCode

RETRY_AFTER_SECONDS: Final = "1"


class LogAs(Enum):
    LINE = "line"  # one line per request (a 4xx without an event_id: once per window, with a count)
    WINDOW = (
        "window"  # first of its error per window, then a count (runtime.refusals): they come by the thousand
    )
    DOOR = "door"  # an unauthenticated client's failure to send its body: the door's log (bridge.door)


@dataclass(frozen=True, slots=True)
class Rule:
    level: int
    log_as: LogAs = LogAs.LINE
    retry_after: bool = False  # a 503: the sender retries, Retry-After says when


_INFO, _WARNING = logging.INFO, logging.WARNING
_UNAVAILABLE = Rule(_WARNING, LogAs.WINDOW, retry_after=True)

RULES: Final[Mapping[ErrorCode | OutcomeKind, Rule]] = {
    OutcomeKind.ACKNOWLEDGED: Rule(_INFO),
    OutcomeKind.SPOOLED: Rule(_INFO),
    OutcomeKind.DUPLICATE: Rule(_INFO),
    ErrorCode.BAD_REQUEST: Rule(_INFO),
    ErrorCode.INCOMPLETE_BODY: Rule(_WARNING, LogAs.DOOR),
    ErrorCode.INVALID_JSON: Rule(_INFO),
    ErrorCode.INVALID_SIGNATURE: Rule(_INFO),
    ErrorCode.NOT_FOUND: Rule(_INFO),
    ErrorCode.METHOD_NOT_ALLOWED: Rule(_INFO),
    ErrorCode.BODY_TIMEOUT: Rule(_WARNING, LogAs.DOOR),
    ErrorCode.PAYLOAD_TOO_LARGE: Rule(_INFO),
    ErrorCode.RECORD_TOO_LARGE: Rule(_WARNING),  # Kafka refuses it for good: the operator must act
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: Rule(_INFO),
    ErrorCode.HEADER_TOO_LARGE: Rule(_WARNING, LogAs.DOOR),
    ErrorCode.INTERNAL_ERROR: Rule(_WARNING),  # its traceback is logged where it was caught
    ErrorCode.KAFKA_REJECTED: Rule(_WARNING),
    ErrorCode.KAFKA_UNAVAILABLE: Rule(_WARNING, retry_after=True),
    ErrorCode.SPOOL_FULL: _UNAVAILABLE,
    ErrorCode.SPOOL_ERROR: _UNAVAILABLE,
    ErrorCode.OVERLOADED: _UNAVAILABLE,
    ErrorCode.CONNECTION_LIMIT: Rule(_WARNING, LogAs.DOOR, retry_after=True),
    ErrorCode.NOT_READY: _UNAVAILABLE,
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """A webhook refused before it became a message (the door checks, the body, the signature,
    the JSON, the registry). `detail` is the answer's; `log_detail`, when given, the log's."""

    error: ErrorCode
    detail: str
    cause: str | None = None
    log_detail: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    answer_fields: Mapping[str, Any] = field(default_factory=dict)  # e.g. a 401's `reason`


Result = Outcome | Refusal


def json_response(status: int, payload: dict[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(payload),
        status_code=status,
        media_type="application/json",
        headers=dict(headers) if headers else None,
    )


def error_response(
    error: ErrorCode, detail: str, headers: Mapping[str, str] | None = None, **fields: Any
) -> Response:
    """The JSON answer of a refusal: its code's status, with Retry-After when the rule says so."""
    rule = RULES[error]
    if rule.retry_after:
        detail = f"{detail}; retry later"
        headers = {"Retry-After": RETRY_AFTER_SECONDS, **(headers or {})}
    return json_response(error.status, {"error": error.value, "detail": detail, **fields}, headers)


def internal_error() -> Response:
    return error_response(
        ErrorCode.INTERNAL_ERROR, "the bridge failed to handle this request; the error is logged"
    )


def answer(result: Result) -> Response:
    if isinstance(result, Refusal):
        return error_response(result.error, result.detail, result.headers, **result.answer_fields)
    if result.kind is OutcomeKind.REFUSED:
        assert result.error is not None
        return error_response(result.error, result.detail, event_id=result.message.event_id)
    assert result.receipt is not None
    if result.kind is OutcomeKind.DUPLICATE:
        return json_response(200, {**result.receipt, "duplicate": True})
    return json_response(202 if result.kind is OutcomeKind.SPOOLED else 200, result.receipt)


def rule_of(result: Result) -> Rule:
    key = result.error if isinstance(result, Refusal) else (result.error or result.kind)
    return RULES[key]


def log_fields(result: Result) -> dict[str, Any]:
    """The request's structured log fields (logs.py); never the body, the signature or a secret."""
    if isinstance(result, Refusal):
        fields: dict[str, Any] = {"error": result.error.value}
        if result.cause is not None:
            fields["cause"] = result.cause
        fields["detail"] = result.detail if result.log_detail is None else result.log_detail
        return fields
    message = result.message
    fields = {"event_id": message.event_id, "action": message.action, "topic": message.topic}
    if message.issues:
        fields["dead_letter_reason"] = "; ".join(f"{i.path}: {i.reason}" for i in message.issues)
    if result.kind is OutcomeKind.DUPLICATE:
        fields["duplicate"] = True
        return fields
    if result.kind is OutcomeKind.REFUSED:
        assert result.error is not None
        fields["error"] = result.error.value
        if result.cause is not None:
            fields["cause"] = result.cause
        fields["detail"] = result.detail
        return fields
    if result.delivery is not None:
        fields.update(partition=result.delivery.partition, offset=result.delivery.offset)
    if result.kind is OutcomeKind.SPOOLED:
        fields.update(spooled=True, spool_reason=result.spool_reason)
        if result.kafka_error is not None:
            fields["kafka_error"] = result.kafka_error
    fields["outcome"] = message.outcome
    return fields
