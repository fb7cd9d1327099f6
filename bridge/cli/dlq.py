"""`unit21-bridge dlq replay`: re-process dead-lettered and unrecognized webhooks."""

from __future__ import annotations

import argparse

from bridge.cli.cluster import FORMATTER, add_bootstrap_option, cluster_settings
from bridge.cli.exits import ExitCode, fail
from bridge.contract import routes


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dlq = sub.add_parser("dlq", help="work with dead-lettered and unrecognized webhooks")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    replay = dlq_sub.add_parser(
        "replay",
        help="re-process stored webhooks through the current code (dry run by default)",
        formatter_class=FORMATTER,
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
    add_bootstrap_option(replay)
    replay.set_defaults(func=cmd_dlq_replay)


def cmd_dlq_replay(args: argparse.Namespace) -> int:
    from bridge.delivery.replay import replay

    settings = cluster_settings(args, "dlq")
    if settings is None:
        return ExitCode.USAGE
    try:
        summary = replay(settings, args.topic, apply=args.apply)
    except (LookupError, TimeoutError, RuntimeError) as exc:
        # A missing topic, an unreachable cluster, a topic not read to its end in time (RuntimeError:
        # the consumer's error, named by replay.read_values).
        return fail("dlq replay", exc, ExitCode.UNAVAILABLE)
    print(summary.render())
    return ExitCode.FAILED if summary.publish_failures else ExitCode.OK
