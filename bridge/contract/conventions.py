"""What consumers are promised per topic: the self-contained schema and the registry subject.

The sources in `schemas/src/<suffix>.avsc` reference shared named types kept in their own files
there; consumers (Java's `Schema.Parser`, avsc, Apache `avro`, Spark `from_avro`, the registry) need
one self-contained document, so `schemas/<suffix>.avsc` is generated with every named type inlined
at its first use and referenced by full name afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from fastavro.schema import load_schema

from bridge.contract.routes import ALL_SUFFIXES
from bridge.contract.schemas import TopicSchema

SubjectStrategy = Literal["topic", "topic_record"]

# `{"type": "string", "unit21.format": "json"}`: the string holds JSON text (normalize.py keys on it).
JSON_FORMAT_PROPERTY = "unit21.format"

# Readers scan an exported file top-down: identity first, then docs, then the body.
_KEY_ORDER = ("name", "type", "namespace", "aliases", "doc", "logicalType", "symbols", "items", "values")


def _ordered(node: Any) -> Any:
    if isinstance(node, list):
        return [_ordered(item) for item in node]
    if not isinstance(node, dict):
        return node
    keys = sorted(node, key=lambda k: (_KEY_ORDER.index(k) if k in _KEY_ORDER else len(_KEY_ORDER), k))
    # "fields" last: a record's own attributes stay visible above its (long) field list.
    keys.sort(key=lambda k: k == "fields")
    return {k: _ordered(node[k]) for k in keys if not k.startswith("__")}


def expanded_schema(schema: TopicSchema) -> dict[str, Any]:
    """The topic's schema with every named type defined inline once (fastavro's load_schema output)."""
    result = _ordered(schema.parsed)
    assert isinstance(result, dict)
    return result


def expanded_json(schema: TopicSchema, indent: int | None = None) -> str:
    text = json.dumps(expanded_schema(schema), indent=indent, ensure_ascii=False)
    return text + "\n" if indent is not None else text


# The Avro specification's logical types (1.12). Any other name makes Apache `avro` for Python warn
# and other libraries silently fall back to the base type; a JSON-text string says so with
# JSON_FORMAT_PROPERTY instead, which every library keeps as plain metadata.
SPEC_LOGICAL_TYPES = frozenset(
    {
        "decimal", "big-decimal", "uuid", "date", "time-millis", "time-micros",
        "timestamp-millis", "timestamp-micros", "timestamp-nanos",
        "local-timestamp-millis", "local-timestamp-micros", "local-timestamp-nanos", "duration",
    }
)  # fmt: skip


def nonstandard_logical_types(node: Any, where: str = "") -> list[str]:
    """`<path>: <logicalType>` for every logical type outside the Avro specification."""
    found: list[str] = []
    if isinstance(node, list):
        for item in node:
            found += nonstandard_logical_types(item, where)
    elif isinstance(node, dict):
        logical = node.get("logicalType")
        if logical is not None and logical not in SPEC_LOGICAL_TYPES:
            found.append(f"{where or '(top)'}: {logical}")
        for field in node.get("fields", ()):
            found += nonstandard_logical_types(field["type"], f"{where}.{field['name']}".lstrip("."))
        for key in ("items", "values"):
            if key in node:
                found += nonstandard_logical_types(node[key], where)
    return found


def _pretty(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def generated_topic_files(sources: Path) -> dict[str, str]:
    """file name -> text of every self-contained topic file, built from the sources in `sources`."""
    out: dict[str, str] = {}
    for suffix in ALL_SUFFIXES:
        path = sources / f"{suffix}.avsc"
        if not path.is_file():
            raise FileNotFoundError(f"missing schema source {path} for topic suffix {suffix!r}")
        # load_schema resolves each named type from `<full name>.avsc` beside the source.
        schema = _ordered(load_schema(str(path), _write_hint=False))
        unknown = nonstandard_logical_types(schema)
        if unknown:
            raise ValueError(
                f"{path}: logical types outside the Avro specification ({', '.join(unknown)}); "
                f'mark JSON text with "{JSON_FORMAT_PROPERTY}": "json" on the string instead'
            )
        out[path.name] = _pretty(schema)
    return out


def subject_name_strategy(strategy: SubjectStrategy) -> Any:
    """confluent-kafka's subject-name strategy function for BRIDGE_SUBJECT_NAME_STRATEGY (imported
    here, not at module level: only registry mode loads the registry client)."""
    from confluent_kafka.schema_registry import (
        topic_record_subject_name_strategy,
        topic_subject_name_strategy,
    )

    return topic_subject_name_strategy if strategy == "topic" else topic_record_subject_name_strategy


def subject_name(strategy: SubjectStrategy, topic: str, record_full_name: str) -> str:
    """The registry subject of a topic's values: confluent-kafka's own TopicNameStrategy
    (`<topic>-value`) or TopicRecordNameStrategy (`<topic>-<record>`), the functions its
    serializers call, so the name shown and the name used cannot differ."""
    from confluent_kafka.serialization import MessageField, SerializationContext

    naming = subject_name_strategy(strategy)
    subject = naming(SerializationContext(topic, MessageField.VALUE), record_full_name)
    assert subject is not None
    return str(subject)
