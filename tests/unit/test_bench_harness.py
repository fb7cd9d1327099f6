"""The benchmark's request generator: distinct bodies of every type, each correctly signed."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bridge.contract.parsing import classify, parse
from bridge.ingress.signature import verify
from tests.support import EXAMPLES, REPO

sys.path.insert(0, str(REPO / "bench"))
import bodies


def test_every_example_type_is_generated_signed_and_distinct(tmp_path: Path) -> None:
    now = int(time.time())
    count = 3 * len(list(EXAMPLES.glob("*.json")))
    generated = list(bodies.generate("bench-secret", count, timestamp=now))
    assert {name for name, _, _ in generated} == {p.stem for p in EXAMPLES.glob("*.json")}
    assert len({body for _, _, body in generated}) == count
    for _, header, body in generated:
        assert verify(header, body, (b"bench-secret",), now=now, tolerance_seconds=300) == now
        assert "\n" not in body.decode() and "\t" not in body.decode()  # one request per line in the file
    routes = {classify(parse(body)).route.topic_suffix for _, _, body in generated}
    assert routes == {"alert", "case", "entity", "rule", "event", "file_export"}


def test_request_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "requests.txt"
    assert bodies.write(path, "s", 25, timestamp=1_700_000_000, start=100) == 25
    lines = path.read_bytes().splitlines()
    assert len(lines) == 25
    header, body = lines[0].split(b"\t", 1)
    assert verify(header.decode(), body, (b"s",), now=1_700_000_000, tolerance_seconds=300) == 1_700_000_000
