"""schemas/<topic>.avsc, the file a consumer opens, stands alone and is generated from schemas/src/.

Java's and Node's parsers get the same files in tests/integration/test_other_language_consumers.py.
"""

from __future__ import annotations

import io
import json
import shutil
import warnings
from pathlib import Path

import avro.schema
import pytest
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from bridge.cli.main import main
from bridge.cli.schemas import build_schemas
from bridge.contract.compatibility import released_versions
from bridge.contract.conventions import expanded_json, generated_topic_files, nonstandard_logical_types
from bridge.contract.normalize import SchemaConventionError, compile_normalizer
from bridge.contract.routes import ALL_SUFFIXES
from bridge.contract.schemas import SchemaLoadError, SchemaSet
from tests.support import REPO

SCHEMAS = REPO / "schemas"
SOURCES = SCHEMAS / "src"


def test_topic_files_are_up_to_date_with_their_sources() -> None:
    generated = generated_topic_files(SOURCES)
    assert sorted(generated) == sorted(f"{s}.avsc" for s in ALL_SUFFIXES)
    stale = [name for name, text in generated.items() if (SCHEMAS / name).read_text("utf-8") != text]
    assert stale == [], f"generated from schemas/src/ but stale: {stale}; run `make schemas`"


def test_build_check_fails_on_a_stale_file_and_build_fixes_it(tmp_path: Path) -> None:
    shutil.copytree(SOURCES, tmp_path / "src")
    (tmp_path / "alert.avsc").write_text("{}", "utf-8")
    out = io.StringIO()
    assert build_schemas(tmp_path / "src", tmp_path, True, out) == 1
    assert f"{tmp_path / 'alert.avsc'} is out of date" in out.getvalue()
    assert main(["schemas", "build", "--output", str(tmp_path)]) == 0
    assert main(["schemas", "build", "--output", str(tmp_path), "--check"]) == 0
    assert (tmp_path / "alert.avsc").read_text("utf-8") == (SCHEMAS / "alert.avsc").read_text("utf-8")


@pytest.mark.parametrize("suffix", ALL_SUFFIXES)
def test_apache_avro_parses_each_topic_file_alone_without_a_warning(suffix: str) -> None:
    text = (SCHEMAS / f"{suffix}.avsc").read_text("utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # IgnoredLogicalType for an unknown logical type is an error here
        parsed = avro.schema.parse(text)
    assert parsed.fullname == json.loads(text)["name"]
    parse_schema(json.loads(text), named_schemas={})  # fastavro, with no other file to resolve names from


@pytest.mark.parametrize("suffix", ALL_SUFFIXES)
def test_what_the_bridge_registers_and_exports_has_only_spec_logical_types(suffix: str) -> None:
    schema = SchemaSet.load(SCHEMAS)[suffix]
    text = expanded_json(schema)
    assert nonstandard_logical_types(json.loads(text)) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        avro.schema.parse(text)


def test_json_text_fields_carry_the_format_property() -> None:
    text = (SCHEMAS / "alert.avsc").read_text("utf-8")
    custom_data = next(f for f in json.loads(text)["fields"] if f["name"] == "custom_data")
    assert custom_data["type"] == ["null", {"type": "string", "unit21.format": "json"}]
    assert "JSON" in custom_data["doc"]


@pytest.mark.parametrize("suffix", ALL_SUFFIXES)
def test_fingerprints_equal_the_latest_released_version(suffix: str) -> None:
    """The marker change (and the move to generated files) left every canonical form as released.
    A real schema change fails here until its file is released as history/<topic>/v<N+1>.avsc."""
    number, path = released_versions(SCHEMAS / "history", suffix)[-1]
    released = parse_schema(json.loads(path.read_text("utf-8")), named_schemas={}, _write_hint=False)
    expected = fingerprint(to_parsing_canonical_form(released), "CRC-64-AVRO")
    assert SchemaSet.load(SCHEMAS)[suffix].fingerprint_hex == expected, (
        f"{suffix}: fingerprint differs from v{number}: release it as history/{suffix}/v{number + 1}.avsc"
    )


def test_the_bridge_refuses_a_topic_file_that_is_not_self_contained(tmp_path: Path) -> None:
    """The bridge loads what it ships: a topic file naming a type defined in another file fails at
    start-up, even when that file lies beside it."""
    for name in [*(f"{s}.avsc" for s in ALL_SUFFIXES), "unit21_kafka_bridge.BridgeMetadata.avsc"]:
        source = SCHEMAS / name if (SCHEMAS / name).is_file() else SOURCES / name
        shutil.copy(source, tmp_path / name)
    shutil.copy(SOURCES / "dlq.avsc", tmp_path / "dlq.avsc")  # the source names BridgeMetadata
    with pytest.raises(SchemaLoadError, match=r"dlq\.avsc.*BridgeMetadata"):
        SchemaSet.load(tmp_path)


def test_the_old_json_logical_type_is_refused_when_compiling() -> None:
    parsed = json.loads((SCHEMAS / "alert.avsc").read_text("utf-8"))
    custom_data = next(f for f in parsed["fields"] if f["name"] == "custom_data")
    custom_data["type"][1] = {"type": "string", "logicalType": "json"}
    with pytest.raises(SchemaConventionError, match=r"unit21\.format"):
        compile_normalizer(parse_schema(parsed, named_schemas={}))


def test_a_source_with_a_nonstandard_logical_type_does_not_build(tmp_path: Path) -> None:
    shutil.copytree(SOURCES, tmp_path / "src")
    path = tmp_path / "src" / "case.avsc"
    path.write_text(path.read_text("utf-8").replace('"unit21.format": "json"', '"logicalType": "json"'))
    with pytest.raises(ValueError, match=r"case\.avsc: logical types outside the Avro specification"):
        generated_topic_files(tmp_path / "src")
