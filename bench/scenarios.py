"""The scenarios `make bench` measures side by side.

Each starts its server once and yields a `Measure` (round number -> one measurement) or, for
the bridge, a `Load`, which also measures at half load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness import (
    BIN,
    HERE,
    PAUSE_MS,
    SECRET,
    Bodies,
    Measure,
    RecordCounter,
    best,
    checked_run,
    create_topics,
    pin_servers,
    server,
    wait_port,
    wait_ready,
    with_records,
    wrk,
)

from bridge.delivery.embedded import free_port


@contextlib.contextmanager
def http_limit(args: argparse.Namespace, workers: int, source: Bodies) -> Iterator[Measure]:
    port = free_port()
    cmd = [sys.executable, str(HERE / "apps" / "serve.py"), "bare", str(port), str(workers)]
    with server(cmd, dict(os.environ), f"http-{workers}w"):
        wait_port(port)
        wrk(port, source.file(20_000), 16, args.warmup)
        yield Load("http_limit", args, port, source, expected_rps=25_000.0).measure


@contextlib.contextmanager
def naive(
    args: argparse.Namespace, workers: int, source: Bodies, bootstrap: str, run_id: str
) -> Iterator[Measure]:
    prefix = f"bench-{run_id}-naive-{workers}w."
    from bridge.delivery.topics import create_topics as admin_create

    admin_create({"bootstrap.servers": bootstrap}, [prefix + "webhooks"], partitions=6, replication_factor=-1)
    counter = RecordCounter(bootstrap, prefix)
    port = free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "BRIDGE_TOPIC_PREFIX": prefix}
    cmd = [sys.executable, str(HERE / "apps" / "serve.py"), "naive", str(port), str(workers)]

    try:
        with server(cmd, env, f"naive-{workers}w"):
            wait_port(port)
            wrk(port, source.file(20_000), 16, args.warmup)
            yield Load("naive", args, port, source, counter, expected_rps=3_000.0, ids=False).measure
    finally:
        counter.close()


@contextlib.contextmanager
def kafka_limit(
    args: argparse.Namespace, workers: int, source: Bodies, bootstrap: str, run_id: str
) -> Iterator[Measure]:
    requests = source.file(20_000)

    def measure(round_number: int) -> dict[str, Any]:
        # Fresh topics per round: the count read back must be this round's records only.
        prefix = f"bench-{run_id}-kafka-{workers}w-r{round_number}."
        create_topics(bootstrap, prefix)
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "BRIDGE_TOPIC_PREFIX": prefix}
        in_flight = args.kafka_in_flight
        cmd = [
            sys.executable,
            str(HERE / "kafka_limit.py"),
            str(requests[0]),
            str(args.duration),
            str(in_flight),
        ]
        processes = [
            subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True, preexec_fn=pin_servers)
            for _ in range(workers)
        ]
        results = []
        for process in processes:
            stdout, _ = process.communicate(timeout=args.duration + 120)
            line = next(line for line in stdout.splitlines() if line.startswith("BENCH_JSON "))
            results.append(json.loads(line[len("BENCH_JSON ") :]))
        acked = sum(r["acked"] for r in results)
        seconds = max(r["duration_us"] for r in results) / 1e6
        counter = RecordCounter(bootstrap, prefix)
        try:
            records, _ = counter.drain()
        finally:
            counter.close()
        return {
            "connections": in_flight,
            "rps": round(acked / seconds, 1),
            "p50_ms": max(r["p50_us"] for r in results) / 1000,
            "p99_ms": max(r["p99_us"] for r in results) / 1000,
            "p999_ms": max(r["p999_us"] for r in results) / 1000,
            "ok_2xx": acked,
            "non_2xx": sum(r["errors"] for r in results),
            "socket_errors": 0,
            "records": records,
            "lost": max(0, acked - records),
        }

    yield measure


def signed_env(bootstrap: str, prefix: str) -> dict[str, str]:
    """The environment of a server that verifies the benchmark's signatures and writes under `prefix`."""
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "UNIT21_WEBHOOK_SECRETS": SECRET,
        "BRIDGE_TOPIC_PREFIX": prefix,
    }


class BodiesRepeated(RuntimeError):
    """A measured run sent some body twice: its numbers would include dedup hits, not real work."""


