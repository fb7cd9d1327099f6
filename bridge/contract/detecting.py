"""Decode a value in either encoding the bridge writes, chosen by its first bytes.

`C3 01` is Avro single-object (the fingerprint names the schema); `00` is the Confluent
wire format (the schema id is looked up in the registry named by SCHEMA_REGISTRY_URL).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bridge.contract.codec import MAGIC as SINGLE_OBJECT_MAGIC
from bridge.contract.codec import DecodeError, SingleObjectCodec
from bridge.contract.schemas import SchemaSet, TopicSchema
from bridge.settings import Settings

if TYPE_CHECKING:
    from bridge.contract.registry import RegistryCodec


class DetectingCodec:
    """Encodes single-object (a `Codec` for MessageBuilder); decodes both encodings."""

    def __init__(self, schemas: SchemaSet, settings: Settings) -> None:
        self._single = SingleObjectCodec(schemas)
        self._schemas = schemas
        self._settings = settings
        self._registry: RegistryCodec | None = None  # built on the first Confluent-framed value

    def encode(self, schema: TopicSchema, record: dict[str, Any]) -> bytes:
        return self._single.encode(schema, record)

    def decode(self, data: bytes) -> tuple[TopicSchema, dict[str, Any]]:
        if data[:2] == SINGLE_OBJECT_MAGIC:
            return self._single.decode(data)
        if data[:1] == b"\x00":
            return self._registry_codec(data).decode(data)
        raise DecodeError(f"unknown encoding (first bytes {data[:2].hex() or 'none'}): neither C3 01 nor 00")

    def _registry_codec(self, data: bytes) -> RegistryCodec:
        if self._registry is None:
            if not self._settings.schema_registry_url:
                schema_id = int.from_bytes(data[1:5], "big")
                raise DecodeError(
                    f"Confluent-framed value (schema id {schema_id}) but SCHEMA_REGISTRY_URL is not set"
                )
            from bridge.contract.registry import registry_codec

            self._registry = registry_codec(self._settings, self._schemas)
        return self._registry
