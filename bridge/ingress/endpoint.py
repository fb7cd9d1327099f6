"""The webhook endpoint: door checks, body, signature, parse, message, then the delivery
policy (bridge/delivery/policy.py); answers.py turns what happened into the answer and the log.

Request path, one step per module: load shedding -> method, declared size, content type and
body (body.py) -> signature (signature.py) -> parse (contract/parsing.py) -> normalize +
encode (contract/records.py) -> deliver (delivery/policy.py) -> answer (answers.py).
"""

from __future__ import annotations

import logging
import time

from starlette.types import Receive, Scope, Send

from bridge.contract.parsing import PayloadError, event_id, parse
from bridge.delivery.policy import Outcome
from bridge.errors import ErrorCode
from bridge.ingress.answers import LogAs, Refusal, Result, answer, log_fields, rule_of
from bridge.ingress.body import check_head, read_body
from bridge.ingress.door import Door
from bridge.ingress.runtime import Runtime
from bridge.ingress.signature import HEADER_NAME, SignatureError, verify
from bridge.ops.tracing import SpanHandle

__all__ = ["WEBHOOK_PATH", "WebhookEndpoint"]

log = logging.getLogger("bridge.app")

WEBHOOK_PATH = "/webhooks/unit21"
_SIGNATURE_HEADER = HEADER_NAME.encode()
_INTERNAL_ERROR = Refusal(
    ErrorCode.INTERNAL_ERROR, "the bridge failed to handle this request; the error is logged"
)


