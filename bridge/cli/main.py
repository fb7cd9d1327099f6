"""`unit21-bridge`: serve, dev, send, tail, topics, dlq."""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bridge import __version__
from bridge.cli import schemas as schema_cli
from bridge.contract import routes
from bridge.settings import BODY_COPIES, WORKER_BASELINE_BYTES, ConfigError, Settings, check_spool_dir

log = logging.getLogger("bridge.cli")

DEFAULT_URL = "http://127.0.0.1:8080/webhooks/unit21"
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples" / "webhooks"


def cluster_settings(args: argparse.Namespace, command: str) -> Settings | None:
    """Settings with --bootstrap-servers applied; None (after saying why) when no cluster is named."""
    settings = Settings.from_env()
    if args.bootstrap_servers:
        settings = settings.model_copy(update={"kafka_bootstrap_servers": args.bootstrap_servers})
    if not settings.kafka_bootstrap_servers:
        print(
            f"unit21-bridge {command}: set KAFKA_BOOTSTRAP_SERVERS or pass --bootstrap-servers",
            file=sys.stderr,
        )
        return None
    return settings


# -- serve --------------------------------------------------------------------------------

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


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bridge.ingress import door
    from bridge.ops.logs import configure_logging

    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format or "json")
    workers = args.workers or settings.workers
    try:
        settings.check_serve()
        if settings.spool_enabled:
            check_spool_dir(settings.spool_dir)
        _check_producer_config(settings)
        _check_memory(settings)
        fd_limit = door.raise_fd_limit(settings)
        _prepare_metrics_dir(settings, workers)
    except (ConfigError, ValueError) as exc:
        print(f"unit21-bridge: cannot start: {exc}", file=sys.stderr)
        return 2
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
    return 0


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


# -- dev ----------------------------------------------------------------------------------


def cmd_dev(args: argparse.Namespace) -> int:
    import uvicorn

    from bridge.delivery.embedded import EmbeddedBroker
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
        return 2
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
    secret = settings.webhook_secrets[0] if settings.webhook_secrets else "dev-" + secrets.token_hex(8)
    if not settings.webhook_secrets:
        overrides["webhook_secrets"] = (secret,)
    if settings.spool_enabled and "BRIDGE_SPOOL_DIR" not in os.environ:
        overrides["spool_dir"] = Path(tempfile.mkdtemp(prefix="unit21-bridge-spool-"))
        log.warning(
            "BRIDGE_SPOOL_DIR is not set: the disk spool is in %s for this development run",
            overrides["spool_dir"],
        )
    settings = settings.model_copy(update=overrides)
    try:
        names = routes.all_topics(settings.topic_prefix)
        created = create_topics(settings.kafka_client_config(), names, partitions=3, replication_factor=-1)
        log.info("topics: %s", ", ".join(f"{name} ({state})" for name, state in created.items()))
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
        # After its graceful stop uvicorn re-raises SIGTERM with the handler it found. The
        # default one would kill this process before the `finally` below stops the broker.
        signal.signal(signal.SIGTERM, _exit_on_signal)
        uvicorn.run(
            create_app(settings, freeze_gc=True),
            host=args.host,
            port=args.port,
            **{**UVICORN_OPTIONS, **door.uvicorn_options(settings)},
            timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        )
    finally:
        if broker is not None:
            broker.stop()
    return 0


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


# -- send ---------------------------------------------------------------------------------


