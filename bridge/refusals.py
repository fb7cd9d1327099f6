"""The log line for requests refused at the door, at most once per window.

Load shedding answers 503 before reading the body, exactly when the process has the least time
to spare. A WARNING line per refused request would cost about a fifth of each refusal and
flood the log with thousands of lines a second, all alike: the body was not read, so they
carry no event_id. Instead the first refusal of a window is logged as it happens and the rest
are counted, then summed up in one line when the window ends. Metrics still count every one
(`unit21_bridge_webhook_requests_total{status="503"}`).

The same mechanism keeps other failures that come by the thousand to a line per window: 503s
answered after the body was read because the spool cannot write, and the spool's own failed
writes, deletes and reads (bridge/spool.py), each with its own logger, level and summary.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger("bridge.app")


_REFUSAL_SUMMARY = "%d more webhook request(s) answered 503 (%s) in the last %.1f s; logged once per window"


def _refusal_summary(error: str, count: int) -> dict[str, Any]:
    return {"error": error, "status": 503, "refused": count}


class RefusalLog:
    def __init__(
        self,
        window_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        logger: logging.Logger = log,
        level: int = logging.WARNING,
        summary: str = _REFUSAL_SUMMARY,
        summary_extra: Callable[[str, int], dict[str, Any]] = _refusal_summary,
    ) -> None:
        """`summary` is formatted with (count, kind, window_seconds); `summary_extra` gives its fields."""
        self.window_seconds = window_seconds
        self._clock = clock
        self._logger = logger
        self._level = level
        self._summary_format = summary
        self._summary_extra = summary_extra
        self._window_end = float("-inf")
        self._suppressed: Counter[str] = Counter()
        self._summary: asyncio.TimerHandle | None = None

    def refused(
        self, error: str, detail: str, latency_ms: float, context: Mapping[str, Any] | None = None
    ) -> None:
        """A webhook answered 503; `context` adds the request's fields (event_id...) to the line."""
        extra = {**(context or {}), "error": error, "detail": detail, "status": 503, "latency_ms": latency_ms}
        self.event(error, "webhook answered 503", extra=extra)

    def event(self, kind: str, message: str, *args: object, extra: Mapping[str, Any] | None = None) -> None:
        """Log `message` if it is the window's first event, else count it under `kind`."""
        now = self._clock()
        if now >= self._window_end:
            self.flush()
            self._window_end = now + self.window_seconds
            self._logger.log(self._level, message, *args, extra=extra)
            return
        self._suppressed[kind] += 1
        if self._summary is None:
            delay = self._window_end - now
            self._summary = asyncio.get_running_loop().call_later(delay, self.flush)

    def flush(self) -> None:
        """Log the count of the events not logged yet (at the window's end, and at shutdown)."""
        if self._summary is not None:
            self._summary.cancel()
            self._summary = None
        for kind, count in sorted(self._suppressed.items()):
            self._logger.log(
                self._level,
                self._summary_format,
                count,
                kind,
                self.window_seconds,
                extra=self._summary_extra(kind, count),
            )
        self._suppressed.clear()
