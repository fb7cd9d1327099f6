"""The spool survives a disk that fills up or fails, under the real `serve` and a real broker.

The spool lives on a file system the test controls (root only; skipped otherwise): a 2 MiB
tmpfs that the spool itself fills during a Kafka cut (ENOSPC), and an ext4 file system on a
loop device that is shut down mid-run the way a failing device shuts it down (every read,
write and fsync then fails with EIO). Kafka is cut and restored with the TCP proxy. What must
hold: no record is produced again because its deletion failed, the keys of delivered records
stop holding new webhooks soon after Kafka returns, the failure is visible in /readyz,
/metrics and a log that does not flood, and nothing answered 2xx is lost.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import orjson

from bridge.contract.parsing import event_id
from tests.faults import (
    BridgeProcess,
    DiskFiller,
    Ext4Loop,
    Load,
    LoadRun,
    alert_body,
    kafka_event_ids,
    small_tmpfs,
)
from tests.integration.test_faults import (  # the broker behind the proxy, shared with the outage tests
    FaultyKafka,
    bridge_env,
    faulty,  # noqa: F401
    faulty_kafka,  # noqa: F401
    figures,
    topic_prefix,  # noqa: F401
)
from tests.scrape import parse_metrics, value
from tests.support import signed_headers

# Kafka returned: within this many seconds the keys of delivered records take webhooks again.
UNWEDGE_SECONDS = 30.0
WINDOW_SECONDS = 20.0  # how long webhooks for the stuck keys are posted after Kafka returns
# Rate-limited logging: at most one line per operation or refusal reason per second, plus summaries.
MAX_LOG_LINES_PER_SECOND = 6


@dataclass
class Window:
    """Webhooks posted one after another after Kafka returned: (seconds since then, status)."""

    answers: list[tuple[float, int]]
    accepted: set[str]

    def count(self, status: int) -> int:
        return sum(1 for _, s in self.answers if s == status)

    def unwedged_after(self) -> float:
        """Seconds from Kafka's return to the last 503 (0 when there was none)."""
        return max((t for t, s in self.answers if s == 503), default=0.0)


def post_for_a_while(bridge: BridgeProcess, since: float, first: int, seconds: float) -> Window:
    """Post distinct webhooks whose keys are those of the spooled ones (alert_body's 40 keys)."""
    answers: list[tuple[float, int]] = []
    accepted: set[str] = set()
    deadline = since + seconds
    with httpx2.Client(timeout=10) as client:
        for n in range(first, first + 10_000):
            if time.monotonic() >= deadline:
                break
            body = alert_body(n)
            try:
                status = client.post(
                    bridge.webhook_url, content=body, headers=signed_headers(body)
                ).status_code
            except httpx2.HTTPError:
                status = 0
            answers.append((time.monotonic() - since, status))
            if 200 <= status < 300:
                accepted.add(event_id(body))
            time.sleep(0.01)
    return Window(answers, accepted)


def scrape(bridge: BridgeProcess) -> dict[str, float]:
    samples = parse_metrics(httpx2.get(f"{bridge.url}/metrics", timeout=5).text)
    return {
        "write_errors": value(samples, "unit21_bridge_spool_errors_total", operation="write"),
        "delete_errors": value(samples, "unit21_bridge_spool_errors_total", operation="delete"),
        "read_errors": value(samples, "unit21_bridge_spool_errors_total", operation="read"),
        "healthy": value(samples, "unit21_bridge_spool_healthy"),
    }


def readyz(bridge: BridgeProcess) -> tuple[int, dict[str, Any]]:
    answer = httpx2.get(f"{bridge.url}/readyz", timeout=5)
    body: dict[str, Any] = answer.json()
    return answer.status_code, body


def healthy_within(bridge: BridgeProcess, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if readyz(bridge)[1]["detail"]["spool"].get("healthy") is True:
            return True
        time.sleep(0.1)
    return False


def log_lines_between(bridge: BridgeProcess, start: int, end: int) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in bridge.log_lines()[start:end] if line.startswith("{")]


