"""Recently delivered event_ids: bounded, time-limited, marked only after success."""

from __future__ import annotations

import asyncio
import contextlib
import tracemalloc

import orjson

from bridge.delivery.dedup import RecentDeliveries


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_remembered_until_the_window_ends() -> None:
    clock = Clock()
    recent = RecentDeliveries(600, 10, clock)
    recent.remember("a", b'{"x":1}')
    clock.now += 599
    assert recent.get("a") == b'{"x":1}'
    clock.now += 2
    assert recent.get("a") is None
    assert len(recent) == 0


def test_bounded_by_entries_oldest_forgotten_first() -> None:
    recent = RecentDeliveries(600, 3, Clock())
    for name in "abcde":
        recent.remember(name, name.encode())
    assert [recent.get(n) for n in "abcde"] == [None, None, b"c", b"d", b"e"]
    assert len(recent) == 3


def test_expired_entries_are_dropped_when_new_ones_arrive() -> None:
    clock = Clock()
    recent = RecentDeliveries(10, 100, clock)
    for i in range(50):
        recent.remember(str(i), b"")
    clock.now += 11
    recent.remember("new", b"")
    assert len(recent) == 1


def test_a_zero_window_turns_it_off() -> None:
    recent = RecentDeliveries(0, 10)
    recent.remember("a", b"")
    assert recent.get("a") is None


def concurrent_copies(*attempts: tuple[str, bool], then: tuple[str, bool] | None = None) -> list[str]:
    """Copies of one webhook handled at once (name, whether its delivery succeeds), and
    optionally one more after they finished; returns what each one did, in order."""

    async def scenario() -> list[str]:
        recent = RecentDeliveries(600, 10)
        log: list[str] = []

        async def request(name: str, succeed: bool) -> None:
            async with recent.claim("id") as earlier:
                if earlier is not None:
                    log.append(f"{name}: duplicate of {earlier.decode()}")
                    return
                log.append(f"{name}: delivering")
                await asyncio.sleep(0.05)
                if succeed:
                    recent.remember("id", name.encode())

        await asyncio.gather(*(request(name, succeed) for name, succeed in attempts))
        if then is not None:
            await request(*then)
        return log

    return asyncio.run(scenario())


def test_a_concurrent_duplicate_waits_for_the_first_and_gets_its_answer() -> None:
    assert concurrent_copies(("first", True), ("second", True), ("third", True)) == [
        "first: delivering",
        "second: duplicate of first",
        "third: duplicate of first",
    ]


def test_a_failed_first_attempt_leaves_nothing_and_the_retry_delivers() -> None:
    assert concurrent_copies(("first", False), ("second", True), then=("third", True)) == [
        "first: delivering",
        "second: delivering",
        "third: duplicate of second",
    ]


def test_waiters_on_a_failed_first_attempt_take_turns() -> None:
    assert concurrent_copies(("first", False), ("second", True), ("third", True)) == [
        "first: delivering",
        "second: delivering",
        "third: duplicate of second",
    ]


def test_an_exception_inside_the_claim_releases_the_id() -> None:
    async def scenario() -> bytes | None:
        recent = RecentDeliveries(600, 10)
        with contextlib.suppress(RuntimeError):
            async with recent.claim("id"):
                raise RuntimeError("publish blew up")
        async with recent.claim("id") as earlier:
            return earlier

    assert asyncio.run(asyncio.wait_for(scenario(), 2)) is None


def test_a_remembered_answer_costs_its_size_not_its_buffer() -> None:
    # The endpoint's answers come from orjson.dumps, whose bytes keep a 4 KiB output buffer.
    recent = RecentDeliveries(600, 10_000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(2000):
            event_id = f"{i:032x}"
            recent.remember(
                event_id, orjson.dumps({"event_id": event_id, "topic": "unit21.alerts", "offset": i})
            )
        per_entry = (tracemalloc.get_traced_memory()[0] - before) / 2000
    finally:
        tracemalloc.stop()
    assert per_entry < 600, f"{per_entry:.0f} bytes per remembered answer"
