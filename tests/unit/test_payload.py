from __future__ import annotations

import json

import pytest

from bridge.contract import routes
from bridge.contract.parsing import PayloadError, classify, dumps, event_id, loads, parse, record_key
from tests.support import EXAMPLES


@pytest.mark.parametrize(
    ("doc", "route", "action"),
    [
        ({"object_type": "ALERT", "change": "CREATED"}, routes.ALERT, "ALERT_CREATED"),
        ({"object_type": "ALERT", "change": "REOPENED"}, routes.ALERT, "ALERT_REOPENED"),
        ({"object_type": "ALERT", "change": "ACTION_TRIGGERED"}, routes.ALERT, "ALERT_ACTION_TRIGGERED"),
        ({"object_type": "CASE", "change": "CLOSED"}, routes.CASE, "CASE_CLOSED"),
        ({"object_type": "ENTITY", "change": "FLAGGED"}, routes.ENTITY, "ENTITY_FLAGGED"),
        (
            {"object_type": "ENTITY", "change": "VERIFICATION_WORKFLOW_EXECUTED"},
            routes.ENTITY,
            "VERIFICATION_WORKFLOW_EXECUTED",
        ),
        (
            {"object_type": "ENTITY", "change": "VERIFICATION_ENTITY_STEP_COMPLETED"},
            routes.ENTITY,
            "VERIFICATION_ENTITY_STEP_COMPLETED",
        ),
        ({"object_type": "RULE", "change": "TRIGGERED"}, routes.RULE, "RULE_TRIGGERED"),
        ({"object_type": "EVENT", "change": "ACTION_TRIGGERED"}, routes.EVENT, "EVENT_ACTION_TRIGGERED"),
        ({"exports": []}, routes.FILE_EXPORT, "FILE_EXPORT_READY"),
        ({"object_type": "ALERT"}, routes.ALERT, "ALERT"),
        (
            {"object_type": "WIDGET", "change": "GENERATION_LIMIT_HIT"},
            routes.UNRECOGNIZED,
            "WIDGET_GENERATION_LIMIT_HIT",
        ),
        ({"object_type": "WIDGET"}, routes.UNRECOGNIZED, "WIDGET"),
        ({"hello": "world"}, routes.UNRECOGNIZED, "UNKNOWN"),
    ],
)
def test_classify(doc: dict[str, object], route: routes.Route, action: str) -> None:
    classified = classify(doc)
    assert classified.route is route
    assert classified.action == action
    assert classified.valid_object_type


def test_non_string_object_type_is_flagged_invalid() -> None:
    assert not classify({"object_type": 7}).valid_object_type


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("alert_created.json", b"u-65b0bfa0-fe19-4e91-9225-c8174c7cc6d8"),
        ("case_created.json", b"case:11532914"),  # its only entity has entity_id ""
        ("rule_created.json", b"rule:11533652"),
        ("rule_triggered.json", b"u-7"),
        ("verification_workflow_executed.json", b"external_id"),
        ("file_export_ready.json", b"file_export:31387"),
        ("event_action_triggered.json", b"event:t-a57137d8-7387-4517-8f11-d2a7aa842180"),
    ],
)
def test_keys_follow_the_entity(name: str, key: bytes) -> None:
    body = (EXAMPLES / name).read_bytes()
    doc = parse(body)
    assert record_key(doc, classify(doc), event_id(body)) == key


def test_key_falls_back_to_the_webhook_id() -> None:
    doc = {"object_type": "RULE"}
    assert record_key(doc, classify(doc), "abc") == b"rule:abc"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, got array"),
        (b'"text"', "must be a JSON object, got string"),
        (b"", "not valid JSON"),
        (b'{"a": "\xff"}', "not valid"),
        (b'{"a": NaN}', "not valid JSON"),
        (b'{"a": 12345678901234567890123, "b": NaN}', "not valid JSON"),
        (b"[" * 5000 + b"]" * 5000, "deeper than 128 levels"),
    ],
)
def test_parse_rejects_with_a_reason(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse(body)


def test_integers_wider_than_64_bits_survive_exactly() -> None:
    big = 2**70 + 1
    doc = parse(b'{"custom_data": {"n": %d}, "m": -%d}' % (big, big))
    assert doc["custom_data"]["n"] == big
    assert doc["m"] == -big
    assert loads(dumps(doc)) == doc


def test_event_id_is_stable_for_the_same_body_only() -> None:
    body = json.dumps({"object_type": "ALERT"}).encode()
    assert event_id(body) == event_id(bytes(body))
    assert event_id(body) != event_id(body + b" ")
    assert len(event_id(body)) == 32