def copies(in_kafka: list[str], ids: set[str]) -> tuple[int, int]:
    """(extra copies beyond the first, most copies of one record) among `ids`."""
    counts = Counter(i for i in in_kafka if i in ids)
    return sum(n - 1 for n in counts.values()), max(counts.values(), default=0)


def load_phase(
    bridge: BridgeProcess, first: int, limit: int | None = None, seconds: float = 60.0
) -> tuple[LoadRun, float, int]:
    """Post `limit` webhooks or for `seconds`, whichever ends first; (run, seconds, log lines meanwhile)."""
    lines_before = len(bridge.log_lines())
    started = time.monotonic()
    run = Load(bridge.webhook_url, concurrency=8, limit=limit, start=first).start().run_for(seconds)
    return run, time.monotonic() - started, len(bridge.log_lines()) - lines_before


def test_a_full_disk_delivers_each_record_once_and_unwedges_its_keys(
    faulty: FaultyKafka,  # noqa: F811
    topic_prefix: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Item 12 (and 14): the spool fills its 2 MiB disk during a Kafka cut; Kafka returns
    while a filler keeps the disk full (every byte freed is taken again at once)."""
    spool_dir = tmp_path / "spool"
    with small_tmpfs(spool_dir, "2m"):
        env = bridge_env(faulty, topic_prefix, spool_dir, BRIDGE_READINESS_CACHE_SECONDS="0")
        bridge = BridgeProcess(env, tmp_path / "bridge.log").start()
        filler = DiskFiller(spool_dir, seconds=120)
        try:
            faulty.proxy.cut()
            fill, fill_seconds, fill_log_lines = load_phase(bridge, 0, limit=1500)
            refused = fill.count(503)
            ready_during, detail_during = readyz(bridge)
            metrics_during = scrape(bridge)
            filler.start()
            faulty.proxy.restore()
            restored = time.monotonic()
            window = post_for_a_while(bridge, restored, 100_000, WINDOW_SECONDS)
            ready_after, detail_after = readyz(bridge)
            metrics_after = scrape(bridge)
            filler.remove()  # the operator frees the disk: the spool works again by itself
            recovered = healthy_within(bridge, 15)
            accepted = fill.accepted | window.accepted
            in_kafka = kafka_event_ids(faulty.bootstrap, f"{topic_prefix}alert", accepted, timeout=20)
        finally:
            filler.remove()
            faulty.proxy.restore()
            bridge.stop()
    extra, most = copies(in_kafka, fill.accepted)
    figures(
        "spool disk full (2 MiB tmpfs), Kafka cut then restored, disk kept full",
        spooled=fill.count(202),
        refused_503=refused,
        fill_log_lines=fill_log_lines,
        fill_seconds=round(fill_seconds, 1),
        extra_copies=extra,
        window_seconds=WINDOW_SECONDS,
        window_posted=len(window.answers),
        window_503=window.count(503),
        unwedged_after_seconds=round(window.unwedged_after(), 2),
    )
    assert fill.count(202) > 0 and refused > 0, "the disk never filled up: the test tested nothing"
    assert fill.count(200, 202, 503) == len(fill.outcomes)
    # A full disk while Kafka is away: the 2xx promise cannot be kept, so the pod says not ready.
    spool_during = detail_during["detail"]["spool"]
    assert ready_during == 503, detail_during
    assert spool_during["healthy"] is False and "write" in spool_during["failing"], spool_during
    assert metrics_during["write_errors"] > 0 and metrics_during["healthy"] == 0, metrics_during
    # Item 14: the refusals and the failed writes are logged once per window with counts.
    assert fill_log_lines <= MAX_LOG_LINES_PER_SECOND * (fill_seconds + 1), (fill_log_lines, refused)
    # Item 12: delivered records are not produced again although their deletion fails.
    assert not accepted - set(in_kafka), "a webhook answered 2xx is not in Kafka"
    assert most <= 2 and extra <= fill.count(202), f"{extra} extra copies, up to {most} of one record"
    assert window.unwedged_after() < UNWEDGE_SECONDS, "keys still held webhooks long after Kafka returned"
    assert window.count(503) < len(window.answers) / 2
    # Kafka works: ready whatever the disk does (the spool is needed only while Kafka is away).
    assert ready_after == 200, detail_after
    assert metrics_after["delete_errors"] > 0, metrics_after
    assert recovered, f"the spool did not work again once the disk had room: {bridge.log()}"


def test_a_failed_file_system_unwedges_keys_and_loses_nothing(
    faulty: FaultyKafka,  # noqa: F811
    topic_prefix: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Item 13 (and 14): the spool's ext4 file system shuts down (EIO on every operation) while
    300 records wait in it and Kafka is cut; Kafka returns, the disk does not. Then the disk is
    mounted again and a new process delivers what the failed one could not read."""
    spool_dir = tmp_path / "spool"
    with Ext4Loop(spool_dir, tmp_path / "spool.img") as disk:
        env = bridge_env(faulty, topic_prefix, spool_dir, BRIDGE_READINESS_CACHE_SECONDS="0")
        bridge = BridgeProcess(env, tmp_path / "first.log").start()
        try:
            faulty.proxy.cut()
            spooled = Load(bridge.webhook_url, concurrency=8, limit=300).start().join()
            assert spooled.count(202) == 300, Counter(o.status for o in spooled.outcomes)
            disk.shut_down()
            failing, failing_seconds, failing_log_lines = load_phase(bridge, 1000, seconds=8.0)
            ready_during, detail_during = readyz(bridge)
            metrics_during = scrape(bridge)
            faulty.proxy.restore()
            restored = time.monotonic()
            window = post_for_a_while(bridge, restored, 100_000, WINDOW_SECONDS)
            ready_after, detail_after = readyz(bridge)
            metrics_after = scrape(bridge)
        finally:
            faulty.proxy.restore()
            bridge.stop()
        disk.remount()
        second = BridgeProcess(env, tmp_path / "second.log").start()
        try:
            second.wait_for_empty_spool()
            accepted = spooled.accepted | failing.accepted | window.accepted
            in_kafka = kafka_event_ids(faulty.bootstrap, f"{topic_prefix}alert", accepted, timeout=20)
        finally:
            second.stop()
    extra, most = copies(in_kafka, spooled.accepted)
    figures(
        "spool file system shut down (ext4 EIO) with 300 spooled, Kafka cut then restored",
        refused_503=failing.count(503),
        failing_log_lines=failing_log_lines,
        failing_seconds=round(failing_seconds, 1),
        window_seconds=WINDOW_SECONDS,
        window_posted=len(window.answers),
        window_503=window.count(503),
        unwedged_after_seconds=round(window.unwedged_after(), 2),
        extra_copies=extra,
        lost=len(accepted - set(in_kafka)),
    )
    assert failing.count(503) == len(failing.outcomes), "a webhook was answered 2xx by a failed disk"
    assert ready_during == 503, detail_during
    spool_during = detail_during["detail"]["spool"]
    assert spool_during["healthy"] is False and spool_during["failing"], spool_during
    assert metrics_during["healthy"] == 0 and metrics_during["write_errors"] > 0, metrics_during
    assert failing_log_lines <= MAX_LOG_LINES_PER_SECOND * (failing_seconds + 1), failing_log_lines
    assert window.unwedged_after() < UNWEDGE_SECONDS, "keys still held webhooks long after Kafka returned"
    assert window.count(503) < len(window.answers) / 2
    assert ready_after == 200 and detail_after["detail"]["spool"]["healthy"] is False, detail_after
    assert metrics_after["healthy"] == 0
    assert not accepted - set(in_kafka), "a webhook answered 2xx is not in Kafka"
    assert most <= 2, f"up to {most} copies of one record"
