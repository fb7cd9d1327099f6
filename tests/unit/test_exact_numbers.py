"""Numbers survive body -> Avro record -> rebuilt body as the same decimals (issue 13, item 1)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bridge.contract.codec import SingleObjectCodec
from bridge.contract.parsing import dumps, event_id, parse
from bridge.contract.records import MessageBuilder, OutgoingMessage
from bridge.contract.schemas import SchemaSet
from tests.exact_json import canonical, decimal_key, expected, number_texts, reference_loads, tagged

SCHEMAS = SchemaSet.load()
CODEC = SingleObjectCodec(SCHEMAS)
BUILDER = MessageBuilder(SCHEMAS, CODEC, "unit21.")

# (JSON text, its tagged value as tests.exact_json writes it) for any JSON value.
Piece = tuple[str, Any]


def _padded(piece: Piece, space: str) -> Piece:
    return f"{space}{piece[0]}{space}", piece[1]


def _array(items: list[Piece]) -> Piece:
    return "[" + ",".join(text for text, _ in items) + "]", ["array", [value for _, value in items]]


def _object(members: dict[str, Piece]) -> Piece:
    text = ",".join(f"{json.dumps(key)}:{piece[0]}" for key, piece in members.items())
    return "{" + text + "}", ["object", {key: piece[1] for key, piece in members.items()}]


numbers = st.builds(
    _padded, number_texts.map(lambda text: (text, expected(text))), st.sampled_from(["", " "])
)
leaves = (
    numbers
    | st.booleans().map(lambda b: (json.dumps(b), ["boolean", b]))
    | st.just(("null", ["null"]))
    | st.text(max_size=6).map(lambda s: (json.dumps(s), ["string", s]))
)
values: st.SearchStrategy[Piece] = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4).map(_array)
        | st.dictionaries(st.text(max_size=5), children, max_size=4).map(_object)
    ),
    max_leaves=12,
)
unknown_keys = st.text(min_size=1, max_size=6).map(lambda s: "x_" + s)


def send(body: bytes) -> tuple[OutgoingMessage, dict[str, Any]]:
    message = BUILDER.build(
        body, parse(body), event_id=event_id(body), received_at_ms=1, signature_timestamp=2
    )
    return message, CODEC.decode(message.value)[1]


def rebuilt_canonical(record: dict[str, Any], suffix: str) -> str:
    """What `tail --unit21-json` prints for the record, read back by an exact parser."""
    return canonical(reference_loads(dumps(BUILDER.reassemble(SCHEMAS[suffix], record))))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    custom=values,
    nested=values,
    unknown=st.dictionaries(unknown_keys, values, min_size=1, max_size=3),
)
@example(
    custom=(
        '{"fee": 100.10, "limit": 12345678901234567.89, "rate": 0.1000000000000000055511151231257827,'
        ' "count": 12345678901234567890}',
        [
            "object",
            {
                "fee": ["number", "1001E-1"],
                "limit": ["number", "1234567890123456789E-2"],
                "rate": ["number", "1000000000000000055511151231257827E-34"],
                "count": ["integer", "12345678901234567890"],
            },
        ],
    ),
    nested=("1e400", ["number", "1E400"]),
    unknown={"x_amount": ("12345678901234567.89", ["number", "1234567890123456789E-2"])},
)
@example(
    custom=(
        "[1.5e1, 1e0, 0E7, 10, true, 1.0]",
        [
            "array",
            [
                ["number", "15E0"],
                ["number", "1E0"],
                ["number", "0"],
                ["integer", "10"],
                ["boolean", True],
                ["number", "1E0"],
            ],
        ],
    ),
    nested=("-0.0", ["number", "0"]),
    unknown={"x_e": ("2.50E-1", ["number", "25E-2"])},
)
def test_numbers_round_trip_through_the_record_as_decimals(
    custom: Piece, nested: Piece, unknown: dict[str, Piece]
) -> None:
    members = {
        "object_type": ('"ALERT"', ["string", "ALERT"]),
        "change": ('"CREATED"', ["string", "CREATED"]),
        "custom_data": custom,
        "entities": _array([_object({"entity_id": ('"u-1"', ["string", "u-1"]), "x_nested": nested})]),
        **unknown,
    }
    text, value = _object(members)
    message, record = send(text.encode())
    assert message.outcome == "published", message.issues

    # What a consumer reads in the record: exact JSON text in the JSON-text fields and extras.
    stored = record["custom_data"]
    assert (["null"] if stored is None else tagged(reference_loads(stored))) == custom[1]
    for key, piece in unknown.items():
        assert tagged(reference_loads(record["extras"][key])) == piece[1]
    assert tagged(reference_loads(record["entities"][0]["extras"]["x_nested"])) == nested[1]
    # What `tail --unit21-json` rebuilds: the body, every number the same decimal.
    assert rebuilt_canonical(record, "alert") == json.dumps(
        value, sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )


def test_the_issue_body_comes_back_exact() -> None:
    body = (
        b'{"object_type": "ENTITY", "change": "FLAGGED", "entity_id": "u-1", "custom_data": {"fee": 100.10,'
        b' "limit": 12345678901234567.89, "rate": 0.1000000000000000055511151231257827,'
        b' "count": 12345678901234567890}, "amount": 12345678901234567.89}'
    )
    message, record = send(body)
    assert message.topic == "unit21.entity" and message.outcome == "published"
    assert record["custom_data"] == (
        '{"fee":100.10,"limit":12345678901234567.89,"rate":0.1000000000000000055511151231257827,'
        '"count":12345678901234567890}'
    )
    assert record["extras"] == {"amount": "12345678901234567.89"}
    assert rebuilt_canonical(record, "entity") == canonical(reference_loads(body))


def test_a_number_a_typed_long_cannot_hold_is_dead_lettered_unchanged() -> None:
    # Typed numeric fields are longs: a fraction or a value beyond a double must not be
    # rounded into one, so the webhook goes to the DLQ whole, with the reason.
    for value in ("1e400", "12345678901234567.89", "100.0"):
        body = f'{{"object_type": "ALERT", "unit21_id": {value}, "ledger": 1234567890123456789012}}'.encode()
        message, record = send(body)
        assert message.outcome == "dead_lettered"
        assert record["errors"] == [{"path": "unit21_id", "reason": "expected an integer, got number"}]
        assert record["payload"] == body.decode()


def test_decimals_are_written_as_their_number_text() -> None:
    assert dumps({"a": Decimal("1E+400"), "b": Decimal("100.10"), "c": 2**70, "d": True}) == (
        '{"a":1E+400,"b":100.10,"c":1180591620717411303424,"d":true}'
    )
    assert decimal_key(Decimal("100.10")) == decimal_key(Decimal("100.1")) == "1001E-1"
    # A fraction or an exponent that cancels out still writes a number, not an integer.
    for sent, written in [
        ("1.5e1", "15.0"),
        ("1e0", "1.0"),
        ("-0e0", "-0.0"),
        ("1.0837644618573402e+16", None),
    ]:
        text = dumps(parse(f'{{"n": {sent}}}'.encode())["n"])
        assert text == (written or text)
        assert tagged(reference_loads(text)) == ["number", decimal_key(Decimal(sent))]
