"""Avro single-object encoding: C3 01, the 8-byte CRC-64-AVRO fingerprint, the Avro body.

A consumer holding only our `.avsc` files can decode any message: the fingerprint names
the schema. (Schema Registry framing is a second codec with the same interface.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from io import BytesIO
from typing import Any, Protocol

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from bridge.schemas import SchemaSet, TopicSchema

MAGIC = b"\xc3\x01"
HEADER_LENGTH = len(MAGIC) + 8


class DecodeError(ValueError):
    pass


class Codec(Protocol):
    def encode(self, schema: TopicSchema, record: dict[str, Any]) -> bytes: ...

    def decode(self, data: bytes) -> tuple[TopicSchema, dict[str, Any]]: ...


class SingleObjectCodec:
    def __init__(self, schemas: SchemaSet) -> None:
        self._schemas = schemas
        # `SchemaSet` loads without fastavro's write hint, and fastavro re-parses a schema that
        # lacks it on every schemaless_writer call (half the cost of an encode). Parse once here.
        self._writer_schemas: dict[str, Any] = {
            suffix: parse_schema(schema.parsed) for suffix, schema in schemas.by_suffix.items()
        }
        # Compiled writers (see `compile_writer`) for the schemas that use only what it knows.
        self._writers: dict[str, Write] = {}
        for suffix, parsed in self._writer_schemas.items():
            with contextlib.suppress(UnsupportedSchema):
                self._writers[suffix] = compile_writer(parsed)

    def encode(self, schema: TopicSchema, record: dict[str, Any]) -> bytes:
        ours = schema is self._schemas.by_suffix.get(schema.suffix)
        writer = self._writers.get(schema.suffix) if ours else None
        if writer is not None:
            out = bytearray(MAGIC)
            out += schema.fingerprint
            try:
                writer(out, record)
            except (AttributeError, KeyError) as exc:
                raise TypeError(f"record does not match {schema.full_name}: {exc}") from None
            return bytes(out)
        buffer = BytesIO()
        buffer.write(MAGIC)
        buffer.write(schema.fingerprint)
        # A schema from elsewhere is parsed per call: correct, just slower.
        schemaless_writer(buffer, self._writer_schemas[schema.suffix] if ours else schema.parsed, record)
        return buffer.getvalue()

    def decode(self, data: bytes) -> tuple[TopicSchema, dict[str, Any]]:
        if len(data) < HEADER_LENGTH or data[:2] != MAGIC:
            raise DecodeError("not Avro single-object encoded (no C3 01 marker)")
        schema = self._schemas.by_fingerprint.get(data[2:HEADER_LENGTH])
        if schema is None:
            raise DecodeError(f"unknown schema fingerprint {data[2:HEADER_LENGTH].hex()}")
        record = schemaless_reader(BytesIO(data[HEADER_LENGTH:]), schema.parsed, None)
        if not isinstance(record, dict):
            raise DecodeError("decoded value is not a record")
        return schema, record


# -- compiled Avro writer -------------------------------------------------------------------
#
# fastavro's writer resolves every union by validating the value against each branch, which
# for our schemas (every Unit21 field is ["null", T], records nest arrays of records) costs
# more than the write itself. Our unions need no search: null is branch 0, anything else
# branch 1. So each schema is compiled once into a tree of small functions appending Avro
# binary to a bytearray, as normalize.py compiles its converters. A schema using anything
# else (int, float, bytes, enum, fixed, other unions, other logical types) raises
# UnsupportedSchema and the codec keeps using fastavro for it. Tests check the bytes are
# identical to fastavro's for every example webhook.

Write = Callable[[bytearray, Any], None]

_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


class UnsupportedSchema(ValueError):
    pass


def _varint(out: bytearray, n: int) -> None:
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _write_long(out: bytearray, value: Any) -> None:
    if value.__class__ is not int and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    if not _LONG_MIN <= value <= _LONG_MAX:
        raise ValueError(f"{value} does not fit in a long")
    n = (value << 1) ^ (value >> 63)  # zig-zag
    if n < 0x80:
        out.append(n)
    else:
        _varint(out, n)


def _write_timestamp_millis(out: bytearray, value: Any) -> None:
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        value = (aware - _EPOCH) // _MILLISECOND
    _write_long(out, value)


def _write_string(out: bytearray, value: Any) -> None:
    if value.__class__ is not str and not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    data = value.encode("utf-8")
    n = len(data) << 1
    if n < 0x80:
        out.append(n)
    else:
        _varint(out, n)
    out += data


def _write_boolean(out: bytearray, value: Any) -> None:
    if value is True:
        out.append(1)
    elif value is False:
        out.append(0)
    else:
        raise TypeError(f"expected a boolean, got {type(value).__name__}")


def _write_null(out: bytearray, value: Any) -> None:
    if value is not None:
        raise TypeError(f"expected null, got {type(value).__name__}")


_PRIMITIVE_WRITERS: dict[str, Write] = {
    "null": _write_null,
    "boolean": _write_boolean,
    "long": _write_long,
    "string": _write_string,
}


class _WriterCompiler:
    def __init__(self, named_schemas: dict[str, Any]) -> None:
        self.named_schemas = named_schemas
        self.records: dict[str, Write] = {}

    def compile(self, node: Any) -> Write:
        if isinstance(node, str):
            if node in _PRIMITIVE_WRITERS:
                return _PRIMITIVE_WRITERS[node]
            if node in self.records:
                return self.records[node]
            if node in self.named_schemas:
                return self.compile(self.named_schemas[node])
            raise UnsupportedSchema(f"type {node!r}")
        if isinstance(node, list):
            if len(node) == 2 and node[0] == "null" and node[1] != "null":
                return _nullable(self.compile(node[1]))
            raise UnsupportedSchema(f"union {node!r}")
        if isinstance(node, dict):
            kind = node.get("type")
            logical = node.get("logicalType")
            if kind == "record":
                return self._record(node)
            if kind == "array":
                return _array(self.compile(node["items"]))
            if kind == "map":
                return _map(self.compile(node["values"]))
            if kind == "long" and logical == "timestamp-millis":
                return _write_timestamp_millis
            if logical is None or (kind == "string" and logical == "json"):
                return self.compile(kind)
            raise UnsupportedSchema(f"logical type {logical!r} on {kind!r}")
        raise UnsupportedSchema(f"schema node {node!r}")

    def _record(self, node: dict[str, Any]) -> Write:
        fields: list[tuple[str, Write]] = []

        def record(out: bytearray, value: Any) -> None:
            get = value.get
            for name, write in fields:
                write(out, get(name))

        self.records[node["name"]] = record  # before the fields: a record may refer to itself
        fields.extend((field["name"], self.compile(field["type"])) for field in node["fields"])
        return record


def _nullable(write: Write) -> Write:
    def nullable(out: bytearray, value: Any) -> None:
        if value is None:
            out.append(0)
        else:
            out.append(2)  # branch 1, zig-zag encoded
            write(out, value)

    return nullable


def _array(write_item: Write) -> Write:
    def array(out: bytearray, value: Any) -> None:
        if value.__class__ is not list and not isinstance(value, list | tuple):
            raise TypeError(f"expected an array, got {type(value).__name__}")
        if value:
            _write_long(out, len(value))
            for item in value:
                write_item(out, item)
        out.append(0)

    return array


def _map(write_value: Write) -> Write:
    def map_(out: bytearray, value: Any) -> None:
        if value:
            _write_long(out, len(value))
            for key, item in value.items():
                _write_string(out, key)
                write_value(out, item)
        out.append(0)

    return map_


def compile_writer(parsed_schema: dict[str, Any]) -> Write:
    """A writer for a fastavro-parsed schema (with `__named_schemas`); raises UnsupportedSchema."""
    return _WriterCompiler(dict(parsed_schema.get("__named_schemas", {}))).compile(parsed_schema)
