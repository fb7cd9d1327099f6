"""Load the `.avsc` files once at start-up: parsed schema, canonical form and fingerprint per topic.

The bridge loads `schemas/<suffix>.avsc`, the self-contained files it ships and consumers open
(installed wheels carry them as `bridge/_schemas`). They are generated from the sources in
`schemas/src/`, where each shared named type is written once (`unit21-bridge schemas build`);
a test fails when a generated file is stale.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from bridge.contract.routes import ALL_SUFFIXES
from bridge.errors import BridgeError

SOURCE_DIR_NAME = "src"


class SchemaLoadError(BridgeError, RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class TopicSchema:
    suffix: str  # topic suffix, also the file stem
    full_name: str  # e.g. unit21_kafka_bridge.Alert
    parsed: Any  # fastavro's parsed schema: pass it to the writer, never re-parse per record
    canonical: str  # Avro Parsing Canonical Form
    fingerprint: bytes  # CRC-64-AVRO of the canonical form, 8 bytes as the single-object header carries them
    path: Path

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()


def default_schema_dir() -> Path:
    packaged = Path(__file__).resolve().parents[1] / "_schemas"
    if packaged.is_dir():
        return packaged
    source_tree = Path(__file__).resolve().parents[2] / "schemas"
    if source_tree.is_dir():
        return source_tree
    raise SchemaLoadError(f"no schemas found in {packaged} or {source_tree}; the installation is incomplete")


def source_dir(schema_dir: Path | None = None) -> Path:
    """Where the hand-written sources of the topic files live: `schemas/src/`."""
    return (schema_dir or default_schema_dir()) / SOURCE_DIR_NAME


def load_topic_schema(path: Path, suffix: str) -> TopicSchema:
    try:
        # Parsed alone, with no named types from other files: what the bridge writes with is exactly
        # what a consumer's Avro library gets from this one file. The write hint marks the schema as
        # parsed, so fastavro's writer never re-parses it per record.
        parsed = parse_schema(json.loads(path.read_text("utf-8")), named_schemas={})
    except Exception as exc:  # fastavro raises several types; the message names the file either way
        raise SchemaLoadError(f"cannot load {path}: {exc}") from exc
    canonical = to_parsing_canonical_form(parsed)
    return TopicSchema(
        suffix=suffix,
        full_name=str(parsed["name"]) if isinstance(parsed, dict) else suffix,
        parsed=parsed,
        canonical=canonical,
        fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
        path=path,
    )


@dataclass(frozen=True, slots=True)
class SchemaSet:
    by_suffix: dict[str, TopicSchema]
    by_fingerprint: dict[bytes, TopicSchema]

    @classmethod
    def load(cls, directory: Path | None = None) -> SchemaSet:
        directory = directory or default_schema_dir()
        by_suffix: dict[str, TopicSchema] = {}
        for suffix in ALL_SUFFIXES:
            path = directory / f"{suffix}.avsc"
            if not path.is_file():
                raise SchemaLoadError(f"missing schema file {path} for topic suffix {suffix!r}")
            by_suffix[suffix] = load_topic_schema(path, suffix)
        return cls(by_suffix, {s.fingerprint: s for s in by_suffix.values()})

    def __getitem__(self, suffix: str) -> TopicSchema:
        return self.by_suffix[suffix]
