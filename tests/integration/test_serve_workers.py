"""`unit21-bridge serve --workers 2`: /metrics adds up every worker's counters."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

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
        _, stderr = process.communicate(timeout=30)

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
