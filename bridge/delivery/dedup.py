"""Recently delivered webhooks, so a re-sent one is answered without being published again.

Unit21 re-sends a webhook when an answer is late or not 2xx, with the same body, hence the
same `event_id`. An id is remembered only after its record was acknowledged by Kafka or
written to the spool, never before: a request that failed leaves nothing behind, so its
retry is published. The memory is per process, bounded in size and time; consumers finish
the job across replicas with the `event_id` header (see docs/delivery.md).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable


class RecentDeliveries:
    def __init__(
        self, window_seconds: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window = window_seconds
        self.max_entries = max_entries
        self._clock = clock
        # event_id -> (expiry, the JSON answer first given); insertion order is expiry order.
        self._done: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        # event_id -> resolved when the request delivering it finishes (either way); None until
        # a duplicate waits for it (a future per request would cost more than it is ever used).
        self._in_flight: dict[str, asyncio.Future[None] | None] = {}

    def __len__(self) -> int:
        return len(self._done)

    def get(self, event_id: str) -> bytes | None:
        entry = self._done.get(event_id)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._done[event_id]
            return None
        return entry[1]

    def remember(self, event_id: str, answer: bytes) -> None:
        if self.window <= 0:
            return
        now = self._clock()
        self._done.pop(event_id, None)
        # A compact copy: bytes from orjson.dumps keep their whole output buffer (4 KiB for a
        # 150-byte answer), which made each entry ten times its size: 400 MiB at the default
        # BRIDGE_DEDUP_MAX_ENTRIES instead of 45 MiB.
        self._done[event_id] = (now + self.window, memoryview(answer).tobytes())
        while self._done:
            oldest_id, (expiry, _) = next(iter(self._done.items()))
            if expiry > now and len(self._done) <= self.max_entries:
                break
            del self._done[oldest_id]

    def claim(self, event_id: str) -> Claim:
        """`async with recent.claim(event_id) as earlier:` yields the earlier answer for a
        duplicate, or None with the id claimed by this request until the block ends.

        A duplicate that arrives while the first copy is still being delivered waits for it,
        then either gets its answer or, if it failed, delivers the webhook itself.
        """
        return Claim(self, event_id)


class Claim:
    """The async context manager of `RecentDeliveries.claim` (a class, not a generator: it runs
    once per webhook)."""

    __slots__ = ("_claimed", "_event_id", "_recent")

    def __init__(self, recent: RecentDeliveries, event_id: str) -> None:
        self._recent = recent
        self._event_id = event_id
        self._claimed = False

    async def __aenter__(self) -> bytes | None:
        recent, event_id = self._recent, self._event_id
        in_flight = recent._in_flight
        while True:
            earlier = recent.get(event_id)
            if earlier is not None:
                return earlier
            if event_id not in in_flight:
                break
            pending = in_flight[event_id]
            if pending is None:  # the first waiter creates what the claimer will resolve
                pending = in_flight[event_id] = asyncio.get_running_loop().create_future()
            await asyncio.shield(pending)
        in_flight[event_id] = None
        self._claimed = True
        return None

    async def __aexit__(self, *exc_info: object) -> None:
        if self._claimed:
            pending = self._recent._in_flight.pop(self._event_id)
            if pending is not None:
                pending.set_result(None)
