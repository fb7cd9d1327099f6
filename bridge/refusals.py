"""Log lines that repeat, at most once per window and key, with a count of the rest.

Load shedding answers 503 before reading the body, exactly when the process has the least time
to spare. A WARNING line per refused request would cost about a fifth of each refusal and
flood the log with thousands of lines a second, all alike: the body was not read, so they
carry no event_id. Instead the first refusal of a window is logged as it happens and the rest
are counted, then summed up in one line when the window ends. Metrics still count every one
(`unit21_bridge_webhook_requests_total{status="503"}`, `unit21_bridge_refusals_total`).

The same mechanism quiets the other floods: 4xx answers without an event_id (a sender with a
wrong secret, a scanner) and librdkafka's lines during an outage (a disconnect and two
connect failures per broker and retry). Each key (an error word, a librdkafka facility) has
its own window, so a new kind of problem is always logged at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("bridge.app")


@dataclass
class _Repeats:
    logger: logging.Logger
    level: int
    summary: str  # "%d more <summary> in the last %.1f s; logged once per window"
    fields: dict[str, Any] = field(default_factory=dict)
    count_field: str = "repeated"
    count: int = 0


class RefusalLog:
    """Thread-safe; the summary line is written by a timer when an asyncio loop runs in the
    calling thread, otherwise by the next line logged after the window or by `flush()`."""

    def __init__(
        self,
        window_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger = log,
    ) -> None:
        self.window_seconds = window_seconds
        self._clock = clock
        self._logger = logger
        self._lock = threading.Lock()
        self._window_end: dict[str, float] = {}
        self._repeats: dict[str, _Repeats] = {}
        self._summary: asyncio.TimerHandle | None = None

    def refused(self, error: str, detail: str, latency_ms: float, status: int = 503) -> None:
        """A request refused at the door (no body read, so no event_id)."""
        self.once(
            error,
            logging.WARNING,
            f"webhook answered {status}",
            extra={"error": error, "detail": detail, "status": status, "latency_ms": latency_ms},
            summary=f"webhook request(s) answered {status} ({error})",
            summary_fields={"error": error, "status": status},
            count_field="refused",
        )

    def once(
        self,
        key: str,
        level: int,
        message: str,
        *args: Any,
        extra: Mapping[str, Any] | None = None,
        summary: str,
        summary_fields: Mapping[str, Any] | None = None,
        logger: logging.Logger | None = None,
        count_field: str = "repeated",
    ) -> bool:
        """Log `message` unless a line of this key was logged within the window; count it then.
        Returns whether the line was logged."""
        target = logger or self._logger
        now = self._clock()
        due: list[tuple[str, _Repeats]] = []
        with self._lock:
            due = self._take_due(now)
            logged = now >= self._window_end.get(key, float("-inf"))
            if logged:
                self._window_end[key] = now + self.window_seconds
            else:
                repeats = self._repeats.get(key)
                if repeats is None:
                    repeats = _Repeats(target, level, summary, dict(summary_fields or {}), count_field)
                    self._repeats[key] = repeats
                repeats.count += 1
                self._schedule(self._window_end[key] - now)
        self._write(due)
        if logged and target.isEnabledFor(level):
            target.log(level, message, *args, extra=dict(extra) if extra else None)
        return logged

    def flush(self) -> None:
        """Log the counts not logged yet (at the window's end, and at shutdown)."""
        with self._lock:
            if self._summary is not None:
                self._summary.cancel()
                self._summary = None
            due = sorted(self._repeats.items())
            self._repeats.clear()
        self._write(due)

    def _take_due(self, now: float) -> list[tuple[str, _Repeats]]:
        due = [(key, r) for key, r in self._repeats.items() if now >= self._window_end.get(key, now)]
        for key, _ in due:
            del self._repeats[key]
        return sorted(due)

    def _schedule(self, delay: float) -> None:
        if self._summary is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop in this thread (a librdkafka flush): the next line or flush() sums up
        self._summary = loop.call_later(max(0.0, delay), self._on_timer)

    def _on_timer(self) -> None:
        with self._lock:
            self._summary = None
            now = self._clock()
            due = self._take_due(now)
            if self._repeats:
                next_end = min(self._window_end[key] for key in self._repeats)
                self._schedule(next_end - now)
        self._write(due)

    def _write(self, due: list[tuple[str, _Repeats]]) -> None:
        for _, repeats in due:
            if repeats.count and repeats.logger.isEnabledFor(repeats.level):
                repeats.logger.log(
                    repeats.level,
                    "%d more %s in the last %.1f s; logged once per window",
                    repeats.count,
                    repeats.summary,
                    self.window_seconds,
                    extra={**repeats.fields, repeats.count_field: repeats.count},
                )
