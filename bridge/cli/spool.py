"""`unit21-bridge spool list | drain`: the disk spool seen and emptied from outside the bridge."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.cli.cluster import FORMATTER, add_bootstrap_option, cluster_settings
from bridge.cli.exits import ExitCode, fail
from bridge.settings import Settings

if TYPE_CHECKING:
    from bridge.delivery import SpoolEntry


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    spool = sub.add_parser("spool", help="inspect and drain the disk spool")
    spool_sub = spool.add_subparsers(dest="spool_command", required=True, metavar="SUBCOMMAND")
    spool_list = spool_sub.add_parser(
        "list",
        help="print every record waiting in the spool as a JSON line (oldest first per file)",
        formatter_class=FORMATTER,
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
        formatter_class=FORMATTER,
        description="For spool files no live process holds (an orphaned volume claim, a pod that "
        "was killed): each file is taken over under its lock, as a bridge does at start-up, and its "
        "records are sent in their order and deleted once Kafka acknowledges them. Files a live "
        "bridge holds are left to it. Exits 0 when no record is left in the directory, 3 when Kafka "
        "cannot be reached (no file is touched), 1 (with the reason) otherwise.",
        epilog="example:\n  KAFKA_BOOTSTRAP_SERVERS=kafka:9092 \\\n"
        "    unit21-bridge spool drain --spool-dir /mnt/orphan",
    )
    spool_drain.add_argument("--spool-dir", help="the spool directory (default: BRIDGE_SPOOL_DIR)")
    add_bootstrap_option(spool_drain)
    spool_drain.add_argument(
        "--timeout", type=float, default=120.0, help="give up after this many seconds (default: 120)"
    )
    spool_drain.set_defaults(func=cmd_spool_drain)


def cmd_spool_list(args: argparse.Namespace) -> int:
    from bridge.delivery import SpoolError, list_spooled, spool_files

    directory = Path(args.dir) if args.dir else Settings.from_env().spool_dir
    if not directory.is_dir():
        return fail("spool list", f"{directory} is not a directory", ExitCode.USAGE)
    now = time.time()
    count = size = 0
    files = spool_files(directory)
    oldest: float | None = None
    try:
        for entry in list_spooled(files):
            count += 1
            size += entry.size
            oldest = entry.enqueued_at if oldest is None else min(oldest, entry.enqueued_at)
            if not args.limit or count <= args.limit:
                print(json.dumps(_listed(entry, now)), flush=True)
    except SpoolError as exc:
        return fail("spool list", exc, ExitCode.FAILED)
    age = "" if oldest is None else f"; the oldest waits for {now - oldest:.0f} s"
    print(
        f"{count} record(s), {size} bytes in {len(files)} spool file(s) in {directory}{age}", file=sys.stderr
    )
    return ExitCode.OK


def _listed(entry: SpoolEntry, now: float) -> dict[str, object]:
    headers = {name: value.decode("utf-8", "backslashreplace") for name, value in entry.headers}
    return {
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


def cmd_spool_drain(args: argparse.Namespace) -> int:
    import asyncio

    from bridge.delivery import SpoolError
    from bridge.ops.logs import configure_logging

    settings = cluster_settings(args, "spool drain")
    if settings is None:
        return ExitCode.USAGE
    configure_logging(settings.log_level, settings.log_format or "text")
    directory = Path(args.spool_dir) if args.spool_dir else settings.spool_dir
    if not directory.is_dir():
        return fail("spool drain", f"{directory} is not a directory", ExitCode.USAGE)
    try:
        summary = asyncio.run(_drain_directory(settings, directory, args.timeout))
        _count_leftovers(summary, directory)
    except (SpoolError, ValueError) as exc:
        return fail("spool drain", exc, ExitCode.FAILED)
    print(summary.render(directory), file=sys.stderr)
    if summary.unreachable:
        return ExitCode.UNAVAILABLE
    return ExitCode.OK if summary.done else ExitCode.FAILED


class DrainSummary:
    """What `spool drain` did, and why it is not done when it is not."""

    def __init__(self) -> None:
        self.delivered = 0
        self.left = 0  # in the files this command took over
        self.live = 0  # in files a live process holds (it delivers them itself)
        self.live_files = 0
        self.unreadable: list[str] = []  # files adoption could not read, renamed *.unreadable
        self.own_file: str | None = None
        self.reason: str | None = None
        self.unreachable = False  # Kafka never answered: no file was touched

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


async def _drain_directory(settings: Settings, directory: Path, seconds: float) -> DrainSummary:
    """Adopt every spool file no live process holds (under its flock, as a bridge at start-up
    does), send the records in spool order and delete each after Kafka's ack."""
    import asyncio

    from bridge.delivery import Drainer, Spool
    from bridge.delivery.publisher import Publisher, producer_config

    summary = DrainSummary()
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
            summary.unreachable = True
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


def _count_leftovers(summary: DrainSummary, directory: Path) -> None:
    """What is still in the directory besides the file this command kept (if any)."""
    from bridge.delivery import list_spooled, spool_files

    live = [entry for entry in list_spooled(spool_files(directory)) if entry.file != summary.own_file]
    summary.live = len(live)
    summary.live_files = len({entry.file for entry in live})
    summary.unreadable = sorted(path.name for path in directory.glob("*.unreadable"))
