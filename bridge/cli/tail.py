"""`unit21-bridge tail`: print a topic's records as JSON lines."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bridge.cli.cluster import FORMATTER, add_bootstrap_option, cluster_settings
from bridge.cli.exits import ExitCode, fail
from bridge.contract import routes

if TYPE_CHECKING:
    from bridge.contract.detecting import DetectingCodec
    from bridge.contract.records import MessageBuilder


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tail = sub.add_parser(
        "tail",
        help="print a topic's records as JSON lines",
        formatter_class=FORMATTER,
        description="Read a topic from the beginning (default) or the end and print each decoded record. "
        "Without --follow it stops at the end of the topic. TOPIC may be a suffix such as 'alert'.",
        epilog="example:\n  unit21-bridge tail alert\n"
        "  unit21-bridge tail unit21.entity --follow --from-end\n"
        "  unit21-bridge tail dlq --unit21-json",
    )
    tail.add_argument("topic", metavar="TOPIC")
    add_bootstrap_option(tail)
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


def cmd_tail(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException

    from bridge.contract.detecting import DetectingCodec
    from bridge.contract.records import MessageBuilder
    from bridge.contract.schemas import SchemaSet

    settings = cluster_settings(args, "tail")
    if settings is None:
        return ExitCode.USAGE
    topic = args.topic if args.topic not in routes.ALL_SUFFIXES else settings.topic(args.topic)
    schemas = SchemaSet.load()
    codec = DetectingCodec(schemas, settings)  # single-object or Confluent framing, by the first byte
    builder = MessageBuilder(schemas, codec, settings.topic_prefix)
    printed = 0
    try:
        for msg in _tail_messages(settings.kafka_client_config(), topic, args):
            text = _render(msg, codec, builder if args.unit21_json else None)
            if text is None:
                continue
            print(text, flush=True)
            printed += 1
            if args.max_messages and printed >= args.max_messages:
                break
    except (LookupError, TimeoutError, KafkaException) as exc:
        # A missing topic, an unreachable cluster, a topic not read to its end in time.
        return fail("tail", exc, ExitCode.UNAVAILABLE)
    return ExitCode.OK


def _render(msg: Any, codec: DetectingCodec, builder: MessageBuilder | None) -> str | None:
    """One record as a JSON line (with `builder`: its original Unit21 JSON); None, after saying
    why on stderr, for a record that cannot be decoded or printed."""
    from bridge.contract.codec import DecodeError
    from bridge.contract.parsing import dumps

    try:
        schema, record = codec.decode(msg.value() or b"")
    except DecodeError as exc:
        print(f"unit21-bridge tail: offset {msg.offset()}: {exc}", file=sys.stderr)
        return None
    try:
        value = builder.reassemble(schema, record) if builder is not None else record
        line = {
            "topic": msg.topic(),
            "partition": msg.partition(),
            "offset": msg.offset(),
            "key": msg.key(),
            "headers": dict(msg.headers() or []),
            "schema": schema.full_name,
            "value": value,
        }
        # parsing.dumps, not json.dumps: numbers kept as Decimals print as their exact digits.
        return dumps(line, default=_jsonable)
    except (ValueError, TypeError) as exc:
        # A kept body that is not JSON, or nested beyond what a serializer writes
        # (records from before the nesting limit): say which, go on with the next.
        print(f"unit21-bridge tail: offset {msg.offset()}: cannot print the record: {exc}", file=sys.stderr)
        return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot serialise {type(value).__name__}")


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
