from __future__ import annotations

import pytest
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from bridge.contract.codec import MAGIC, DecodeError, SingleObjectCodec
from bridge.contract.schemas import SchemaSet


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
