"""The one table of object types, topics, schemas and actions.

Everything that decides where a webhook goes reads from here: adding an object type is
one row plus one `.avsc` file.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.settings import topic_name


@dataclass(frozen=True, slots=True)
class Route:
    object_type: str  # the value in Kafka header `object_type` and in bridge.object_type
    topic_suffix: str  # topic is <prefix><suffix>; also the schema file name <suffix>.avsc
    id_fields: tuple[str, ...] = ("unit21_id",)  # fallback key: <object_type lower>:<first present>


ALERT = Route("ALERT", "alert")
CASE = Route("CASE", "case")
ENTITY = Route("ENTITY", "entity", ("unit21_id",))
RULE = Route("RULE", "rule")
EVENT = Route("EVENT", "event", ("unit21_id", "event_id"))
FILE_EXPORT = Route("FILE_EXPORT", "file_export", ())
UNRECOGNIZED = Route("UNKNOWN", "unrecognized")
DLQ_SUFFIX = "dlq"

# Routed by the payload's `object_type`.
BY_OBJECT_TYPE: dict[str, Route] = {r.object_type: r for r in (ALERT, CASE, ENTITY, RULE, EVENT)}

FILE_EXPORT_ACTION = "FILE_EXPORT_READY"
UNKNOWN_ACTION = "UNKNOWN"
# Verification webhooks carry the whole action type in `change` (FACTS.md §1).
VERIFICATION_PREFIX = "VERIFICATION_"

# The action types Unit21's catalogue names (FACTS.md §1), and the bare object types a body
# without `change` yields: the only values a metric label takes (anything else is `other`,
# since `change` is chosen by the sender and unbounded).
KNOWN_ACTIONS: frozenset[str] = frozenset(
    {
        *(f"ALERT_{c}" for c in ("CREATED", "REOPENED", "CLOSED", "ACTION_TRIGGERED")),
        "ALERT_COMPONENT_ACTION_TRIGGERED",
        "ALERT_GENERATION_LIMIT_HIT",
        *(f"CASE_{c}" for c in ("CREATED", "REOPENED", "CLOSED", "ACTION_TRIGGERED")),
        *(f"ENTITY_{c}" for c in ("ACTION_TRIGGERED", "FLAGGED")),
        *(f"RULE_{c}" for c in ("CREATED", "TRIGGERED", "ACTION_TRIGGERED")),
        "EVENT_ACTION_TRIGGERED",
        "VERIFICATION_WORKFLOW_EXECUTED",
        "VERIFICATION_ENTITY_INITIATED",
        "VERIFICATION_ENTITY_STEP_COMPLETED",
        FILE_EXPORT_ACTION,
        UNKNOWN_ACTION,
        *BY_OBJECT_TYPE,
    }
)

RECORD_SUFFIXES: tuple[str, ...] = (
    *(r.topic_suffix for r in BY_OBJECT_TYPE.values()),
    FILE_EXPORT.topic_suffix,
)
ALL_SUFFIXES: tuple[str, ...] = (*RECORD_SUFFIXES, UNRECOGNIZED.topic_suffix, DLQ_SUFFIX)


def all_topics(prefix: str) -> list[str]:
    """Every topic the bridge writes under `prefix`."""
    return [topic_name(prefix, suffix) for suffix in ALL_SUFFIXES]