def cmd_send(args: argparse.Namespace) -> int:
    from bridge.ingress.signature import signature_header

    settings = Settings.from_env()
    secret = args.secret or (settings.webhook_secrets[0] if settings.webhook_secrets else None)
    if secret is None and not args.unsigned:
        print(
            "unit21-bridge send: give --secret (or set UNIT21_WEBHOOK_SECRETS), or --unsigned",
            file=sys.stderr,
        )
        return 2
    failures = 0
    for name in args.files:
        body = Path(name).read_bytes()
        headers = {"Content-Type": "application/json", "User-Agent": f"unit21-bridge-send/{__version__}"}
        if secret is not None and not args.unsigned:
            timestamp = args.timestamp if args.timestamp is not None else int(time.time())
            headers["Unit21-Signature"] = signature_header(secret, timestamp, body)
        request = urllib.request.Request(args.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=args.timeout) as response:
                status, answer = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, answer = exc.code, exc.read()
        except urllib.error.URLError as exc:
            print(f"{name}: cannot reach {args.url}: {exc.reason}", file=sys.stderr)
            failures += 1
            continue
        print(f"{name}: {status} {answer.decode('utf-8', 'replace')}")
        failures += not 200 <= status < 300
    return 1 if failures else 0


# -- tail ---------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot serialise {type(value).__name__}")


def cmd_tail(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException

    from bridge.contract.codec import DecodeError
    from bridge.contract.detecting import DetectingCodec
    from bridge.contract.parsing import dumps
    from bridge.contract.records import MessageBuilder
    from bridge.contract.schemas import SchemaSet

    settings = cluster_settings(args, "tail")
    if settings is None:
        return 2
    topic = args.topic if args.topic not in routes.ALL_SUFFIXES else settings.topic(args.topic)
    schemas = SchemaSet.load()
    codec = DetectingCodec(schemas, settings)  # single-object or Confluent framing, by the first byte
    builder = MessageBuilder(schemas, codec, settings.topic_prefix)
    printed = 0
    try:
        for msg in _tail_messages(settings.kafka_client_config(), topic, args):
            try:
                schema, record = codec.decode(msg.value() or b"")
            except DecodeError as exc:
                print(f"unit21-bridge tail: offset {msg.offset()}: {exc}", file=sys.stderr)
                continue
            try:
                value = builder.reassemble(schema, record) if args.unit21_json else record
                line = {
                    "topic": msg.topic(),
                    "partition": msg.partition(),
                    "offset": msg.offset(),
                    "key": msg.key(),
                    "headers": dict(msg.headers() or []),
                    "schema": schema.full_name,
                    "value": value,
                }
                # payload.dumps, not json.dumps: numbers kept as Decimals print as their exact digits.
                text = dumps(line, default=_jsonable)
            except (ValueError, TypeError) as exc:
                # A kept body that is not JSON, or nested beyond what a serializer writes
                # (records from before the nesting limit): say which, go on with the next.
                print(
                    f"unit21-bridge tail: offset {msg.offset()}: cannot print the record: {exc}",
                    file=sys.stderr,
                )
                continue
            print(text, flush=True)
            printed += 1
            if args.max_messages and printed >= args.max_messages:
                break
    except (LookupError, TimeoutError, KafkaException) as exc:
        print(f"unit21-bridge tail: {exc}", file=sys.stderr)
        return 2
    return 0


def _tail_messages(config: dict[str, Any], topic: str, args: argparse.Namespace) -> Iterator[Any]:
    """The records `tail` prints: the topic read to its end (topics.read_to_end) or, with
    --follow, everything from the start (or from now, --from-end) until --timeout."""
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError

    from bridge.delivery.topics import assigned_consumer, read_to_end

    if not args.follow:
        if args.from_end:
            return  # nothing produced yet, and no waiting for it
        try:
            yield from read_to_end(config, topic, "tail", timeout=args.timeout or 60.0)
        except TimeoutError:
            if not args.timeout:
                raise  # the topic could not be read to its end: say so
        return  # --timeout: stop after that many seconds, as asked
    deadline = time.monotonic() + args.timeout if args.timeout else None
    consumer, _ = assigned_consumer(config, topic, "tail", OFFSET_END if args.from_end else OFFSET_BEGINNING)
    try:
        while deadline is None or time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    print(f"unit21-bridge tail: {error.str()}", file=sys.stderr)
                continue
            yield msg
    finally:
        consumer.close()


# -- topics -------------------------------------------------------------------------------


def cmd_topics_create(args: argparse.Namespace) -> int:
    from bridge.delivery.topics import create_topics

    settings = cluster_settings(args, "topics")
    if settings is None:
        return 2
    config: dict[str, str] = {}
    for item in args.config:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"unit21-bridge topics: --config expects key=value, got {item!r}", file=sys.stderr)
            return 2
        config[key] = value
    names = routes.all_topics(settings.topic_prefix)
    try:
        result = create_topics(
            settings.kafka_client_config(),
            names,
            partitions=args.partitions,
            replication_factor=args.replication_factor,
            config=config,
        )
    except RuntimeError as exc:
        print(f"unit21-bridge topics: {exc}", file=sys.stderr)
        return 1
    for name, state in result.items():
        print(f"{name}\t{state}")
    return 0


