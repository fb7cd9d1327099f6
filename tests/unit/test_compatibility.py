"""The compatibility gate: FULL_TRANSITIVE against every released schema in schemas/history/."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.cli.schemas import build_schemas
from bridge.contract.compatibility import check_history, released_versions
from bridge.contract.conventions import expanded_json
from bridge.contract.routes import ALL_SUFFIXES
from bridge.contract.schemas import SchemaSet
from tests.support import REPO

SCHEMAS = REPO / "schemas"
HISTORY = SCHEMAS / "history"


def test_current_schemas_are_compatible_with_every_released_version() -> None:
    problems = check_history(SchemaSet.load(SCHEMAS), HISTORY)
    assert problems == [], "\n".join(str(p) for p in problems)


@pytest.mark.parametrize("suffix", ALL_SUFFIXES)
def test_every_topic_has_a_released_version(suffix: str) -> None:
    versions = released_versions(HISTORY, suffix)
    assert versions and versions[0][0] == 1


def test_a_topic_without_history_fails_the_gate(tmp_path: Path) -> None:
    problems = check_history(SchemaSet.load(SCHEMAS), tmp_path, ["alert"])
    assert [p.rules for p in problems] == [("NO_RELEASED_VERSION",)]


def _edited(tmp_path: Path, filename: str, edit: Callable[[dict[str, Any]], None]) -> SchemaSet:
    """The repository's schema sources with one file changed, built and loaded as `make schemas` and
    the bridge do."""
    folder = tmp_path / "schemas"
    shutil.copytree(SCHEMAS / "src", folder / "src")
    path = folder / "src" / filename
    doc = json.loads(path.read_text("utf-8"))
    edit(doc)
    path.write_text(json.dumps(doc), "utf-8")
    assert build_schemas(folder / "src", folder, False, io.StringIO()) == 0
    return SchemaSet.load(folder)


def _field(doc: dict[str, Any], name: str) -> dict[str, Any]:
    field: dict[str, Any] = next(f for f in doc["fields"] if f["name"] == name)
    return field


def test_adding_an_optional_field_with_a_default_passes(tmp_path: Path) -> None:
    def add(doc: dict[str, Any]) -> None:
        doc["fields"].append({"name": "priority", "type": ["null", "string"], "default": None, "doc": "new"})

    schemas = _edited(tmp_path, "alert.avsc", add)
    assert "priority" in expanded_json(schemas["alert"])
    assert check_history(schemas, HISTORY) == []


def test_adding_a_field_to_a_shared_type_with_a_default_passes(tmp_path: Path) -> None:
    def add(doc: dict[str, Any]) -> None:
        doc["fields"].append({"name": "region", "type": ["null", "string"], "default": None})

    assert check_history(_edited(tmp_path, "unit21_kafka_bridge.BridgeMetadata.avsc", add), HISTORY) == []


def test_removing_a_field_without_a_default_fails_naming_the_field(tmp_path: Path) -> None:
    def remove(doc: dict[str, Any]) -> None:
        doc["fields"].remove(_field(doc, "target_topic"))

    problems = check_history(_edited(tmp_path, "dlq.avsc", remove), HISTORY)
    assert [(p.subject, p.old, p.direction, p.fields, p.rules) for p in problems] == [
        ("dlq", "v1", "forward", ("target_topic",), ("READER_FIELD_MISSING_DEFAULT_VALUE",))
    ]
    assert str(problems[0]) == (
        "dlq: incompatible with v1: field 'target_topic' broke READER_FIELD_MISSING_DEFAULT_VALUE "
        "(target_topic); consumers still on v1 cannot read records written with the new schema"
    )


def test_removing_a_field_of_a_shared_type_fails_in_every_topic(tmp_path: Path) -> None:
    def remove(doc: dict[str, Any]) -> None:
        doc["fields"].remove(_field(doc, "event_id"))

    problems = check_history(_edited(tmp_path, "unit21_kafka_bridge.BridgeMetadata.avsc", remove), HISTORY)
    assert {p.subject for p in problems} == set(ALL_SUFFIXES)
    assert {p.fields for p in problems} == {("bridge.event_id",)}


def test_changing_a_type_fails_naming_the_field_in_both_directions(tmp_path: Path) -> None:
    def retype(doc: dict[str, Any]) -> None:
        _field(doc, "unit21_id")["type"] = ["null", "string"]

    problems = check_history(_edited(tmp_path, "alert.avsc", retype), HISTORY)
    assert [(p.direction, p.fields, p.rules) for p in problems] == [
        ("backward", ("unit21_id",), ("MISSING_UNION_BRANCH",)),
        ("forward", ("unit21_id",), ("MISSING_UNION_BRANCH",)),
    ]
    assert "field 'unit21_id' broke MISSING_UNION_BRANCH (reader union lacking writer type: LONG)" in str(
        problems[0]
    )


def test_a_type_change_inside_an_array_of_records_names_the_inner_field(tmp_path: Path) -> None:
    def retype(doc: dict[str, Any]) -> None:
        _field(doc, "entity_type")["type"] = ["null", "long"]

    problems = check_history(
        _edited(tmp_path, "unit21_kafka_bridge.EntityRef.avsc", retype), HISTORY, ["alert"]
    )
    assert {p.fields for p in problems} == {("entities[].entity_type",)}


def test_renaming_a_field_without_an_alias_fails_naming_both_names(tmp_path: Path) -> None:
    def rename(doc: dict[str, Any]) -> None:
        _field(doc, "target_topic")["name"] = "destination_topic"

    problems = check_history(_edited(tmp_path, "dlq.avsc", rename), HISTORY)
    assert [(p.direction, p.fields, p.rules) for p in problems] == [
        ("backward", ("destination_topic",), ("READER_FIELD_MISSING_DEFAULT_VALUE",)),
        ("forward", ("target_topic",), ("READER_FIELD_MISSING_DEFAULT_VALUE",)),
    ]


def test_an_alias_fixes_the_new_readers_but_old_readers_still_need_the_old_name(tmp_path: Path) -> None:
    """FULL compatibility: an alias lets new readers read old data, but consumers still on v1
    look the old name up in new data, so a required field can never be renamed."""

    def rename(doc: dict[str, Any]) -> None:
        field = _field(doc, "target_topic")
        field["name"], field["aliases"] = "destination_topic", ["target_topic"]

    problems = check_history(_edited(tmp_path, "dlq.avsc", rename), HISTORY)
    assert [(p.direction, p.fields) for p in problems] == [("forward", ("target_topic",))]
