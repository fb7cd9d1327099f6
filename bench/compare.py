"""Two checkouts of the bridge side by side: the same signed bodies, the same broker, interleaved rounds.

usage: python bench/compare.py BASELINE_VENV [--current-venv VENV] [--rounds 3] [--duration 10]

BASELINE_VENV is the virtualenv of another checkout (its `bin/unit21-bridge`); the current one is
this interpreter's unless --current-venv names another. Both `serve` processes run at once with
default settings against one embedded broker, each under its own topic prefix; wrk loads them in
turn, round after round, so a slow minute on a shared machine hits both. Prints each round's
rate and the median of the per-round ratios current / baseline, and checks that every
acknowledged event_id of both is in Kafka.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path
from statistics import median

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import (  # noqa: E402
    BIN,
    LOAD_CORES,
    Bodies,
    RecordCounter,
    checked_run,
    create_topics,
    server,
    wait_ready,
    wrk,
)
from scenarios import signed_env  # noqa: E402

from bridge.delivery.embedded import EmbeddedBroker, free_port  # noqa: E402


def main() -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("baseline_venv", type=Path)
    parser.add_argument("--current-venv", type=Path, default=BIN.parent)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    binaries = {
        name: venv / "bin" / "unit21-bridge"
        for name, venv in (("baseline", args.baseline_venv), ("current", args.current_venv))
    }
    source = Bodies()
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(EmbeddedBroker())
        os.sched_setaffinity(broker.pid, LOAD_CORES)
        ports, counters = {}, {}
        for name, binary in binaries.items():
            prefix = f"compare-{name}-{os.getpid()}."
            env = {
                **signed_env(broker.bootstrap_servers, prefix),
                "BRIDGE_PORT": str(port := free_port()),
                "BRIDGE_HOST": "127.0.0.1",
                "BRIDGE_SPOOL_DIR": tempfile.mkdtemp(prefix=f"compare-spool-{name}-"),
            }
            create_topics(broker.bootstrap_servers, prefix)
            stack.enter_context(server([str(binary), "serve"], env, f"compare-{name}"))
            wait_ready(port, timeout=60)
            ports[name] = port
            counters[name] = RecordCounter(broker.bootstrap_servers, prefix)
            stack.callback(counters[name].close)
            wrk(port, source.file(10_000), 16, 2.0)  # warm-up
        rates: dict[str, list[float]] = {name: [] for name in binaries}
        lost = 0
        for number in range(1, args.rounds + 1):
            for name, port in ports.items():
                requests = source.file(int(6000 * args.duration) + 1000)
                run = checked_run(port, counters[name], requests, args.connections, args.duration)
                if not run["distinct_bodies"]:
                    raise SystemExit(f"{name}: bodies repeated in round {number}; raise the file size")
                rates[name].append(run["rps"])
                lost += run["lost"]
                rate, p99 = run["rps"], run["p99_ms"]
                print(f"round {number} {name}: {rate:,.0f} req/s, p99 {p99:.1f} ms", flush=True)
    ratios = [c / b for b, c in zip(rates["baseline"], rates["current"], strict=True)]
    print(f"baseline req/s per round: {rates['baseline']}")
    print(f"current  req/s per round: {rates['current']}")
    print(f"current / baseline per round: {[round(r, 3) for r in ratios]}; median {median(ratios):.3f}")
    print(f"acknowledged but not in Kafka: {lost}")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