# -- dlq ----------------------------------------------------------------------------------


def cmd_dlq_replay(args: argparse.Namespace) -> int:
    from bridge.delivery.replay import replay

    settings = cluster_settings(args, "dlq")
    if settings is None:
        return 2
    try:
        summary = replay(settings, args.topic, apply=args.apply)
    except (LookupError, TimeoutError, RuntimeError) as exc:
        print(f"unit21-bridge dlq replay: {exc}", file=sys.stderr)
        return 1
    print(summary.render())
    return 1 if summary.publish_failures else 0


# -- spool --------------------------------------------------------------------------------


def cmd_spool_list(args: argparse.Namespace) -> int:
    from bridge.delivery.spool import SpoolError, list_spooled, spool_files

    directory = Path(args.dir) if args.dir else Settings.from_env().spool_dir
    if not directory.is_dir():
        print(f"unit21-bridge spool list: {directory} is not a directory", file=sys.stderr)
        return 2
    now = time.time()
    count = size = 0
    files = spool_files(directory)
    oldest: float | None = None
    try:
        for entry in list_spooled(files):
            count += 1
            size += entry.size
            oldest = entry.enqueued_at if oldest is None else min(oldest, entry.enqueued_at)
            if args.limit and count > args.limit:
                continue
            headers = {name: value.decode("utf-8", "backslashreplace") for name, value in entry.headers}
            line = {
                "file": entry.file,
                "seq": entry.seq,
                "topic": entry.topic,
                "key": entry.key.decode("utf-8", "backslashreplace"),
                "event_id": entry.event_id,
                "action": headers.get("action"),
                "bytes": entry.size,
                "enqueued_at": datetime.fromtimestamp(entry.enqueued_at, UTC).isoformat(timespec="seconds"),
                "age_seconds": round(now - entry.enqueued_at, 1),
            }
            print(json.dumps(line), flush=True)
    except SpoolError as exc:
        print(f"unit21-bridge spool list: {exc}", file=sys.stderr)
        return 1
    age = "" if oldest is None else f"; the oldest waits for {now - oldest:.0f} s"
    print(
        f"{count} record(s), {size} bytes in {len(files)} spool file(s) in {directory}{age}", file=sys.stderr
    )
    return 0


def cmd_spool_drain(args: argparse.Namespace) -> int:
    import asyncio

    from bridge.delivery.spool import SpoolError
    from bridge.ops.logs import configure_logging

    settings = cluster_settings(args, "spool drain")
    if settings is None:
        return 2
    configure_logging(settings.log_level, settings.log_format or "text")
    directory = Path(args.spool_dir) if args.spool_dir else settings.spool_dir
    if not directory.is_dir():
        print(f"unit21-bridge spool drain: {directory} is not a directory", file=sys.stderr)
        return 2
    try:
        summary = asyncio.run(_drain_directory(settings, directory, args.timeout))
        _count_leftovers(summary, directory)
    except (SpoolError, ValueError) as exc:
        print(f"unit21-bridge spool drain: {exc}", file=sys.stderr)
        return 1
    print(summary.render(directory), file=sys.stderr)
    return 0 if summary.done else 1


