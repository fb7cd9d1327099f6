"""Refusals at the door: the first of each window and error is logged, the rest counted and summed up."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from bridge.ops.refusals import RefusalLog


def test_one_line_per_window_then_a_count_per_error(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]

    async def scenario() -> None:
        refusals = RefusalLog(window_seconds=1.0, clock=lambda: now[0])
        refusals.refused("overloaded", "65 requests in progress", 0.3)
        for _ in range(4):
            refusals.refused("overloaded", "65 requests in progress", 0.3)
        refusals.refused("spool_full", "Kafka is unavailable and the spool is full", 0.2)  # new: logged
        now[0] = 101.5  # the next window: its first refusal is logged, after the last one's count
        refusals.refused("spool_full", "Kafka is unavailable and the spool is full", 0.2)
        refusals.refused("spool_full", "Kafka is unavailable and the spool is full", 0.2)
        refusals.flush()  # as at shutdown

    with caplog.at_level(logging.WARNING, logger="bridge.app"):
        asyncio.run(scenario())
    assert [(r.getMessage(), getattr(r, "error", None)) for r in caplog.records] == [
        ("webhook answered 503", "overloaded"),
        ("webhook answered 503", "spool_full"),
        (
            "4 more webhook request(s) answered 503 (overloaded) in the last 1.0 s; logged once per window",
            "overloaded",
        ),
        ("webhook answered 503", "spool_full"),
        (
            "1 more webhook request(s) answered 503 (spool_full) in the last 1.0 s; logged once per window",
            "spool_full",
        ),
    ]


def test_the_count_is_logged_when_the_window_ends_without_another_refusal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        refusals = RefusalLog(window_seconds=0.05)
        for _ in range(3):
            refusals.refused("overloaded", "65 requests in progress", 0.3)
        await asyncio.sleep(0.2)

    with caplog.at_level(logging.WARNING, logger="bridge.app"):
        asyncio.run(scenario())
    assert [r.getMessage() for r in caplog.records][-1].startswith("2 more webhook request(s) answered 503")


def test_lines_from_a_thread_without_a_loop_are_counted_then_summed_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """librdkafka's callbacks also run on the thread that flushes the producer at shutdown."""
    now = [0.0]
    quiet = RefusalLog(30.0, clock=lambda: now[0], logger=logging.getLogger("bridge.publisher"))

    def line() -> None:
        quiet.once(
            "error:_TRANSPORT",
            logging.WARNING,
            "kafka error: %s",
            "Connection refused",
            extra={"kafka_error": "_TRANSPORT"},
            summary="kafka error(s) _TRANSPORT",
            summary_fields={"kafka_error": "_TRANSPORT"},
        )

    with caplog.at_level(logging.WARNING, logger="bridge.publisher"):
        worker = threading.Thread(target=lambda: [line() for _ in range(5)])
        worker.start()
        worker.join(timeout=10)
        assert not worker.is_alive(), "five log lines took more than 10 s"
        now[0] = 31.0  # the window is over: the next line first sums up the last one
        line()
        line()
        quiet.flush()
    assert [(r.getMessage(), getattr(r, "repeated", None)) for r in caplog.records] == [
        ("kafka error: Connection refused", None),
        ("4 more kafka error(s) _TRANSPORT in the last 30.0 s; logged once per window", 4),
        ("kafka error: Connection refused", None),
        ("1 more kafka error(s) _TRANSPORT in the last 30.0 s; logged once per window", 1),
    ]


def test_door_events_share_the_one_rate_limiter(caplog: pytest.LogCaptureFixture) -> None:
    from bridge.ingress import Door
    from bridge.settings import Settings

    door = Door(Settings.from_env({}, max_connections=16))
    with caplog.at_level(logging.WARNING, logger="bridge.door"):
        for _ in range(5):
            door.event("connection_limit", "connection limit reached: %d connections open", 16)
        door.event("header_too_large", "request head too large")  # another kind: logged at once
        door.events.flush()  # as at shutdown
    assert [(r.getMessage(), r.door_event, getattr(r, "suppressed", None)) for r in caplog.records] == [
        ("connection limit reached: 16 connections open", "connection_limit", None),
        ("request head too large", "header_too_large", None),
        (
            "4 more door event(s) connection_limit in the last 10.0 s; logged once per window",
            "connection_limit",
            4,
        ),
    ]
