from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.contract import routes
from bridge.contract.codec import SingleObjectCodec
from bridge.contract.normalize import (
    EPOCH_SECONDS_MAX,
    EPOCH_SECONDS_MIN,
    NormalizationError,
    SchemaConventionError,
    compile_normalizer,
)
from bridge.contract.parsing import dumps, event_id, parse
from bridge.contract.records import MessageBuilder
from bridge.contract.schemas import SchemaSet
from tests.exact_json import canonical
from tests.support import EXAMPLES

SCHEMAS = SchemaSet.load()
CODEC = SingleObjectCodec(SCHEMAS)
BUILDER = MessageBuilder(SCHEMAS, CODEC, "unit21.")


def build(doc: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    body = dumps(doc).encode()
    message = BUILDER.build(
        body, parse(body), event_id=event_id(body), received_at_ms=1, signature_timestamp=2
    )
    return message, CODEC.decode(message.value)[1]


def test_sample_fields_are_converted_as_documented() -> None:
    doc = json.loads((EXAMPLES / "alert_closed.json").read_text())
    message, record = build(doc)
    assert message.topic == "unit21.alert"
    assert message.outcome == "published"
    assert record["unit21_id"] == 123
    assert record["alert_id"] is None and "alert_id" not in record["absent"]
    assert int(record["change_time"].timestamp()) == doc["change_time"]
    assert json.loads(record["custom_data"]) == {"internal_priority": 3}
    assert record["events"][0]["unit21_id"] == 2151796066
    assert record["instruments"][0]["instrument_type"] == "wallet"
    assert record["bridge"]["action"] == "ALERT_CLOSED"
    assert record["extras"] == {}


def test_missing_nested_unit21_id_is_recorded_as_absent() -> None:
    doc = json.loads((EXAMPLES / "alert_created.json").read_text())
    _, record = build(doc)
    assert record["entities"][0]["unit21_id"] is None
    assert record["entities"][0]["absent"] == ["unit21_id"]


def test_unknown_fields_are_kept_at_every_level() -> None:
    doc = json.loads((EXAMPLES / "case_created.json").read_text())
    doc["new_top"] = {"deep": [1, "two", None]}
    doc["entities"][0]["risk_score"] = 0.75
    doc["bridge"] = "a Unit21 field that collides with our envelope name"
    _, record = build(doc)
    assert json.loads(record["extras"]["new_top"]) == {"deep": [1, "two", None]}
    assert json.loads(record["entities"][0]["extras"]["risk_score"]) == 0.75
    assert json.loads(record["extras"]["bridge"]).startswith("a Unit21 field")
    assert BUILDER.reassemble(SCHEMAS["case"], record) == doc


@pytest.mark.parametrize(
    ("mutation", "path", "reason"),
    [
        ({"unit21_id": "123"}, "unit21_id", "expected an integer, got string"),
        ({"unit21_id": True}, "unit21_id", "expected an integer, got boolean"),
        ({"unit21_id": 1.5}, "unit21_id", "expected an integer, got number"),
        ({"unit21_id": 2**64}, "unit21_id", "does not fit in a 64-bit long"),
        ({"change_time": 10**13}, "change_time", "not an epoch time in seconds"),
        ({"tags": "a:b"}, "tags", "expected an array, got string"),
        ({"tags": ["a", None]}, "tags[1]", "null is not allowed"),
        ({"entities": [{"unit21_id": "x"}]}, "entities[0].unit21_id", "expected an integer"),
        ({"entities": ["u-1"]}, "entities[0]", "expected an object, got string"),
    ],
)
def test_type_mismatches_are_dead_lettered_with_their_path(
    mutation: dict[str, Any], path: str, reason: str
) -> None:
    doc = json.loads((EXAMPLES / "alert_created.json").read_text()) | mutation
    message, record = build(doc)
    assert message.topic == "unit21.dlq"
    assert message.outcome == "dead_lettered"
    assert record["target_topic"] == "unit21.alert"
    assert [(e["path"], reason in e["reason"]) for e in record["errors"]] == [(path, True)]
    assert json.loads(record["payload"]) == json.loads(dumps(doc))


def test_every_error_is_reported_not_just_the_first() -> None:
    with pytest.raises(NormalizationError) as info:
        compile_normalizer(SCHEMAS["rule"].parsed).normalize({"unit21_id": "x", "title": 5})
    assert [i.path for i in info.value.issues] == ["unit21_id", "title"]


def test_schema_conventions_are_enforced_at_start_up() -> None:
    schema = {
        "type": "record",
        "name": "Bad",
        "fields": [{"name": "bridge", "type": "string"}, {"name": "x", "type": "long"}],
    }
    with pytest.raises(SchemaConventionError):
        compile_normalizer(schema)


# -- lossless round trip: payload -> Avro bytes -> record -> payload ---------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


def strategy_for(schema: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    if isinstance(schema, str):
        if schema in named:
            return named[schema]
        return {
            "long": st.integers(min_value=-(2**63), max_value=2**63 - 1),
            "string": st.text(max_size=12),
            "boolean": st.booleans(),
        }[schema]
    if isinstance(schema, list):
        return st.none() | strategy_for(schema[1], named)
    logical = schema.get("logicalType")
    if logical == "timestamp-millis":
        return st.integers(min_value=EPOCH_SECONDS_MIN, max_value=EPOCH_SECONDS_MAX)
    if logical == "json":
        return json_values
    if schema["type"] == "array":
        return st.lists(strategy_for(schema["items"], named), max_size=3)
    if schema["type"] == "record":
        return record_strategy(schema, named)
    return strategy_for(schema["type"], named)


def record_strategy(schema: dict[str, Any], named: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    fields = [f for f in schema["fields"] if f["name"] not in {"bridge", "extras", "absent"}]
    names = {f["name"] for f in fields}
    optional = {f["name"]: strategy_for(f["type"], named) for f in fields}
    extra_keys = (st.text(min_size=1, max_size=8) | st.sampled_from(["bridge", "extras", "absent"])).filter(
        lambda k: k not in names and k != "object_type"
    )
    strategy = st.fixed_dictionaries({}, optional=optional).flatmap(
        lambda known: st.dictionaries(extra_keys, json_values, max_size=3).map(
            lambda extra: {**extra, **known}
        )
    )
    named[schema["name"]] = strategy
    return strategy


def payloads(suffix: str) -> st.SearchStrategy[dict[str, Any]]:
    strategy = record_strategy(SCHEMAS[suffix].parsed, {})
    if suffix == routes.FILE_EXPORT.topic_suffix:
        return strategy.map(lambda doc: {**doc, "exports": doc.get("exports")})
    object_type = next(r.object_type for r in routes.BY_OBJECT_TYPE.values() if r.topic_suffix == suffix)
    return strategy.map(lambda doc: {**doc, "object_type": object_type})


@pytest.mark.parametrize("suffix", routes.RECORD_SUFFIXES)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip_is_lossless(suffix: str, data: st.DataObject) -> None:
    doc = data.draw(payloads(suffix))
    message, record = build(doc)
    assert message.outcome == "published", message.issues
    assert message.topic == f"unit21.{suffix}"
    # As decimals, kinds apart: a float sent as 1e+16 comes back as the Decimal 1E+16.
    assert canonical(BUILDER.reassemble(SCHEMAS[suffix], record)) == canonical(doc)
