"""The chart's `helm test` script against the real `serve`: it passes only when Kafka took the webhook.

The script is taken from the rendered chart (helm/unit21-kafka-bridge/templates/tests/) and run
as the test pod would run it, against a bridge whose Kafka connection crosses a TCP proxy.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import httpx2
import pytest

from bridge.delivery.embedded import EmbeddedBroker, free_port
from bridge.delivery.topics import create_topics
from tests.faults import BridgeProcess, TcpProxy, kafka_event_ids
from tests.helm.conftest import CHART_DIR, Rendered
from tests.support import SECRET, all_topics, child_env, unique_prefix


@pytest.fixture(scope="module")
def test_pod() -> dict[str, str]:
    """The helm test pod's script and body, rendered by Helm's own SDK."""
    chart = helm_python.Chart.load(str(CHART_DIR))
    values = {
        "tests": {"enabled": True},
        "unit21": {"webhookSecrets": [SECRET]},
        "kafka": {"bootstrapServers": "k:9092"},
    }
    (pod,) = Rendered(chart.render(values, name="u21", namespace="payments")).of_kind("Pod")
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    return {"script": container["args"][0], "body": env["TEST_BODY"]}


@pytest.fixture(scope="module")
def proxied_kafka() -> Iterator[tuple[TcpProxy, str]]:
    broker_port = free_port()
    with (
        TcpProxy(upstream_port=broker_port) as proxy,
        EmbeddedBroker(port=broker_port, advertised_port=proxy.port) as broker,
    ):
        yield proxy, broker.bootstrap_servers


def run_script(test_pod: dict[str, str], target: str, readyz: str) -> subprocess.CompletedProcess[str]:
    env = {
        **child_env(),
        "TARGET_URL": target,
        "READYZ_URL": readyz,
        "TEST_BODY": test_pod["body"],
        "UNIT21_WEBHOOK_SECRETS": SECRET,
    }
    return subprocess.run(
        [sys.executable, "-c", test_pod["script"]], env=env, capture_output=True, text=True, timeout=60
    )


def bridge_env(bootstrap: str, prefix: str, spool_dir: Path) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "UNIT21_WEBHOOK_SECRETS": SECRET,
        "BRIDGE_TOPIC_PREFIX": prefix,
        "BRIDGE_SPOOL_DIR": str(spool_dir),
        "BRIDGE_DELIVERY_TIMEOUT_SECONDS": "1.0",
        "BRIDGE_READINESS_CACHE_SECONDS": "0",
        "BRIDGE_LOG_LEVEL": "WARNING",
    }


def wait_for(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s")
        time.sleep(0.1)


def test_helm_test_passes_on_a_connected_bridge_and_fails_once_kafka_is_cut(
    test_pod: dict[str, str], proxied_kafka: tuple[TcpProxy, str], tmp_path: Path
) -> None:
    proxy, bootstrap = proxied_kafka
    proxy.restore()
    prefix = unique_prefix()
    create_topics({"bootstrap.servers": bootstrap}, all_topics(prefix), partitions=1)
    bridge = BridgeProcess(bridge_env(bootstrap, prefix, tmp_path / "spool"), tmp_path / "bridge.log").start()
    try:
        passed = run_script(test_pod, bridge.webhook_url, f"{bridge.url}/readyz")
        assert passed.returncode == 0, passed.stdout + passed.stderr + bridge.log()
        assert f"OK: published to {prefix}alert" in passed.stdout
        assert len(kafka_event_ids(bootstrap, f"{prefix}alert", set())) == 1

        proxy.cut()
        wait_for(lambda: bridge.readyz()["detail"].get("kafka") != "connected", "readyz to see the cut")
        cut = run_script(test_pod, bridge.webhook_url, f"{bridge.url}/readyz")
        assert cut.returncode == 1, cut.stdout + cut.stderr
        assert "detail.kafka 'connected'" in cut.stdout

        # Another pod's /readyz said "connected" a moment ago, this one spools: the 202 fails too.
        with stale_connected_readyz() as readyz_url:
            spooled = run_script(test_pod, bridge.webhook_url, readyz_url)
        assert spooled.returncode == 1, spooled.stdout + spooled.stderr
        assert "spooled (202)" in spooled.stdout
    finally:
        proxy.restore()
        bridge.stop()


def test_helm_test_fails_on_a_bridge_that_never_reached_kafka(
    test_pod: dict[str, str], tmp_path: Path
) -> None:
    nowhere = f"127.0.0.1:{free_port()}"  # nothing listens: a wrong bootstrap address
    bridge = BridgeProcess(bridge_env(nowhere, unique_prefix(), tmp_path / "spool"), tmp_path / "bridge.log")
    with (tmp_path / "bridge.log").open("ab") as log:
        bridge.process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "serve"], env=bridge.env, stdout=log, stderr=subprocess.STDOUT
        )
    try:

        def answers() -> bool:
            with contextlib.suppress(httpx2.HTTPError):
                return httpx2.get(f"{bridge.url}/healthz", timeout=2).status_code == 200
            return False

        wait_for(answers, "serve to answer /healthz")
        result = run_script(test_pod, bridge.webhook_url, f"{bridge.url}/readyz")
        assert result.returncode == 1, result.stdout + result.stderr
        assert "FAIL: /readyz must be 200 with detail.kafka 'connected'" in result.stdout
    finally:
        bridge.stop()


@contextlib.contextmanager
def stale_connected_readyz() -> Iterator[str]:
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            raw = json.dumps({"ready": True, "failing": [], "detail": {"kafka": "connected"}}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/readyz"
    finally:
        server.shutdown()
        server.server_close()
