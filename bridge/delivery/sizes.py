"""What a record weighs: one measure for the publisher's message.max.bytes check and the spool's
BRIDGE_SPOOL_MAX_BYTES accounting, so a record is never bigger for one than for the other."""

from __future__ import annotations

from collections.abc import Sequence

Headers = Sequence[tuple[str, bytes]]


def record_size(key: bytes, value: bytes, headers: Headers) -> int:
    """Key, value and headers (names and values), in bytes.

    The topic is not counted: it is not part of what Kafka measures against message.max.bytes.
    librdkafka adds a few bytes of framing, so a record this measure puts over the limit is one
    produce() would refuse too: the publisher never refuses a record librdkafka would take."""
    return len(key) + len(value) + sum(len(name) + len(data) for name, data in headers)
