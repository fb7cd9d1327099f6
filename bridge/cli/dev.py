"""`unit21-bridge dev`: the bridge with an embedded broker and a development secret."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from bridge import __version__
from bridge.cli.cluster import FORMATTER
from bridge.cli.exits import ExitCode
from bridge.cli.serve import UVICORN_OPTIONS
from bridge.contract import routes
from bridge.settings import ConfigError, Settings

if TYPE_CHECKING:
    from bridge.delivery.embedded import EmbeddedBroker

log = logging.getLogger("bridge.cli")

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples" / "webhooks"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dev = sub.add_parser(
        "dev",
        help="run the bridge with an embedded broker and a development secret",
        formatter_class=FORMATTER,
        description="Start an in-memory Kafka-compatible broker (unless KAFKA_BOOTSTRAP_SERVERS is set), "
        "create the topics, print a signing secret and serve on 127.0.0.1:8080.",
        epilog="example:\n  unit21-bridge dev\n  unit21-bridge dev --port 9000",
    )
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8080)
    dev.set_defaults(func=cmd_dev)


def cmd_dev(args: argparse.Namespace) -> int:
    import uvicorn

    from bridge.delivery.topics import create_topics
    from bridge.ingress import door
    from bridge.ingress.app import create_app
    from bridge.ops.logs import configure_logging

    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format or "text")
    try:
        door.raise_fd_limit(settings)
    except ConfigError as exc:
        print(f"unit21-bridge: cannot start: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    settings, broker = _development_settings(settings)
    try:
        names = routes.all_topics(settings.topic_prefix)
        created = create_topics(settings.kafka_client_config(), names, partitions=3, replication_factor=-1)
        log.info("topics: %s", ", ".join(f"{name} ({state})" for name, state in created.items()))
        _print_banner(settings, args)
        # After its graceful stop uvicorn re-raises SIGTERM with the handler it found. The
        # default one would kill this process before the `finally` below stops the broker.
        signal.signal(signal.SIGTERM, _exit_on_signal)
        uvicorn.run(
            create_app(settings),
            host=args.host,
            port=args.port,
            **{**UVICORN_OPTIONS, **door.uvicorn_options(settings)},
            timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        )
    finally:
        if broker is not None:
            broker.stop()
    return ExitCode.OK


def _development_settings(settings: Settings) -> tuple[Settings, EmbeddedBroker | None]:
    """What `dev` fills in when it is not set: a broker, a signing secret, a spool directory."""
    from bridge.delivery.embedded import EmbeddedBroker

    broker: EmbeddedBroker | None = None
    overrides: dict[str, object] = {}
    if not settings.kafka_bootstrap_servers:
        broker = EmbeddedBroker().start()
        overrides["kafka_bootstrap_servers"] = broker.bootstrap_servers
        log.warning(
            "KAFKA_BOOTSTRAP_SERVERS is not set: started an EMBEDDED in-memory broker (Tansu) at %s. "
            "Records are lost when this process stops. `unit21-bridge serve` never does this.",
            broker.bootstrap_servers,
        )
    if not settings.webhook_secrets:
        overrides["webhook_secrets"] = ("dev-" + secrets.token_hex(8),)
    if settings.spool_enabled and "BRIDGE_SPOOL_DIR" not in os.environ:
        overrides["spool_dir"] = Path(tempfile.mkdtemp(prefix="unit21-bridge-spool-"))
        log.warning(
            "BRIDGE_SPOOL_DIR is not set: the disk spool is in %s for this development run",
            overrides["spool_dir"],
        )
    return settings.model_copy(update=overrides), broker


def _print_banner(settings: Settings, args: argparse.Namespace) -> None:
    secret = settings.webhook_secrets[0]
    sample = EXAMPLES_DIR / "alert_created.json"
    url = f"http://{args.host}:{args.port}/webhooks/unit21"
    print(
        "\n"
        f"  unit21-kafka-bridge {__version__} (development mode)\n"
        f"  webhook URL     : {url}\n"
        f"  signing secret  : {secret}\n"
        f"  Kafka bootstrap : {settings.kafka_bootstrap_servers}\n\n"
        "  Post a signed sample webhook (another terminal):\n"
        f"    .venv/bin/unit21-bridge send --url {url} --secret {secret} {sample}\n"
        "  Read the records back:\n"
        f"    KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers} "
        f".venv/bin/unit21-bridge tail {settings.topic('alert')}\n",
        flush=True,
    )


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