class _DrainSummary:
    def __init__(self) -> None:
        self.delivered = 0
        self.left = 0  # in the files this command took over
        self.live = 0  # in files a live process holds (it delivers them itself)
        self.live_files = 0
        self.unreadable: list[str] = []  # files adoption could not read, renamed *.unreadable
        self.own_file: str | None = None
        self.reason: str | None = None

    @property
    def done(self) -> bool:
        return self.reason is None and not self.left and not self.live and not self.unreadable

    def render(self, directory: Path) -> str:
        lines = [f"spool drain: {self.delivered} record(s) delivered to Kafka from {directory}"]
        if self.left:
            lines.append(f"NOT DONE: {self.left} record(s) left on disk: {self.reason}")
        elif self.reason:
            lines.append(f"NOT DONE: {self.reason}")
        if self.live:
            lines.append(
                f"NOT DONE: {self.live} record(s) in {self.live_files} file(s) locked by a live bridge "
                "process, which delivers them itself (stop it, or let it drain, then run this again)"
            )
        if self.unreadable:
            lines.append(
                f"NOT DONE: {len(self.unreadable)} spool file(s) could not be read and are kept for "
                f"inspection (see the log above): {', '.join(self.unreadable)}"
            )
        if self.done:
            lines.append("done: no record left in the spool directory")
        return "\n".join(lines)


async def _drain_directory(settings: Settings, directory: Path, seconds: float) -> _DrainSummary:
    """Adopt every spool file no live process holds (under its flock, as a bridge at start-up
    does), send the records in spool order and delete each after Kafka's ack."""
    import asyncio

    from bridge.delivery.publisher import Publisher, producer_config
    from bridge.delivery.spool import Drainer, Spool

    summary = _DrainSummary()
    deadline = time.monotonic() + seconds
    own: str | None = None
    publisher = Publisher(producer_config(settings), delivery_timeout=settings.delivery_timeout_seconds)
    publisher.start()
    try:
        # Files are taken over only once Kafka answers: with Kafka away they stay as they are.
        state = await publisher.ready([], 0)
        while not publisher.ever_connected and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            state = await publisher.ready([], 0)
        if not publisher.ever_connected:
            summary.reason = (
                f"cannot reach Kafka at {settings.kafka_bootstrap_servers} within {seconds:.0f} s "
                f"({state.detail.get('kafka')}); no file was touched"
            )
        else:
            spool = Spool(directory, settings.spool_max_bytes)
            own = spool.path.name
            drainer = Drainer(spool, publisher, orphan_scan_seconds=3600.0).start()
            # The drainer retries with its backoff meanwhile (a broker restarting is not the end).
            while spool.depth() > spool.parked() and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            await drainer.stop(grace=max(0.5, deadline - time.monotonic()), drain=True)
            summary.delivered = drainer.delivered
            summary.left = spool.depth()
            if spool.parked():
                summary.reason = (
                    f"{spool.parked()} record(s) Kafka refuses for good (see the log above); "
                    f"kept in {spool.path}"
                )
            elif summary.left:
                summary.reason = (
                    f"Kafka did not acknowledge them within {seconds:.0f} s; kept in {spool.path}"
                )
            await spool.close()  # empty: removed; otherwise it stays, for the next bridge or run
    finally:
        await asyncio.to_thread(publisher.close, 5.0)
    summary.own_file = own
    return summary


def _count_leftovers(summary: _DrainSummary, directory: Path) -> None:
    """What is still in the directory besides the file this command kept (if any)."""
    from bridge.delivery.spool import list_spooled, spool_files

    live = [entry for entry in list_spooled(spool_files(directory)) if entry.file != summary.own_file]
    summary.live = len(live)
    summary.live_files = len({entry.file for entry in live})
    summary.unreadable = sorted(path.name for path in directory.glob("*.unreadable"))


