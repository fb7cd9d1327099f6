"""Fast paths on the request path must decide exactly as the slow, obvious code."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridge.payload import _LONG_DIGITS, has_long_digit_run, parse

_ALPHABET = st.sampled_from([b"0", b"1", b"9", b"a", b".", b"-", b" ", b"\xff", b"\xd9", b"\x00"])


@given(st.lists(_ALPHABET, max_size=80).map(b"".join))
def test_long_digit_run_check_matches_the_regex(data: bytes) -> None:
    assert has_long_digit_run(data) == (_LONG_DIGITS.search(data) is not None)


def test_wide_integers_stay_exact() -> None:
    assert parse(b'{"n": 12345678901234567890123}') == {"n": 12345678901234567890123}
    assert parse(b'{"n": 1234567890123456789}') == {"n": 1234567890123456789}
    assert parse(b'{"n": 123456789012345678}') == {"n": 123456789012345678}
