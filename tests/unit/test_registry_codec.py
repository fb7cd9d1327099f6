"""Schema Registry mode through confluent-kafka's in-process registry (mock://): exact wire bytes."""

from __future__ import annotations

import json
import struct
from io import BytesIO
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from fastavro import schemaless_reader

from bridge.contract.codec import DecodeError, SingleObjectCodec
from bridge.contract.detecting import DetectingCodec
from bridge.contract.parsing import event_id
from bridge.contract.records import MessageBuilder, OutgoingMessage
from bridge.contract.registry import RegistryCodec, new_registry_client, registry_schema
from bridge.contract.schemas import SchemaSet
from bridge.settings import Settings
from tests.support import EXAMPLES, REPO

SCHEMAS = SchemaSet.load(REPO / "schemas")


def _client() -> SchemaRegistryClient:
    return new_registry_client(Settings.from_env({}, schema_registry_url="mock://unit-tests"))


def _build(codec: Any, sample: str = "alert_created.json") -> OutgoingMessage:
    body = (EXAMPLES / sample).read_bytes()
    builder = MessageBuilder(SCHEMAS, codec, "unit21.")
    return builder.build(
        body,
        json.loads(body),
        event_id=event_id(body),
        received_at_ms=1_700_000_000_000,
        signature_timestamp=1,
    )


def _registered(client: SchemaRegistryClient, prefix: str = "unit21.") -> dict[str, int]:
    ids = {}
    for suffix, ts in SCHEMAS.by_suffix.items():
        ids[suffix] = client.register_schema(f"{prefix}{suffix}-value", registry_schema(ts))
    return ids


def test_wire_format_is_magic_zero_schema_id_then_the_same_avro_body() -> None:
    client = _client()
    ids = _registered(client)
    codec = RegistryCodec(SCHEMAS, client, "unit21.")
    assert codec.resolve().ready
    framed = _build(codec).value
    single = _build(SingleObjectCodec(SCHEMAS)).value
    assert framed[:5] == b"\x00" + struct.pack(">I", ids["alert"])
    # The record content is identical in both modes: only the 5- vs 10-byte header differs.
    assert framed[5:] == single[10:]
    record = schemaless_reader(BytesIO(framed[5:]), SCHEMAS["alert"].parsed, None)
    assert isinstance(record, dict)
    assert record["bridge"]["action"] == "ALERT_CREATED"
    schema, decoded = codec.decode(framed)
    assert schema.suffix == "alert" and decoded == record


def test_start_up_without_registered_subjects_names_the_first_missing_subject() -> None:
    codec = RegistryCodec(SCHEMAS, _client(), "unit21.")
    status = codec.resolve()
    assert not status.ready
    assert status.failing_subject == "unit21.alert-value"
    assert "subject unit21.alert-value: not registered" in status.detail
    assert "unit21-bridge schemas register" in status.detail
    with pytest.raises(RuntimeError, match=r"unit21\.alert-value"):
        _build(codec)


def test_a_subject_holding_another_schema_is_not_ready() -> None:
    client = _client()
    _registered(client)
    other = {"type": "record", "name": "Other", "fields": [{"name": "x", "type": "string"}]}
    client.delete_subject("unit21.case-value")
    from confluent_kafka.schema_registry import Schema

    client.register_schema("unit21.case-value", Schema(json.dumps(other), "AVRO"))
    status = RegistryCodec(SCHEMAS, client, "unit21.").resolve()
    assert (status.ready, status.failing_subject) == (False, "unit21.case-value")


def test_auto_registration_registers_every_subject_once() -> None:
    client = _client()
    first = RegistryCodec(SCHEMAS, client, "dev.", auto_register=True)
    assert first.resolve().ready
    assert sorted(client.get_subjects()) == sorted(f"dev.{s}-value" for s in SCHEMAS.by_suffix)
    second = RegistryCodec(SCHEMAS, client, "dev.", auto_register=True)
    assert second.resolve().ready and second.ids == first.ids
    assert all(client.get_versions(subject) == [1] for subject in client.get_subjects())


def test_topic_record_name_strategy() -> None:
    client = _client()
    codec = RegistryCodec(SCHEMAS, client, "unit21.", strategy="topic_record", auto_register=True)
    assert codec.resolve().ready
    assert codec.subject("alert") == "unit21.alert-unit21_kafka_bridge.Alert"
    assert "unit21.alert-unit21_kafka_bridge.Alert" in client.get_subjects()
    framed = _build(codec).value
    assert framed[:5] == b"\x00" + struct.pack(">I", codec.ids["alert"])


def test_decode_by_registry_id_alone_and_the_detecting_codec() -> None:
    client = _client()
    _registered(client)
    writer = RegistryCodec(SCHEMAS, client, "unit21.")
    assert writer.resolve().ready
    framed = _build(writer, "case_created.json").value
    # A reader that never resolved anything finds the topic schema through the registered record name.
    reader = RegistryCodec(SCHEMAS, client, "unit21.")
    assert reader.decode(framed)[0].suffix == "case"
    with pytest.raises(DecodeError, match="magic byte 0"):
        reader.decode(b"\xc3\x01" + bytes(12))
    with pytest.raises(DecodeError, match="schema id 999"):
        reader.decode(b"\x00" + struct.pack(">I", 999) + b"\x02")

    detecting = DetectingCodec(SCHEMAS, Settings.from_env({}))
    single = _build(SingleObjectCodec(SCHEMAS)).value
    assert detecting.decode(single)[0].suffix == "alert"
    with pytest.raises(DecodeError, match="SCHEMA_REGISTRY_URL is not set"):
        detecting.decode(framed)
    with pytest.raises(DecodeError, match="unknown encoding"):
        detecting.decode(b"{}")
