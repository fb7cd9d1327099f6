"""docs/configuration.md, generated from `Settings` (the one place each setting is declared).

`make config-docs` writes it; tests/unit/test_config_docs.py fails when the committed file is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from bridge.settings import DEFAULT_SPOOL_DIR, KAFKA_ENV_PREFIX, PROTECTED_KAFKA_PROPERTIES, Settings

INTRO = """\
# Configuration

<!-- Generated from bridge/settings.py by `make config-docs`; edit the Field descriptions there. -->

Every setting is an environment variable, read once at start-up into one typed object
(`bridge.settings.Settings`, which reads only the mapping it is given). The Helm chart sets the
same variables from its values ([chart README](../helm/unit21-kafka-bridge/README.md)).

| Variable | Default | Meaning |
|---|---|---|
"""

KAFKA_PASSTHROUGH = f"""\
| `{KAFKA_ENV_PREFIX}<PROPERTY>` | — | Any librdkafka property: `KAFKA_SECURITY_PROTOCOL=SASL_SSL` sets \
`security.protocol`; likewise `KAFKA_SASL_MECHANISM`, `KAFKA_SASL_USERNAME`, `KAFKA_SASL_PASSWORD`, \
`KAFKA_SSL_CA_LOCATION`, `KAFKA_LINGER_MS`, `KAFKA_COMPRESSION_TYPE`, … (name lower-cased, `_` → `.`). \
An unknown property stops `serve` with a message naming it. These carry the delivery guarantee and \
cannot be overridden: {", ".join(f"`{name}`" for name in sorted(PROTECTED_KAFKA_PROPERTIES))}. |
"""

PRODUCER = """
Producer settings the bridge chooses: `enable.idempotence=true`, `acks=all` (set
`min.insync.replicas=2` on the topics for it to mean something), `message.timeout.ms` = the
delivery timeout, `partitioner=murmur2_random` (the Java client's partitioner: the same key lands
on the same partition as from any other producer), `linger.ms=5`, `compression.type=lz4`, a local
queue bounded at 100 000 messages / 256 MiB.
"""


def variable(field: FieldInfo) -> str | None:
    alias = field.validation_alias
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return None


def shown_default(field: FieldInfo) -> str:
    value = field.default
    if value is PydanticUndefined or value is None or value in ("", ()):
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path):
        value = DEFAULT_SPOOL_DIR  # the only Path setting; tests/conftest.py moves its default per test
    return f"`{value}`"


def render() -> str:
    rows = []
    for field in Settings.model_fields.values():
        name = variable(field)
        if name is None:
            continue  # kafka_properties: the KAFKA_* pass-through row below
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{name}` | {shown_default(field)} | {meaning} |\n")
    return INTRO + "".join(rows) + KAFKA_PASSTHROUGH + PRODUCER


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
