"""`unit21-bridge schemas ...`: list, export, register, check, docs."""

from __future__ import annotations

import io
import json
from pathlib import Path

from confluent_kafka.schema_registry import Schema
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from bridge.cli.main import main
from bridge.cli.schemas import check_schemas, register_schemas
from bridge.contract.compatibility import parse
from bridge.contract.registry import new_registry_client
from bridge.contract.schemas import SchemaSet
from bridge.settings import Settings
from tests.support import REPO

SCHEMAS = SchemaSet.load(REPO / "schemas")


def test_list_shows_topic_subject_record_and_fingerprint(capsys: object) -> None:
    assert main(["schemas", "list", "--topic-prefix", "prod."]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "prod.alert  " in out
    assert "prod.alert-value" in out
    assert f"unit21_kafka_bridge.Alert         {SCHEMAS['alert'].fingerprint_hex}" in out


def test_export_writes_self_contained_schemas_with_the_same_fingerprints(tmp_path: Path) -> None:
    assert main(["schemas", "export", str(tmp_path / "bundle")]) == 0
    files = sorted((tmp_path / "bundle").glob("*.avsc"))
    assert [f.stem for f in files] == sorted(SCHEMAS.by_suffix)
    for path in files:
        text = path.read_text("utf-8")
        # No named type left to resolve from another file: both parsers take it on its own.
        parsed = parse_schema(json.loads(text), named_schemas={})
        parse(text)  # Apache Avro's parser
        canonical = to_parsing_canonical_form(parsed)
        assert fingerprint(canonical, "CRC-64-AVRO") == SCHEMAS[path.stem].fingerprint_hex
        assert "doc" in json.loads(text)


def _settings() -> Settings:
    return Settings.from_env({}, schema_registry_url="mock://cli-tests")


def test_register_is_idempotent_and_reports_ids() -> None:
    settings, client = _settings(), new_registry_client(_settings())
    first, second = io.StringIO(), io.StringIO()
    assert register_schemas(settings, SCHEMAS, client, first, io.StringIO()) == 0
    assert register_schemas(settings, SCHEMAS, client, second, io.StringIO()) == 0
    assert first.getvalue() == second.getvalue()
    assert "unit21.alert-value\tid=" in first.getvalue() and "version=1" in first.getvalue()
    assert all(client.get_versions(f"unit21.{s}-value") == [1] for s in SCHEMAS.by_suffix)


def test_check_against_registry_names_the_broken_field_of_a_registered_version() -> None:
    settings, client = _settings(), new_registry_client(_settings())
    register_schemas(settings, SCHEMAS, client, io.StringIO(), io.StringIO())
    out = io.StringIO()
    assert check_schemas(settings, SCHEMAS, client, out) == 0
    assert "unit21.alert-value: 1 versions checked, 0 incompatibilities" in out.getvalue()

    # Someone registered a version where unit21_id was a string: the current schema cannot follow it.
    old = json.loads((REPO / "schemas" / "history" / "alert" / "v1.avsc").read_text("utf-8"))
    next(f for f in old["fields"] if f["name"] == "unit21_id")["type"] = ["null", "string"]
    client.register_schema("unit21.alert-value", Schema(json.dumps(old), "AVRO"))
    out = io.StringIO()
    assert check_schemas(settings, SCHEMAS, client, out) == 1
    assert (
        "INCOMPATIBLE unit21.alert-value: incompatible with registry version 2: field 'unit21_id' broke "
        "MISSING_UNION_BRANCH" in out.getvalue()
    )


def test_check_without_registry_is_the_history_gate(capsys: object) -> None:
    assert main(["schemas", "check"]) == 0
    assert "history: 8 topics checked, 0 incompatibilities" in capsys.readouterr().out  # type: ignore[attr-defined]


def test_docs_check_detects_a_stale_reference(tmp_path: Path) -> None:
    target = tmp_path / "README.md"
    assert main(["schemas", "docs", "--output", str(target), "--check"]) == 1
    assert main(["schemas", "docs", "--output", str(target)]) == 0
    assert main(["schemas", "docs", "--output", str(target), "--check"]) == 0
