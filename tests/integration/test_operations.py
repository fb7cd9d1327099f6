"""Day-2 operations on a real `serve` process: a rollout drains the spool, `spool drain` empties an
orphaned one, a bridge that never reached Kafka is not ready, shutdown fits its budget and an
outage does not flood the log.

The bridges here run against a broker whose every connection crosses a TCP proxy
(tests/integration/conftest.py: `cuttable`), so Kafka can go away from a bridge that was connected.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import orjson
import pytest

from bridge.cli import ExitCode
from bridge.contract.parsing import event_id
from bridge.delivery.embedded import free_port
from tests.faults import FIGURES, BridgeProcess, Load, alert_body, kafka_event_ids
from tests.integration.conftest import FaultyKafka
from tests.support import SECRET, KafkaCluster, read_topic, signed_headers, wait_until

DELIVERY_TIMEOUT = 1.0


def bridge_env(kafka: FaultyKafka, prefix: str, spool_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
        "UNIT21_WEBHOOK_SECRETS": SECRET,
        "BRIDGE_TOPIC_PREFIX": prefix,
        "BRIDGE_SPOOL_DIR": str(spool_dir),
        "BRIDGE_DELIVERY_TIMEOUT_SECONDS": str(DELIVERY_TIMEOUT),
        "BRIDGE_LOG_LEVEL": "WARNING",
        "BRIDGE_LOG_FORMAT": "json",
        **extra,
    }


def figures(name: str, **values: object) -> None:
    FIGURES.append(f"{name}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


def spool_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix == ".db")


def json_lines(bridge: BridgeProcess) -> list[dict[str, object]]:
    lines = bridge.log_lines()
    parsed = [orjson.loads(line) for line in lines if line.strip()]  # every line must be JSON
    assert len(parsed) == len([line for line in lines if line.strip()])
    return parsed


def start_unready(bridge: BridgeProcess, timeout: float = 30.0) -> None:
    """Start `serve` and wait until it answers /readyz at all (it is not expected to be ready)."""
    with bridge.log_path.open("ab") as log:
        bridge.process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "serve"], env=bridge.env, stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert bridge.process.poll() is None, bridge.log()
        with contextlib.suppress(httpx2.HTTPError):
            httpx2.get(f"{bridge.url}/readyz", timeout=5)
            return
        time.sleep(0.1)
    raise AssertionError(f"serve did not answer /readyz within {timeout} s:\n{bridge.log()}")


# -- 1. a rollout during which Kafka comes back: the spool goes to Kafka before the pod goes --------


def test_sigterm_with_records_spooled_and_kafka_back_delivers_them_before_exit(
    cuttable: FaultyKafka, tmp_path: Path
) -> None:
    prefix = cuttable.topics()
    spool_dir = tmp_path / "spool"
    env = bridge_env(cuttable, prefix, spool_dir, BRIDGE_SHUTDOWN_GRACE_SECONDS="10", BRIDGE_LOG_LEVEL="INFO")
    bridge = BridgeProcess(env, tmp_path / "bridge.log").start()
    try:
        cuttable.proxy.cut()
        run = Load(bridge.webhook_url, concurrency=8, limit=60).start().join()
        spooled = bridge.spool_depth()
        time.sleep(4.0)  # the drainer's backoff grows to its 4 s maximum, as in a real outage
        cuttable.proxy.restore()
        sigterm = time.monotonic()
        bridge.signal(signal.SIGTERM)  # at once: the drainer is still waiting out its backoff
        code = bridge.wait(timeout=30)
        exit_seconds = time.monotonic() - sigterm
    finally:
        bridge.stop()
    left = spool_files(spool_dir)
    in_kafka = kafka_event_ids(cuttable.bootstrap, f"{prefix}alert", run.accepted)
    lost = run.accepted - set(in_kafka)
    figures(
        "rollout: SIGTERM with records spooled, Kafka back",
        answered_202=run.count(202),
        spooled_at_sigterm=spooled,
        spool_files_left=len(left),
        records_in_kafka=len(in_kafka),
        lost=len(lost),
        sigterm_to_exit_seconds=round(exit_seconds, 2),
    )
    assert run.count(202) == 60 and spooled == 60, [o.status for o in run.outcomes]
    assert code in (0, -signal.SIGTERM), bridge.log()
    assert not left, "the spool was not empty when the process exited"
    assert not lost, f"{len(lost)} acknowledged webhooks are not in Kafka"
    assert exit_seconds < 10 + 5
    [summary] = [
        line for line in json_lines(bridge) if str(line["message"]).startswith("shutdown: delivered")
    ]
    assert summary["spool_delivered"] == 60 and summary["spool_left"] == 0


def test_sigterm_while_kafka_is_away_keeps_the_spool_and_exits_within_the_grace(
    cuttable: FaultyKafka, tmp_path: Path
) -> None:
    prefix = cuttable.topics()
    spool_dir = tmp_path / "spool"
    env = bridge_env(cuttable, prefix, spool_dir, BRIDGE_SHUTDOWN_GRACE_SECONDS="4")
    bridge = BridgeProcess(env, tmp_path / "bridge.log").start()
    try:
        cuttable.proxy.cut()
        run = Load(bridge.webhook_url, concurrency=4, limit=10).start().join()
        sigterm = time.monotonic()
        bridge.signal(signal.SIGTERM)
        bridge.wait(timeout=30)
        exit_seconds = time.monotonic() - sigterm
    finally:
        bridge.stop()
        cuttable.proxy.restore()
    assert run.count(202) == 10
    assert exit_seconds < 4 + 5
    assert [orjson.loads(line) for line in bridge.log_lines() if "not yet in Kafka stay in" in line], (
        bridge.log()
    )
    assert len(spool_files(spool_dir)) == 1  # kept on disk for the next process (or `spool drain`)


# -- 2. `unit21-bridge spool drain` on the files a killed process left --------------------------------


def spool_drain(bootstrap: str, spool_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "BRIDGE_DELIVERY_TIMEOUT_SECONDS": "2"}
    return subprocess.run(
        [sys.executable, "-m", "bridge", "spool", "drain", "--spool-dir", str(spool_dir), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_spool_drain_delivers_an_orphaned_spool_in_order_and_leaves_live_files_alone(
    cuttable: FaultyKafka, kafka: KafkaCluster, tmp_path: Path
) -> None:
    prefix = cuttable.topics()
    spool_dir = tmp_path / "orphaned-claim"
    bridge = BridgeProcess(bridge_env(cuttable, prefix, spool_dir), tmp_path / "bridge.log").start()
    try:
        cuttable.proxy.cut()
        # 4 keys, 10 records each: per-key order is what Kafka consumers rely on.
        bodies = [alert_body(n, keys=4) for n in range(40)]
        with httpx2.Client(timeout=10) as client:
            answers = [
                client.post(bridge.webhook_url, content=b, headers=signed_headers(b)).status_code
                for b in bodies
            ]
        assert answers == [202] * 40
        [file] = spool_files(spool_dir)
        # A live process holds its file's lock: `spool drain` (here with another, reachable
        # cluster) must leave the file to it, and say so.
        live = spool_drain(kafka.bootstrap_servers, spool_dir, "--timeout", "20")
        assert live.returncode == 1, live.stderr
        assert "40 record(s) in 1 file(s) locked by a live bridge process" in live.stderr
        assert spool_files(spool_dir) == [file]
        bridge.signal(signal.SIGKILL)  # the pod is gone; its claim (and this file) stay
        bridge.wait(timeout=10)
    finally:
        bridge.stop()
    away = spool_drain(cuttable.bootstrap, spool_dir, "--timeout", "4")  # Kafka still cut
    assert away.returncode == ExitCode.UNAVAILABLE, away.stderr
    assert "cannot reach Kafka" in away.stderr and "no file was touched" in away.stderr
    assert spool_files(spool_dir) == [file]

    cuttable.proxy.restore()
    drained = spool_drain(cuttable.bootstrap, spool_dir)
    assert drained.returncode == 0, drained.stdout + drained.stderr
    assert "40 record(s) delivered" in drained.stderr
    assert "done: no record left" in drained.stderr
    assert not spool_files(spool_dir)
    records = read_topic(cuttable.bootstrap, f"{prefix}alert", 40)
    key_of = {r.headers["event_id"]: r.key for r in records}
    in_kafka: dict[bytes | None, list[bytes]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        in_kafka.setdefault(record.key, []).append(record.headers["event_id"])
    answered: dict[bytes | None, list[bytes]] = {}
    for body in bodies:
        answered.setdefault(key_of[event_id(body).encode()], []).append(event_id(body).encode())
    assert len(answered) == 4
    assert in_kafka == answered, "a key's records are not in the order they were answered"
    again = spool_drain(cuttable.bootstrap, spool_dir)
    assert again.returncode == 0 and "0 record(s) delivered" in again.stderr


# -- 3. a bridge that never reached Kafka is not ready --------------------------------------------


def test_serve_with_a_wrong_bootstrap_address_is_not_ready_and_refuses_webhooks(tmp_path: Path) -> None:
    wrong = f"127.0.0.1:{free_port()}"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": wrong,
        "UNIT21_WEBHOOK_SECRETS": SECRET,
        "BRIDGE_SPOOL_DIR": str(tmp_path / "spool"),
        "BRIDGE_LOG_FORMAT": "json",
        "BRIDGE_READINESS_CACHE_SECONDS": "0",
    }
    bridge = BridgeProcess(env, tmp_path / "bridge.log")
    start_unready(bridge)
    try:
        ready = httpx2.get(f"{bridge.url}/readyz", timeout=10)
        body = alert_body(1)
        answer = httpx2.post(bridge.webhook_url, content=body, headers=signed_headers(body), timeout=10)
    finally:
        bridge.stop()
    figures(
        "never-connected bridge (wrong bootstrap address)",
        readyz=f"{ready.status_code} {ready.json()['detail']['kafka']}",
        webhook=f"{answer.status_code} {answer.json()['error']}",
    )
    assert ready.status_code == 503, ready.text
    assert ready.json()["failing"] == ["kafka"]
    assert ready.json()["detail"]["kafka"] == "never connected"
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "not_ready"
    assert answer.headers["retry-after"] == "1"
    assert not spool_files(tmp_path / "spool"), "nothing may be spooled for a Kafka never reached"


def test_a_connected_bridge_says_so_in_readyz(cuttable: FaultyKafka, tmp_path: Path) -> None:
    bridge = BridgeProcess(bridge_env(cuttable, cuttable.topics(), tmp_path / "spool"), tmp_path / "b.log")
    bridge.start()
    try:
        detail = bridge.readyz()["detail"]
    finally:
        bridge.stop()
    assert detail["kafka"] == "connected"


# -- 11. quiet logs ------------------------------------------------------------------------------


def new_lines(bridge: BridgeProcess, since: int) -> list[str]:
    return [line for line in bridge.log_lines()[since:] if line.strip()]


def test_an_outage_without_traffic_and_a_flood_of_bad_signatures_log_a_few_lines(
    cuttable: FaultyKafka, tmp_path: Path
) -> None:
    env = bridge_env(cuttable, cuttable.topics(), tmp_path / "spool", BRIDGE_LOG_LEVEL="INFO")
    bridge = BridgeProcess(env, tmp_path / "bridge.log").start()
    try:
        time.sleep(0.5)
        mark = len(bridge.log_lines())
        cuttable.proxy.cut()
        outage_seconds = 10.0
        time.sleep(outage_seconds)
        outage = new_lines(bridge, mark)
        cuttable.proxy.restore()
        # Reconnected, so the outage's last lines are written before the flood's are counted.
        wait_until(
            lambda: bridge.readyz()["detail"]["kafka"] == "connected",
            30,
            "Kafka reconnected",
            detail=bridge.log,
        )
        mark = len(bridge.log_lines())
        body = alert_body(7)
        bad = signed_headers(body, secret="not-the-secret-000000")
        with httpx2.Client(timeout=10) as client:
            started = time.monotonic()
            statuses = [
                client.post(bridge.webhook_url, content=body, headers=bad).status_code for _ in range(1000)
            ]
            flood_seconds = time.monotonic() - started
        deadline = time.monotonic() + 10  # the window ends: the count is written
        while not any("more webhook request(s) answered 401" in line for line in new_lines(bridge, mark)):
            assert time.monotonic() < deadline, bridge.log()
            time.sleep(0.1)
        time.sleep(1.2)  # one window more: no other count may follow
        flood = new_lines(bridge, mark)
        metrics = httpx2.get(f"{bridge.url}/metrics", timeout=5).text
    finally:
        bridge.stop()
    parsed = json_lines(bridge)
    figures(
        "log lines",
        outage_no_traffic_per_second=round(len(outage) / outage_seconds, 2),
        bad_signature_posts=len(statuses),
        lines_for_them=len(flood),
        flood_seconds=round(flood_seconds, 2),
    )
    assert statuses == [401] * 1000
    assert len(outage) / outage_seconds < 1.0, "\n".join(outage)
    # At most a line and a count per 1 s window while the flood lasts (1,000 lines before).
    assert len(flood) <= 2 * (flood_seconds + 2), "\n".join(flood)
    counted = [orjson.loads(line) for line in flood if "more webhook request(s) answered 401" in line]
    first = [orjson.loads(line) for line in flood if orjson.loads(line)["message"] == "webhook answered 401"]
    assert len(first) >= 1 and (first[0]["error"], first[0]["cause"]) == (
        "invalid_signature",
        "no_matching_signature",
    )
    assert sum(int(c["refused"]) for c in counted) + len(first) == 1000  # every one accounted for
    assert 'unit21_bridge_auth_failures_total{reason="no_matching_signature"} 1000.0' in metrics
    assert parsed  # 100 % JSON (json_lines asserts it)
    assert SECRET not in bridge.log_path.read_text()


# -- 12. the trace flush fits the shutdown budget ------------------------------------------------


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port that accepts TCP connections into its backlog and never answers: a collector
    that hangs, the worst case for an exporter."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


def test_shutdown_with_an_unreachable_otlp_collector_fits_the_grace_period(
    cuttable: FaultyKafka, tmp_path: Path, blackhole: int
) -> None:
    grace = 3
    env = bridge_env(
        cuttable,
        cuttable.topics(),
        tmp_path / "spool",
        BRIDGE_SHUTDOWN_GRACE_SECONDS=str(grace),
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{blackhole}",
        OTEL_BSP_SCHEDULE_DELAY="60000",  # the spans wait for the flush at shutdown
    )
    bridge = BridgeProcess(env, tmp_path / "bridge.log").start()
    try:
        with httpx2.Client(timeout=10) as client:
            for n in range(5):
                body = alert_body(n)
                assert (
                    client.post(bridge.webhook_url, content=body, headers=signed_headers(body)).status_code
                    == 200
                )
        sigterm = time.monotonic()
        bridge.signal(signal.SIGTERM)
        bridge.wait(timeout=60)
        exit_seconds = time.monotonic() - sigterm
    finally:
        bridge.stop()
    figures(
        "shutdown with the OTLP collector a blackhole",
        grace=grace,
        sigterm_to_exit_seconds=round(exit_seconds, 2),
    )
    assert exit_seconds < grace + 5, bridge.log()
    assert any("span exporter did not finish" in line for line in bridge.log_lines()), bridge.log()


def test_spool_drain_reports_a_file_it_cannot_read(kafka: KafkaCluster, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    (spool_dir / "spool-4242-0badf11e.db").write_bytes(b"not a database, a torn copy" * 100)
    result = spool_drain(kafka.bootstrap_servers, spool_dir, "--timeout", "20")
    assert result.returncode == 1, result.stderr
    assert "1 spool file(s) could not be read" in result.stderr
    assert (spool_dir / "spool-4242-0badf11e.db.unreadable").exists()  # kept, never deleted
