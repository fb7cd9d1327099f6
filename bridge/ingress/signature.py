"""Unit21-Signature verification: HMAC-SHA256 over b"<t>." + the raw body, hex encoded.

Header format: ``t=<unix seconds>,s0=<hex>[,s1=<hex>...]``. Any ``s<N>`` entry may match
any configured secret, which is what lets a secret be rotated without dropping webhooks.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from bridge.errors import BridgeError, SignatureFailure

HEADER_NAME = "unit21-signature"
# Unit21 sends `t=<10 digits>,s0=<64 hex>` (~80 bytes); a few more entries during a secret
# rotation. Anything beyond these caps is refused before any parsing or HMAC, so an attacker's
# header costs O(1) to refuse whatever its size.
MAX_HEADER_LENGTH = 2048
MAX_ENTRIES = 16
# A unix time in seconds has 10 digits until the year 2286; more digits are no timestamp.
MAX_TIMESTAMP_DIGITS = 12


class SignatureError(BridgeError):
    def __init__(self, reason: SignatureFailure, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ParsedSignature:
    timestamp: int
    signatures: tuple[bytes, ...]


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex signature Unit21 would send for this body (used by `send`, tests and benchmarks)."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},s0={sign(secret, timestamp, body)}"


def parse_header(value: str) -> ParsedSignature:
    if len(value) > MAX_HEADER_LENGTH:
        raise SignatureError(
            SignatureFailure.MALFORMED_HEADER,
            f"the header is {len(value)} characters long; at most {MAX_HEADER_LENGTH} are accepted",
        )
    if value.count(",") >= MAX_ENTRIES:
        raise SignatureError(
            SignatureFailure.MALFORMED_HEADER, f"the header has more than {MAX_ENTRIES} entries"
        )
    timestamp: int | None = None
    signatures: list[bytes] = []
    for part in value.split(","):
        key, sep, item = part.strip().partition("=")
        if not sep:
            raise SignatureError(
                SignatureFailure.MALFORMED_HEADER, f"entry {part.strip()!r} is not key=value"
            )
        key = key.strip()
        item = item.strip()
        if key == "t":
            if not item.isascii() or not item.isdigit() or len(item) > MAX_TIMESTAMP_DIGITS:
                raise SignatureError(
                    SignatureFailure.MALFORMED_HEADER, "t is not a unix timestamp in seconds"
                )
            timestamp = int(item)
        elif len(key) > 1 and key[0] == "s" and key[1:].isdigit():
            try:
                signatures.append(bytes.fromhex(item))
            except ValueError:
                raise SignatureError(SignatureFailure.MALFORMED_HEADER, f"{key} is not hex") from None
        # Unknown keys are ignored so that Unit21 can add entries without breaking us.
    if timestamp is None:
        raise SignatureError(SignatureFailure.MALFORMED_HEADER, "no t= entry")
    if not signatures:
        raise SignatureError(SignatureFailure.MALFORMED_HEADER, "no s0= (or s<N>=) entry")
    return ParsedSignature(timestamp, tuple(signatures))


def verify(
    header: str | None,
    body: bytes,
    secrets: Sequence[bytes],
    *,
    now: float,
    tolerance_seconds: int,
) -> int:
    """Check the header against the raw body; return the signed timestamp or raise SignatureError.

    `secrets` are pre-encoded once at start-up. Every candidate is compared in constant time
    and the loop never exits early on a match, so timing does not reveal which secret matched.
    """
    if header is None or not header.strip():
        raise SignatureError(SignatureFailure.MISSING_HEADER, "the Unit21-Signature header is missing")
    parsed = parse_header(header)
    if abs(now - parsed.timestamp) > tolerance_seconds:
        raise SignatureError(
            SignatureFailure.STALE_TIMESTAMP,
            f"signature timestamp is {int(now - parsed.timestamp)} s from now; "
            f"the tolerance is {tolerance_seconds} s",
        )
    message = str(parsed.timestamp).encode("ascii") + b"." + body
    matched = False
    for secret in secrets:
        expected = hmac.digest(secret, message, "sha256")  # one-shot: no HMAC object per request
        for candidate in parsed.signatures:
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureError(
            SignatureFailure.NO_MATCHING_SIGNATURE, "no signature matches any configured webhook secret"
        )
    return parsed.timestamp
