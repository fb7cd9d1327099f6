"""Per-body cost of `parse` and of `parse` + `MessageBuilder.build`, in microseconds.

    .venv/bin/python bench/parse_cost.py [--number N] [--repeat R] [--against REV]

The bodies are the bench bodies (`bench/bodies.py`, one per example webhook) plus bodies that
take the exact-number path: the decimal ENTITY body of issue 13 and one with a 22-digit
integer. Each figure is the best of R repeats of N calls (timeit): the cost on a quiet core,
not a latency. `--against REV` also loads `bridge/contract/parsing.py` as it was at git revision REV and
times its `parse` and `dumps` interleaved with today's, so that both see the same machine load
(this VM's speed drifts by tens of percent from one minute to the next).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import timeit
import types
from functools import partial
from pathlib import Path
from typing import Any

# The checkout this script is in, before an installed copy: `--against` compares with it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bodies import generate  # bench/ is on sys.path as the script's directory, as for run.py

from bridge.contract.codec import SingleObjectCodec
from bridge.contract.parsing import dumps, parse
from bridge.contract.records import MessageBuilder
from bridge.contract.schemas import SchemaSet

DECIMAL_ENTITY = (
    b'{"object_type": "ENTITY", "change": "FLAGGED", "entity_id": "u-1", "unit21_id": 7,'
    b' "custom_data": {"fee": 100.10, "limit": 12345678901234567.89,'
    b' "rate": 0.1000000000000000055511151231257827, "count": 12345678901234567890},'
    b' "amount": 12345678901234567.89}'
)
LONG_INTEGER_ALERT = (
    b'{"object_type": "ALERT", "change": "CREATED", "unit21_id": 1,'
    b' "custom_data": {"ledger_id": 1234567890123456789012}}'
)


def bodies() -> list[tuple[str, bytes]]:
    found = [(name, body) for name, _, body in generate("bench-secret", 11, timestamp=1_700_000_000)]
    return [
        *found,
        ("decimal_entity (exact path)", DECIMAL_ENTITY),
        ("long_integer (exact path)", LONG_INTEGER_ALERT),
    ]


def best_us(call: Any, number: int, repeat: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=repeat)) / number * 1e6


def payload_at(revision: str) -> types.ModuleType:
    for path in ("bridge/contract/parsing.py", "bridge/payload.py"):  # where it lived before the packages
        shown = subprocess.run(["git", "show", f"{revision}:{path}"], capture_output=True, text=True)
        if shown.returncode == 0:
            source = shown.stdout
            break
    else:
        raise SystemExit(f"no JSON parsing module at {revision}")
    module = types.ModuleType(f"payload_at_{revision}")
    module.__dict__["__name__"] = module.__name__
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{revision}:{path}", "exec"), module.__dict__)
    return module


def compare(revision: str, number: int, repeat: int) -> None:
    old = payload_at(revision)
    print(
        f"\n{'body':<40} {revision + ' parse':>12} {'parse':>8} {revision + ' dumps':>12} {'dumps':>8}  (us)"
    )
    totals = [0.0, 0.0, 0.0, 0.0]
    fast = 0
    for name, body in bodies():
        custom = old.parse(body).get("custom_data") or {}
        figures = [0.0, 0.0, 0.0, 0.0]
        for _ in range(repeat):  # interleaved: each round times all four back to back
            rounds = [
                timeit.timeit(partial(old.parse, body), number=number),
                timeit.timeit(partial(parse, body), number=number),
                timeit.timeit(partial(old.dumps, custom), number=number),
                timeit.timeit(partial(dumps, custom), number=number),
            ]
            figures = [r if not figures[i] else min(figures[i], r) for i, r in enumerate(rounds)]
        figures = [f / number * 1e6 for f in figures]
        if "exact path" not in name:
            totals = [t + f for t, f in zip(totals, figures, strict=True)]
            fast += 1
        print(f"{name:<40} {figures[0]:>12.2f} {figures[1]:>8.2f} {figures[2]:>12.2f} {figures[3]:>8.2f}")
    mean = [t / fast for t in totals]
    print(
        f"{'mean of the bench bodies':<40} {mean[0]:>12.2f} {mean[1]:>8.2f} {mean[2]:>12.2f} {mean[3]:>8.2f}"
    )


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--number", type=int, default=20_000)
    options.add_argument("--repeat", type=int, default=7)
    options.add_argument(
        "--against", metavar="REV", help="also time bridge/contract/parsing.py at this git revision"
    )
    args = options.parse_args()
    schemas = SchemaSet.load()
    builder = MessageBuilder(schemas, SingleObjectCodec(schemas), "unit21.")
    print(f"{'body':<40} {'bytes':>6} {'parse us':>9} {'parse+build us':>15}")
    parse_total = build_total = 0.0
    fast = 0
    for name, body in bodies():

        def both(body: bytes = body) -> None:
            builder.build(body, parse(body), event_id="e", received_at_ms=1, signature_timestamp=1)

        p = best_us(lambda body=body: parse(body), args.number, args.repeat)
        b = best_us(both, args.number // 4, args.repeat)
        if "exact path" not in name:
            parse_total, build_total, fast = parse_total + p, build_total + b, fast + 1
        print(f"{name:<40} {len(body):>6} {p:>9.2f} {b:>15.2f}")
    print(f"{'mean of the bench bodies':<40} {'':>6} {parse_total / fast:>9.2f} {build_total / fast:>15.2f}")
    if args.against:
        compare(args.against, args.number, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
