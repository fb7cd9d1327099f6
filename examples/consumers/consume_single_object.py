#!/usr/bin/env python3
"""Read a unit21-kafka-bridge topic written in Avro single-object encoding (the default mode).

Each value is C3 01 + the 8-byte CRC-64-AVRO fingerprint (little-endian) of the writer schema + the
Avro body. The fingerprint picks the schema from the .avsc files you hold: no registry needed.

    pip install confluent-kafka fastavro
    python consume_single_object.py --bootstrap-servers localhost:9092 \\
        --schemas ./schemas unit21.alert      # the repository's schemas/<topic>.avsc files
"""

from __future__ import annotations

import argparse
import json
import sys
from io import BytesIO
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer
from fastavro import schemaless_reader
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_record, read_to_end

MAGIC = b"\xc3\x01"


def load_schemas(directory: Path) -> dict[bytes, Any]:
    """fingerprint (8 bytes, as in the message) -> parsed schema, for every record schema in the folder."""
    by_fingerprint: dict[bytes, Any] = {}
    for path in sorted(directory.glob("*.avsc")):
        # Each topic file is self-contained: parsed alone, with no named types from other files.
        parsed = parse_schema(json.loads(path.read_text("utf-8")), named_schemas={}, _write_hint=False)
        canonical = to_parsing_canonical_form(parsed)
        by_fingerprint[bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))] = parsed
    return by_fingerprint


def decode(value: bytes, schemas: dict[bytes, Any]) -> tuple[str, dict[str, Any]]:
    if value[:2] != MAGIC:
        raise ValueError("not Avro single-object encoded (a registry-framed value starts with 00)")
    schema = schemas.get(value[2:10])
    if schema is None:
        raise ValueError(f"unknown schema fingerprint {value[2:10].hex()}: export the current schemas")
    record = schemaless_reader(BytesIO(value[10:]), schema, None)
    assert isinstance(record, dict)
    return str(schema["name"]), record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("topic")
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--schemas", type=Path, default=Path(__file__).resolve().parents[2] / "schemas")
    parser.add_argument("--timeout", type=float, default=30.0, help="give up after N seconds")
    args = parser.parse_args(argv)
    schemas = load_schemas(args.schemas)
    consumer = Consumer({"bootstrap.servers": args.bootstrap_servers, "group.id": "example-single-object"})
    try:
        for msg in read_to_end(consumer, args.topic, args.timeout):
            name, record = decode(msg.value() or b"", schemas)
            print_record(msg, record, name, print)
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
