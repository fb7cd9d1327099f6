"""The generated schema reference is committed, complete and current."""

from __future__ import annotations

import json

from bridge.codec import SingleObjectCodec
from bridge.messages import MessageBuilder
from bridge.payload import event_id
from bridge.schema_docs import HEADERS, render
from bridge.schemas import SchemaSet
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
