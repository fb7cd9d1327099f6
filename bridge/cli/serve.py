"""`unit21-bridge serve`: the production server (uvicorn workers running bridge.ingress.app)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from bridge.cli.cluster import FORMATTER
from bridge.cli.exits import ExitCode
from bridge.settings import BODY_COPIES, WORKER_BASELINE_BYTES, ConfigError, Settings, check_spool_dir

log = logging.getLogger("bridge.cli")

# uvicorn settings shared by `serve`, `dev` and the benchmark's comparison apps (bench/apps).
UVICORN_OPTIONS: dict[str, Any] = {
    # Named, not "auto": without uvloop or httptools uvicorn would fall back silently to the
    # pure-Python loop and parser, at a fraction of the throughput.
    "loop": "uvloop",
    "http": "httptools",
    "log_config": None,  # logging is configured by configure_logging
    "access_log": False,  # the bridge logs its own line per webhook
    "server_header": False,
}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the bridge (production)",
        formatter_class=FORMATTER,
        description="Serve POST /webhooks/unit21, /healthz and /readyz. Never starts a broker.",
        epilog="example:\n  KAFKA_BOOTSTRAP_SERVERS=kafka:9092 UNIT21_WEBHOOK_SECRETS=s3cr3t \\\n"
        "    unit21-bridge serve --port 8080 --workers 2",
    )
    serve.add_argument("--host", help="bind address (default: BRIDGE_HOST or 0.0.0.0)")
    serve.add_argument("--port", type=int, help="port (default: BRIDGE_PORT or 8080)")
    serve.add_argument(
        "--workers", type=int, help="processes, each with its own producer (default: BRIDGE_WORKERS)"
    )
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bridge.ingress import door
    from bridge.ops.logs import configure_logging

    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format or "json")
    workers = args.workers or settings.workers
    try:
        fd_limit = _check_before_start(settings, workers)
    except (ConfigError, ValueError) as exc:
        print(f"unit21-bridge: cannot start: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    _log_limits(settings, fd_limit)
    uvicorn.run(
        "bridge.ingress.app:app_from_env",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=workers,
        **{**UVICORN_OPTIONS, **door.uvicorn_options(settings)},
        # In-flight requests get this long after SIGTERM; the lifespan then stops the drainer
        # and flushes the producer within what is left (bridge/ingress/app.py).
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )
    return ExitCode.OK


def _check_before_start(settings: Settings, workers: int) -> int:
    """Refuse a configuration that cannot work before binding the port; returns the open-file limit."""
    from bridge.ingress import door

    settings.check_serve()
    if settings.spool_enabled:
        check_spool_dir(settings.spool_dir)
    _check_producer_config(settings)
    _check_memory(settings)
    fd_limit = door.raise_fd_limit(settings)
    _prepare_metrics_dir(settings, workers)
    return fd_limit


def _log_limits(settings: Settings, fd_limit: int) -> None:
    log.info(
        "limits per worker: %d connections (open-file limit %d), %d webhooks handled at once, request "
        "head %d bytes within %g s, body %d bytes within %g s, idle connections closed after %g s",
        settings.max_connections,
        fd_limit,
        settings.max_concurrency,
        settings.max_header_bytes,
        settings.header_timeout_seconds,
        settings.max_body_bytes,
        settings.body_timeout_seconds,
        settings.keepalive_timeout_seconds,
    )


def _check_memory(settings: Settings) -> None:
    """Log one worker's worst-case memory and refuse to start when it exceeds the budget."""
    worst = settings.worst_case_memory_bytes()
    mib = 1024 * 1024
    arithmetic = (
        f"{WORKER_BASELINE_BYTES // mib} MiB baseline + BRIDGE_MAX_CONCURRENCY={settings.max_concurrency} x "
        f"{BODY_COPIES} x BRIDGE_MAX_BODY_BYTES={settings.max_body_bytes} + BRIDGE_MAX_CONNECTIONS="
        f"{settings.max_connections} x BRIDGE_MAX_HEADER_BYTES={settings.max_header_bytes}"
    )
    if worst > settings.memory_budget_bytes:
        raise ConfigError(
            f"one worker may need {worst} bytes ({worst / mib:.0f} MiB = {arithmetic}), more than "
            f"BRIDGE_MEMORY_BUDGET_BYTES={settings.memory_budget_bytes} "
            f"({settings.memory_budget_bytes / mib:.0f} MiB): lower BRIDGE_MAX_CONCURRENCY, "
            "BRIDGE_MAX_BODY_BYTES, BRIDGE_MAX_CONNECTIONS or BRIDGE_MAX_HEADER_BYTES, or raise "
            "BRIDGE_MEMORY_BUDGET_BYTES (and the container's memory limit)"
        )
    log.info(
        "worst-case memory per worker: %d bytes (%.0f MiB = %s), budget BRIDGE_MEMORY_BUDGET_BYTES=%d",
        worst,
        worst / mib,
        arithmetic,
        settings.memory_budget_bytes,
    )


def _prepare_metrics_dir(settings: Settings, workers: int) -> None:
    """Several workers share /metrics through prometheus-client's multiprocess directory.

    With more than one worker and no PROMETHEUS_MULTIPROC_DIR, a fresh temporary directory is
    created and exported to the workers (they are spawned after this, so they inherit it).
    A configured directory is cleared of the previous run's files, as prometheus-client requires.
    """
    import os
    import tempfile

    from bridge.ops.metrics import MULTIPROC_ENV, prepare_multiprocess_dir

    path = settings.prometheus_multiproc_dir
    if path is None:
        if workers <= 1:
            return
        path = tempfile.mkdtemp(prefix="unit21-bridge-metrics-")
        os.environ[MULTIPROC_ENV] = path
        log.info("%s not set and %d workers: using %s for /metrics", MULTIPROC_ENV, workers, path)
    removed = prepare_multiprocess_dir(path)
    if removed:
        log.info("removed %d metric file(s) left in %s by a previous run", removed, path)


def _check_producer_config(settings: Settings) -> None:
    """Fail before binding the port when a KAFKA_* property is unknown or invalid."""
    from confluent_kafka import KafkaException, Producer

    from bridge.delivery.publisher import body_limit_warning, producer_config

    try:
        Producer(producer_config(settings)).flush(0)
    except KafkaException as exc:
        raise ConfigError(
            f"invalid Kafka setting: {exc.args[0].str()} (check the KAFKA_* variables)"
        ) from None
    warning = body_limit_warning(settings)
    if warning is not None:
        logging.getLogger("bridge.cli").warning(warning)