class Load:
    """A running server under wrk: `measure` at full load once per round, `half_load` once.

    Every request of a measured run carries a body of its own (bench/bodies.py), so request
    files are sized from the rate the server showed so far; a run that still wrapped around
    its file is measured again with a file sized from its own rate, and fails the benchmark
    if it repeats twice.
    """

    def __init__(
        self,
        name: str,
        args: argparse.Namespace,
        port: int,
        source: Bodies,
        counter: RecordCounter | None = None,
        *,
        expected_rps: float = 5000.0,
        ids: bool = True,
    ) -> None:
        self.name = name
        self.args = args
        self.port = port
        self.counter = counter  # None: nothing is produced, so there is nothing to read back
        self.ids = ids  # look every acknowledged event_id up in Kafka (False: compare counts)
        self.source = source
        self.expected_rps = expected_rps

    def measure(self, _round: int) -> dict[str, Any]:
        top = best([self._distinct_run(connections) for connections in self.args.connections])
        self.expected_rps = max(1000.0, top["rps"] * 1.5)
        return top

    def _distinct_run(self, connections: int) -> dict[str, Any]:
        for _attempt in range(2):
            requests = self.source.file(int(self.expected_rps * self.args.duration * 1.3) + 1000)
            run = self._run(requests, connections)
            if run["distinct_bodies"]:
                return run
            self.expected_rps = run["rps"] * 1.5
        raise BodiesRepeated(
            f"{self.name}: {run['responses']} requests from {requests[1]} bodies twice in a row; "
            "its numbers would count repeated bodies"
        )

    def _run(self, requests: tuple[Path, int], connections: int) -> dict[str, Any]:
        duration = self.args.duration
        if self.counter is None:
            return wrk(self.port, requests, connections, duration)
        if self.ids:
            return checked_run(self.port, self.counter, requests, connections, duration)
        self.counter.drain()
        run = wrk(self.port, requests, connections, duration)
        records, _ = self.counter.drain()
        # The naive answer carries no id: compare counts (records beyond the 2xx count are
        # requests still in flight when wrk stopped).
        return with_records(run, records, max(0, run["ok_2xx"] - records))

    def half_load(self, target: float) -> dict[str, Any]:
        assert self.counter is not None
        """Latency at `target` req/s. wrk has no open-loop mode (wrk2 is not in Debian), so each
        of C connections pauses PAUSE_MS after every answer: the offered load is
        C * 1000 / (PAUSE_MS + latency). A short probe measures the latency at this load, then
        C is chosen so the rate comes out at the target."""
        port, source, duration = self.port, self.source, self.args.duration
        probe = wrk(port, source.file(int(target * 3) + 500), max(1, math.ceil(target * 0.02)), 2, PAUSE_MS)
        connections = max(1, round(target * (PAUSE_MS + probe["p50_ms"]) / 1000))
        requests = source.file(int(target * duration * 1.3) + 1000)
        half = checked_run(port, self.counter, requests, connections, duration, PAUSE_MS)
        half["target_rps"] = round(target, 1)
        return half


@contextlib.contextmanager
def the_bridge(
    args: argparse.Namespace, workers: int, source: Bodies, bootstrap: str, run_id: str
) -> Iterator[Load]:
    prefix = f"bench-{run_id}-bridge-{workers}w."
    create_topics(bootstrap, prefix)
    counter = RecordCounter(bootstrap, prefix)
    port = free_port()
    env = {
        **signed_env(bootstrap, prefix),
        "BRIDGE_WORKERS": str(workers),
        "BRIDGE_PORT": str(port),
        "BRIDGE_HOST": "127.0.0.1",
        # The disk spool is on (as in production) but in a scratch directory, not /var/lib.
        "BRIDGE_SPOOL_DIR": tempfile.mkdtemp(prefix=f"bench-spool-{workers}w-"),
    }
    try:
        with server([str(BIN / "unit21-bridge"), "serve"], env, f"bridge-{workers}w"):
            wait_ready(port)
            wrk(port, source.file(int(5000 * args.warmup) + 1000), 16, args.warmup)
            yield Load("bridge", args, port, source, counter)
    finally:
        counter.close()


@contextlib.contextmanager
def steps(
    args: argparse.Namespace, workers: int, source: Bodies, bootstrap: str, run_id: str, *, kafka: bool
) -> Iterator[Measure]:
    """bench/apps/steps.py: the bridge's essential steps only, without (kafka=False) or with
    the produce and its ack. Two rows that split the bridge's cost (bench/README.md)."""
    name = f"steps{'-kafka' if kafka else ''}-{workers}w"
    prefix = f"bench-{run_id}-{name}."
    counter: RecordCounter | None = None
    if kafka:
        create_topics(bootstrap, prefix)
        counter = RecordCounter(bootstrap, prefix)
    port = free_port()
    env = {**signed_env(bootstrap, prefix), "BENCH_STEPS_KAFKA": "1" if kafka else "0"}
    cmd = [sys.executable, str(HERE / "apps" / "serve.py"), "steps", str(port), str(workers)]
    try:
        with server(cmd, env, name):
            wait_ready(port)
            wrk(port, source.file(int(5000 * args.warmup) + 1000), 16, args.warmup)
            yield Load(name, args, port, source, counter, expected_rps=8000.0).measure
    finally:
        if counter is not None:
            counter.close()
