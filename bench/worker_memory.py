"""Peak memory of one `unit21-bridge serve` worker under 64 concurrent ~900 KB webhooks.

The figure behind the chart's memory arithmetic (docs/operations.md § Sizing): starts the
embedded broker (or uses KAFKA_BOOTSTRAP_SERVERS), creates the topics, runs the real `serve`
with the chart's defaults (64 concurrent requests, 921,600-byte bodies), posts rounds of 64
signed bodies just under the limit, each held one byte short of complete until all
64 are in the worker, and reads the kernel's peak RSS (VmHWM) of
every bridge process at the end.

    .venv/bin/python bench/worker_memory.py --workers 1 --rounds 6 --shape text
    .venv/bin/python bench/worker_memory.py --workers 1 --rounds 6 --shape objects
    .venv/bin/python bench/worker_memory.py --workers 2 --rounds 6 --shape objects

Shapes: `text` puts the bulk in one long string (few Python objects once parsed); `objects`
in ~5,000 entity objects (the parsed document is many small dicts: the expensive case).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bridge.contract import routes  # noqa: E402
from bridge.delivery.embedded import EmbeddedBroker, free_port  # noqa: E402
from bridge.delivery.topics import create_topics  # noqa: E402
from bridge.ingress.signature import signature_header  # noqa: E402

SECRET = "bench-secret-0123456789"
MAX_BODY = 921_600
CONCURRENCY = 64


def body(n: int, shape: str) -> bytes:
    doc: dict[str, Any] = json.loads((REPO / "examples" / "webhooks" / "alert_created.json").read_bytes())
    doc["unit21_id"] = 70_000_000 + n
    doc["alert_id"] = f"mem-{n}-{uuid.uuid4().hex}"
    target = MAX_BODY - 2_000
    if shape == "text":
        doc["description"] = ""
        doc["description"] = "x" * (target - len(json.dumps(doc)))
    else:
        one = {"entity_id": "u-00000000", "entity_type": "user", "resolution": "UNRESOLVED"}
        per = len(json.dumps(one)) + 2
        count = (target - len(json.dumps(doc))) // per
        doc["entities"] = [{**one, "entity_id": f"u-{i:08d}"} for i in range(count)]
    raw = json.dumps(doc).encode()
    assert len(raw) <= MAX_BODY, len(raw)
    return raw


def post(port: int, raw: bytes, barrier: threading.Barrier) -> int:
    """Send all but the last byte, wait until every client has, then finish: all bodies are in
    the worker at once, which is the worst case the chart's arithmetic covers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.putrequest("POST", "/webhooks/unit21")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(raw)))
        conn.putheader("Unit21-Signature", signature_header(SECRET, int(time.time()), raw))
        conn.endheaders()
        conn.send(raw[:-1])
        barrier.wait(timeout=120)
        conn.send(raw[-1:])
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def proc_status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} for {pid}")


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def role(pid: int, server_pid: int, workers: int) -> str:
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if Path(f"/proc/{pid}").exists() else b""
    if b"resource_tracker" in cmdline:
        return "multiprocessing resource tracker"
    if pid == server_pid and workers > 1:
        return "uvicorn supervisor"
    return "worker"


@contextlib.contextmanager
def kafka() -> Iterator[str]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--shape", choices=("text", "objects"), default="objects")
    args = parser.parse_args()
    prefix = f"mem{uuid.uuid4().hex[:8]}."
    with kafka() as bootstrap, tempfile.TemporaryDirectory() as spool:
        create_topics(
            {"bootstrap.servers": bootstrap}, [prefix + s for s in routes.ALL_SUFFIXES], partitions=1
        )
        port = free_port()
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "UNIT21_WEBHOOK_SECRETS": SECRET,
            "BRIDGE_TOPIC_PREFIX": prefix,
            "BRIDGE_HOST": "127.0.0.1",
            "BRIDGE_PORT": str(port),
            "BRIDGE_WORKERS": str(args.workers),
            "BRIDGE_MAX_CONCURRENCY": str(CONCURRENCY),
            "BRIDGE_MAX_BODY_BYTES": str(MAX_BODY),
            "BRIDGE_SPOOL_DIR": spool,
            "BRIDGE_LOG_LEVEL": "WARNING",
            # librdkafka's default message.max.bytes (1,000,000) takes a 900 KB body's record.
            "KAFKA_MESSAGE_MAX_BYTES": "1000000",
        }
        server = subprocess.Popen([sys.executable, "-m", "bridge", "serve"], env=env)
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(OSError):
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                    conn.request("GET", "/readyz")
                    if conn.getresponse().status == 200:
                        break
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("serve did not become ready")
                time.sleep(0.2)
            time.sleep(2)
            pids = [server.pid, *children(server.pid)]
            idle = {pid: proc_status(pid, "VmRSS") for pid in pids}
            statuses: dict[int, int] = {}
            lock = threading.Lock()
            for r in range(args.rounds):
                bodies = [body(r * CONCURRENCY + i, args.shape) for i in range(CONCURRENCY)]
                barrier = threading.Barrier(CONCURRENCY)

                def run(raw: bytes, barrier: threading.Barrier = barrier) -> None:
                    status = post(port, raw, barrier)
                    with lock:
                        statuses[status] = statuses.get(status, 0) + 1

                threads = [threading.Thread(target=run, args=(b,)) for b in bodies]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(timeout=300)
            peak = {pid: proc_status(pid, "VmHWM") for pid in pids}
        finally:
            server.terminate()
            server.wait(timeout=60)
    mib = 2**20
    if set(statuses) != {200}:
        print(f"not every answer was 200: {statuses}", file=sys.stderr)
    print(
        json.dumps(
            {
                "workers": args.workers,
                "shape": args.shape,
                "body_bytes": len(body(0, args.shape)),
                "requests": args.rounds * CONCURRENCY,
                "statuses": statuses,
                "processes": [
                    {
                        "pid": pid,
                        "role": role(pid, server.pid, args.workers),
                        "idle_rss_mib": round(idle[pid] / mib, 1),
                        "peak_rss_mib": round(peak[pid] / mib, 1),
                    }
                    for pid in pids
                ],
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
