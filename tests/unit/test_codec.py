from __future__ import annotations

import io
from pathlib import Path

import pytest
from fastavro import schemaless_writer
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from bridge.contract.codec import MAGIC, DecodeError, SingleObjectCodec
from bridge.contract.normalize import compile_normalizer
from bridge.contract.parsing import classify, parse
from bridge.contract.schemas import SchemaSet
from tests.support import EXAMPLES

SCHEMAS = SchemaSet.load()


def test_fastavro_fingerprint_matches_the_avro_spec_vector() -> None:
    assert fingerprint(to_parsing_canonical_form(parse_schema("null")), "CRC-64-AVRO") == "8a8f25cce724dd63"


def test_every_topic_schema_loads_with_a_distinct_fingerprint() -> None:
    schemas = SchemaSet.load()
    assert len(schemas.by_fingerprint) == len(schemas.by_suffix) == 8


def test_single_object_header_is_magic_then_fingerprint() -> None:
    schemas = SchemaSet.load()
    codec = SingleObjectCodec(schemas)
    schema = schemas["unrecognized"]
    record = {
        "bridge": {
            "event_id": "e",
            "action": "X",
            "object_type": "X",
            "received_at": 0,
            "signature_timestamp": None,
            "bridge_version": "0",
        },
        "object_type": "X",
        "change": None,
        "payload": "{}",
    }
    data = codec.encode(schema, record)
    assert data[:2] == MAGIC == b"\xc3\x01"
    assert data[2:10] == schema.fingerprint
    decoded_schema, decoded = codec.decode(data)
    assert decoded_schema is schema
    assert decoded["payload"] == "{}"


@pytest.mark.parametrize("data", [b"", b"\x00\x00\x00\x00\x01abc", b"\xc3\x01" + b"\x00" * 8 + b"x"])
def test_decode_rejects_foreign_bytes(data: bytes) -> None:
    with pytest.raises(DecodeError):
        SingleObjectCodec(SchemaSet.load()).decode(data)


def _plain(value: object) -> object:
    """The same record without fastavro's tuple notation: what fastavro would have to work out."""
    if isinstance(value, tuple):
        return _plain(value[1])
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_tuple_notation_encodes_byte_identically(path: Path) -> None:
    """The normalizer names each union branch (fastavro's tuple notation); the bytes must be
    exactly those of the plain record, in both encodings' body."""
    doc = parse(path.read_bytes())
    suffix = classify(doc).route.topic_suffix
    if suffix not in SCHEMAS.by_suffix or suffix in ("dlq", "unrecognized"):
        pytest.skip(f"{path.name} is not a typed record")
    record = compile_normalizer(SCHEMAS[suffix].parsed).normalize(doc)
    record["bridge"] = {
        "event_id": "e",
        "action": "A",
        "object_type": "O",
        "received_at": 1,
        "signature_timestamp": None,
        "bridge_version": "0",
    }
    assert any(isinstance(v, tuple) for v in record.values())
    tupled, plain = io.BytesIO(), io.BytesIO()
    schemaless_writer(tupled, SCHEMAS[suffix].parsed, record)
    schemaless_writer(plain, SCHEMAS[suffix].parsed, _plain(record))
    assert tupled.getvalue() == plain.getvalue()
