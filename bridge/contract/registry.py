"""Confluent Schema Registry encoding: magic byte 0, 4-byte big-endian schema id, Avro body.

The second `Codec` (bridge/contract/codec.py is the first). Encoding goes through confluent-kafka's
`AvroSerializer`; the record dicts are the same as in single-object mode.

Schema ids are resolved once at start-up (`resolve`), never by the first webhook: with
auto-registration off (production) a subject that is missing or holds a different schema
is a deployment error, reported by /readyz and the start-up log with the subject's name.
The client caches what `resolve` looked up, so `encode` does no registry I/O afterwards.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka.schema_registry import (
    Schema,
    SchemaRegistryClient,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError

from bridge.contract.codec import DecodeError
from bridge.contract.conventions import SubjectStrategy, expanded_json, subject_name, subject_name_strategy
from bridge.contract.schemas import SchemaSet, TopicSchema
from bridge.errors import BridgeError
from bridge.settings import Settings, topic_name

log = logging.getLogger("bridge.registry")

MAGIC = b"\x00"
HEADER = struct.Struct(">bI")


class RegistryNotReady(BridgeError, RuntimeError):
    """Schema ids are not resolved yet; the message names the subject and the cause."""


def registry_client_config(settings: Settings) -> dict[str, Any]:
    conf: dict[str, Any] = {"url": settings.schema_registry_url}
    if settings.schema_registry_basic_auth_user_info is not None:
        conf["basic.auth.user.info"] = settings.schema_registry_basic_auth_user_info.get_secret_value()
    if settings.schema_registry_ssl_ca_location:
        conf["ssl.ca.location"] = settings.schema_registry_ssl_ca_location
    return conf


def new_registry_client(settings: Settings) -> SchemaRegistryClient:
    # new_client gives the in-process registry for mock:// URLs (tests, demos).
    client: SchemaRegistryClient = SchemaRegistryClient.new_client(registry_client_config(settings))
    return client


def registry_schema(schema: TopicSchema) -> Schema:
    """What is registered under the subject: the self-contained schema, docs included."""
    return Schema(expanded_json(schema), "AVRO")


def describe_error(exc: Exception) -> str:
    if isinstance(exc, SchemaRegistryError):
        if exc.http_status_code == 404:
            return f"not registered (HTTP 404, error {exc.error_code}: {exc.error_message})"
        return f"HTTP {exc.http_status_code}, error {exc.error_code}: {exc.error_message}"
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True, slots=True)
class RegistryStatus:
    ready: bool
    detail: str
    failing_subject: str | None = None


class RegistryCodec:
    """Satisfies `bridge.contract.codec.Codec`. One serializer and one deserializer per topic."""

    def __init__(
        self,
        schemas: SchemaSet,
        client: SchemaRegistryClient,
        topic_prefix: str,
        *,
        strategy: SubjectStrategy = "topic",
        auto_register: bool = False,
    ) -> None:
        self.schemas = schemas
        self.client = client
        self.topic_prefix = topic_prefix
        self.strategy = strategy
        self.auto_register = auto_register
        self._registered = {suffix: registry_schema(ts) for suffix, ts in schemas.by_suffix.items()}
        # An explicit strategy callable: the client's default type (ASSOCIATED) asks the
        # registry for associations on every new subject.
        naming = subject_name_strategy(strategy)
        self._serializers = {
            suffix: AvroSerializer(
                client,
                self._registered[suffix],
                conf={"auto.register.schemas": auto_register, "subject.name.strategy": naming},
            )
            for suffix in schemas.by_suffix
        }
        self._deserializers = {
            suffix: AvroDeserializer(client, self._registered[suffix], conf={"subject.name.strategy": naming})
            for suffix in schemas.by_suffix
        }
        self._contexts = {
            suffix: SerializationContext(topic_name(topic_prefix, suffix), MessageField.VALUE)
            for suffix in schemas.by_suffix
        }
        self.ids: dict[str, int] = {}
        self._suffix_by_id: dict[int, str] = {}
        self._status = RegistryStatus(False, "schema ids not resolved yet")
        self._last_attempt = 0.0
        self._lock = threading.Lock()

    def subject(self, suffix: str) -> str:
        topic = topic_name(self.topic_prefix, suffix)
        return subject_name(self.strategy, topic, self.schemas[suffix].full_name)

    @property
    def status(self) -> RegistryStatus:
        return self._status

    def resolve(self) -> RegistryStatus:
        """Look up (or, with auto-registration, register) every subject. Blocking: call off the event loop."""
        with self._lock:
            self._last_attempt = time.monotonic()
            ids: dict[str, int] = {}
            for suffix, schema in self._registered.items():
                subject = self.subject(suffix)
                try:
                    if self.auto_register:
                        registered = self.client.register_schema_full_response(subject, schema)
                    else:
                        registered = self.client.lookup_schema(subject, schema)
                except Exception as exc:  # the registry client raises several types; all mean "not ready"
                    hint = (
                        " (run `unit21-bridge schemas register`, or set "
                        "BRIDGE_SCHEMA_REGISTRY_AUTO_REGISTER=true in development)"
                        if isinstance(exc, SchemaRegistryError) and exc.http_status_code == 404
                        else ""
                    )
                    detail = f"subject {subject}: {describe_error(exc)}{hint}"
                    self._status = RegistryStatus(False, detail, subject)
                    return self._status
                assert registered.schema_id is not None
                ids[suffix] = registered.schema_id
            self.ids = ids
            self._suffix_by_id = {schema_id: suffix for suffix, schema_id in ids.items()}
            shown = ", ".join(f"{self.subject(s)}={i}" for s, i in ids.items())
            self._status = RegistryStatus(True, f"schema ids: {shown}")
            return self._status

    def resolve_if_due(self, min_interval: float) -> RegistryStatus:
        """Retry a failed resolution at most every `min_interval` seconds (readiness probes call this)."""
        if not self._status.ready and time.monotonic() - self._last_attempt >= min_interval:
            return self.resolve()
        return self._status

    def encode(self, schema: TopicSchema, record: dict[str, Any]) -> bytes:
        if not self._status.ready:
            raise RegistryNotReady(self._status.detail)
        data = self._serializers[schema.suffix](record, self._contexts[schema.suffix])
        assert isinstance(data, bytes)
        return data

    def decode(self, data: bytes) -> tuple[TopicSchema, dict[str, Any]]:
        if len(data) < HEADER.size + 1 or data[:1] != MAGIC:
            raise DecodeError("not Confluent Schema Registry framed (no magic byte 0)")
        _, schema_id = HEADER.unpack_from(data)
        suffix = self._suffix_by_id.get(schema_id) or self._suffix_for_unknown_id(schema_id)
        try:
            record = self._deserializers[suffix](data, None)
        except (SerializationError, SchemaRegistryError, ValueError) as exc:
            raise DecodeError(f"schema id {schema_id}: {exc}") from exc
        if not isinstance(record, dict):
            raise DecodeError("decoded value is not a record")
        return self.schemas[suffix], record

    def _suffix_for_unknown_id(self, schema_id: int) -> str:
        # Another writer (or a newer bridge) used a different registered version: map it to
        # our topic schema by record name and let Avro schema resolution read it.
        try:
            writer = self.client.get_schema(schema_id)
        except Exception as exc:
            raise DecodeError(f"schema id {schema_id}: {describe_error(exc)}") from exc
        name = json.loads(writer.schema_str or "{}").get("name", "")
        namespace = json.loads(writer.schema_str or "{}").get("namespace", "")
        full_name = name if "." in name or not namespace else f"{namespace}.{name}"
        for suffix, ts in self.schemas.by_suffix.items():
            if ts.full_name == full_name:
                self._suffix_by_id[schema_id] = suffix
                return suffix
        raise DecodeError(
            f"schema id {schema_id} is record {full_name!r}, which is none of the bridge's topics"
        )


def registry_codec(settings: Settings, schemas: SchemaSet) -> RegistryCodec:
    """The codec `Runtime.from_settings` picks when SCHEMA_REGISTRY_URL is set (ids resolved later)."""
    return RegistryCodec(
        schemas,
        new_registry_client(settings),
        settings.topic_prefix,
        strategy=settings.subject_name_strategy,
        auto_register=settings.schema_registry_auto_register,
    )