# -- parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="unit21-bridge",
        description="Receive signed Unit21 webhooks and publish them to Kafka as Avro records.",
        formatter_class=formatter,
        epilog="Configuration comes from environment variables; see the README.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the bridge (production)",
        formatter_class=formatter,
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

    dev = sub.add_parser(
        "dev",
        help="run the bridge with an embedded broker and a development secret",
        formatter_class=formatter,
        description="Start an in-memory Kafka-compatible broker (unless KAFKA_BOOTSTRAP_SERVERS is set), "
        "create the topics, print a signing secret and serve on 127.0.0.1:8080.",
        epilog="example:\n  unit21-bridge dev\n  unit21-bridge dev --port 9000",
    )
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8080)
    dev.set_defaults(func=cmd_dev)

    send = sub.add_parser(
        "send",
        help="sign JSON files and post them like Unit21 does",
        formatter_class=formatter,
        description="Sign each file's exact bytes (Unit21-Signature: t=<now>,s0=<hmac>) and POST it; "
        "prints the status and answer. Exits 1 if any answer is not 2xx.",
        epilog="example:\n  unit21-bridge send --secret s3cr3t examples/webhooks/alert_created.json\n"
        "  unit21-bridge send --url https://bridge.example.com/webhooks/unit21 --secret s3cr3t *.json",
    )
    send.add_argument("files", nargs="+", metavar="FILE")
    send.add_argument("--url", default=DEFAULT_URL, help=f"webhook URL (default: {DEFAULT_URL})")
    send.add_argument("--secret", help="signing secret (default: first of UNIT21_WEBHOOK_SECRETS)")
    send.add_argument("--timestamp", type=int, help="signature timestamp (default: now)")
    send.add_argument("--unsigned", action="store_true", help="send without a signature")
    send.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each answer")
    send.set_defaults(func=cmd_send)

    tail = sub.add_parser(
        "tail",
        help="print a topic's records as JSON lines",
        formatter_class=formatter,
        description="Read a topic from the beginning (default) or the end and print each decoded record. "
        "Without --follow it stops at the end of the topic. TOPIC may be a suffix such as 'alert'.",
        epilog="example:\n  unit21-bridge tail alert\n"
        "  unit21-bridge tail unit21.entity --follow --from-end\n"
        "  unit21-bridge tail dlq --unit21-json",
    )
    tail.add_argument("topic", metavar="TOPIC")
    tail.add_argument("--bootstrap-servers", help="default: KAFKA_BOOTSTRAP_SERVERS")
    position = tail.add_mutually_exclusive_group()
    position.add_argument("--from-beginning", action="store_true", default=True, help="(default)")
    position.add_argument("--from-end", action="store_true", help="only records produced from now on")
    tail.add_argument("--follow", action="store_true", help="keep waiting for new records")
    tail.add_argument("--max-messages", type=int, default=0, help="stop after N records")
    tail.add_argument("--timeout", type=float, default=0, help="stop after N seconds")
    tail.add_argument(
        "--unit21-json", action="store_true", help="print the original Unit21 JSON instead of the Avro record"
    )
    tail.set_defaults(func=cmd_tail)

    topics = sub.add_parser("topics", help="manage the bridge's topics")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    create = topics_sub.add_parser(
        "create",
        help="create every topic the bridge writes to (idempotent)",
        formatter_class=formatter,
        description="Create <prefix>alert, case, entity, rule, event, file_export, unrecognized and dlq. "
        "Existing topics are left as they are.",
        epilog="example:\n  unit21-bridge topics create --partitions 12 --replication-factor 3 \\\n"
        "    --config min.insync.replicas=2 --config retention.ms=2592000000",
    )
    create.add_argument("--bootstrap-servers", help="default: KAFKA_BOOTSTRAP_SERVERS")
    create.add_argument("--partitions", type=int, default=6)
    create.add_argument(
        "--replication-factor", type=int, default=-1, help="default: the broker's default.replication.factor"
    )
    create.add_argument("--config", action="append", default=[], metavar="KEY=VALUE", help="topic config")
    create.set_defaults(func=cmd_topics_create)
    schema_cli.add_parser(sub)

    spool = sub.add_parser("spool", help="inspect and drain the disk spool")
    spool_sub = spool.add_subparsers(dest="spool_command", required=True, metavar="SUBCOMMAND")
    spool_list = spool_sub.add_parser(
        "list",
        help="print every record waiting in the spool as a JSON line (oldest first per file)",
        formatter_class=formatter,
        description="Reads the spool files read-only while the bridge runs: no sqlite3 shell needed "
        "in the container. A summary (records, bytes, files, oldest age) goes to stderr.",
        epilog="example:\n  unit21-bridge spool list\n"
        "  unit21-bridge spool list --dir /var/lib/unit21-bridge/spool --limit 20",
    )
    spool_list.add_argument("--dir", help="the spool directory (default: BRIDGE_SPOOL_DIR)")
    spool_list.add_argument("--limit", type=int, default=0, help="print at most this many records")
    spool_list.set_defaults(func=cmd_spool_list)
    spool_drain = spool_sub.add_parser(
        "drain",
        help="deliver every record of every spool file in the directory to Kafka, then delete it",
        formatter_class=formatter,
        description="For spool files no live process holds (an orphaned volume claim, a pod that "
        "was killed): each file is taken over under its lock, as a bridge does at start-up, and its "
        "records are sent in their order and deleted once Kafka acknowledges them. Files a live "
        "bridge holds are left to it. Exits 0 when no record is left in the directory, 1 (with the "
        "reason) otherwise.",
        epilog="example:\n  KAFKA_BOOTSTRAP_SERVERS=kafka:9092 \\\n"
        "    unit21-bridge spool drain --spool-dir /mnt/orphan",
    )
    spool_drain.add_argument("--spool-dir", help="the spool directory (default: BRIDGE_SPOOL_DIR)")
    spool_drain.add_argument("--bootstrap-servers", help="default: KAFKA_BOOTSTRAP_SERVERS")
    spool_drain.add_argument(
        "--timeout", type=float, default=120.0, help="give up after this many seconds (default: 120)"
    )
    spool_drain.set_defaults(func=cmd_spool_drain)

    dlq = sub.add_parser("dlq", help="work with dead-lettered and unrecognized webhooks")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    replay = dlq_sub.add_parser(
        "replay",
        help="re-process stored webhooks through the current code (dry run by default)",
        formatter_class=formatter,
        description="Read <prefix>dlq (or <prefix>unrecognized) from the beginning, rebuild each stored body "
        "with today's schemas under its original event_id, and print how many now validate and why the "
        "others still fail. With --apply, publish the ones that validate to their topics. The source "
        "topic is left as it is; a second --apply publishes again under the same event_ids.",
        epilog="example:\n  unit21-bridge dlq replay\n  unit21-bridge dlq replay --apply\n"
        "  unit21-bridge dlq replay --topic unrecognized --apply",
    )
    replay.add_argument("--apply", action="store_true", help="publish (default: dry run)")
    replay.add_argument(
        "--topic",
        choices=[routes.DLQ_SUFFIX, routes.UNRECOGNIZED.topic_suffix],
        default=routes.DLQ_SUFFIX,
        help="which topic to replay (default: dlq)",
    )
    replay.add_argument("--bootstrap-servers", help="default: KAFKA_BOOTSTRAP_SERVERS")
    replay.set_defaults(func=cmd_dlq_replay)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        print(f"unit21-bridge: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]) or "settings"
            print(f"unit21-bridge: invalid setting {name}: {error['msg']}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result
