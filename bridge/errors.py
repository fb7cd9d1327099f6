"""The bridge's one vocabulary of failures, at the bottom of the layers so that every layer uses
the same words: the `error` of a JSON answer, the `error` field of its log line and the `reason`
label of `refusals_total` are one `ErrorCode`; every exception the bridge raises on purpose is a
`BridgeError`."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Every non-2xx answer the bridge gives on purpose, with its HTTP status (`status`)."""

    BAD_REQUEST = "bad_request"  # 400: not valid HTTP, or a Content-Length that is not a number
    INCOMPLETE_BODY = "incomplete_body"  # 400: the client left before its declared length
    INVALID_JSON = "invalid_json"  # 400
    INVALID_SIGNATURE = "invalid_signature"  # 401
    NOT_FOUND = "not_found"  # 404
    METHOD_NOT_ALLOWED = "method_not_allowed"  # 405
    BODY_TIMEOUT = "body_timeout"  # 408
    PAYLOAD_TOO_LARGE = "payload_too_large"  # 413: the body
    RECORD_TOO_LARGE = "record_too_large"  # 413: the record, for Kafka
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"  # 415
    HEADER_TOO_LARGE = "header_too_large"  # 431
    INTERNAL_ERROR = "internal_error"  # 500
    KAFKA_REJECTED = "kafka_rejected"  # 502
    KAFKA_UNAVAILABLE = "kafka_unavailable"  # 503
    SPOOL_FULL = "spool_full"  # 503
    SPOOL_ERROR = "spool_error"  # 503
    OVERLOADED = "overloaded"  # 503
    CONNECTION_LIMIT = "connection_limit"  # 503
    NOT_READY = "not_ready"  # 503

    @property
    def status(self) -> int:
        return _STATUS[self]


_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.INCOMPLETE_BODY: 400,
    ErrorCode.INVALID_JSON: 400,
    ErrorCode.INVALID_SIGNATURE: 401,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.BODY_TIMEOUT: 408,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.RECORD_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.HEADER_TOO_LARGE: 431,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.KAFKA_REJECTED: 502,
    ErrorCode.KAFKA_UNAVAILABLE: 503,
    ErrorCode.SPOOL_FULL: 503,
    ErrorCode.SPOOL_ERROR: 503,
    ErrorCode.OVERLOADED: 503,
    ErrorCode.CONNECTION_LIMIT: 503,
    ErrorCode.NOT_READY: 503,
}


class BridgeError(Exception):
    """Base of every exception the bridge raises on purpose (configuration, signature, payload,
    publishing, spool); anything else reaching the top is a bug and answered `internal_error`."""


class SignatureFailure(StrEnum):
    """Why a Unit21-Signature did not verify: the `reason` of a 401 and of auth_failures_total."""

    MISSING_HEADER = "missing_header"
    MALFORMED_HEADER = "malformed_header"
    STALE_TIMESTAMP = "stale_timestamp"
    NO_MATCHING_SIGNATURE = "no_matching_signature"


# The spool's disk operations: the `operation` of spool_errors_total and of its log lines.
SPOOL_OPERATIONS = ("write", "delete", "read")
