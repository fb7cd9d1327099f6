"""The Starlette application: routes, the webhook handler and the lifespan that owns the producer.

Request path, one step per module: concurrency limit -> method -> declared size -> content
type -> signature (signature.py) -> parse (payload.py) -> normalize + encode (messages.py) ->
dedup (dedup.py) -> publish (publisher.py) or spool (spool.py) -> answer. Only this module
knows about HTTP.

What each delivery outcome answers (docs/delivery.md):
  Kafka acknowledged                                  -> 200
  timeout / broker error / producer known disconnected -> spooled on disk (fsync'ed) -> 202
  an earlier record with the same key is in the spool  -> spooled behind it -> 202
  same event_id delivered recently                     -> 200 with the first answer, not published again
  producer queue full, spool full, spool off and Kafka failed, too many requests -> 503 + Retry-After
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bridge import routes
from bridge.codec import SingleObjectCodec
from bridge.config import Settings
from bridge.dedup import RecentDeliveries
from bridge.messages import Delivery, MessageBuilder, OutgoingMessage
from bridge.payload import PayloadError, event_id, parse
from bridge.publisher import Publisher, PublishError, producer_config
from bridge.schemas import SchemaSet
from bridge.signature import HEADER_NAME, SignatureError, verify
from bridge.spool import Drainer, Spool, SpoolError, SpoolFull

log = logging.getLogger("bridge.app")

WEBHOOK_PATH = "/webhooks/unit21"
RETRY_AFTER_SECONDS = "1"
_JSON_TYPES = (b"application/json",)


class Runtime:
    """What the request path needs; the pure parts are built at once, the producer in the lifespan."""

    def __init__(self, settings: Settings, builder: MessageBuilder) -> None:
        self.settings = settings
        self.builder = builder
        self.secrets = tuple(s.encode("utf-8") for s in settings.webhook_secrets)
        self.topics = [builder.topic(suffix) for suffix in routes.ALL_SUFFIXES]
        self.publisher: Publisher | None = None
        self.spool: Spool | None = None
        self.recent = RecentDeliveries(settings.dedup_window_seconds, settings.dedup_max_entries)
        self.in_flight = 0
        self.shutdown_started: float | None = None  # monotonic time of SIGTERM/SIGINT

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
    def from_settings(cls, settings: Settings) -> Runtime:
        schemas = SchemaSet.load()
        return cls(settings, MessageBuilder(schemas, SingleObjectCodec(schemas), settings.topic_prefix))


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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        runtime = self.runtime
        refusal = self._refusal()
        if refusal is not None:
            response, context = refusal
            await response(scope, receive, send)
        else:
            runtime.in_flight += 1
            try:
                response, context = await self.handle(scope, receive)
                await response(scope, receive, send)
            finally:
                runtime.in_flight -= 1
        context["status"] = response.status_code
        context["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
        level = logging.INFO if response.status_code < 500 else logging.WARNING
        log.log(level, "webhook %s", " ".join(f"{k}={v}" for k, v in context.items()))

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
        else:
            return None
        response = error_response(503, error, f"{detail}; retry later", {"Retry-After": RETRY_AFTER_SECONDS})
        return response, {"error": error}

    async def handle(self, scope: Scope, receive: Receive) -> tuple[Response, dict[str, Any]]:
        settings = self.runtime.settings
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
            if int(declared) > settings.max_body_bytes:
                context["error"] = "payload_too_large"
                return error_response(
                    413,
                    "payload_too_large",
                    f"body of {int(declared)} bytes exceeds {settings.max_body_bytes}",
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
        body = await _read_body(receive, settings.max_body_bytes)
        if body is None:
            context["error"] = "payload_too_large"
            return error_response(
                413, "payload_too_large", f"body exceeds {settings.max_body_bytes} bytes"
            ), context

        signature = headers.get(HEADER_NAME.encode())
        signature_timestamp: int | None = None
        if self.runtime.secrets and (signature is not None or not settings.allow_unsigned):
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
                return error_response(401, "invalid_signature", exc.detail, reason=exc.reason.value), context

        try:
            doc = parse(body)
        except PayloadError as exc:
            context["error"] = "invalid_json"
            return error_response(400, "invalid_json", str(exc)), context

        message = self.runtime.builder.build(
            body,
            doc,
            event_id=event_id(body),
            received_at_ms=int(time.time() * 1000),
            signature_timestamp=signature_timestamp,
            request_headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
        )
        context.update(event_id=message.event_id, action=message.action, topic=message.topic)
        if message.issues:
            context["dead_letter_reason"] = "; ".join(f"{i.path}: {i.reason}" for i in message.issues)
        return await self._publish(message, context), context

    async def _publish(self, message: OutgoingMessage, context: dict[str, Any]) -> Response:
        runtime = self.runtime
        publisher = runtime.publisher
        if publisher is None:
            return error_response(
                503, "not_ready", "the bridge is starting", {"Retry-After": RETRY_AFTER_SECONDS}
            )
        async with runtime.recent.claim(message.event_id) as earlier:
            if earlier is not None:
                context["duplicate"] = True
                return json_response(200, {**orjson.loads(earlier), "duplicate": True})
            response = await self._publish_or_spool(publisher, runtime.spool, message, context)
            # Remembered only once Kafka or the spool holds the record: a failed try leaves no trace.
            if response.status_code < 300:
                runtime.recent.remember(message.event_id, bytes(response.body))
            return response

    async def _publish_or_spool(
        self, publisher: Publisher, spool: Spool | None, message: OutgoingMessage, context: dict[str, Any]
    ) -> Response:
        if spool is not None and spool.holds(message.topic, message.key):
            reason = "key_in_spool"  # publishing now would overtake the earlier record of this key
        elif spool is not None and not publisher.connected:
            reason = "kafka_disconnected"  # no point waiting out the delivery deadline
        else:
            try:
                delivery = await publisher.publish(message.topic, message.key, message.value, message.headers)
            except PublishError as exc:
                context["kafka_error"] = f"{exc.reason}: {exc.detail}"
                if exc.reason == "queue_full" or spool is None:
                    return self._unavailable(
                        message, "kafka_unavailable", f"not acknowledged by Kafka ({exc.reason})"
                    )
                reason = exc.reason
            else:
                return self._acknowledged(message, delivery, context)
        try:
            await spool.append(message.topic, message.key, message.value, message.headers, message.event_id)
        except SpoolFull as exc:
            context["error"] = "spool_full"
            return self._unavailable(message, "spool_full", f"Kafka is unavailable and {exc}")
        except SpoolError as exc:
            context["error"] = "spool_error"
            return self._unavailable(message, "spool_error", f"Kafka is unavailable and {exc}")
        context.update(spooled=True, spool_reason=reason)
        return json_response(202, self._answer(message, {"topic": message.topic, "spooled": True}))

    def _acknowledged(
        self, message: OutgoingMessage, delivery: Delivery, context: dict[str, Any]
    ) -> Response:
        context.update(partition=delivery.partition, offset=delivery.offset)
        where = {"topic": delivery.topic, "partition": delivery.partition, "offset": delivery.offset}
        return json_response(200, self._answer(message, where))

    @staticmethod
    def _answer(message: OutgoingMessage, where: dict[str, Any]) -> dict[str, Any]:
        payload: dict[str, Any] = {"event_id": message.event_id, **where, "outcome": message.outcome}
        if message.issues:
            payload["errors"] = [{"path": i.path, "reason": i.reason} for i in message.issues]
        return payload

    @staticmethod
    def _unavailable(message: OutgoingMessage, error: str, detail: str) -> Response:
        return error_response(
            503,
            error,
            f"{detail}; retry later",
            {"Retry-After": RETRY_AFTER_SECONDS},
            event_id=message.event_id,
        )


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def create_app(settings: Settings, runtime: Runtime | None = None) -> Starlette:
    runtime = runtime or Runtime.from_settings(settings)

    async def healthz(request: Request) -> Response:
        return json_response(200, {"status": "ok"})

    async def readyz(request: Request) -> Response:
        publisher = runtime.publisher
        if runtime.shutting_down:
            return json_response(503, {"ready": False, "detail": {"shutting_down": True}})
        if publisher is None:
            return json_response(503, {"ready": False, "detail": {"kafka": "producer not started"}})
        state = await publisher.ready(runtime.topics, settings.readiness_cache_seconds)
        ready, detail = state.ready, dict(state.detail)
        spool = runtime.spool
        if spool is None:
            detail["spool"] = {"enabled": False}
        else:
            detail["spool"] = {"enabled": True, **spool.detail()}
            # While Kafka is unreachable the spool takes the webhooks: stay in the Service, or
            # Unit21's retries would meet a closed door and the webhooks would be lost.
            ready = ready or (not state.reachable and spool.has_room())
        return json_response(200 if ready else 503, {"ready": ready, "detail": detail})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        spool: Spool | None = None
        if settings.spool_enabled:
            spool = Spool(settings.spool_dir, settings.spool_max_bytes)
            log.info("disk spool: %s (limit %d bytes)", spool.path, settings.spool_max_bytes)
        else:
            log.warning(
                "BRIDGE_SPOOL_ENABLED=false: a Kafka outage longer than BRIDGE_DELIVERY_TIMEOUT_SECONDS is "
                "answered 503, and Unit21 gives up after about 3 s of retries: those webhooks are lost"
            )
        publisher = Publisher(producer_config(settings), delivery_timeout=settings.delivery_timeout_seconds)
        publisher.start()
        drainer = Drainer(spool, publisher).start() if spool is not None else None
        runtime.publisher, runtime.spool = publisher, spool
        _flag_shutdown_on_signals(runtime)
        state = await publisher.ready(runtime.topics, 0)
        if state.ready:
            log.info("connected to Kafka; topics present: %s", ", ".join(runtime.topics))
        else:
            log.warning("not ready yet: %s", state.detail)
        try:
            yield
        finally:
            # uvicorn has stopped accepting and finished (or, past the grace period, cancelled)
            # the requests in flight. What Kafka has not acknowledged by now stays in the spool.
            runtime.begin_shutdown()
            budget = settings.delivery_timeout_seconds + 1.5
            if drainer is not None:
                await drainer.stop(grace=min(budget, max(0.5, runtime.shutdown_time_left())))
            runtime.publisher = None
            await asyncio.to_thread(publisher.close, min(budget, max(0.5, runtime.shutdown_time_left())))
            if spool is not None:
                await spool.close()

    return Starlette(
        routes=[
            Route(WEBHOOK_PATH, WebhookEndpoint(runtime)),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
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
    from bridge.logs import configure_logging

    settings = Settings.from_env()
    configure_logging(settings.log_level)
    return create_app(settings)
