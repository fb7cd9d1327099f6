"""Fast paths on the request path must decide exactly as the slow, obvious code."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bridge.contract.parsing import MAX_DEPTH, PayloadError, deeper_than, needs_exact_path, parse
from tests.exact_json import canonical, expected, number_texts, tagged

_ALPHABET = st.sampled_from(
    [b"0", b"1", b"9", b".", b"e", b"E", b"-", b"+", b"a", b" ", b"[", b"{", b"\xff", b"\xd9", b"\x00"]
)
# The obvious statement of the rule in bridge/contract/parsing.py: 17 digits and dots in a row, or a
# negative exponent of three digits or more.
_NEEDS_EXACT = re.compile(rb"[0-9.]{17}|[eE]-[0-9]{3}")


@given(st.lists(_ALPHABET, max_size=80).map(b"".join))
def test_exact_path_check_matches_the_regex(data: bytes) -> None:
    assert needs_exact_path(data) == (_NEEDS_EXACT.search(data) is not None)


@given(number_texts, st.sampled_from(["", " ", "\n  "]))
@example("100.10", "")
@example("0.1000000000000000055511151231257827", "")
@example("12345678901234567.89", " ")
@example("1e400", "")
@example("1E-400", "")
@example("4.9e-324", "")
@example("2.5e-308", "")
@example("123456789012345.6", "")
@example("1234567890123456.7", "")
@example("18446744073709551616", "")
def test_every_number_keeps_its_value_whichever_path_reads_it(text: str, space: str) -> None:
    body = f'{{"k":{space}{text}{space}}}'.encode()
    assert tagged(parse(body)["k"]) == expected(text)
    if not needs_exact_path(body):
        # The claim the fast path rests on: orjson either refuses the number (then the exact
        # parser decides) or reads it so that, written back as JSON text, it is the same
        # decimal value and the same kind.
        try:
            fast = orjson.loads(body)["k"]
        except orjson.JSONDecodeError:
            return
        assert tagged(orjson.loads(orjson.dumps(fast))) == expected(text), fast


def test_wide_integers_stay_exact() -> None:
    assert parse(b'{"n": 12345678901234567890123}') == {"n": 12345678901234567890123}
    assert parse(b'{"n": 1234567890123456789}') == {"n": 1234567890123456789}
    assert parse(b'{"n": 123456789012345678}') == {"n": 123456789012345678}


def test_the_issue_body_keeps_every_digit() -> None:
    doc = parse(
        b'{"custom_data": {"fee": 100.10, "limit": 12345678901234567.89, '
        b'"rate": 0.1000000000000000055511151231257827, "count": 12345678901234567890}, '
        b'"amount": 12345678901234567.89, "flag": true, "one": 1, "one_point_oh": 1.0}'
    )
    assert canonical(doc) == canonical(
        {
            "custom_data": {
                "fee": Decimal("100.1"),
                "limit": Decimal("12345678901234567.89"),
                "rate": Decimal("0.1000000000000000055511151231257827"),
                "count": 12345678901234567890,
            },
            "amount": Decimal("12345678901234567.89"),
            "flag": True,
            "one": 1,
            "one_point_oh": Decimal("1"),
        }
    )
    assert canonical({"x": True}) != canonical({"x": 1}) != canonical({"x": 1.0})


# -- one answer whichever parser runs (issue 12, items 6 and 7) ------------------------------

LONG_RUN = ', "ledger": 1234567890123456789012'  # 22 digits: the exact path


@pytest.mark.parametrize("extra", ["", LONG_RUN], ids=["fast-path", "exact-path"])
def test_a_lone_surrogate_is_refused_with_its_place(extra: str) -> None:
    body = ('{"custom_data": {"note": ["ok", "bad \\ud800 here"]}' + extra + "}").encode()
    with pytest.raises(PayloadError) as info:
        parse(body)
    assert str(info.value) == (
        "body is not valid JSON: the string at custom_data.note[1] holds the lone UTF-16 "
        "surrogate \\ud800, which is not a Unicode character"
    )
    # A key with one: the answer names it escaped, so the answer itself can be encoded.
    with pytest.raises(PayloadError, match=r"at \\udc00 holds the lone UTF-16 surrogate \\udc00"):
        parse(('{"\\udc00": 1' + extra + "}").encode())
    # A proper pair is one character, on both paths.
    assert parse(('{"e": "\\ud83d\\ude00"' + extra + "}").encode())["e"] == "\U0001f600"


def nested(depth: int, extra: str = "") -> bytes:
    """A body whose deepest value sits `depth` levels down (the body object is level 1)."""
    return ('{"custom_data": ' + "[" * (depth - 1) + "]" * (depth - 1) + extra + "}").encode()


@pytest.mark.parametrize("extra", ["", LONG_RUN], ids=["fast-path", "exact-path"])
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 960, 961, 1000, 1023, 1024, 1025, 5000])
def test_nesting_beyond_the_limit_is_refused_with_the_limit(extra: str, depth: int) -> None:
    with pytest.raises(PayloadError) as info:
        parse(nested(depth, extra))
    assert str(info.value) == f"body nests objects and arrays deeper than {MAX_DEPTH} levels"


@pytest.mark.parametrize("extra", ["", LONG_RUN], ids=["fast-path", "exact-path"])
def test_nesting_up_to_the_limit_is_taken(extra: str) -> None:
    doc = parse(nested(MAX_DEPTH, extra))
    value = doc["custom_data"]
    for _ in range(MAX_DEPTH - 2):
        value = value[0]
    assert value == []


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


@given(
    levels=st.integers(1, 2 * MAX_DEPTH + 10),
    siblings=st.integers(0, 3),
    bottom=st.sampled_from([None, 1, 2**70, Decimal("1E+400")]),
)
@example(levels=MAX_DEPTH, siblings=0, bottom=None)
@example(levels=MAX_DEPTH + 1, siblings=0, bottom=2**70)
@example(levels=MAX_DEPTH - 2, siblings=1, bottom=None)
@example(levels=MAX_DEPTH - 1, siblings=1, bottom=2**70)
def test_the_nesting_check_agrees_with_the_obvious_depth(levels: int, siblings: int, bottom: object) -> None:
    # Dicts and lists alternate, each level with shallow siblings; a 2**70 at the bottom makes
    # orjson refuse to write the document, so the walk alone decides.
    doc: object = bottom
    for level in range(levels):
        extra = [[1, {"k": []}]] * siblings
        doc = {"v": doc, **{f"s{i}": x for i, x in enumerate(extra)}} if level % 2 else [doc, *extra]
    assert deeper_than(doc, MAX_DEPTH) == (_depth(doc) > MAX_DEPTH)


def test_a_wide_shallow_body_is_not_mistaken_for_a_deep_one() -> None:
    body = json.dumps({"items": [{"a": [1]} for _ in range(5 * MAX_DEPTH)]}).encode()
    assert len(parse(body)["items"]) == 5 * MAX_DEPTH


@pytest.mark.parametrize("extra", ["", LONG_RUN], ids=["fast-path", "exact-path"])
def test_a_number_beyond_a_double_is_kept_whichever_path(extra: str) -> None:
    doc = parse(('{"custom_data": {"big": 1e400, "tiny": -2.5E-400}' + extra + "}").encode())
    assert doc["custom_data"] == {"big": Decimal("1e400"), "tiny": Decimal("-2.5e-400")}


@pytest.mark.parametrize(
    "body", [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity, "n": 1234567890123456789012}']
)
def test_non_json_constants_are_refused_on_both_paths(body: bytes) -> None:
    with pytest.raises(PayloadError, match="not valid JSON"):
        parse(body)
