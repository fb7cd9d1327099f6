"""`unit21-bridge send`: sign JSON files and post them as Unit21 does."""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bridge import __version__
from bridge.cli.cluster import FORMATTER
from bridge.cli.exits import ExitCode, fail
from bridge.settings import Settings

DEFAULT_URL = "http://127.0.0.1:8080/webhooks/unit21"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = sub.add_parser(
        "send",
        help="sign JSON files and post them like Unit21 does",
        formatter_class=FORMATTER,
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


def cmd_send(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    secret = args.secret or (settings.webhook_secrets[0] if settings.webhook_secrets else None)
    if secret is None and not args.unsigned:
        return fail("send", "give --secret (or set UNIT21_WEBHOOK_SECRETS), or --unsigned", ExitCode.USAGE)
    failures = 0
    for name in args.files:
        failures += not _post(args, name, None if args.unsigned else secret)
    return ExitCode.FAILED if failures else ExitCode.OK


def _post(args: argparse.Namespace, name: str, secret: str | None) -> bool:
    """POST one file (signed with `secret` unless None) and print the answer; True on a 2xx."""
    from bridge.ingress.signature import signature_header

    body = Path(name).read_bytes()
    headers = {"Content-Type": "application/json", "User-Agent": f"unit21-bridge-send/{__version__}"}
    if secret is not None:
        timestamp = args.timestamp if args.timestamp is not None else int(time.time())
        headers["Unit21-Signature"] = signature_header(secret, timestamp, body)
    request = urllib.request.Request(args.url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            status: int = response.status
            answer: bytes = response.read()
    except urllib.error.HTTPError as exc:
        status, answer = exc.code, exc.read()
    except urllib.error.URLError as exc:
        print(f"{name}: cannot reach {args.url}: {exc.reason}", file=sys.stderr)
        return False
    print(f"{name}: {status} {answer.decode('utf-8', 'replace')}")
    return 200 <= status < 300
