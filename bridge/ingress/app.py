"""The Starlette application: routes, the webhook handler and the lifespan that owns the producer.

Request path, one step per module: load shedding -> method -> declared size -> content
type -> signature (signature.py) -> parse (payload.py) -> normalize + encode (messages.py) ->
dedup (dedup.py) -> publish (publisher.py) or spool (spool.py) -> answer. Only this module
knows about HTTP.

What each delivery outcome answers (docs/delivery.md):
  Kafka acknowledged                                   -> 200
  timeout / broker error / producer known disconnected -> spooled on disk (fsync'ed) -> 202
  an earlier record with the same key is in the spool  -> spooled behind it -> 202
  same event_id delivered recently                     -> 200 with the first answer, not published again
  queue full, spool full, spool off and Kafka failed, too many requests -> 503 + Retry-After
  Kafka refuses the record for good (too large, invalid) -> 413 / 502, never spooled
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.contract import routes
from bridge.contract.codec import Codec, SingleObjectCodec
from bridge.contract.parsing import PayloadError, event_id, parse
from bridge.contract.records import Delivery, MessageBuilder, OutgoingMessage
from bridge.contract.schemas import SchemaSet
from bridge.delivery.dedup import RecentDeliveries
from bridge.delivery.drainer import Drainer
from bridge.delivery.publisher import Publisher, PublishError, ReadyState, producer_config
from bridge.delivery.spool import Spool, SpoolError, SpoolFull
from bridge.ingress import door
from bridge.ingress.signature import HEADER_NAME, SignatureError, verify
from bridge.ops.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from bridge.ops.metrics import Metrics
from bridge.ops.refusals import RefusalLog
from bridge.ops.tracing import SpanHandle, Tracing, tracing_from_settings
from bridge.settings import Settings

if TYPE_CHECKING:
    from bridge.contract.registry import RegistryCodec

log = logging.getLogger("bridge.app")

WEBHOOK_PATH = "/webhooks/unit21"
RETRY_AFTER_SECONDS = "1"
SCRAPE_READINESS_SECONDS = 0.5
_JSON_TYPES = (b"application/json",)
# Spool reasons for which the record goes to the spool without a produce attempt.
_SPOOLED_UNTRIED = frozenset({"key_in_spool", "kafka_disconnected"})
# Refusals logged by RefusalLog (once per window, with counts), not line by line.
_SPOOL_REFUSALS = frozenset({"spool_full", "spool_error"})
# Marks a request refused before its body was read: logged by RefusalLog, not line by line.
_AT_THE_DOOR = "_at_the_door"
# Marks an unauthenticated client's failure to send its body (timeout, disconnect): a flood of
# them is logged once per window with a count (door.EventLog), not line by line.
_BODY_FAILURE = "_body_failure"

# A component's readiness (kafka, and the spool or registry when present): `ready` plus the
# fields it adds to the /readyz detail, e.g. {"kafka": "connected", "brokers": 3}.
ReadinessCheck = Callable[[], Awaitable[ReadyState]]


class Runtime:
    """What the request path needs; the pure parts are built at once, the producer in the lifespan."""

    def __init__(
        self,
        settings: Settings,
        builder: MessageBuilder,
        *,
        registry: RegistryCodec | None = None,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.builder = builder
        self.registry = registry  # set in Schema Registry mode: ids resolved in the lifespan
        self.secrets = tuple(s.encode("utf-8") for s in settings.webhook_secrets)
        self.topics = routes.all_topics(settings.topic_prefix)
        self.publisher: Publisher | None = None
        self.spool: Spool | None = None
        self.recent = RecentDeliveries(settings.dedup_window_seconds, settings.dedup_max_entries)
        self.refusals = RefusalLog()
        self.in_flight = 0  # webhooks past their body, being handled: BRIDGE_MAX_CONCURRENCY
        # Body bytes held by requests still being read or handled. A client that sent headers
        # and nothing else holds none of it, so slow clients cannot crowd out signed webhooks;
        # the cap keeps the worst case at Settings.request_memory_bytes().
        self.body_bytes_held = 0
        self.body_budget = settings.max_concurrency * settings.max_body_bytes
        self.metrics = metrics or Metrics.from_settings(settings, routes.KNOWN_ACTIONS)
        self.tracing = tracing or tracing_from_settings(settings)
        self.metrics.preset_topics(self.topics)
        # Set by SIGTERM/SIGINT (or the lifespan's end), so readiness fails before anything stops.
        self.shutdown_started: float | None = None
        # Components add their own check here (name -> check); /readyz runs them all.
        self.readiness: dict[str, ReadinessCheck] = {"kafka": self._kafka_ready, "spool": self._spool_ready}
        if registry is not None:
            self.readiness["schema_registry"] = self._registry_ready

    @property
    def shutting_down(self) -> bool:
        return self.shutdown_started is not None

    def begin_shutdown(self) -> None:
        if self.shutdown_started is None:
            self.shutdown_started = time.monotonic()

    def shutdown_time_left(self) -> float:
        """Seconds left of BRIDGE_SHUTDOWN_GRACE_SECONDS since the signal."""
        started = self.shutdown_started if self.shutdown_started is not None else time.monotonic()
        return self.settings.shutdown_grace_seconds - (time.monotonic() - started)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, metrics: Metrics | None = None, tracing: Tracing | None = None
    ) -> Runtime:
        schemas = SchemaSet.load()
        registry: RegistryCodec | None = None
        codec: Codec = SingleObjectCodec(schemas)
        if settings.schema_registry_url:
            from bridge.contract.registry import registry_codec  # imports the registry client only when used

            codec = registry = registry_codec(settings, schemas)
        builder = MessageBuilder(schemas, codec, settings.topic_prefix)
        return cls(settings, builder, registry=registry, metrics=metrics, tracing=tracing)

    async def _kafka_ready(self) -> ReadyState:
        publisher = self.publisher
        if publisher is None:
            return ReadyState(False, {"kafka": "producer not started"})
        state = await publisher.ready(self.topics, self.settings.readiness_cache_seconds)
        spool = self.spool
        if not state.ready and not state.reachable and not publisher.ever_connected:
            # A wrong address, a blocked port or bad credentials must look broken: tolerating
            # an outage is for a bridge that was connected, or a rollout would proceed on pods
            # that can never deliver what they spool.
            return ReadyState(
                False, {"kafka": "never connected", "kafka_detail": state.detail.get("kafka")}, False
            )
        if not state.ready and not state.reachable and spool is not None:
            if spool.has_room() and spool.writable():
                # The spool takes the webhooks while Kafka is away: stay in the Service, or Unit21's
                # retries would meet a closed door and the webhooks would be lost.
                return ReadyState(True, {**state.detail, "kafka_outage": "webhooks are spooled"})
            if not spool.writable():
                # Neither Kafka nor the disk can keep a 2xx promise: out of the Service, so that
                # Unit21's retries reach a pod that can (docs/delivery.md).
                return ReadyState(False, {**state.detail, "kafka_outage": "the spool's disk is failing"})
        return state

    async def check_readiness(self, *, scrape: bool = False) -> tuple[list[str], dict[str, Any]]:
        """Run every readiness check: (the failing ones, the /readyz detail); sets ready{check}.

        For a scrape (`scrape=True`) a check that raises counts as failing (ready 0) instead of
        failing the scrape: /readyz answers that bug with a logged 500 on every probe."""
        gauge = self.metrics.ready
        if self.shutting_down:
            gauge.labels("shutdown").set(0)
            return ["shutdown"], {"shutting_down": True}
        gauge.labels("shutdown").set(1)
        detail: dict[str, Any] = {"shutting_down": False}
        failing: list[str] = []
        for name, check in self.readiness.items():
            if scrape:
                try:
                    state = await check()
                except Exception as exc:
                    state = ReadyState(False, {name: f"check failed: {type(exc).__name__}"})
            else:
                state = await check()
            detail.update(state.detail)
            gauge.labels(name).set(1 if state.ready else 0)
            if not state.ready:
                failing.append(name)
        return failing, detail

    def refresh_gauges(self) -> None:
        """The gauges that must be current when Prometheus reads them."""
        publisher, spool = self.publisher, self.spool
        if publisher is not None:
            self.metrics.producer_queue.set(publisher.queue_length())
        if spool is not None:
            spool.report()

    async def _spool_ready(self) -> ReadyState:
        """Never fails on its own: a full or failing spool matters only while Kafka is away (see
        _kafka_ready); with Kafka up, webhooks go to Kafka and the detail shows the spool's health."""
        if self.spool is None:
            return ReadyState(True, {"spool": {"enabled": self.settings.spool_enabled}})
        return ReadyState(True, {"spool": {"enabled": True, **self.spool.detail()}})

    async def _registry_ready(self) -> ReadyState:
        assert self.registry is not None
        status = await asyncio.to_thread(self.registry.resolve_if_due, self.settings.readiness_cache_seconds)
        detail: dict[str, Any] = {"schema_registry": status.detail}
        if status.failing_subject is not None:
            detail["schema_registry_subject"] = status.failing_subject
        return ReadyState(status.ready, detail)


