from __future__ import annotations

import json

import pytest

from bridge.signature import SignatureError, SignatureFailure, parse_header, sign, signature_header, verify
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
