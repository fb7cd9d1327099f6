"""The compatibility gate: every schema must stay FULL_TRANSITIVE compatible with every released version.

FULL_TRANSITIVE means, for each released version: a consumer on the new schema reads records
written with the old one (backward) and a consumer still on the old schema reads records
written with the new one (forward). The rules are Apache Avro's schema resolution as
implemented by the `avro` package's ReaderWriterCompatibilityChecker; this module only
runs it in both directions and turns its locations into field paths.

Released versions live in `schemas/history/<suffix>/v<N>.avsc` (self-contained schemas).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import avro.errors
import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from bridge.contract.conventions import expanded_json
from bridge.contract.schemas import SchemaSet, default_schema_dir

Direction = Literal["backward", "forward"]

DIRECTION_MEANING: dict[Direction, str] = {
    "backward": "consumers on the new schema cannot read records written with {old}",
    "forward": "consumers still on {old} cannot read records written with the new schema",
}
_VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")


@dataclass(frozen=True, slots=True)
class Incompatibility:
    subject: str  # topic suffix or registry subject
    old: str  # e.g. "v1" or "registry version 3"
    direction: Direction
    fields: tuple[str, ...]  # dotted paths in the reader's schema, e.g. bridge.event_id
    rules: tuple[str, ...]  # Avro's incompatibility types, e.g. READER_FIELD_MISSING_DEFAULT_VALUE
    details: tuple[str, ...]  # the checker's messages

    def __str__(self) -> str:
        fields = ", ".join(f"'{f}'" for f in self.fields)
        noun = "field" if len(self.fields) == 1 else "fields"
        why = DIRECTION_MEANING[self.direction].format(old=self.old)
        return (
            f"{self.subject}: incompatible with {self.old}: {noun} {fields} broke "
            f"{' + '.join(self.rules)} ({'; '.join(self.details)}); {why}"
        )


def _checker() -> ReaderWriterCompatibilityChecker:
    # A fresh checker per question: it memoizes results by schema pair.
    return ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]


def parse(text: str) -> avro.schema.Schema:
    with warnings.catch_warnings():
        # Released v1 files (and registry versions registered from them) still carry the old
        # `"logicalType": "json"` on strings; it was never in the canonical form, so readers see string.
        warnings.simplefilter("ignore", avro.errors.IgnoredLogicalType)
        return avro.schema.parse(text)


def _walk(schema: avro.schema.Schema, location: str) -> tuple[list[str], Any]:
    """Follow a checker location ('/fields/0/type/fields/3') through a schema: (field names, node)."""
    node: Any = schema
    names: list[str] = []
    tokens = [t for t in location.split("/") if t]
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "fields" and i + 1 < len(tokens):
            node = node.fields[int(tokens[i + 1])]
            names.append(node.name)
            i += 2
            continue
        if token == "type":
            node = node.type
        elif token in ("items", "values"):
            names.append("[]" if token == "items" else "{}")
            node = getattr(node, token)
        elif token.isdigit() and isinstance(node, avro.schema.UnionSchema):
            node = node.schemas[int(token)]
        i += 1
    return names, node


def _follow(schema: Any, names: list[str]) -> Any:
    """The writer's node for the reader's field path (by name, through nullable unions)."""
    node = schema
    for name in names:
        if isinstance(node, avro.schema.UnionSchema):
            node = next((b for b in node.schemas if b.type in ("record", "array", "map")), None)
        if node is None:
            return None
        if name in ("[]", "{}"):
            node = node.items if name == "[]" and node.type == "array" else getattr(node, "values", None)
        elif node.type == "record" and name in node.fields_dict:
            node = node.fields_dict[name].type
        else:
            return None
    return node


def _join(names: list[str]) -> str:
    return ".".join(names).replace(".[]", "[]").replace(".{}", "{}")


def _branch_pairs(reader: Any, writer: Any) -> list[tuple[Any, Any]]:
    """Reader/writer union branches of the same kind (and name): where a nested change hides."""
    readers = reader.schemas if isinstance(reader, avro.schema.UnionSchema) else [reader]
    writers = writer.schemas if isinstance(writer, avro.schema.UnionSchema) else [writer]
    return [
        (r, w)
        for w in writers
        for r in readers
        if r.type == w.type and getattr(r, "fullname", None) == getattr(w, "fullname", None)
    ]


Located = tuple[str, tuple[str, ...], tuple[str, ...]]  # field path, rules, messages


def _locate(reader: Any, writer: Any, names: list[str]) -> list[Located]:
    """Run the checker on (reader, writer) and name the fields it blames.

    The checker stops at a union ('reader union lacking writer type: ARRAY') or loses the
    location inside one; every field of ours is a nullable union, so we re-run the same
    checker on the matching branches until it names the innermost field."""
    result = _checker().get_compatibility(reader, writer)
    if result.compatibility is not SchemaCompatibilityType.incompatible:
        return []
    rules = tuple(sorted({kind.name.upper() for kind in result.incompatibilities}))
    messages = tuple(sorted(result.messages))
    found: list[Located] = []
    for location in sorted((result.locations - {"/"}) or {"/"}):
        # A trailing union index names the writer's branch that no reader branch accepts.
        sub_names, node = _walk(reader, re.sub(r"(/(?:type|items|values))(/\d+)+$", r"\1", location))
        if isinstance(node, avro.schema.Field):
            node = node.type
        deeper: list[Located] = []
        if isinstance(node, avro.schema.UnionSchema) or location == "/":
            deeper = _descend(node, _follow(writer, sub_names), [*names, *sub_names])
        found += deeper or [(_join([*names, *sub_names]), rules, messages)]
    return found


def _descend(reader: Any, writer: Any, names: list[str]) -> list[Located]:
    if writer is None:
        return []
    if isinstance(reader, avro.schema.UnionSchema) or isinstance(writer, avro.schema.UnionSchema):
        return [item for r, w in _branch_pairs(reader, writer) for item in _locate(r, w, names)]
    if reader.type == writer.type == "array":
        return _locate(reader.items, writer.items, [*names, "[]"])
    if reader.type == writer.type == "map":
        return _locate(reader.values, writer.values, [*names, "{}"])
    if reader.type == writer.type == "record":
        found: list[Located] = []
        for field in reader.fields:
            if field.name in writer.fields_dict:
                found += _locate(field.type, writer.fields_dict[field.name].type, [*names, field.name])
        return found
    return []


def check_pair(new: str, old: str, *, subject: str, old_label: str) -> list[Incompatibility]:
    """Both directions of Avro schema resolution between the new schema and one released one."""
    new_schema, old_schema = parse(new), parse(old)
    problems: list[Incompatibility] = []
    pairs: tuple[tuple[Direction, avro.schema.Schema, avro.schema.Schema], ...] = (
        ("backward", new_schema, old_schema),
        ("forward", old_schema, new_schema),
    )
    for direction, reader, writer in pairs:
        result = _checker().get_compatibility(reader, writer)
        if result.compatibility is SchemaCompatibilityType.compatible:
            continue
        located = _locate(reader, writer, [])
        problems.append(
            Incompatibility(
                subject=subject,
                old=old_label,
                direction=direction,
                fields=tuple(sorted({path or "(the record itself)" for path, _, _ in located})),
                rules=tuple(sorted({rule for _, rules, _ in located for rule in rules})),
                details=tuple(sorted({m for _, _, msgs in located for m in msgs})),
            )
        )
    return problems


def default_history_dir() -> Path:
    return default_schema_dir() / "history"


def released_versions(history_dir: Path, suffix: str) -> list[tuple[int, Path]]:
    folder = history_dir / suffix
    found = []
    for path in folder.glob("v*.avsc") if folder.is_dir() else ():
        match = _VERSION_FILE.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def check_history(
    schemas: SchemaSet, history_dir: Path | None = None, suffixes: Iterable[str] | None = None
) -> list[Incompatibility]:
    """The current schemas against every released version; a topic with no history is an error too."""
    history_dir = history_dir or default_history_dir()
    problems: list[Incompatibility] = []
    for suffix in suffixes or schemas.by_suffix:
        versions = released_versions(history_dir, suffix)
        if not versions:
            problems.append(
                Incompatibility(
                    suffix, "history", "backward", (), ("NO_RELEASED_VERSION",), (str(history_dir),)
                )
            )
            continue
        current = expanded_json(schemas[suffix])
        for number, path in versions:
            problems += check_pair(current, path.read_text("utf-8"), subject=suffix, old_label=f"v{number}")
    return problems