def json_response(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers)


def error_response(
    status: int, error: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    return json_response(status, {"error": error, "detail": detail, **extra}, headers)


class WebhookEndpoint:
    """Raw ASGI endpoint: it sees every method (so 405 is ours, in JSON) and streams the body
    with a hard size limit instead of buffering whatever a client sends."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.body_failures = door.EventLog()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        metrics = self.runtime.metrics
        with self.runtime.tracing.webhook(scope["method"], scope["path"], scope["headers"]) as span:
            try:
                response, context = await self.handle(scope, receive)
            except Exception:
                # A bug, not the client's fault: the traceback goes to the log, never to the client.
                log.error("unhandled error while answering a webhook", exc_info=True)
                response = _internal_error()
                context = {"error": "internal_error"}
            _annotate_span(span, response.status_code, context)
            await response(scope, receive, send)
        seconds = time.perf_counter() - started
        context["status"] = response.status_code
        context["latency_ms"] = round(seconds * 1000, 2)
        if span.trace_id is not None:
            context["trace_id"] = span.trace_id
        status = response.status_code
        metrics.observe_request(context.get("action"), status, seconds)
        if status >= 400 and context.get("error") != "internal_error":  # a bug is not a refusal
            metrics.refusals.labels(_error_word(response)).inc()
        if context.get(_AT_THE_DOOR):
            self.runtime.refusals.refused(
                context["error"], context["detail"], context["latency_ms"], status=status
            )
            return
        if context.get(_BODY_FAILURE):
            self.body_failures.event(
                context["error"],
                "webhook answered %d (%s): %s",
                response.status_code,
                context["error"],
                context["detail"],
            )
            return
        if context.get("error") in _SPOOL_REFUSALS:
            # They come by the thousand while the disk is full or failing: once per window too.
            refusals = self.runtime.refusals
            refusals.refused(context["error"], context.get("detail", ""), context["latency_ms"], context)
            return
        if status < 500 and status >= 400 and "event_id" not in context:
            # No event_id: a wrong secret, a scanner, a broken sender. Its repeats say nothing new.
            error = str(context.get("error", status))
            self.runtime.refusals.once(
                error,
                logging.INFO,
                "webhook answered %d",
                status,
                extra=context,
                summary=f"webhook request(s) answered {status} ({error})",
                summary_fields={"error": error, "status": status},
                count_field="refused",
            )
            return
        refused = response.status_code >= 500 or context.get("error", "").startswith("kafka:")
        level = logging.WARNING if refused else logging.INFO
        # Structured fields only (see logs.py); never the body, the signature or a secret.
        log.log(level, "webhook answered %d", response.status_code, extra=context)

    def _refusal(self) -> tuple[Response, dict[str, Any]] | None:
        """Shed load at the door, before reading the body, when the answer can only be 503."""
        runtime = self.runtime
        if runtime.in_flight >= runtime.settings.max_concurrency:
            error = "overloaded"
            detail = f"{runtime.in_flight} requests in progress (BRIDGE_MAX_CONCURRENCY)"
        elif (
            runtime.spool is not None
            and runtime.publisher is not None
            and not runtime.publisher.connected
            and not runtime.spool.has_room()
        ):
            error = "spool_full"
            detail = "Kafka is unavailable and the spool is full (BRIDGE_SPOOL_MAX_BYTES)"
        elif (
            runtime.spool is not None
            and runtime.publisher is not None
            and not runtime.publisher.ever_connected
        ):
            # Spooled now, the webhook would wait for a Kafka this process may never reach (a
            # wrong address): refused, Unit21 retries and the operator sees /readyz fail.
            error = "not_ready"
            detail = "Kafka has not been reachable since the bridge started (check KAFKA_BOOTSTRAP_SERVERS)"
        else:
            return None
        response = error_response(503, error, f"{detail}; retry later", {"Retry-After": RETRY_AFTER_SECONDS})
        return response, {"error": error, "detail": detail, _AT_THE_DOOR: True}

    async def handle(self, scope: Scope, receive: Receive) -> tuple[Response, dict[str, Any]]:
        settings = self.runtime.settings
        refusal = self._refusal()
        if refusal is not None:
            return refusal
        context: dict[str, Any] = {}
        if scope["method"] != "POST":
            context["error"] = "method_not_allowed"
            return error_response(
                405, "method_not_allowed", f"use POST, not {scope['method']}", {"Allow": "POST"}
            ), context
        headers = {name: value for name, value in scope["headers"]}
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                context["error"] = "bad_content_length"
                return error_response(400, "bad_request", "Content-Length is not a number"), context
            if len(declared) > 18 or int(declared) > settings.max_body_bytes:
                context["error"] = "payload_too_large"
                return error_response(
                    413,
                    "payload_too_large",
                    f"body of {declared.decode()[:20]} bytes exceeds {settings.max_body_bytes}",
                ), context
        content_type = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
        if content_type not in _JSON_TYPES and not (
            content_type.startswith(b"application/") and content_type.endswith(b"+json")
        ):
            context["error"] = "unsupported_media_type"
            shown = content_type.decode("latin-1") or "none"
            return error_response(
                415, "unsupported_media_type", f"Content-Type must be application/json, got {shown}"
            ), context
        runtime = self.runtime
        held = [0]  # body bytes this request holds of runtime.body_budget
        try:
            body = await self._read_body(
                receive, held, int(declared) if declared is not None else None, context
            )
            if isinstance(body, Response):
                return body, context
            # Processing slots are taken only by complete bodies: a slow client never holds one.
            refusal = self._refusal()
            if refusal is not None:
                return refusal
            runtime.in_flight += 1
            runtime.metrics.in_flight.inc()
            try:
                return await self._handle_body(scope, headers, body, context), context
            finally:
                runtime.in_flight -= 1
                runtime.metrics.in_flight.dec()
        finally:
            runtime.body_bytes_held -= held[0]

    async def _read_body(
        self, receive: Receive, held: list[int], declared: int | None, context: dict[str, Any]
    ) -> bytes | Response:
        """The whole body within BRIDGE_BODY_TIMEOUT_SECONDS of the headers, within the size
        limit and the process's body budget; otherwise the answer to give."""
        runtime = self.runtime
        settings = runtime.settings
        limit = settings.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        complete = False
        try:
            async with asyncio.timeout(settings.body_timeout_seconds):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        break
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        context["error"] = "payload_too_large"
                        return error_response(413, "payload_too_large", f"body exceeds {limit} bytes")
                    if chunk:
                        if runtime.body_bytes_held + len(chunk) > runtime.body_budget:
                            context.update(
                                error="overloaded", detail="body budget in use", **{_AT_THE_DOOR: True}
                            )
                            return error_response(
                                503,
                                "overloaded",
                                "the bodies in progress fill this process's budget (BRIDGE_MAX_CONCURRENCY x "
                                "BRIDGE_MAX_BODY_BYTES); retry later",
                                {"Retry-After": RETRY_AFTER_SECONDS, "Connection": "close"},
                            )
                        runtime.body_bytes_held += len(chunk)
                        held[0] += len(chunk)
                        chunks.append(chunk)
                    if not message.get("more_body", False):
                        complete = True
                        break
        except TimeoutError:
            runtime.metrics.connections_closed.labels("body_timeout").inc()
            context.update(
                error="body_timeout",
                detail=f"{size} of {declared} bytes after {settings.body_timeout_seconds:g} s",
                **{_BODY_FAILURE: True},
            )
            return error_response(
                408,
                "body_timeout",
                f"the body did not arrive within {settings.body_timeout_seconds:g} s "
                f"(BRIDGE_BODY_TIMEOUT_SECONDS); {size} bytes received",
                {"Connection": "close"},
            )
        if not complete or (declared is not None and size != declared):
            # The client left before the declared length: a partial body is never published,
            # even when its signature matches what did arrive.
            context.update(
                error="incomplete_body",
                detail=f"{size} of {declared} bytes, then the client disconnected",
                **{_BODY_FAILURE: True},
            )
            return error_response(
                400, "incomplete_body", f"the client disconnected after {size} bytes of the body"
            )
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _handle_body(
        self, scope: Scope, headers: dict[bytes, bytes], body: bytes, context: dict[str, Any]
    ) -> Response:
        settings = self.runtime.settings
        signature = headers.get(HEADER_NAME.encode())
        signature_timestamp: int | None = None
        # Unsigned requests pass only when explicitly allowed; with no secrets and no such
        # permission every request fails verification rather than slipping through.
        if not settings.allow_unsigned or (signature is not None and self.runtime.secrets):
            try:
                signature_timestamp = verify(
                    None if signature is None else signature.decode("latin-1"),
                    body,
                    self.runtime.secrets,
                    now=time.time(),
                    tolerance_seconds=settings.signature_tolerance_seconds,
                )
            except SignatureError as exc:
                context["error"] = f"signature:{exc.reason.value}"
                self.runtime.metrics.auth_failures.labels(exc.reason.value).inc()
                return error_response(401, "invalid_signature", exc.detail, reason=exc.reason.value)

        try:
            doc = parse(body)
        except PayloadError as exc:
            context["error"] = "invalid_json"
            context["detail"] = str(exc)
            return error_response(400, "invalid_json", str(exc))
        registry = self.runtime.registry
        if registry is not None and not registry.status.ready:
            context["error"] = "schema_registry"
            detail = f"schema registry not ready: {registry.status.detail}"
            return error_response(503, "not_ready", detail, {"Retry-After": RETRY_AFTER_SECONDS})

        message = self.runtime.builder.build(
            body,
            doc,
            event_id=event_id(body),
            received_at_ms=int(time.time() * 1000),
            signature_timestamp=signature_timestamp,
            # Lazy: only a dead-letter record reads the request's headers.
            request_headers=((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]),
        )
        context.update(event_id=message.event_id, action=message.action, topic=message.topic)
        if message.issues:
            context["dead_letter_reason"] = "; ".join(f"{i.path}: {i.reason}" for i in message.issues)
        return await self._publish(message, context)

    async def _publish(self, message: OutgoingMessage, context: dict[str, Any]) -> Response:
        runtime = self.runtime
        publisher = runtime.publisher
        if publisher is None:
            context["error"] = "not_ready"
            runtime.metrics.delivery_failures.labels("not_ready").inc()
            return error_response(
                503, "not_ready", "the bridge is starting", {"Retry-After": RETRY_AFTER_SECONDS}
            )
        async with runtime.recent.claim(message.event_id) as earlier:
            if earlier is not None:
                context["duplicate"] = True
                runtime.metrics.dedup_hit()
                return json_response(200, {**orjson.loads(earlier), "duplicate": True})
            response = await self._publish_or_spool(publisher, runtime.spool, message, context)
            if response.status_code < 300:
                # Remembered only once Kafka or the spool holds the record: a failed try leaves no trace.
                runtime.recent.remember(message.event_id, bytes(response.body))
                context["outcome"] = message.outcome
                if message.outcome == "dead_lettered":
                    runtime.metrics.dead_lettered.inc()
                elif message.outcome == "unrecognized":
                    runtime.metrics.unrecognized.inc()
            return response

    async def _publish_or_spool(
        self, publisher: Publisher, spool: Spool | None, message: OutgoingMessage, context: dict[str, Any]
    ) -> Response:
        with self.runtime.tracing.publish(message.topic) as span:
            # With tracing on the record carries W3C trace context; a spooled copy carries the same.
            headers = [*message.headers, *span.headers]
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
                    if exc.permanent:
                        # Spooled, it would be retried forever behind a 2xx; answered non-2xx,
                        # the sender and the operator both see why.
                        return _refused_by_kafka(message, exc, context)
                    if exc.reason == "queue_full" or spool is None:
                        context["error"] = f"kafka:{exc.reason}"
                        context["detail"] = exc.detail
                        return _unavailable(
                            message,
                            "kafka_unavailable",
                            f"the record was not acknowledged by Kafka ({exc.reason}: {exc.detail})",
                        )
                    context["kafka_error"] = f"{exc.reason}: {exc.detail}"
                    reason = exc.reason
                else:
                    span.set(
                        messaging__destination__partition__id=str(delivery.partition),
                        messaging__kafka__offset=delivery.offset,
                    )
                    return self._acknowledged(message, delivery, context)
            if reason in _SPOOLED_UNTRIED:
                # Not offered to Kafka yet: refuse now what produce() would refuse on every retry.
                refusal = publisher.refuses(message.key, message.value, headers)
                if refusal is not None:
                    span.fail(f"{refusal.reason}: {refusal.detail}")
                    return _refused_by_kafka(message, refusal, context)
            span.set(unit21__spooled=reason)
            try:
                await spool.append(message.topic, message.key, message.value, headers, message.event_id)
            except SpoolFull as exc:
                context.update(error="spool_full", detail=str(exc))
                return _unavailable(message, "spool_full", f"Kafka is unavailable and {exc}")
            except SpoolError as exc:
                context.update(error="spool_error", detail=str(exc))
                return _unavailable(message, "spool_error", f"Kafka is unavailable and {exc}")
        self.runtime.metrics.spooled.labels(reason).inc()
        context.update(spooled=True, spool_reason=reason)
        return json_response(202, _answer(message, {"topic": message.topic, "spooled": True}))

    @staticmethod
    def _acknowledged(message: OutgoingMessage, delivery: Delivery, context: dict[str, Any]) -> Response:
        context.update(partition=delivery.partition, offset=delivery.offset)
        where = {"topic": delivery.topic, "partition": delivery.partition, "offset": delivery.offset}
        return json_response(200, _answer(message, where))


def _error_word(response: Response) -> str:
    """The JSON "error" of a non-2xx answer (what refusals_total counts by)."""
    try:
        error = orjson.loads(response.body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        error = None
    return error if isinstance(error, str) else f"http_{response.status_code}"


def _answer(message: OutgoingMessage, where: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = {"event_id": message.event_id, **where, "outcome": message.outcome}
    if message.issues:
        payload["errors"] = [{"path": i.path, "reason": i.reason} for i in message.issues]
    return payload


def _unavailable(message: OutgoingMessage, error: str, detail: str) -> Response:
    return error_response(
        503, error, f"{detail}; retry later", {"Retry-After": RETRY_AFTER_SECONDS}, event_id=message.event_id
    )


def _refused_by_kafka(message: OutgoingMessage, exc: PublishError, context: dict[str, Any]) -> Response:
    context["error"] = f"kafka:{exc.reason}"
    context["detail"] = exc.detail
    if exc.reason == "too_large":
        detail = (
            f"Kafka refuses the {len(message.value)}-byte record for {message.topic} as too large "
            f"({exc.detail}); raise the producer's message.max.bytes (KAFKA_MESSAGE_MAX_BYTES) and "
            "the topic's max.message.bytes, or lower BRIDGE_MAX_BODY_BYTES"
        )
        return error_response(413, "record_too_large", detail, event_id=message.event_id)
    detail = f"Kafka refuses the record for {message.topic}: {exc.detail}"
    return error_response(502, "kafka_rejected", detail, event_id=message.event_id)


def _annotate_span(span: SpanHandle, status: int, context: dict[str, Any]) -> None:
    if not span.recording:
        return
    span.set(http__response__status_code=status)
    for key in ("event_id", "action", "outcome", "error"):
        if key in context:
            span.set(**{f"unit21__{key}": str(context[key])})
    if status >= 500:
        span.fail(str(context.get("error", status)))


class BridgeApp(Starlette):
    """Starlette, except that a webhook goes straight to its endpoint.

    The endpoint answers every outcome itself, in JSON, so the error middlewares and the
    router in front of it only cost time once per webhook; the other routes keep them.
    An exception that escapes the endpoint or a route (a bug) is logged here with its
    traceback, counted, and answered with a JSON 500 `internal_error`.
    """

    def __init__(self, webhook: ASGIApp, metrics: Metrics | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.webhook = webhook
        self.metrics = metrics
        # `/webhooks/unit21/` would be redirected to a Location built from the Host header.
        self.router.redirect_slashes = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == WEBHOOK_PATH and not scope.get("root_path"):
            await self.webhook(scope, receive, send)
            return
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await super().__call__(scope, receive, tracking_send)
        except Exception:
            # Starlette's error middleware has answered with the JSON 500 of `internal_error`
            # below (when nothing was sent yet) and re-raised: log it once, here, not via uvicorn.
            log.error("unhandled error while answering %s %s", scope["method"], scope["path"], exc_info=True)
            if self.metrics is not None:
                self.metrics.observe_request(None, 500, 0.0)
            if not started:
                await _internal_error()(scope, receive, send)


def _internal_error() -> Response:
    return error_response(
        500, "internal_error", "the bridge failed to handle this request; the error is logged"
    )


def create_app(settings: Settings, runtime: Runtime | None = None) -> Starlette:
    runtime = runtime or Runtime.from_settings(settings)
    webhook = WebhookEndpoint(runtime)
    door.install(door.Door(settings, runtime.metrics))

    async def healthz(request: Request) -> Response:
        return json_response(200, {"status": "ok"})

    async def readyz(request: Request) -> Response:
        failing, detail = await runtime.check_readiness()
        ready = not failing
        return json_response(200 if ready else 503, {"ready": ready, "failing": failing, "detail": detail})

    async def metrics(request: Request) -> Response:
        # ready{check} as of now; bounded, as a check may wait on an unreachable Kafka (its
        # answer then lands in the cache for the next scrape or probe).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.check_readiness(scrape=True), SCRAPE_READINESS_SECONDS)
        runtime.refresh_gauges()
        return Response(runtime.metrics.render(), media_type=METRICS_CONTENT_TYPE)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    async def internal_error(request: Request, exc: Exception) -> Response:
        return _internal_error()

    def observe_spool(depth: int, oldest_age_seconds: float) -> None:
        runtime.metrics.observe_spool(depth, oldest_age_seconds)
        spool = runtime.spool
        if spool is not None:
            runtime.metrics.observe_spool_size(spool.size_bytes(), spool.max_bytes, spool.parked())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime.shutdown_started = None
        spool: Spool | None = None
        if settings.spool_enabled:
            spool = Spool(
                settings.spool_dir,
                settings.spool_max_bytes,
                observer=observe_spool,
                on_error=runtime.metrics.spool_error,
                on_health=runtime.metrics.spool_health,
            )
            log.info("disk spool: %s (limit %d bytes)", spool.path, settings.spool_max_bytes)
        else:
            log.warning(
                "BRIDGE_SPOOL_ENABLED=false: a Kafka outage longer than BRIDGE_DELIVERY_TIMEOUT_SECONDS is "
                "answered 503, and Unit21 gives up after about 3 s of retries: those webhooks are lost"
            )
        publisher = Publisher(
            producer_config(settings),
            delivery_timeout=settings.delivery_timeout_seconds,
            metrics=runtime.metrics,
        )
        publisher.start()
        drainer = Drainer(spool, publisher).start() if spool is not None else None
        runtime.publisher, runtime.spool = publisher, spool
        runtime.refresh_gauges()
        _flag_shutdown_on_signals(runtime)
        state = await publisher.ready(runtime.topics, 0)
        watcher: asyncio.Task[None] | None = None
        if state.ready:
            log.info("connected to Kafka; topics present: %s", ", ".join(runtime.topics))
        else:
            log.warning("not ready yet: %s", state.detail)
        if not publisher.ever_connected:
            watcher = asyncio.create_task(_await_first_connection(runtime, publisher), name="kafka-first")
        if runtime.registry is not None:
            registry = await asyncio.to_thread(runtime.registry.resolve)
            if registry.ready:
                log.info("schema registry %s: %s", settings.schema_registry_url, registry.detail)
            else:
                log.error("schema registry %s not ready: %s", settings.schema_registry_url, registry.detail)
        await runtime.check_readiness(scrape=True)  # ready{check} from the start, not the first probe
        # Everything built so far (schemas, compiled normalizers, clients, modules) lives as long
        # as the process: moving it out of the collector's generations makes the full collections
        # that per-request garbage triggers cheap. Measured: p99 at the bridge's maximum rate
        # 46-48 -> 20-24 ms and +17-19 % throughput (bench/README.md).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            # uvicorn has stopped accepting and finished (or, past the grace period, cancelled)
            # the requests in flight. What Kafka has not acknowledged by now stays in the spool.
            runtime.begin_shutdown()
            runtime.refusals.flush()
            if watcher is not None:
                watcher.cancel()
            budget = settings.delivery_timeout_seconds + 1.5
            if drainer is not None and spool is not None:
                await _drain_before_exit(runtime, drainer, spool)
            runtime.publisher = None
            await asyncio.to_thread(publisher.close, min(budget, max(0.5, runtime.shutdown_time_left())))
            publisher.flush_logs()
            if spool is not None:
                await spool.close()
            runtime.tracing.shutdown()
            runtime.metrics.process_exiting()

    return BridgeApp(
        webhook,
        runtime.metrics,
        routes=[
            Route(WEBHOOK_PATH, webhook),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: internal_error},
        lifespan=lifespan,
    )


async def _await_first_connection(runtime: Runtime, publisher: Publisher) -> None:
    """Until a broker first answers, ask every second (the door refuses webhooks meanwhile,
    so nothing else would notice that Kafka became reachable)."""
    while not publisher.ever_connected and not runtime.shutting_down:
        await asyncio.sleep(1.0)
        await publisher.ready(runtime.topics, 0)
    if publisher.ever_connected:
        log.info("connected to Kafka")


async def _drain_before_exit(runtime: Runtime, drainer: Drainer, spool: Spool) -> None:
    """Deliver what the spool holds before the process goes: its volume may go with it (an
    emptyDir, a scaled-down replica's claim). Within BRIDGE_SHUTDOWN_GRACE_SECONDS from the
    signal; what Kafka does not take by then stays on disk for the next process."""
    before = spool.depth() - spool.parked()
    started = time.monotonic()
    await drainer.stop(grace=max(0.5, runtime.shutdown_time_left()), drain=True)
    left = spool.depth() - spool.parked()
    if before:
        level = logging.WARNING if left else logging.INFO
        log.log(
            level,
            "shutdown: delivered %d of %d spooled record(s) to Kafka in %.2f s; %d left in the spool",
            before - left,
            before,
            time.monotonic() - started,
            left,
            extra={"spool_delivered": before - left, "spool_left": left},
        )


def _flag_shutdown_on_signals(runtime: Runtime) -> None:
    """Turn readiness false the moment SIGTERM/SIGINT arrives, then let uvicorn's own handler
    (installed before the lifespan starts, restored after it ends) begin its graceful stop."""
    if threading.current_thread() is not threading.main_thread():
        return  # an embedding test client; only the main thread may set signal handlers
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if not callable(previous):
            continue

        def handler(sig: int, frame: Any, previous: Any = previous) -> None:
            runtime.begin_shutdown()
            previous(sig, frame)

        signal.signal(signum, handler)


def app_from_env() -> Starlette:
    """uvicorn factory for `serve` (each worker process builds its own app and producer)."""
    from bridge.ops.logs import configure_logging

    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format or "json")
    return create_app(settings)
