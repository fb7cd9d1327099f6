"""The exit status of every `unit21-bridge` command: one table, so a script or a Kubernetes Job
can tell "try again later" from "fix the command" whatever the command (docs/development.md)."""

from __future__ import annotations

import sys
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    # The command ran, and some of its items failed: a webhook answered non-2xx, a record not
    # published, a generated file out of date, records left in the spool.
    FAILED = 1
    # Nothing was tried: bad arguments (argparse's own status), a setting missing or invalid.
    USAGE = 2
    # What the command works on is not there now: a missing topic, an unreachable cluster, a
    # topic that cannot be read to its end in time. Running it again later may succeed.
    UNAVAILABLE = 3
    INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as shells report it


def fail(command: str, message: object, code: ExitCode) -> ExitCode:
    """Say why on stderr, as `unit21-bridge <command>: <why>`, and return `code`."""
    print(f"unit21-bridge {command}: {message}", file=sys.stderr)
    return code
