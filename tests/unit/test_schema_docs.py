"""The generated schema reference is committed, complete and current."""

from __future__ import annotations

import json
import re

import pytest

from bridge.contract import routes
from bridge.contract import schema_reference as schema_docs
from bridge.contract.codec import SingleObjectCodec
from bridge.contract.parsing import classify, event_id, record_key
from bridge.contract.records import MessageBuilder
from bridge.contract.schema_reference import HEADERS, render
from bridge.contract.schemas import SchemaSet
from tests.support import EXAMPLES, REPO


def test_schemas_readme_is_up_to_date() -> None:
    committed = (REPO / "schemas" / "README.md").read_text("utf-8")
    assert committed == render(SchemaSet.load(REPO / "schemas")), (
        "schemas/README.md is stale: run `make schemas`"
    )


def test_reference_documents_every_field_of_every_record() -> None:
    schemas = SchemaSet.load(REPO / "schemas")
    text = render(schemas)

    def walk(node: object) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if node.get("type") == "record":
                for field in node["fields"]:
                    assert f"| `{field['name']}` |" in text, field["name"]
                    assert field.get("doc"), f"{node['name']}.{field['name']} has no doc"
                    walk(field["type"])
            for key in ("items", "values"):
                walk(node.get(key))

    for schema in schemas.by_suffix.values():
        assert f"`{schema.fingerprint_hex}`" in text
        walk(schema.parsed)


def test_documented_headers_are_the_headers_the_bridge_writes() -> None:
    schemas = SchemaSet.load(REPO / "schemas")
    builder = MessageBuilder(schemas, SingleObjectCodec(schemas), "unit21.")
    body = (EXAMPLES / "alert_created.json").read_bytes()
    message = builder.build(
        body, json.loads(body), event_id=event_id(body), received_at_ms=0, signature_timestamp=None
    )
    assert [name for name, _ in message.headers] == [name for name, _ in HEADERS]


@pytest.mark.parametrize("suffix", [s for s in routes.ALL_SUFFIXES if s != routes.DLQ_SUFFIX])
def test_the_key_rule_in_words_is_the_rule_record_key_applies(suffix: str) -> None:
    """schemas/README.md states each topic's key rule in prose; every id it names, in the order it
    names them, must be what record_key() picks, and the entity ids must come first."""
    rule = schema_docs.key_rule(suffix)
    # `alert:<unit21_id>`, `file_export:<exports[0].id>`, `<object_type lower case>:<unit21_id>`
    ids = [
        ("widget" if prefix.startswith("<") else prefix, name)
        for prefix, name in re.findall(r"`(<object_type lower case>|\w+):<([\w.\[\]0-9]+)>`", rule)
    ]
    assert ids, rule
    object_type = (
        "WIDGET"
        if suffix == routes.UNRECOGNIZED.topic_suffix
        else next(r.object_type for r in routes.BY_OBJECT_TYPE.values() if r.topic_suffix == suffix)
        if suffix != routes.FILE_EXPORT.topic_suffix
        else None
    )

    def key(doc: dict[str, object]) -> str:
        if object_type is not None:
            doc = {"object_type": object_type, **doc}
        return record_key(doc, classify(doc), "EVENTID").decode()

    full: dict[str, object] = {}
    for n, (_, name) in enumerate(ids):
        if name == "exports[0].id":
            full["exports"] = [{"id": 900 + n}]
        else:
            full[name] = f"v{n}"
    # The named ids in their stated order: with all present the first wins; drop it, the next.
    for n, (prefix, name) in enumerate(ids):
        value = 900 + n if name == "exports[0].id" else f"v{n}"
        assert key(full) == f"{prefix}:{value}", (rule, full)
        full.pop("exports" if name == "exports[0].id" else name)
    if "entity_id" in rule:
        assert key({"entity_id": "E", "entities": [{"entity_id": "X"}]}) == "E"
        assert key({"entities": [{"entity_id": "X"}], "flagged_entities": [{"entity_id": "F"}]}) == "X"
        assert key({"flagged_entities": [{"entity_id": "F"}], "unit21_id": 1}) == "F"
    assert "<bridge.event_id>" in rule and key({}).endswith(":EVENTID")
