"""Log lines that repeat, at most once per window and kind, with a count of the rest.

Load shedding answers 503 before reading the body, exactly when the process has the least time
to spare. A WARNING line per refused request would cost about a fifth of each refusal and
flood the log with thousands of lines a second, all alike: the body was not read, so they
carry no event_id. Instead the first refusal of a window is logged as it happens and the rest
are counted, then summed up in one line when the window ends. Metrics still count every one
(`unit21_bridge_webhook_requests_total{status="503"}`, `unit21_bridge_refusals_total`).

The same mechanism keeps other failures that come by the thousand to a line per window: 503s
answered after the body was read because the spool cannot write, the spool's own failed
writes, deletes and reads (bridge/delivery/spool.py), 4xx answers without an event_id (a sender with a
wrong secret, a scanner), the door's events (a connection over the cap, an oversized head, a
body that times out or stops short: bridge/ingress/door.py, per 10 s) and librdkafka's lines
during an outage (a disconnect and two connect failures per broker and retry,
bridge/delivery/publisher.py), each with its own logger, level and summary. Each kind (an
error word, an operation, a librdkafka facility) has its own window, so a new kind of problem
is always logged at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("bridge.app")

_REFUSAL_SUMMARY = "%d more webhook request(s) answered 503 (%s) in the last %.1f s; logged once per window"
_GENERIC_SUMMARY = "%d more %s in the last %.1f s; logged once per window"


def _refusal_summary(error: str, count: int) -> dict[str, Any]:
    return {"error": error, "status": 503, "refused": count}


@dataclass
class _Repeats:
    logger: logging.Logger
    level: int
    summary: str  # formatted with (count, kind, window_seconds)
    kind: str
    extra: Callable[[int], dict[str, Any]]
    count: int = 0


class RefusalLog:
    """Thread-safe; the summary line is written by a timer when an asyncio loop runs in the
    calling thread, otherwise by the next line logged after the window or by `flush()`."""

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
        self._lock = threading.Lock()
        self._window_end: dict[str, float] = {}
        self._repeats: dict[str, _Repeats] = {}
        self._summary: asyncio.TimerHandle | None = None

    def refused(
        self,
        error: str,
        detail: str,
        latency_ms: float,
        context: Mapping[str, Any] | None = None,
        *,
        status: int = 503,
        level: int | None = None,
    ) -> None:
        """A webhook refused; `context` adds the request's fields (event_id...) to the line.
        A 503 is logged once per window with the count of the rest; other statuses once per kind."""
        extra = {
            **(context or {}),
            "error": error,
            "detail": detail,
            "status": status,
            "latency_ms": latency_ms,
        }
        if status == 503:
            self.event(error, "webhook answered 503", extra=extra)
            return
        self.once(
            error,
            self._level if level is None else level,
            "webhook answered %d",
            status,
            extra=extra,
            summary=f"webhook request(s) answered {status} ({error})",
            summary_fields={"error": error, "status": status},
            count_field="refused",
        )

    def event(self, kind: str, message: str, *args: object, extra: Mapping[str, Any] | None = None) -> None:
        """Log `message` if it is the first of its kind in the window, else count it under `kind`."""
        summary_extra = self._summary_extra
        self._record(
            kind,
            self._level,
            message,
            args,
            extra,
            lambda: _Repeats(
                self._logger, self._level, self._summary_format, kind, lambda n: summary_extra(kind, n)
            ),
            self._logger,
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
        """Like `event`, with this line's own level, logger and summary ("N more <summary> in
        the last ... s", fields `summary_fields` and `count_field`: N). Returns whether it was logged."""
        target = logger or self._logger
        fields = dict(summary_fields or {})
        return self._record(
            key,
            level,
            message,
            args,
            extra,
            lambda: _Repeats(target, level, _GENERIC_SUMMARY, summary, lambda n: {**fields, count_field: n}),
            target,
        )

    def flush(self) -> None:
        """Log the counts not logged yet (at the window's end, and at shutdown)."""
        with self._lock:
            if self._summary is not None:
                self._summary.cancel()
                self._summary = None
            due = sorted(self._repeats.items())
            self._repeats.clear()
        self._write(due)

    def _record(
        self,
        key: str,
        level: int,
        message: str,
        args: tuple[Any, ...],
        extra: Mapping[str, Any] | None,
        repeats: Callable[[], _Repeats],
        logger: logging.Logger,
    ) -> bool:
        now = self._clock()
        with self._lock:
            due = self._take_due(now)
            logged = now >= self._window_end.get(key, float("-inf"))
            if logged:
                self._window_end[key] = now + self.window_seconds
            else:
                counted = self._repeats.get(key)
                if counted is None:
                    counted = self._repeats[key] = repeats()
                counted.count += 1
                self._schedule(self._window_end[key] - now)
        self._write(due)
        if logged:
            logger.log(level, message, *args, extra=dict(extra) if extra else None)
        return logged

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
            if repeats.count:
                repeats.logger.log(
                    repeats.level,
                    repeats.summary,
                    repeats.count,
                    repeats.kind,
                    self.window_seconds,
                    extra=repeats.extra(repeats.count),
                )
