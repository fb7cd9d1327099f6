"""Avro single-object encoding: C3 01, the 8-byte CRC-64-AVRO fingerprint, the Avro body.

A consumer holding only our `.avsc` files can decode any message: the fingerprint names
the schema. (Schema Registry framing is a second codec with the same interface.)
"""

from __future__ import annotations

from io import BytesIO
from typing import Any, Protocol

from fastavro import schemaless_reader, schemaless_writer

from bridge.contract.schemas import SchemaSet, TopicSchema
from bridge.errors import BridgeError

MAGIC = b"\xc3\x01"
HEADER_LENGTH = len(MAGIC) + 8


class DecodeError(BridgeError, ValueError):
    pass


class Codec(Protocol):
    def encode(self, schema: TopicSchema, record: dict[str, Any]) -> bytes: ...

    def decode(self, data: bytes) -> tuple[TopicSchema, dict[str, Any]]: ...


class SingleObjectCodec:
    def __init__(self, schemas: SchemaSet) -> None:
        self._schemas = schemas

    def encode(self, schema: TopicSchema, record: dict[str, Any]) -> bytes:
        buffer = BytesIO()
        buffer.write(MAGIC)
        buffer.write(schema.fingerprint)
        schemaless_writer(buffer, schema.parsed, record)
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
