"""Unit21 JSON <-> Avro-ready records, driven by the `.avsc` files.

The schemas are the only description of the records: at start-up each one is compiled into
a tree of small converter functions, so validation, conversion and the inverse
(`reassemble`) can never drift from what the consumers decode with.

Conventions the schemas follow (checked when compiling):
- every Unit21 field is a union ``["null", T]`` with a default, since Unit21 omits and nulls fields;
- ``{"type": "long", "logicalType": "timestamp-millis"}`` holds Unit21's epoch *seconds* x 1000;
- ``{"type": "string", "unit21.format": "json"}`` holds a value of any shape as JSON text;
- each record ends with the bridge-owned ``extras`` (unknown fields -> JSON text) and ``absent``
  (fields that were missing, as opposed to null), which make the conversion lossless.

A non-null union value is written in fastavro's tuple notation, ``(branch name, value)``
("Using the tuple notation to specify which branch of a union to take", fastavro's docs; the
notation confluent-kafka's AvroSerializer points to as well): the branch is known when the
schema is compiled, so the encoder does not validate the value against each branch per record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.contract.conventions import JSON_FORMAT_PROPERTY
from bridge.contract.parsing import dumps, json_type, loads

BRIDGE_FIELD = "bridge"
EXTRAS_FIELD = "extras"
ABSENT_FIELD = "absent"
RESERVED = frozenset({BRIDGE_FIELD, EXTRAS_FIELD, ABSENT_FIELD})

LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
# Seconds that decode to a datetime in every consumer language (years 1..9999).
EPOCH_SECONDS_MIN, EPOCH_SECONDS_MAX = -62_135_596_800, 253_402_300_799
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)

Issues = list[tuple[str, str]]
Convert = Callable[[Any, str, Issues], Any]
Inverse = Callable[[Any], Any]


class SchemaConventionError(ValueError):
    """A schema file breaks the conventions above; raised at start-up, never per request."""


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    path: str
    reason: str


class NormalizationError(ValueError):
    def __init__(self, issues: list[ValidationIssue]) -> None:
        super().__init__("; ".join(f"{i.path or '<body>'}: {i.reason}" for i in issues))
        self.issues = issues


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _identity(value: Any) -> Any:
    return value


def _convert_long(value: Any, path: str, issues: Issues) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        if LONG_MIN <= value <= LONG_MAX:
            return value
        issues.append((path, f"integer {value} does not fit in a 64-bit long"))
        return None
    issues.append((path, f"expected an integer, got {json_type(value)}"))
    return None


def _convert_seconds(value: Any, path: str, issues: Issues) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        if EPOCH_SECONDS_MIN <= value <= EPOCH_SECONDS_MAX:
            return value * 1000
        issues.append((path, f"{value} is not an epoch time in seconds between years 1 and 9999"))
        return None
    issues.append((path, f"expected epoch seconds (integer), got {json_type(value)}"))
    return None


def _inverse_seconds(value: Any) -> Any:
    if isinstance(value, datetime):  # as fastavro decodes timestamp-millis
        return (value - _EPOCH) // _SECOND
    return value // 1000


def _convert_string(value: Any, path: str, issues: Issues) -> Any:
    if isinstance(value, str):
        return value
    issues.append((path, f"expected a string, got {json_type(value)}"))
    return None


def _convert_boolean(value: Any, path: str, issues: Issues) -> Any:
    if isinstance(value, bool):
        return value
    issues.append((path, f"expected a boolean, got {json_type(value)}"))
    return None


def _convert_json(value: Any, path: str, issues: Issues) -> Any:
    return dumps(value)


def _inverse_json(value: Any) -> Any:
    return loads(value)


class RecordNormalizer:
    """Converts one JSON object to one Avro record of a given schema, and back."""

    def __init__(self, name: str) -> None:
        self.name = name
        # (field name, union branch name for the tuple notation, convert, inverse)
        self.fields: list[tuple[str, str, Convert, Inverse]] = []
        self.field_names: frozenset[str] = frozenset()

    def convert(self, value: Any, path: str, issues: Issues) -> Any:
        if not isinstance(value, dict):
            issues.append((path, f"expected an object, got {json_type(value)}"))
            return None
        out: dict[str, Any] = {}
        absent: list[str] = []
        for name, branch, convert, _ in self.fields:
            if name in value:
                item = value[name]
                out[name] = None if item is None else (branch, convert(item, _child(path, name), issues))
            else:
                out[name] = None
                absent.append(name)
        names = self.field_names
        out[EXTRAS_FIELD] = {key: dumps(item) for key, item in value.items() if key not in names}
        out[ABSENT_FIELD] = absent
        return out

    def reassemble(self, record: dict[str, Any]) -> dict[str, Any]:
        absent = set(record.get(ABSENT_FIELD) or ())
        out: dict[str, Any] = {}
        for name, _, _, inverse in self.fields:
            if name in absent:
                continue
            value = record.get(name)
            out[name] = None if value is None else inverse(value)
        for key, text in (record.get(EXTRAS_FIELD) or {}).items():
            out[key] = loads(text)
        return out

    def normalize(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The record for a whole payload, without the `bridge` envelope; raises NormalizationError."""
        issues: Issues = []
        record = self.convert(doc, "", issues)
        if issues:
            raise NormalizationError([ValidationIssue(path, reason) for path, reason in issues])
        assert isinstance(record, dict)
        return record


