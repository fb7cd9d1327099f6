"""OpenTelemetry tracing: a span per webhook, a child span per publish, `traceparent` in Kafka.

Off unless an exporter is configured the standard way (OTEL_TRACES_EXPORTER or
OTEL_EXPORTER_OTLP[_TRACES]_ENDPOINT, and not OTEL_SDK_DISABLED). The opentelemetry
packages are imported only then, so the bridge runs without the `tracing` extra; when
tracing is configured but the packages are missing, start-up fails with the fix.

The provider belongs to the app (never the global one), so tests can hand in their own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING

from bridge.settings import ConfigError, Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter as SpanExporterType
    from opentelemetry.trace import Span, Tracer

INSTRUMENTATION_NAME = "bridge"
DEFAULT_SERVICE_NAME = "unit21-kafka-bridge"
# What shutdown may spend exporting the last spans. The SDK's own shutdown waits for the
# exporter's timeout (OTEL_EXPORTER_OTLP_TIMEOUT, 10 s by default) and its force_flush ignores
# the timeout it is given, so an unreachable collector would hold the process past the
# pod's grace period: the shutdown runs on a daemon thread that we wait for this long.
FLUSH_TIMEOUT_SECONDS = 2.0

log = logging.getLogger("bridge.tracing")


class SpanHandle:
    """What the request path may do with a span; a no-op when tracing is off."""

    def __init__(self, span: Span | None = None) -> None:
        self.span = span

    @property
    def recording(self) -> bool:
        return self.span is not None

    @property
    def trace_id(self) -> str | None:
        if self.span is None:
            return None
        ctx = self.span.get_span_context()
        return f"{ctx.trace_id:032x}" if ctx.is_valid else None

    def set(self, **attributes: str | int | float | bool) -> None:
        if self.span is not None:
            self.span.set_attributes({k.replace("__", "."): v for k, v in attributes.items()})

    def fail(self, description: str) -> None:
        if self.span is not None:
            from opentelemetry.trace import Status, StatusCode

            self.span.set_status(Status(StatusCode.ERROR, description))


class PublishSpan(SpanHandle):
    def __init__(self, span: Span | None = None, headers: list[tuple[str, bytes]] | None = None) -> None:
        super().__init__(span)
        self.headers: list[tuple[str, bytes]] = headers or []  # W3C trace context for the record


class Tracing:
    """Starts the bridge's spans; `Tracing()` (no tracer) does nothing at all."""

    def __init__(self, tracer: Tracer | None = None, provider: TracerProvider | None = None) -> None:
        self._tracer = tracer
        self._provider = provider  # owned: flushed and shut down with the app

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    @classmethod
    def from_provider(cls, provider: TracerProvider, *, owned: bool = False) -> Tracing:
        from bridge import __version__

        return cls(provider.get_tracer(INSTRUMENTATION_NAME, __version__), provider if owned else None)

    def webhook(
        self, method: str, path: str, headers: list[tuple[bytes, bytes]]
    ) -> AbstractContextManager[SpanHandle]:
        # Off: one shared no-op, as these run once per request.
        return _NO_SPAN if self._tracer is None else self._webhook_span(self._tracer, method, path, headers)

    def publish(self, topic: str) -> AbstractContextManager[PublishSpan]:
        return _NO_PUBLISH_SPAN if self._tracer is None else self._publish_span(self._tracer, topic)

    @staticmethod
    @contextmanager
    def _webhook_span(
        tracer: Tracer, method: str, path: str, headers: list[tuple[bytes, bytes]]
    ) -> Iterator[SpanHandle]:
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind

        # A proxy in front of the bridge may already have started the trace.
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers}
        parent = propagate.extract(carrier)
        with tracer.start_as_current_span(
            f"{method} {path}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
            record_exception=False,
            set_status_on_exception=True,
        ) as span:
            yield SpanHandle(span)

    @staticmethod
    @contextmanager
    def _publish_span(tracer: Tracer, topic: str) -> Iterator[PublishSpan]:
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind, set_span_in_context

        with tracer.start_as_current_span(
            f"publish {topic}",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.destination.name": topic,
            },
            record_exception=False,
        ) as span:
            carrier: dict[str, str] = {}
            propagate.inject(carrier, context=set_span_in_context(span))
            yield PublishSpan(span, [(k, v.encode("latin-1")) for k, v in carrier.items()])

    def shutdown(self, timeout_seconds: float = FLUSH_TIMEOUT_SECONDS) -> bool:
        """Export the spans still queued and stop, within `timeout_seconds`; False when the
        exporter did not finish in time (those spans are dropped)."""
        provider, self._provider = self._provider, None
        if provider is None:
            return True
        started = time.monotonic()
        worker = threading.Thread(target=provider.shutdown, name="otel-shutdown", daemon=True)
        worker.start()
        worker.join(timeout_seconds)
        if worker.is_alive():
            log.warning(
                "tracing: the span exporter did not finish within %.1f s; the spans not yet exported "
                "are dropped (is the OTLP endpoint reachable?)",
                timeout_seconds,
                extra={"waited_seconds": round(time.monotonic() - started, 2)},
            )
            return False
        return True


def tracing_from_settings(settings: Settings) -> Tracing:
    if not settings.tracing_enabled:
        return Tracing()
    try:
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError:
        raise ConfigError(
            "tracing is configured (OTEL_TRACES_EXPORTER / OTEL_EXPORTER_OTLP_ENDPOINT) but the "
            "OpenTelemetry SDK is not installed: pip install 'unit21-kafka-bridge[tracing]', "
            "or set OTEL_SDK_DISABLED=true."
        ) from None
    resource = Resource.create()  # reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    # Shut down by the app within FLUSH_TIMEOUT_SECONDS, not by an atexit hook without a bound.
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    names = [n.strip().lower() for n in (settings.otel_traces_exporter or "otlp").split(",") if n.strip()]
    for name in names:
        exporter: SpanExporter
        if name == "otlp":
            exporter = _otlp_exporter()
        elif name == "console":
            exporter = ConsoleSpanExporter()
        elif name == "none":
            continue
        else:
            raise ConfigError(
                f"OTEL_TRACES_EXPORTER={name!r} is not supported here: use otlp, console or none."
            )
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracing.from_provider(provider, owned=True)


def _otlp_exporter() -> SpanExporterType:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise ConfigError(
            "OTLP tracing needs opentelemetry-exporter-otlp-proto-http: "
            "pip install 'unit21-kafka-bridge[tracing]'."
        ) from None
    # Endpoint, headers, timeout and TLS come from the standard OTEL_EXPORTER_OTLP_* variables.
    return OTLPSpanExporter()


_NO_SPAN: AbstractContextManager[SpanHandle] = nullcontext(SpanHandle())
_NO_PUBLISH_SPAN: AbstractContextManager[PublishSpan] = nullcontext(PublishSpan())
