"""The Starlette application: routes, the webhook handler and the lifespan that owns the producer.

Request path, one step per module: method -> declared size -> content type -> signature
(signature.py) -> parse (payload.py) -> normalize + encode (messages.py) -> publish
(publisher.py) -> answer. Only this module knows about HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bridge import routes
from bridge.codec import Codec, SingleObjectCodec
from bridge.config import Settings
from bridge.messages import MessageBuilder, OutgoingMessage
from bridge.payload import PayloadError, event_id, parse
from bridge.publisher import Publisher, PublishError, producer_config
from bridge.schemas import SchemaSet
from bridge.signature import HEADER_NAME, SignatureError, verify

if TYPE_CHECKING:
    from bridge.registry import RegistryCodec

log = logging.getLogger("bridge.app")

WEBHOOK_PATH = "/webhooks/unit21"
RETRY_AFTER_SECONDS = "1"
_JSON_TYPES = (b"application/json",)


class Runtime:
    """What the request path needs; the pure parts are built at once, the producer in the lifespan."""

    def __init__(
        self, settings: Settings, builder: MessageBuilder, registry: RegistryCodec | None = None
    ) -> None:
        self.settings = settings
        self.builder = builder
        self.registry = registry  # set in Schema Registry mode: ids resolved in the lifespan
        self.secrets = tuple(s.encode("utf-8") for s in settings.webhook_secrets)
        self.topics = [builder.topic(suffix) for suffix in routes.ALL_SUFFIXES]
        self.publisher: Publisher | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        schemas = SchemaSet.load()
        registry: RegistryCodec | None = None
        codec: Codec = SingleObjectCodec(schemas)
        if settings.schema_registry_url:
            from bridge.registry import registry_codec  # imports the registry client only when used

            codec = registry = registry_codec(settings, schemas)
        return cls(settings, MessageBuilder(schemas, codec, settings.topic_prefix), registry)


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
        response, context = await self.handle(scope, receive)
        await response(scope, receive, send)
        context["status"] = response.status_code
        context["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
        level = logging.INFO if response.status_code < 500 else logging.WARNING
        log.log(level, "webhook %s", " ".join(f"{k}={v}" for k, v in context.items()))

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
        registry = self.runtime.registry
        if registry is not None and not registry.status.ready:
            context["error"] = "schema_registry"
            detail = f"schema registry not ready: {registry.status.detail}"
            return error_response(503, "not_ready", detail, {"Retry-After": RETRY_AFTER_SECONDS}), context

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
        publisher = self.runtime.publisher
        if publisher is None:
            return error_response(
                503, "not_ready", "the bridge is starting", {"Retry-After": RETRY_AFTER_SECONDS}
            )
        try:
            delivery = await publisher.publish(message.topic, message.key, message.value, message.headers)
        except PublishError as exc:
            context["error"] = f"kafka:{exc.reason}"
            context["detail"] = exc.detail
            return error_response(
                503,
                "kafka_unavailable",
                f"the record was not acknowledged by Kafka ({exc.reason}: {exc.detail}); retry later",
                {"Retry-After": RETRY_AFTER_SECONDS},
                event_id=message.event_id,
            )
        context.update(partition=delivery.partition, offset=delivery.offset)
        payload: dict[str, Any] = {
            "event_id": message.event_id,
            "topic": delivery.topic,
            "partition": delivery.partition,
            "offset": delivery.offset,
            "outcome": message.outcome,
        }
        if message.issues:
            payload["errors"] = [{"path": i.path, "reason": i.reason} for i in message.issues]
        return json_response(200, payload)


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
        if publisher is None:
            return json_response(503, {"ready": False, "detail": {"kafka": "producer not started"}})
        state = await publisher.ready(runtime.topics, settings.readiness_cache_seconds)
        ready, detail = state.ready, dict(state.detail)
        if runtime.registry is not None:
            registry = await asyncio.to_thread(
                runtime.registry.resolve_if_due, settings.readiness_cache_seconds
            )
            ready = ready and registry.ready
            detail["schema_registry"] = registry.detail
            if registry.failing_subject is not None:
                detail["schema_registry_subject"] = registry.failing_subject
        return json_response(200 if ready else 503, {"ready": ready, "detail": detail})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        publisher = Publisher(producer_config(settings), delivery_timeout=settings.delivery_timeout_seconds)
        publisher.start()
        runtime.publisher = publisher
        state = await publisher.ready(runtime.topics, 0)
        if state.ready:
            log.info("connected to Kafka; topics present: %s", ", ".join(runtime.topics))
        else:
            log.warning("not ready yet: %s", state.detail)
        if runtime.registry is not None:
            registry = await asyncio.to_thread(runtime.registry.resolve)
            if registry.ready:
                log.info("schema registry %s: %s", settings.schema_registry_url, registry.detail)
            else:
                log.error("schema registry %s not ready: %s", settings.schema_registry_url, registry.detail)
        try:
            yield
        finally:
            runtime.publisher = None
            publisher.close(timeout=settings.delivery_timeout_seconds + 5)

    return Starlette(
        routes=[
            Route(WEBHOOK_PATH, WebhookEndpoint(runtime)),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )


def app_from_env() -> Starlette:
    """uvicorn factory for `serve` (each worker process builds its own app and producer)."""
    from bridge.logs import configure_logging

    settings = Settings.from_env()
    configure_logging(settings.log_level)
    return create_app(settings)
