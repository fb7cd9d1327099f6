"""The compiled Avro writer must produce exactly fastavro's bytes, or refuse the schema."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import orjson
import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from bridge.codec import SingleObjectCodec, UnsupportedSchema, compile_writer
from bridge.messages import MessageBuilder
from bridge.payload import event_id, parse
from bridge.schemas import SchemaSet
from tests.support import EXAMPLES

SCHEMAS = SchemaSet.load()


def fastavro_bytes(schema: Any, record: Any) -> bytes:
    buffer = BytesIO()
    schemaless_writer(buffer, schema, record)
    return buffer.getvalue()


def compiled_bytes(schema: Any, record: Any) -> bytes:
    out = bytearray()
    compile_writer(parse_schema(schema))(out, record)
    return bytes(out)


def variants(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The example itself plus edge values: unicode, wide and negative integers, empty containers."""
    wide = {k: (-(2**62) if isinstance(v, int) and not isinstance(v, bool) else v) for k, v in doc.items()}
    text = {k: (v + " é✓ \x00" * 40 if isinstance(v, str) else v) for k, v in doc.items()}
    empty = {k: ([] if isinstance(v, list) else {} if isinstance(v, dict) else v) for k, v in doc.items()}
    return [doc, wide, text, empty, {**doc, "unknown_field": {"nested": [1, 2.5, None]}}]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_compiled_writer_matches_fastavro_for_every_example(path: Any) -> None:
    codec = SingleObjectCodec(SCHEMAS)
    builder = MessageBuilder(SCHEMAS, codec, "t.")
    for doc in variants(orjson.loads(path.read_bytes())):
        body = orjson.dumps(doc)
        message = builder.build(
            body, parse(body), event_id=event_id(body), received_at_ms=1, signature_timestamp=2
        )
        suffix = message.topic.removeprefix("t.")
        schema, record = codec.decode(message.value)
        assert schema.suffix == suffix
        assert message.value[10:] == fastavro_bytes(SCHEMAS[suffix].parsed, record)


def test_every_bridge_schema_is_compiled() -> None:
    codec = SingleObjectCodec(SCHEMAS)
    assert set(codec._writers) == set(SCHEMAS.by_suffix)


@pytest.mark.parametrize("value", [0, 1, -1, 63, -64, 64, 2**31, -(2**63), 2**63 - 1])
def test_long_zigzag_matches_fastavro(value: int) -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "n", "type": ["null", "long"]}]}
    assert compiled_bytes(schema, {"n": value}) == fastavro_bytes(schema, {"n": value})


def test_wrong_types_are_refused() -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "n", "type": ["null", "long"]}]}
    with pytest.raises(TypeError):
        compiled_bytes(schema, {"n": "1"})
    with pytest.raises(ValueError):
        compiled_bytes(schema, {"n": 2**63})


@pytest.mark.parametrize(
    "field_type",
    ["int", "double", ["string", "long"], {"type": "enum", "name": "E", "symbols": ["A"]}],
    ids=["int", "double", "other-union", "enum"],
)
def test_unsupported_schemas_are_refused_so_fastavro_is_used(field_type: Any) -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "x", "type": field_type}]}
    with pytest.raises(UnsupportedSchema):
        compile_writer(parse_schema(schema))


def test_round_trip_through_fastavro_reader() -> None:
    codec = SingleObjectCodec(SCHEMAS)
    builder = MessageBuilder(SCHEMAS, codec, "t.")
    body = (EXAMPLES / "alert_created.json").read_bytes()
    message = builder.build(body, parse(body), event_id="e", received_at_ms=1, signature_timestamp=None)
    decoded = schemaless_reader(BytesIO(message.value[10:]), SCHEMAS["alert"].parsed, None)
    assert builder.reassemble(SCHEMAS["alert"], decoded) == parse(body)
