"""Publisher contract that needs no broker: librdkafka is real, the broker address leads nowhere."""

from __future__ import annotations

import asyncio
import time

import pytest

from bridge.delivery.embedded import free_port
from bridge.delivery.publisher import Publisher, PublishError


def unreachable_config(message_timeout_ms: int) -> dict[str, object]:
    return {
        "bootstrap.servers": f"127.0.0.1:{free_port()}",
        "message.timeout.ms": message_timeout_ms,
        "log_level": 0,
    }


def test_publish_before_start_is_refused() -> None:
    publisher = Publisher(unreachable_config(1000), delivery_timeout=0.2)

    async def scenario() -> None:
        with pytest.raises(RuntimeError, match="start"):
            await publisher.publish("t", b"k", b"v", [])

    try:
        asyncio.run(scenario())
    finally:
        publisher.close(0)


def test_an_answer_never_waits_past_the_safety_deadline() -> None:
    # librdkafka would report only after 60 s; the bridge gives up at delivery_timeout + 1 s.
    publisher = Publisher(unreachable_config(60_000), delivery_timeout=0.2)

    async def scenario() -> tuple[PublishError, float]:
        publisher.start()
        started = time.monotonic()
        with pytest.raises(PublishError) as failure:
            await publisher.publish("t", b"k", b"v", [("event_id", b"1")])
        return failure.value, time.monotonic() - started

    try:
        error, waited = asyncio.run(scenario())
    finally:
        publisher.close(0)
    assert error.reason == "timeout"
    assert 1.1 <= waited < 3.0
    assert publisher.connected is False


def test_the_default_body_limit_fits_kafkas_default_message_size() -> None:
    from bridge.delivery.publisher import body_limit_warning
    from bridge.settings import Settings

    assert body_limit_warning(Settings.from_env({})) is None
    warning = body_limit_warning(Settings.from_env({"BRIDGE_MAX_BODY_BYTES": "1048576"}))
    assert warning is not None and "message.max.bytes=1000000" in warning
    raised = {"BRIDGE_MAX_BODY_BYTES": "1048576", "KAFKA_MESSAGE_MAX_BYTES": "2097152"}
    assert body_limit_warning(Settings.from_env(raised)) is None
