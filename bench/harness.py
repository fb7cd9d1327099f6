"""The benchmark's plumbing: pinning, the machine, processes, wrk, request files, reading Kafka back.

Everything here is shared by the scenarios (bench/scenarios.py); nothing here measures on its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bodies

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

RESULTS = HERE / "results"
LOGS = RESULTS / "logs"
WORK = RESULTS / "work"
LUA = HERE / "wrk" / "signed.lua"
BIN = Path(sys.executable).parent
SECRET = "bench-" + secrets.token_hex(8)
PATH = "/webhooks/unit21"
PAUSE_MS = 20  # per-connection pause of the half-load run


# -- machine and pinning ------------------------------------------------------------------


def cores() -> tuple[set[int], set[int]]:
    """(load generator cores, server cores)."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return set(available), set(available)
    return {available[0]}, set(available[1:])


LOAD_CORES, SERVER_CORES = cores()


def pin_servers() -> None:
    os.sched_setaffinity(0, SERVER_CORES)


def pin_load() -> None:
    os.sched_setaffinity(0, LOAD_CORES)


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=False
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    mem_kb = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as meminfo:
        mem_kb = int(meminfo.readline().split()[1])
    import confluent_kafka

    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "librdkafka": confluent_kafka.libversion()[0],
        "load_generator_cores": sorted(LOAD_CORES),
        "server_cores": sorted(SERVER_CORES),
        "loadavg_start": list(os.getloadavg()),
    }


# -- Kafka --------------------------------------------------------------------------------


class RecordCounter:
    """Reads every record of the topics under a prefix, from the beginning, and remembers them.

    Consuming is the only reliable count: Tansu's ListOffsets answers stale high watermarks
    (the same value for every partition of a topic, short of the last batches), so the
    watermark sum undercounts. `drain()` reads until the topics are quiet and returns the
    records read since the last call and the event_id headers among them.

    Between drains the consumer is paused: a live consumer fetches every record the scenario
    produces, while it is measured, from the broker on the load generator's core (measured:
    p99 at half load 41 ms with a fetching consumer, 14 ms without).
    """

    def __init__(self, bootstrap: str, prefix: str) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": f"bench-{prefix}", "enable.auto.commit": False}
        )
        topics = self.consumer.list_topics(timeout=10).topics
        self.consumer.assign(
            [
                TopicPartition(name, partition, OFFSET_BEGINNING)
                for name, meta in topics.items()
                if name.startswith(prefix) and meta.error is None
                for partition in meta.partitions
            ]
        )
        self.consumer.pause(self.consumer.assignment())

    def drain(self, quiet: float = 2.0) -> tuple[int, set[str]]:
        count = 0
        ids: set[str] = set()
        assignment = self.consumer.assignment()
        self.consumer.resume(assignment)
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            batch = self.consumer.consume(num_messages=10_000, timeout=0.5)
            for message in batch:
                if message.error() is not None:
                    continue
                count += 1
                headers = message.headers() or []
                for name, value in headers.items() if isinstance(headers, dict) else headers:
                    if name == "event_id" and isinstance(value, bytes):
                        ids.add(value.decode())
            if batch:
                last = time.monotonic()
        self.consumer.pause(assignment)
        return count, ids

    def close(self) -> None:
        self.consumer.close()


def create_topics(bootstrap: str, prefix: str) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "BRIDGE_TOPIC_PREFIX": prefix}
    subprocess.run(
        [str(BIN / "unit21-bridge"), "topics", "create", "--partitions", "6"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


# -- processes ----------------------------------------------------------------------------


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def wait_ready(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        url = f"http://127.0.0.1:{port}/readyz"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
            if answer.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the bridge on port {port} was not ready after {timeout} s")


@contextlib.contextmanager
def server(cmd: list[str], env: dict[str, str], log_name: str) -> Iterator[subprocess.Popen[bytes]]:
    LOGS.mkdir(parents=True, exist_ok=True)
    with (LOGS / f"{log_name}.log").open("wb") as log:
        process = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pin_servers, start_new_session=True
        )
        try:
            yield process
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 15)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()


def wrk(
    port: int,
    requests: tuple[Path, int],
    connections: int,
    duration: float,
    delay_ms: int = 0,
    ids_file: Path | None = None,
) -> dict[str, Any]:
    bodies_file, bodies_count = requests
    env = {
        **os.environ,
        "BENCH_BODIES": str(bodies_file),
        "BENCH_PATH": PATH,
        "BENCH_DELAY_MS": str(delay_ms),
        "BENCH_IDS": str(ids_file or ""),
    }
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{port}{PATH}",
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, preexec_fn=pin_load)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            raw = json.loads(line[len("BENCH_JSON ") :])
            break
    else:
        raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")
    seconds = raw["duration_us"] / 1e6
    errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    return {
        "connections": connections,
        "rps": round(raw["requests"] / seconds, 1),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "p999_ms": raw["p999_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "responses": raw["requests"],
        "ok_2xx": raw["requests"] - raw["status"],
        "non_2xx": raw["status"],
        "socket_errors": errors,
        "distinct_bodies": raw["requests"] <= bodies_count,
        "delay_ms": delay_ms,
    }


class Bodies:
    """Hands out request files with fresh timestamps and serial ranges that never repeat."""

    def __init__(self) -> None:
        self.next_serial = 0
        WORK.mkdir(parents=True, exist_ok=True)

    def file(self, count: int) -> tuple[Path, int]:
        path = WORK / f"bodies-{self.next_serial}.txt"
        bodies.write(path, SECRET, count, timestamp=int(time.time()), start=self.next_serial)
        self.next_serial += count
        return path, count


# -- scenarios ----------------------------------------------------------------------------


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    top = max(runs, key=lambda r: r["rps"])
    return {**top, "runs": runs}


def with_records(run: dict[str, Any], records: int, lost: int) -> dict[str, Any]:
    return {**run, "records": records, "lost": lost}


# A scenario is started once per worker count and then measured once per round; the rounds
# interleave the scenarios, so a slow minute on this shared machine hits all of them.
Measure = Callable[[int], dict[str, Any]]  # round number -> one measurement


def checked_run(
    port: int,
    counter: RecordCounter,
    requests: tuple[Path, int],
    connections: int,
    duration: float,
    delay: int = 0,
) -> dict[str, Any]:
    """One wrk run whose every 2xx event_id is looked up among the records read back from Kafka."""
    counter.drain()
    ids_file = WORK / f"ids-{secrets.token_hex(4)}"
    run = wrk(port, requests, connections, duration, delay, ids_file=ids_file)
    acknowledged: set[str] = set()
    for part in WORK.glob(ids_file.name + ".*"):
        acknowledged.update(part.read_text().split())
    records, in_kafka = counter.drain()
    lost = acknowledged - in_kafka
    result = with_records(run, records, len(lost))
    result["ids_checked"] = len(acknowledged)
    if lost:
        result["lost_sample"] = sorted(lost)[:10]
    return result
