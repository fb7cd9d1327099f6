"""What consumers are promised per topic: the self-contained schema and the registry subject.

`schemas/<suffix>.avsc` references shared named types kept in their own files; consumers
(Spark `from_avro`, Java's `Schema.Parser`, the registry) need one self-contained document,
so every named type is inlined at its first use and referenced by full name afterwards.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from bridge.schemas import TopicSchema

SubjectStrategy = Literal["topic", "topic_record"]

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


def subject_name(strategy: SubjectStrategy, topic: str, record_full_name: str) -> str:
    """Confluent's TopicNameStrategy (`<topic>-value`) or TopicRecordNameStrategy (`<topic>-<record>`)."""
    if strategy == "topic":
        return f"{topic}-value"
    return f"{topic}-{record_full_name}"
