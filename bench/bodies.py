"""Distinct, correctly signed Unit21 webhook bodies of every object type, for wrk to replay.

Each body is one of `examples/webhooks/*.json` with its identifying field replaced by a
counter, so no two requests of a run carry the same body (a dedup layer would otherwise
turn repeats into "lost" records). The file format is one request per line:
``<Unit21-Signature header>\\t<compact JSON body>``, which `wrk/signed.lua` reads at start-up.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from bridge.ingress.signature import signature_header

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "webhooks"


def templates(examples: Path = EXAMPLES) -> list[tuple[str, dict[str, Any]]]:
    return [(path.stem, orjson.loads(path.read_bytes())) for path in sorted(examples.glob("*.json"))]


def _make_distinct(doc: dict[str, Any], serial: int) -> dict[str, Any]:
    doc = dict(doc)
    if "unit21_id" in doc:
        doc["unit21_id"] = serial if isinstance(doc["unit21_id"], int) else f"bench-{serial}"
    elif "event_id" in doc:
        doc["event_id"] = f"bench-{serial}"
    elif isinstance(doc.get("exports"), list) and doc["exports"]:
        doc["exports"] = [{**doc["exports"][0], "id": serial}, *doc["exports"][1:]]
    else:
        doc["bench_serial"] = serial
    return doc


def generate(secret: str, count: int, *, timestamp: int, start: int = 0) -> Iterator[tuple[str, str, bytes]]:
    """(example name, signature header, body) for `count` distinct bodies, cycling through the examples."""
    cycle = itertools.cycle(templates())
    for serial in range(start, start + count):
        name, doc = next(cycle)
        body = orjson.dumps(_make_distinct(doc, 1_000_000_000 + serial))
        yield name, signature_header(secret, timestamp, body), body


def write(path: Path, secret: str, count: int, *, timestamp: int, start: int = 0) -> int:
    """Write the wrk request file; returns the number of requests written."""
    with path.open("wb") as out:
        for _, header, body in generate(secret, count, timestamp=timestamp, start=start):
            out.write(header.encode("ascii") + b"\t" + body + b"\n")
    return count
