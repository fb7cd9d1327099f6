"""`unit21-bridge`: assembles the commands (one module each, declaring its own parser) and runs one."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from bridge import __version__
from bridge.cli import dev, dlq, send, serve, spool, tail, topics
from bridge.cli import schemas as schema_cli
from bridge.cli.cluster import FORMATTER
from bridge.cli.exits import ExitCode
from bridge.settings import ConfigError

# In the order `unit21-bridge --help` lists them.
COMMANDS = (serve, dev, send, tail, topics, schema_cli, spool, dlq)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unit21-bridge",
        description="Receive signed Unit21 webhooks and publish them to Kafka as Avro records.",
        formatter_class=FORMATTER,
        epilog="Configuration comes from environment variables; see the README.\n"
        "Exit status: 0 done, 1 some items failed, 2 bad arguments or settings, 3 Kafka or a topic\n"
        "unavailable (docs/development.md, 'Exit status').",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        print(f"unit21-bridge: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except ValidationError as exc:
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]) or "settings"
            print(f"unit21-bridge: invalid setting {name}: {error['msg']}", file=sys.stderr)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    return result
