from __future__ import annotations

import json

import pytest

from bridge.ingress.signature import (
    SignatureError,
    SignatureFailure,
    parse_header,
    sign,
    signature_header,
    verify,
)
from tests.support import REPO

VECTORS = json.loads((REPO / "tests" / "data" / "signature-vectors.json").read_text())["vectors"]
SECRET = b"abcdefghij0123456789"


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["signed_message"][:30])
def test_documented_vectors(vector: dict[str, str]) -> None:
    body = vector["body"].encode()
    assert sign(vector["secret"], int(vector["t"]), body) == vector["expected_s0_hex"]
    header = f"t={vector['t']},s0={vector['expected_s0_hex']}"
    assert verify(
        header, body, [vector["secret"].encode()], now=int(vector["t"]), tolerance_seconds=300
    ) == int(vector["t"])


def test_reserialised_json_does_not_verify() -> None:
    header = signature_header(SECRET.decode(), 100, b'{"foo": "bar"}')
    with pytest.raises(SignatureError) as info:
        verify(header, b'{"foo":"bar"}', [SECRET], now=100, tolerance_seconds=300)
    assert info.value.reason is SignatureFailure.NO_MATCHING_SIGNATURE


def test_any_secret_and_any_signature_entry_matches() -> None:
    body = b"{}"
    good = sign("new-secret", 1000, body)
    header = f"t=1000,s0={'00' * 32},s1={good}"
    assert verify(header, body, [b"old-secret", b"new-secret"], now=1000, tolerance_seconds=5) == 1000


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, SignatureFailure.MISSING_HEADER),
        ("  ", SignatureFailure.MISSING_HEADER),
        ("garbage", SignatureFailure.MALFORMED_HEADER),
        ("s0=abcd", SignatureFailure.MALFORMED_HEADER),
        ("t=100", SignatureFailure.MALFORMED_HEADER),
        ("t=abc,s0=abcd", SignatureFailure.MALFORMED_HEADER),
        ("t=100,s0=zz", SignatureFailure.MALFORMED_HEADER),
        ("t=1,s0=" + "ab" * 32, SignatureFailure.STALE_TIMESTAMP),
        ("t=100,s0=" + "ab" * 32, SignatureFailure.NO_MATCHING_SIGNATURE),
    ],
)
def test_failures_name_their_reason(header: str | None, reason: SignatureFailure) -> None:
    with pytest.raises(SignatureError) as info:
        verify(header, b"{}", [SECRET], now=100, tolerance_seconds=60)
    assert info.value.reason is reason


def test_future_timestamps_outside_the_window_are_stale() -> None:
    header = signature_header(SECRET.decode(), 1000, b"{}")
    with pytest.raises(SignatureError) as info:
        verify(header, b"{}", [SECRET], now=600, tolerance_seconds=300)
    assert info.value.reason is SignatureFailure.STALE_TIMESTAMP


def test_parse_tolerates_spaces_and_unknown_entries() -> None:
    parsed = parse_header(" t=5 , v=ignored, s0=00ff ")
    assert parsed.timestamp == 5
    assert parsed.signatures == (b"\x00\xff",)


def _refusal_detail(header: str) -> str:
    with pytest.raises(SignatureError) as info:
        verify(header, b"{}", [SECRET], now=1000, tolerance_seconds=300)
    assert info.value.reason is SignatureFailure.MALFORMED_HEADER
    return info.value.detail


# Which guard refused is what makes these cheap: the length check costs nothing and the entry
# count one pass over at most 2 KB, before any split, hex decoding or HMAC. (How fast that is
# belongs to `make bench`, not to a wall-clock bound here.)
def test_a_huge_signature_header_is_refused_in_well_under_a_millisecond() -> None:
    header = "t=1000," + ",".join(f"s{n}=00" for n in range(1_000_000))  # 10.9 MB, 1,000,001 entries
    assert len(header) > 10_000_000
    assert (
        _refusal_detail(header) == f"the header is {len(header)} characters long; at most 2048 are accepted"
    )


def test_a_header_under_the_byte_cap_but_over_the_entry_cap_is_refused_at_once() -> None:
    header = f"t=1000,s0={'00' * 32}" + ",s1=00" * 300
    assert len(header) < 2048 and header.count(",") > 16  # the documented caps
    assert _refusal_detail(header) == "the header has more than 16 entries"


@pytest.mark.parametrize("timestamp", ["9" * 400, "1" * 5000, "1" * 13])
def test_a_timestamp_of_too_many_digits_is_malformed(timestamp: str) -> None:
    with pytest.raises(SignatureError) as info:
        verify(f"t={timestamp},s0=00", b"{}", [SECRET], now=1000, tolerance_seconds=300)
    assert info.value.reason is SignatureFailure.MALFORMED_HEADER