def branch_name(schema: Any) -> str:
    """The name fastavro's tuple notation gives a union branch: a named type's full name, else
    its type ("long" for a timestamp-millis long, "array", "string")."""
    if isinstance(schema, str):
        return schema
    if schema["type"] in ("record", "enum", "fixed"):
        return str(schema["name"])
    return str(schema["type"])


class _Compiler:
    def __init__(self) -> None:
        self.named: dict[str, RecordNormalizer] = {}

    def record(self, schema: dict[str, Any], top_level: bool) -> RecordNormalizer:
        normalizer = RecordNormalizer(schema["name"])
        self.named[schema["name"]] = normalizer
        names = [f["name"] for f in schema["fields"]]
        if names[-2:] != [EXTRAS_FIELD, ABSENT_FIELD]:
            raise SchemaConventionError(f"{schema['name']}: must end with the fields 'extras' and 'absent'")
        if top_level and names[0] != BRIDGE_FIELD:
            raise SchemaConventionError(f"{schema['name']}: the first field must be 'bridge'")
        for field in schema["fields"]:
            if field["name"] in RESERVED:
                continue
            field_type = field["type"]
            if not (isinstance(field_type, list) and len(field_type) == 2 and field_type[0] == "null"):
                raise SchemaConventionError(
                    f"{schema['name']}.{field['name']}: Unit21 fields must be ['null', T] with default null"
                )
            convert, inverse = self.compile(field_type[1])
            normalizer.fields.append((field["name"], branch_name(field_type[1]), convert, inverse))
        normalizer.field_names = frozenset(name for name, _, _, _ in normalizer.fields)
        return normalizer

    def compile(self, schema: Any) -> tuple[Convert, Inverse]:
        if isinstance(schema, str):
            if schema in self.named:
                named = self.named[schema]
                return named.convert, named.reassemble
            primitive = {"long": _convert_long, "string": _convert_string, "boolean": _convert_boolean}
            if schema in primitive:
                return primitive[schema], _identity
            raise SchemaConventionError(f"type {schema!r} is not supported for Unit21 fields")
        if isinstance(schema, dict):
            kind = schema["type"]
            logical = schema.get("logicalType")
            if kind == "long" and logical == "timestamp-millis":
                return _convert_seconds, _inverse_seconds
            if kind == "string" and schema.get(JSON_FORMAT_PROPERTY) == "json":
                return _convert_json, _inverse_json
            if logical == "json":  # the old marker: a plain string now, so JSON values would be refused
                raise SchemaConventionError(
                    f'"logicalType": "json" is gone: use "{JSON_FORMAT_PROPERTY}": "json"'
                )
            if kind == "record":
                normalizer = self.record(schema, top_level=False)
                return normalizer.convert, normalizer.reassemble
            if kind == "array":
                return self._array(schema["items"])
            return self.compile(kind)
        raise SchemaConventionError(f"unsupported schema node {schema!r}")

    def _array(self, items: Any) -> tuple[Convert, Inverse]:
        convert_item, inverse_item = self.compile(items)

        def convert(value: Any, path: str, issues: Issues) -> Any:
            if not isinstance(value, list):
                issues.append((path, f"expected an array, got {json_type(value)}"))
                return None
            out = []
            for index, item in enumerate(value):
                if item is None:
                    issues.append((f"{path}[{index}]", "null is not allowed inside this array"))
                    continue
                out.append(convert_item(item, f"{path}[{index}]", issues))
            return out

        def inverse(value: Any) -> Any:
            return [inverse_item(item) for item in value]

        return convert, inverse


def compile_normalizer(parsed_schema: dict[str, Any]) -> RecordNormalizer:
    """Compile a top-level topic schema (fastavro-parsed) into its normalizer."""
    return _Compiler().record(parsed_schema, top_level=True)
