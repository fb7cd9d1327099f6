"""What the bridge tells about itself: Prometheus metrics, structured logs (and the rate limiter
for repeated lines), OpenTelemetry tracing. The public surface is `__all__`."""

from bridge.ops.logs import JsonFormatter, TextFormatter, configure_logging
from bridge.ops.metrics import Metrics, prepare_multiprocess_dir
from bridge.ops.refusals import RefusalLog
from bridge.ops.tracing import SpanHandle, Tracing, tracing_from_settings

__all__ = [
    "JsonFormatter",
    "Metrics",
    "RefusalLog",
    "SpanHandle",
    "TextFormatter",
    "Tracing",
    "configure_logging",
    "prepare_multiprocess_dir",
    "tracing_from_settings",
]
