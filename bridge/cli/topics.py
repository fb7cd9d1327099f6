"""`unit21-bridge topics create`: the bridge's topics, created idempotently."""

from __future__ import annotations

import argparse

from bridge.cli.cluster import FORMATTER, add_bootstrap_option, cluster_settings
from bridge.cli.exits import ExitCode, fail
from bridge.contract import routes


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    topics = sub.add_parser("topics", help="manage the bridge's topics")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    create = topics_sub.add_parser(
        "create",
        help="create every topic the bridge writes to (idempotent)",
        formatter_class=FORMATTER,
        description="Create <prefix>alert, case, entity, rule, event, file_export, unrecognized and dlq. "
        "Existing topics are left as they are.",
        epilog="example:\n  unit21-bridge topics create --partitions 12 --replication-factor 3 \\\n"
        "    --config min.insync.replicas=2 --config retention.ms=2592000000",
    )
    add_bootstrap_option(create)
    create.add_argument("--partitions", type=int, default=6)
    create.add_argument(
        "--replication-factor", type=int, default=-1, help="default: the broker's default.replication.factor"
    )
    create.add_argument("--config", action="append", default=[], metavar="KEY=VALUE", help="topic config")
    create.set_defaults(func=cmd_topics_create)


def cmd_topics_create(args: argparse.Namespace) -> int:
    from bridge.delivery.topics import create_topics

    settings = cluster_settings(args, "topics")
    if settings is None:
        return ExitCode.USAGE
    config: dict[str, str] = {}
    for item in args.config:
        key, sep, value = item.partition("=")
        if not sep:
            return fail("topics", f"--config expects key=value, got {item!r}", ExitCode.USAGE)
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
        return fail("topics", exc, ExitCode.FAILED)
    for name, state in result.items():
        print(f"{name}\t{state}")
    return ExitCode.OK