class WebhookEndpoint:
    """Raw ASGI endpoint: it sees every method (so 405 is ours, in JSON) and streams the body
    with a hard size limit instead of buffering whatever a client sends."""

    def __init__(self, runtime: Runtime, door: Door) -> None:
        self.runtime = runtime
        self.door = door  # its log takes the unauthenticated clients' body failures

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        with self.runtime.tracing.webhook(scope["method"], scope["path"], scope["headers"]) as span:
            result: Result
            try:
                result = await self.handle(scope, receive)
                response = answer(result)
            except Exception:
                # A bug, not the client's fault: the traceback goes to the log, never to the client.
                log.error("unhandled error while answering a webhook", exc_info=True)
                result = _INTERNAL_ERROR
                response = answer(result)
            fields = log_fields(result)
            _annotate_span(span, response.status_code, fields)
            await response(scope, receive, send)
        seconds = time.perf_counter() - started
        fields.update(status=response.status_code, latency_ms=round(seconds * 1000, 2))
        if span.trace_id is not None:
            fields["trace_id"] = span.trace_id
        metrics = self.runtime.metrics
        metrics.observe_request(fields.get("action"), response.status_code, seconds)
        if (
            result.error is not None and result.error is not ErrorCode.INTERNAL_ERROR
        ):  # a bug is not a refusal
            metrics.refusals.labels(result.error.value).inc()
        self._log(result, fields)

    def _log(self, result: Result, fields: dict[str, object]) -> None:
        """By the rule of its code or kind (answers.RULES); structured fields only (logs.py)."""
        rule = rule_of(result)
        status = int(str(fields["status"]))
        error, detail = str(fields.get("error", status)), str(fields.get("detail", ""))
        latency_ms = float(str(fields["latency_ms"]))
        if rule.log_as is LogAs.WINDOW:
            self.runtime.refusals.refused(error, detail, latency_ms, fields, status=status)
        elif rule.log_as is LogAs.DOOR:
            self.door.event(error, "webhook answered %d (%s): %s", status, error, detail, extra=fields)
        elif 400 <= status < 500 and "event_id" not in fields:
            # No event_id: a wrong secret, a scanner, a broken sender. Its repeats say nothing new.
            self.runtime.refusals.refused(error, detail, latency_ms, fields, status=status, level=rule.level)
        else:
            log.log(rule.level, "webhook answered %d", status, extra=fields)

    def _shed(self) -> Refusal | None:
        """Shed load at the door, before reading the body, when the answer can only be 503."""
        runtime = self.runtime
        publisher, spool = runtime.publisher, runtime.spool
        if runtime.in_flight >= runtime.settings.max_concurrency:
            detail = f"{runtime.in_flight} requests in progress (BRIDGE_MAX_CONCURRENCY)"
            return Refusal(ErrorCode.OVERLOADED, detail, cause="max_concurrency")
        if spool is None or publisher is None:
            return None
        if not publisher.connected and not spool.has_room():
            detail = "Kafka is unavailable and the spool is full (BRIDGE_SPOOL_MAX_BYTES)"
            return Refusal(ErrorCode.SPOOL_FULL, detail, cause="kafka_disconnected")
        if not publisher.ever_connected:
            # Spooled now, the webhook would wait for a Kafka this process may never reach (a
            # wrong address): refused, Unit21 retries and the operator sees /readyz fail.
            detail = "Kafka has not been reachable since the bridge started (check KAFKA_BOOTSTRAP_SERVERS)"
            return Refusal(ErrorCode.NOT_READY, detail, cause="kafka_never_connected")
        return None

    async def handle(self, scope: Scope, receive: Receive) -> Result:
        runtime = self.runtime
        refusal = self._shed()
        if refusal is not None:
            return refusal
        headers = dict(scope["headers"])
        declared = check_head(scope["method"], headers, runtime.settings)
        if isinstance(declared, Refusal):
            return declared
        reservation = runtime.bodies.reserve()
        try:
            body = await read_body(receive, reservation, declared, runtime.settings, runtime.metrics)
            if isinstance(body, Refusal):
                return body
            # Processing slots are taken only by complete bodies: a slow client never holds one.
            refusal = self._shed()
            if refusal is not None:
                return refusal
            runtime.in_flight += 1
            runtime.metrics.in_flight.inc()
            try:
                return await self._handle_body(scope, headers, body)
            finally:
                runtime.in_flight -= 1
                runtime.metrics.in_flight.dec()
        finally:
            reservation.release()

    def _verify(self, headers: dict[bytes, bytes], body: bytes) -> Refusal | int | None:
        """The signature's timestamp, None for an unsigned request allowed in, or the refusal."""
        settings = self.runtime.settings
        signature = headers.get(_SIGNATURE_HEADER)
        # Unsigned requests pass only when explicitly allowed; with no secrets and no such
        # permission every request fails verification rather than slipping through.
        if settings.allow_unsigned and (signature is None or not self.runtime.secrets):
            return None
        try:
            return verify(
                None if signature is None else signature.decode("latin-1"),
                body,
                self.runtime.secrets,
                now=time.time(),
                tolerance_seconds=settings.signature_tolerance_seconds,
            )
        except SignatureError as exc:
            reason = exc.reason.value
            self.runtime.metrics.auth_failures.labels(reason).inc()
            return Refusal(
                ErrorCode.INVALID_SIGNATURE, exc.detail, cause=reason, answer_fields={"reason": reason}
            )

    async def _handle_body(self, scope: Scope, headers: dict[bytes, bytes], body: bytes) -> Result:
        signature_timestamp = self._verify(headers, body)
        if isinstance(signature_timestamp, Refusal):
            return signature_timestamp
        try:
            doc = parse(body)
        except PayloadError as exc:
            return Refusal(ErrorCode.INVALID_JSON, str(exc))
        registry = self.runtime.registry
        if registry is not None and not registry.status.ready:
            detail = f"schema registry not ready: {registry.status.detail}"
            return Refusal(ErrorCode.NOT_READY, detail, cause="schema_registry")
        message = self.runtime.builder.build(
            body,
            doc,
            event_id=event_id(body),
            received_at_ms=int(time.time() * 1000),
            signature_timestamp=signature_timestamp,
            # Lazy: only a dead-letter record reads the request's headers.
            request_headers=((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]),
        )
        outcome: Outcome = await self.runtime.policy.deliver(message)
        return outcome


def _annotate_span(span: SpanHandle, status: int, fields: dict[str, object]) -> None:
    if not span.recording:
        return
    span.set(http__response__status_code=status)
    for key in ("event_id", "action", "outcome", "error", "cause"):
        if key in fields:
            span.set(**{f"unit21__{key}": str(fields[key])})
    if status >= 500:
        span.fail(str(fields.get("error", status)))
