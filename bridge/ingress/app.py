"""The Starlette application: the routes and the lifespan that owns the producer and the spool.

The webhook itself is endpoint.py; what each outcome answers is answers.py; the rule that
makes a 2xx safe is bridge/delivery/policy.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.delivery.drainer import Drainer
from bridge.delivery.publisher import Publisher, producer_config
from bridge.delivery.spool import Spool
from bridge.errors import ErrorCode
from bridge.ingress import door
from bridge.ingress.answers import internal_error, json_response
from bridge.ingress.endpoint import WEBHOOK_PATH, WebhookEndpoint
from bridge.ingress.runtime import Runtime
from bridge.ingress.shutdown import drain_before_exit, flag_shutdown_on_signals
from bridge.ops.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from bridge.ops.metrics import Metrics
from bridge.settings import Settings

__all__ = ["WEBHOOK_PATH", "BridgeApp", "app_from_env", "create_app"]

log = logging.getLogger("bridge.app")

SCRAPE_READINESS_SECONDS = 0.5


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
                await internal_error()(scope, receive, send)


def create_app(settings: Settings, runtime: Runtime | None = None, *, freeze_gc: bool = False) -> Starlette:
    """`freeze_gc`: for a server process (`serve`, `dev`), move everything built at start-up
    out of the collector's generations (see _freeze_start_up); never for an app in a test."""
    runtime = runtime or Runtime.from_settings(settings)
    the_door = door.Door(settings, runtime.metrics)
    door.install(the_door)
    webhook = WebhookEndpoint(runtime, the_door)

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
        code = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}.get(exc.status_code)
        payload = {"error": code.value if code else "http_error", "detail": str(exc.detail)}
        return json_response(exc.status_code, payload, dict(exc.headers or {}))

    async def on_exception(request: Request, exc: Exception) -> Response:
        return internal_error()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with _running(settings, runtime, the_door):
            if freeze_gc:
                _freeze_start_up()
            yield

    return BridgeApp(
        webhook,
        runtime.metrics,
        routes=[
            Route(WEBHOOK_PATH, webhook),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: on_exception},
        lifespan=lifespan,
    )


def _freeze_start_up() -> None:
    # Everything built so far (schemas, compiled normalizers, clients, modules) lives as long
    # as the process: moving it out of the collector's generations makes the full collections
    # that per-request garbage triggers cheap (bench/README.md). Process-wide, so only for a
    # server process: a test suite that builds many apps would freeze each one's garbage.
    gc.collect()
    gc.freeze()


def _open_spool(settings: Settings, runtime: Runtime) -> Spool | None:
    if not settings.spool_enabled:
        log.warning(
            "BRIDGE_SPOOL_ENABLED=false: a Kafka outage longer than BRIDGE_DELIVERY_TIMEOUT_SECONDS is "
            "answered 503, and Unit21 gives up after about 3 s of retries: those webhooks are lost"
        )
        return None

    def observe_spool(depth: int, oldest_age_seconds: float) -> None:
        runtime.metrics.observe_spool(depth, oldest_age_seconds)
        spool = runtime.spool
        if spool is not None:
            runtime.metrics.observe_spool_size(spool.size_bytes(), spool.max_bytes, spool.parked())

    spool = Spool(
        settings.spool_dir,
        settings.spool_max_bytes,
        observer=observe_spool,
        on_error=runtime.metrics.spool_error,
        on_health=runtime.metrics.spool_health,
    )
    log.info("disk spool: %s (limit %d bytes)", spool.path, settings.spool_max_bytes)
    return spool


@asynccontextmanager
async def _running(settings: Settings, runtime: Runtime, the_door: door.Door) -> AsyncIterator[None]:
    """The producer, the spool and its drainer, from start-up to the end of the shutdown."""
    runtime.shutdown_started = None
    spool = _open_spool(settings, runtime)
    publisher = Publisher(
        producer_config(settings), delivery_timeout=settings.delivery_timeout_seconds, metrics=runtime.metrics
    )
    publisher.start()
    drainer = Drainer(spool, publisher).start() if spool is not None else None
    runtime.attach(publisher, spool)
    runtime.refresh_gauges()
    flag_shutdown_on_signals(runtime)
    watcher = await _connect(settings, runtime, publisher)
    await runtime.check_readiness(scrape=True)  # ready{check} from the start, not the first probe
    try:
        yield
    finally:
        # uvicorn has stopped accepting and finished (or, past the grace period, cancelled)
        # the requests in flight. What Kafka has not acknowledged by now stays in the spool.
        runtime.begin_shutdown()
        runtime.refusals.flush()
        the_door.events.flush()
        if watcher is not None:
            watcher.cancel()
        budget = settings.delivery_timeout_seconds + 1.5
        if drainer is not None and spool is not None:
            await drain_before_exit(runtime, drainer, spool)
        runtime.attach(None, spool)  # webhooks still arriving are answered not_ready
        await asyncio.to_thread(publisher.close, min(budget, max(0.5, runtime.shutdown_time_left())))
        publisher.flush_logs()
        if spool is not None:
            await spool.close()
        runtime.tracing.shutdown()
        runtime.metrics.process_exiting()


async def _connect(settings: Settings, runtime: Runtime, publisher: Publisher) -> asyncio.Task[None] | None:
    """The first look at Kafka and the registry; a watcher task while Kafka was never reached."""
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
    return watcher


async def _await_first_connection(runtime: Runtime, publisher: Publisher) -> None:
    """Until a broker first answers, ask every second (the door refuses webhooks meanwhile,
    so nothing else would notice that Kafka became reachable)."""
    while not publisher.ever_connected and not runtime.shutting_down:
        await asyncio.sleep(1.0)
        await publisher.ready(runtime.topics, 0)
    if publisher.ever_connected:
        log.info("connected to Kafka")


def app_from_env() -> Starlette:
    """uvicorn factory for `serve` (each worker process builds its own app and producer)."""
    from bridge.ops.logs import configure_logging

    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format or "json")
    return create_app(settings, freeze_gc=True)
