"""The log line for requests refused at the door, at most once per window.

Load shedding answers 503 before reading the body, exactly when the process has the least time
to spare. A WARNING line per refused request would cost about a fifth of each refusal and
flood the log with thousands of lines a second, all alike: the body was not read, so they
carry no event_id. Instead the first refusal of a window is logged as it happens and the rest
are counted, then summed up in one line when the window ends. Metrics still count every one
(`unit21_bridge_webhook_requests_total{status="503"}`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

log = logging.getLogger("bridge.app")


class RefusalLog:
    def __init__(self, window_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_seconds = window_seconds
        self._clock = clock
        self._window_end = float("-inf")
        self._suppressed: Counter[str] = Counter()
        self._summary: asyncio.TimerHandle | None = None

    def refused(self, error: str, detail: str, latency_ms: float) -> None:
        now = self._clock()
        if now >= self._window_end:
            self.flush()
            self._window_end = now + self.window_seconds
            log.warning(
                "webhook answered 503",
                extra={"error": error, "detail": detail, "status": 503, "latency_ms": latency_ms},
            )
            return
        self._suppressed[error] += 1
        if self._summary is None:
            delay = self._window_end - now
            self._summary = asyncio.get_running_loop().call_later(delay, self.flush)

    def flush(self) -> None:
        """Log the count of the refusals not logged yet (at the window's end, and at shutdown)."""
        if self._summary is not None:
            self._summary.cancel()
            self._summary = None
        for error, count in sorted(self._suppressed.items()):
            log.warning(
                "%d more webhook request(s) answered 503 (%s) in the last %.1f s; logged once per window",
                count,
                error,
                self.window_seconds,
                extra={"error": error, "status": 503, "refused": count},
            )
        self._suppressed.clear()
