"""The drainer: sends spooled records to Kafka in spool order and deletes each one only after
the broker's ack; also the spool's clock (orphan scans, repairs, the depth and age gauges)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from typing import Any, Protocol

from bridge.delivery.adoption import ORPHAN_SCAN_SECONDS
from bridge.delivery.publisher import PublishError
from bridge.delivery.sizes import Headers
from bridge.delivery.spool import Spool
from bridge.delivery.store import SpooledRecord, SpoolError

log = logging.getLogger("bridge.spool")


class _Sender(Protocol):
    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Headers, path: str = ...
    ) -> Any: ...


class Drainer:
    """Sends spooled records to Kafka in spool order; deletes each only after the broker's ack."""

    def __init__(
        self,
        spool: Spool,
        publisher: _Sender,
        *,
        batch_records: int = 500,
        batch_bytes: int = 8 * 1024 * 1024,
        max_backoff: float = 4.0,
        orphan_scan_seconds: float = ORPHAN_SCAN_SECONDS,
    ) -> None:
        self.spool = spool
        self.publisher = publisher
        self.batch_records = batch_records
        self.batch_bytes = batch_bytes
        self.max_backoff = max_backoff
        self.orphan_scan_seconds = orphan_scan_seconds
        self._stopping = asyncio.Event()
        self._drain_before_stop = False  # stop(drain=True): empty the spool first
        self._task: asyncio.Task[None] | None = None
        self._run_started: float | None = None
        self._run_count = 0
        self.delivered = 0  # records acknowledged and deleted since start()

    def start(self) -> Drainer:
        self._task = asyncio.create_task(self._run(), name="spool-drainer")
        return self

    async def stop(self, grace: float, *, drain: bool = False) -> None:
        """Let a batch in flight finish (its acks delete records) within `grace` seconds, then stop.

        With `drain`, first send everything the spool holds (a pod being deleted takes its
        spool with it unless the volume is persistent): it stops when the spool is empty, when a
        whole batch fails (Kafka does not take records now; they stay on disk) or at `grace`."""
        task, self._task = self._task, None
        if task is None:
            return
        self._drain_before_stop = drain
        self._stopping.set()
        self.spool.wake()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        backoff = 0.0
        next_scan = time.monotonic() + self.orphan_scan_seconds
        while not self._stopping.is_set() or self._drain_before_stop:
            stopping = self._stopping.is_set()
            self.spool.report()
            acked = 0
            try:
                if not stopping and time.monotonic() >= next_scan:
                    next_scan = time.monotonic() + self.orphan_scan_seconds
                    await self.spool.adopt_orphans()
                await self.spool.repair()
                batch = await self.spool.head(self.batch_records, self.batch_bytes)
                if not batch:
                    self._finish_run()
                    if stopping:
                        return
                    wait = next_scan - time.monotonic()
                    repair_due = self.spool.repair_due_in()
                    if repair_due is not None:
                        wait = min(wait, repair_due)
                    await self.spool.wait_for_records(max(0.0, wait))
                    continue
                if self._run_started is None:
                    self._run_started = time.monotonic()
                acked, failures = await self._send(batch)
            except SpoolError:
                failures = 1  # the disk failed: counted and logged (once per window) by the spool
            except Exception:
                log.exception("spool: drainer error; retrying")
                failures = 1
            if failures and stopping:
                if not acked:
                    return  # Kafka takes nothing now: what is left stays on disk for the next process
                continue
            if failures:
                backoff = min(max(backoff * 2, 0.25), self.max_backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), backoff)
            else:
                backoff = 0.0

    async def _send(self, batch: list[SpooledRecord]) -> tuple[int, int]:
        """Returns (acknowledged, failed) counts."""
        results = await asyncio.gather(
            *(self.publisher.publish(r.topic, r.key, r.value, r.headers, path="drain") for r in batch),
            return_exceptions=True,
        )
        acked: list[SpooledRecord] = []
        failed: list[BaseException] = []
        for record, result in zip(batch, results, strict=True):
            if not isinstance(result, BaseException):
                acked.append(record)
            elif isinstance(result, PublishError) and result.permanent:
                # Retrying cannot help, and counting it as a failure would hold the whole spool
                # at the longest backoff.
                self.spool.park(record, f"{result.reason}: {result}")
            else:
                failed.append(result)
        await self.spool.remove(acked)
        self._run_count += len(acked)
        self.delivered += len(acked)
        if failed:
            reasons = Counter(
                exc.reason if isinstance(exc, PublishError) else type(exc).__name__ for exc in failed
            )
            log.warning(
                "spool: Kafka acknowledged %d of %d record(s) (not: %s); %d wait in the spool",
                len(acked),
                len(batch),
                ", ".join(f"{reason}={n}" for reason, n in reasons.items()),
                self.spool.depth(),
            )
        return len(acked), len(failed)

    def _finish_run(self) -> None:
        if self._run_started is not None and self.spool.depth() == self.spool.parked():
            log.info(
                "spool: drained, %d record(s) delivered in %.2f s (%d parked)",
                self._run_count,
                time.monotonic() - self._run_started,
                self.spool.parked(),
            )
            self._run_started = None
            self._run_count = 0
