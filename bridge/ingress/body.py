"""The request checks before the body is parsed: method, declared size, content type, and
reading the body within BRIDGE_BODY_TIMEOUT_SECONDS, the size limit and the process's budget
of body bytes. Each refusal is a `Refusal` (answers.py), never a Response."""

from __future__ import annotations

import asyncio
from typing import Final

from starlette.types import Receive

from bridge.errors import ErrorCode
from bridge.ingress.answers import Refusal
from bridge.ops.metrics import Metrics
from bridge.settings import Settings

__all__ = ["BodyBudget", "BodyReservation", "check_head", "read_body"]

_JSON_TYPES: Final = (b"application/json",)


class BodyBudget:
    """Body bytes held by requests still being read or handled. A client that sent headers
    and nothing else holds none of it, so slow clients cannot crowd out signed webhooks; the
    cap (BRIDGE_MAX_CONCURRENCY x BRIDGE_MAX_BODY_BYTES) keeps the worst case at
    Settings.request_memory_bytes()."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def reserve(self) -> BodyReservation:
        return BodyReservation(self)


class BodyReservation:
    """One request's share of the budget; `release()` gives it back when the request ends."""

    def __init__(self, budget: BodyBudget) -> None:
        self.budget = budget
        self.bytes = 0

    def take(self, size: int) -> bool:
        budget = self.budget
        if budget.held + size > budget.limit:
            return False
        budget.held += size
        self.bytes += size
        return True

    def release(self) -> None:
        self.budget.held -= self.bytes
        self.bytes = 0


def check_head(method: str, headers: dict[bytes, bytes], settings: Settings) -> Refusal | int | None:
    """A refusal from the method and headers alone, else the declared Content-Length (or None)."""
    if method != "POST":
        return Refusal(ErrorCode.METHOD_NOT_ALLOWED, f"use POST, not {method}", headers={"Allow": "POST"})
    declared = headers.get(b"content-length")
    if declared is not None:
        if not declared.isdigit():
            return Refusal(
                ErrorCode.BAD_REQUEST, "Content-Length is not a number", cause="bad_content_length"
            )
        if len(declared) > 18 or int(declared) > settings.max_body_bytes:
            return Refusal(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"body of {declared.decode()[:20]} bytes exceeds {settings.max_body_bytes}",
                cause="declared_length",
            )
    content_type = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    if content_type not in _JSON_TYPES and not (
        content_type.startswith(b"application/") and content_type.endswith(b"+json")
    ):
        shown = content_type.decode("latin-1") or "none"
        return Refusal(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE, f"Content-Type must be application/json, got {shown}"
        )
    return None if declared is None else int(declared)


async def read_body(
    receive: Receive,
    reservation: BodyReservation,
    declared: int | None,
    settings: Settings,
    metrics: Metrics,
) -> bytes | Refusal:
    """The whole body within BRIDGE_BODY_TIMEOUT_SECONDS of the headers, within the size limit
    and the process's body budget; otherwise the refusal to answer."""
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(settings.body_timeout_seconds):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return _incomplete(size, declared)
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > settings.max_body_bytes:
                    return Refusal(
                        ErrorCode.PAYLOAD_TOO_LARGE, f"body exceeds {settings.max_body_bytes} bytes"
                    )
                if chunk:
                    if not reservation.take(len(chunk)):
                        return _over_budget()
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        metrics.connections_closed.labels("body_timeout").inc()
        return Refusal(
            ErrorCode.BODY_TIMEOUT,
            f"the body did not arrive within {settings.body_timeout_seconds:g} s "
            f"(BRIDGE_BODY_TIMEOUT_SECONDS); {size} bytes received",
            log_detail=f"{size} of {declared} bytes after {settings.body_timeout_seconds:g} s",
            headers={"Connection": "close"},
        )
    if declared is not None and size != declared:
        return _incomplete(size, declared)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _incomplete(size: int, declared: int | None) -> Refusal:
    # The client left before the declared length: a partial body is never published, even
    # when its signature matches what did arrive.
    return Refusal(
        ErrorCode.INCOMPLETE_BODY,
        f"the client disconnected after {size} bytes of the body",
        log_detail=f"{size} of {declared} bytes, then the client disconnected",
    )


def _over_budget() -> Refusal:
    return Refusal(
        ErrorCode.OVERLOADED,
        "the bodies in progress fill this process's budget (BRIDGE_MAX_CONCURRENCY x BRIDGE_MAX_BODY_BYTES)",
        cause="body_budget",
        log_detail="body budget in use",
        headers={"Connection": "close"},
    )
