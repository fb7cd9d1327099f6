"""`unit21-bridge serve --workers 2`: /metrics adds up every worker's counters."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.faults import BridgeProcess, Load, kafka_event_ids
from tests.integration.conftest import FaultyKafka
from tests.scrape import parse_metrics, total, value
from tests.support import EXAMPLES, SECRET, KafkaCluster, child_env, signed_headers, topic_counts

REQUESTS = 12


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_two_workers_share_one_metrics_view(kafka: KafkaCluster, prefix: str, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = child_env(
        KAFKA_BOOTSTRAP_SERVERS=kafka.bootstrap_servers,
        UNIT21_WEBHOOK_SECRETS=SECRET,
        BRIDGE_TOPIC_PREFIX=prefix,
        BRIDGE_HOST="127.0.0.1",
        BRIDGE_PORT=str(port),
        BRIDGE_WORKERS="2",
        BRIDGE_SPOOL_DIR=str(tmp_path / "spool"),  # never the production default under /var/lib
    )
    cli = Path(sys.executable).parent / "unit21-bridge"
    process = subprocess.Popen([str(cli), "serve"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get(base + "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "serve did not become ready"
            time.sleep(0.3)
        sample = (EXAMPLES / "alert_created.json").read_bytes()
        for n in range(REQUESTS):  # a new connection each time, so both workers take some
            # Distinct bodies: a re-sent identical body is a duplicate and is not produced again.
            body = sample.replace(b"11532778", str(90_000_000 + n).encode())
            request = urllib.request.Request(
                base + "/webhooks/unit21", data=body, headers=signed_headers(body), method="POST"
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
        scrapes = [parse_metrics(get(base + "/metrics")[1].decode()) for _ in range(4)]
    finally:
        process.terminate()
        try:
            _, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()  # never left behind; the test fails on the timeout
            process.communicate(timeout=10)
            raise

    for m in scrapes:  # whichever worker answers the scrape sees everything
        assert (
            value(m, "unit21_bridge_webhook_requests_total", action="ALERT_CREATED", status="200") == REQUESTS
        )
        assert value(m, "unit21_bridge_records_produced_total", topic=prefix + "alert") == REQUESTS
        assert total(m, "unit21_bridge_kafka_ack_latency_seconds_count") == REQUESTS
    assert topic_counts(kafka.bootstrap_servers, [prefix + "alert"])[prefix + "alert"] == REQUESTS

    logs = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    [notice] = [line for line in logs if "PROMETHEUS_MULTIPROC_DIR not set" in line["message"]]
    metrics_dir = Path(notice["message"].split("using ")[1].split(" for")[0])
    pids = {name.rsplit("_", 1)[1] for name in os.listdir(metrics_dir) if name.startswith("counter_")}
    assert len(pids) == 2, pids  # both workers' files are in the merged view
    shutil.rmtree(metrics_dir)
    served = [line for line in logs if line.get("status") == 200 and line["logger"] == "bridge.app"]
    assert len(served) == REQUESTS


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return parse_metrics(get(base + "/metrics")[1].decode())


def spooled_records(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        count: int = connection.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        return count


def test_a_killed_workers_gauges_are_dropped(cuttable: FaultyKafka, tmp_path: Path) -> None:
    prefix = cuttable.topics()
    spool_dir, metrics_dir = tmp_path / "spool", tmp_path / "metrics"
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": cuttable.bootstrap,
        "UNIT21_WEBHOOK_SECRETS": SECRET,
        "BRIDGE_TOPIC_PREFIX": prefix,
        "BRIDGE_WORKERS": "2",
        "BRIDGE_SPOOL_DIR": str(spool_dir),
        "BRIDGE_DELIVERY_TIMEOUT_SECONDS": "1",
        "BRIDGE_LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    bridge = BridgeProcess(env, tmp_path / "bridge.log").start()
    base = bridge.url
    try:
        deadline = time.monotonic() + 30
        while len(list(spool_dir.glob("*.db"))) < 2:  # both workers are up
            assert time.monotonic() < deadline, bridge.log()
            time.sleep(0.1)
        cuttable.proxy.cut()
        run = Load(bridge.webhook_url, concurrency=8, limit=40, keepalive=False).start().join()
        assert run.count(202) == 40, [o.status for o in run.outcomes]
        files = {db: spooled_records(db) for db in spool_dir.glob("*.db")}
        victim_db = max(files, key=lambda db: files[db])
        victim = int(victim_db.name.split("-")[1])
        # The kernel may hand every connection to one worker: the victim is the one holding most.
        assert files[victim_db] > 0, files
        assert value(scrape(base), "unit21_bridge_spool_messages") == 40
        os.kill(victim, signal.SIGKILL)
        # uvicorn's supervisor starts a new worker, which adopts the dead one's spool file.
        deadline = time.monotonic() + 30
        while victim_db.exists() or value(scrape(base), "unit21_bridge_spool_messages") != 40:
            assert time.monotonic() < deadline, f"{scrape(base)}\n{bridge.log()}"
            time.sleep(0.2)
        during = [value(scrape(base), "unit21_bridge_spool_messages") for _ in range(4)]
        cuttable.proxy.restore()
        deadline = time.monotonic() + 30
        while value(scrape(base), "unit21_bridge_spool_messages") != 0:
            assert time.monotonic() < deadline, f"spool_messages stuck: {scrape(base)}"
            time.sleep(0.2)
        after = [scrape(base) for _ in range(4)]
        in_kafka = kafka_event_ids(cuttable.bootstrap, f"{prefix}alert", run.accepted)
    finally:
        bridge.stop()
    assert during == [40] * 4  # not 40 + the dead worker's last value
    for m in after:  # whichever worker answers
        assert value(m, "unit21_bridge_spool_messages") == 0
        assert value(m, "unit21_bridge_producer_queue_messages") == 0
        assert value(m, "unit21_bridge_spool_oldest_age_seconds") == 0
        assert value(m, "unit21_bridge_spool_bytes") == 0
        pids = {
            dict(labels)["pid"] for (name, labels), _ in m.items() if name == "process_resident_memory_bytes"
        }
        assert str(victim) not in pids and len(pids) >= 2  # the live workers' RSS, per pid
    assert not run.accepted - set(in_kafka)
