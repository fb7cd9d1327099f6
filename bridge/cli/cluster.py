"""What the commands that talk to Kafka share: the --bootstrap-servers option and the settings
it overrides."""

from __future__ import annotations

import argparse

from bridge.cli.exits import ExitCode, fail
from bridge.settings import Settings

# Every command's --help ends with examples; argparse would re-wrap them without this.
FORMATTER = argparse.RawDescriptionHelpFormatter


def add_bootstrap_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap-servers", help="default: KAFKA_BOOTSTRAP_SERVERS")


def cluster_settings(args: argparse.Namespace, command: str) -> Settings | None:
    """Settings with --bootstrap-servers applied; None (after saying why) when no cluster is named."""
    settings = Settings.from_env()
    if args.bootstrap_servers:
        settings = settings.model_copy(update={"kafka_bootstrap_servers": args.bootstrap_servers})
    if not settings.kafka_bootstrap_servers:
        fail(command, "set KAFKA_BOOTSTRAP_SERVERS or pass --bootstrap-servers", ExitCode.USAGE)
        return None
    return settings
