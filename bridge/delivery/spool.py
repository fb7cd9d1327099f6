"""Durable local spool: records Kafka did not acknowledge in time wait on disk until it does.

A record is appended (and fsync'ed) before the request is answered 202; the drainer
(bridge/delivery/drainer.py) sends spooled records to Kafka in spool order and deletes each one
only after the broker's ack. The storage (one SQLite file per process) is bridge/delivery/store.py;
the files of processes that are gone are adopted by bridge/delivery/adoption.py.

Threads: every SQLite call runs on one dedicated thread. The asyncio side keeps the counters
(depth, bytes, which keys are spooled), so the request path reads them without disk I/O.
Concurrent appends are group-committed: one transaction and one fsync carry every record that
arrived while the previous commit was being written.

A full or failing disk (docs/delivery.md, "When the spool's disk fills up or fails"): a record
Kafka acknowledged is forgotten by the counters whether or not its row could be deleted, so it
never holds its key and is never sent again by this process; its seq is remembered and the
deletion retried (`repair`). When every record of the file is in Kafka but the disk is too full
to delete them, the file is replaced by an empty one, which frees its space. Failures are counted
per operation (write, delete, read), logged once per window with counts, and shown in /readyz.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.delivery.adoption import adopt_orphans, take_over_an_orphan
from bridge.delivery.sizes import Headers, record_size
from bridge.delivery.store import (
    DB_SUFFIX,
    DISK_ERRORS,
    FILE_PREFIX,
    LOCK_SUFFIX,
    Row,
    SpooledRecord,
    SpoolError,
    SpoolFull,
    SpoolKey,
    Store,
    Summary,
    encode_headers,
    lock_file,
    remove_files,
)
from bridge.errors import SPOOL_OPERATIONS
from bridge.ops.refusals import RefusalLog

__all__ = ["OPERATIONS", "Spool", "SpoolError", "SpoolFull", "SpooledRecord"]

log = logging.getLogger("bridge.spool")

OPERATIONS = SPOOL_OPERATIONS
# Retrying a failed deletion or probing a failed disk: first after this long, doubling up to the maximum.
REPAIR_MIN_SECONDS = 0.5
REPAIR_MAX_SECONDS = 5.0


@dataclass
class _Failure:
    """An operation failing since `since` (monotonic), `count` times in a row."""

    since: float
    error: str
    count: int = 1


class Spool:
    """This process's spool: an append-only queue on disk with in-memory counters."""

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        observer: Callable[[int, float], None] | None = None,
        *,
        on_error: Callable[[str], None] | None = None,
        on_health: Callable[[bool], None] | None = None,
    ) -> None:
        """`observer(depth, oldest_age_seconds)` is told whenever they change (the metrics gauges);
        `on_error(operation)` of every failed write, delete or read, `on_health(healthy)` of changes."""
        self.directory = directory
        self.max_bytes = max_bytes
        self._observer = observer
        self._on_error = on_error
        self._on_health = on_health
        taken_over = self._open(directory)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")
        self._count = 0
        self._bytes = 0
        self._oldest: float | None = None
        self._keys: Counter[SpoolKey] = Counter()
        self._pending: list[tuple[Row, asyncio.Future[None]]] = []
        self._pending_lock = threading.Lock()
        self._flush_scheduled = False
        self._written = asyncio.Event()  # set when records are committed; the drainer waits on it
        self._refused = False  # a record was refused for lack of room, and nothing was freed since
        # seqs of records Kafka refuses for good (too large for the topic, invalid). They stay on
        # disk, skipped by the drainer until this process ends; the next one tries them again.
        self._parked: set[int] = set()
        # seqs of records Kafka acknowledged whose row could not be deleted (disk full or failing):
        # no longer counted, never sent again by this process; `repair` retries the deletion.
        self._undeleted: set[int] = set()
        self._failures: dict[str, _Failure] = {}  # operation -> failing since; empty: healthy
        self._repair_delay = 0.0
        self._repair_at = 0.0
        # Orphans whose rows we adopted but whose files could not be removed: their locks stay
        # held, so this process does not adopt (and send) them twice.
        self._held_locks: list[int] = []
        self._errors = RefusalLog(
            logger=log,
            level=logging.ERROR,
            summary="spool: %d more failed %s(s) in the last %.1f s; logged once per window",
            summary_extra=lambda operation, count: {"operation": operation, "failures": count},
        )
        self._closed = False
        self._start(taken_over)

    def _open(self, directory: Path) -> Summary:
        """Create and lock this process's file (or take over an orphan's when there is no room)."""
        try:
            directory.mkdir(parents=True, exist_ok=True)
            name = f"{FILE_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
            self.path = directory / f"{name}{DB_SUFFIX}"
            lock_fd = lock_file(directory / f"{name}{LOCK_SUFFIX}", create=True)
            if lock_fd is None:
                raise OSError(f"{name}{LOCK_SUFFIX} is locked by another process")
            self._lock_fd = lock_fd
            try:
                # None only while the file is being replaced and the new one could not be created yet.
                self._store: Store | None = Store(self.path)
            except sqlite3.Error as exc:
                return self._take_over_an_orphan(exc)
        except (OSError, sqlite3.Error) as exc:
            raise SpoolError(f"BRIDGE_SPOOL_DIR={directory}: cannot open the spool: {exc}") from exc
        return Summary()

    def _take_over_an_orphan(self, error: sqlite3.Error) -> Summary:
        """No room for a new file: make a dead process's file this process's own (adoption.py)."""
        db, fd, store, summary = take_over_an_orphan(self.directory, self.path, error)
        with contextlib.suppress(OSError):
            remove_files(self.path)
            self.path.with_suffix(LOCK_SUFFIX).unlink()
        os.close(self._lock_fd)
        self.path, self._lock_fd, self._store = db, fd, store
        return summary

    def _start(self, taken_over: Summary) -> None:
        """Count what the file holds, adopt the orphans, and report (start-up, nothing served yet)."""
        self._absorb(taken_over)
        summary = self._adopt_orphans()  # start-up: blocking is fine, nothing is served yet
        self._absorb(summary)
        self.report()
        if self._on_health is not None:
            self._on_health(True)
        if summary.error is not None:
            self._failed(
                "write", summary.error, "spool: cannot adopt the spool files of processes that are gone"
            )
        if self._count:
            log.warning(
                "spool: adopted %d record(s) (%d bytes) left by earlier processes in %s; draining them first",
                self._count,
                self._bytes,
                self.directory,
            )

    # -- what the request path and /readyz read (no I/O) -------------------------------------

    def depth(self) -> int:
        return self._count

    def size_bytes(self) -> int:
        return self._bytes

    def oldest_age_seconds(self) -> float:
        return 0.0 if self._oldest is None else max(0.0, time.time() - self._oldest)

    def has_room(self) -> bool:
        return not self._refused and self._bytes < self.max_bytes

    def healthy(self) -> bool:
        """No write, delete or read of the spool is failing."""
        return not self._failures

    def writable(self) -> bool:
        """False while writes or deletes fail: the spool cannot be counted on to take a record."""
        return self._store is not None and "write" not in self._failures and "delete" not in self._failures

    def holds(self, topic: str, key: bytes) -> bool:
        """True while an earlier record for this partition key waits here: a new one must queue behind it.

        Not while the spool cannot be read: its records cannot go first, and holding their keys
        would refuse every later webhook of those keys until the disk is repaired (docs/delivery.md)."""
        return bool(self._count) and (topic, key) in self._keys and "read" not in self._failures

    def report(self) -> None:
        """Tell the observer the current depth and age (the drainer also calls this on a timer)."""
        if self._observer is not None:
            self._observer(self._count, self.oldest_age_seconds())

    def detail(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "depth": self._count,
            "bytes": self._bytes,
            "max_bytes": self.max_bytes,
            "oldest_age_seconds": round(self.oldest_age_seconds(), 3),
            "parked": len(self._parked),
            "file": str(self.path),
            "healthy": not self._failures,
            # In Kafka, but still in the file: the deletion is retried; sent again only by a next
            # process that adopts the file (at most one extra copy, as after a crash).
            "delivered_not_deleted": len(self._undeleted),
            "failing": {
                operation: {
                    "error": failure.error,
                    "failures": failure.count,
                    "since_seconds": round(now - failure.since, 1),
                }
                for operation, failure in self._failures.items()
            },
        }

    def parked(self) -> int:
        return len(self._parked)

    # -- failures and recovery ---------------------------------------------------------------

    def _failed(self, operation: str, exc: BaseException, message: str, *args: object) -> None:
        """Count a failed operation, log it once per window, and mark the spool unhealthy."""
        was_healthy = not self._failures
        failure = self._failures.get(operation)
        if failure is None:
            self._failures[operation] = _Failure(time.monotonic(), str(exc))
        else:
            failure.count += 1
            failure.error = str(exc)
        if self._on_error is not None:
            self._on_error(operation)
        self._errors.event(
            operation,
            f"{message}: %s",
            *args,
            exc,
            extra={"operation": operation, "spool_file": str(self.path)},
        )
        if was_healthy:
            if self._on_health is not None:
                self._on_health(False)
            self._written.set()  # the drainer's wait ends, so it schedules the repair

    def _recovered(self, operation: str) -> None:
        failure = self._failures.pop(operation, None)
        if failure is None:
            return
        log.warning(
            "spool: %s works again after %.1f s and %d failure(s)",
            operation,
            time.monotonic() - failure.since,
            failure.count,
            extra={"operation": operation, "spool_file": str(self.path)},
        )
        if not self._failures:
            self._repair_delay = 0.0
            if self._on_health is not None:
                self._on_health(True)

    def repair_due_in(self) -> float | None:
        """Seconds until `repair` has something to try; None while there is nothing to repair."""
        if not (self._undeleted or self._store is None or "write" in self._failures):
            return None
        return max(0.0, self._repair_at - time.monotonic())

    async def repair(self) -> None:
        """Retry what failed (the drainer calls this when due): delete the records in Kafka that
        are still in the file, replacing the file when all of it is in Kafka and deleting fails;
        or probe whether the disk takes writes again. Reads are retried by every `head`."""
        due = self.repair_due_in()
        if due is None or due > 0:
            return
        operation = "delete" if self._undeleted or self._store is None else "write"
        try:
            if operation == "delete":
                await self._delete_undeleted()
            else:
                await self._run(self._probe)
        except DISK_ERRORS as exc:
            self._repair_delay = min(max(self._repair_delay * 2, REPAIR_MIN_SECONDS), REPAIR_MAX_SECONDS)
            self._repair_at = time.monotonic() + self._repair_delay
            self._failed(operation, exc, "spool: retrying the failed %s of %s failed", operation, self.path)
            return
        self._repair_at = time.monotonic()
        self._recovered(operation)

    async def _delete_undeleted(self) -> None:
        seqs = sorted(self._undeleted)
        try:
            await self._run(lambda: self._live().delete(seqs))
        except DISK_ERRORS:
            if self._count:
                raise
            # Every record in the file is in Kafka, and the disk cannot take even a deletion
            # (full: SQLite needs room in its log to delete). Replace the file: that frees its space.
            await self._run(self._replace_file)
            log.warning(
                "spool: replaced %s by an empty file: its %d record(s) were in Kafka, but not deletable",
                self.path,
                len(seqs),
            )
            self._undeleted.clear()
            return
        self._undeleted.difference_update(seqs)

    def _live(self) -> Store:
        """Spool thread: the store, unless it is being replaced."""
        if self._store is None:
            raise SpoolError(f"{self.path} is being replaced and could not be created yet")
        return self._store

    def _probe(self) -> None:
        self._live().probe()

    def _replace_file(self) -> None:
        """Spool thread: drop this process's file and start an empty one (every record is in Kafka)."""
        store, self._store = self._store, None
        if store is not None:
            with contextlib.suppress(sqlite3.Error):
                store.close()
        # The log first: a new database must never meet the old one's WAL, which SQLite would replay.
        for suffix in ("-wal", "-journal", "-shm", ""):
            with contextlib.suppress(FileNotFoundError):
                self.path.with_name(self.path.name + suffix).unlink()
        self._store = Store(self.path)

    # -- writing -----------------------------------------------------------------------------

    async def append(self, topic: str, key: bytes, value: bytes, headers: Headers, event_id: str) -> None:
        """Return once the record is committed to disk; raise SpoolFull or SpoolError otherwise."""
        if self._closed:
            raise SpoolError("the spool is closed")
        size = record_size(key, value, headers)
        if self._bytes + size > self.max_bytes:
            self._refused = True
            raise SpoolFull(
                f"the spool holds {self._bytes} of {self.max_bytes} bytes (BRIDGE_SPOOL_MAX_BYTES)"
            )
        now = time.time()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        # Counted at once, so a concurrent request for the same key already queues behind this one.
        self._count += 1
        self._bytes += size
        self._keys[(topic, key)] += 1
        if self._oldest is None:
            self._oldest = now
        with self._pending_lock:
            self._pending.append(((topic, key, value, encode_headers(headers), event_id, now, size), future))
            schedule = not self._flush_scheduled
            self._flush_scheduled = True
        if schedule:
            self._executor.submit(self._flush, loop)
        # Shielded: a cancelled request must not forget a record that is being written anyway.
        await asyncio.shield(future)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """Spool thread: commit every pending record in one transaction (group commit)."""
        with self._pending_lock:
            batch, self._pending = self._pending, []
            self._flush_scheduled = False
        if not batch:
            return
        try:
            self._live().insert([row for row, _ in batch])
        except Exception as exc:  # sqlite3.Error, OSError (disk full, I/O error)
            loop.call_soon_threadsafe(self._append_failed, batch, exc)
        else:
            loop.call_soon_threadsafe(self._append_done, batch)

    def _append_done(self, batch: list[tuple[Row, asyncio.Future[None]]]) -> None:
        for _, future in batch:
            if not future.done():
                future.set_result(None)
        self._written.set()
        self._recovered("write")
        self.report()

    def _append_failed(self, batch: list[tuple[Row, asyncio.Future[None]]], exc: Exception) -> None:
        self._failed("write", exc, "spool: cannot write %d record(s) to %s", len(batch), self.path)
        self._forget([(row[0], row[1], row[6]) for row, _ in batch])
        self.report()
        for _, future in batch:
            if not future.done():
                future.set_exception(SpoolError(f"cannot write to the spool: {exc}"))

    # -- draining ----------------------------------------------------------------------------

    async def head(self, max_records: int, max_bytes: int) -> list[SpooledRecord]:
        """The oldest committed records, in spool order (at least one if any, whatever its size).

        Raises SpoolError when the disk cannot be read (counted and logged here)."""
        self._written.clear()
        if self._store is None:
            return []  # only while the file is replaced, which it is only when nothing waits
        exclude = tuple(self._parked | self._undeleted)
        try:
            records: list[SpooledRecord] = await self._run(
                lambda: self._live().head(max_records, max_bytes, exclude)
            )
        except DISK_ERRORS as exc:
            self._failed("read", exc, "spool: cannot read records from %s", self.path)
            raise SpoolError(f"cannot read the spool: {exc}") from exc
        self._recovered("read")
        return records

    def park(self, record: SpooledRecord, reason: str) -> None:
        """Stop sending a record Kafka refuses for good; it stays in the spool (and on disk)."""
        self._parked.add(record.seq)
        log.error(
            "spool: Kafka refuses the record for good (%s); it stays in %s, parked until the bridge "
            "restarts. Fix the cause (e.g. the topic's max.message.bytes), then restart to retry it.",
            reason,
            self.path,
            extra={"event_id": record.event_id, "topic": record.topic, "spool_seq": record.seq},
        )

    async def wait_for_records(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._written.wait(), seconds)

    def wake(self) -> None:
        self._written.set()

    async def remove(self, records: Sequence[SpooledRecord]) -> None:
        """Delete records Kafka acknowledged.

        They leave the counters (and stop holding their keys) even when the disk refuses the
        deletion: Kafka has them, so they are remembered as undeleted, never sent again by this
        process, and deleted by a later `repair`."""
        if not records:
            return
        seqs = [r.seq for r in records]
        try:
            await self._run(lambda: self._live().delete(seqs))
        except DISK_ERRORS as exc:
            self._undeleted.update(seqs)
            self._failed(
                "delete", exc, "spool: cannot delete %d record(s) in Kafka from %s", len(seqs), self.path
            )
        for record in records:
            self._parked.discard(record.seq)
        self._forget([(r.topic, r.key, r.size) for r in records])
        if self._count:
            exclude = tuple(self._undeleted)
            with contextlib.suppress(*DISK_ERRORS):  # the age stays as it was until a read works
                oldest = await self._run(lambda: self._live().oldest(exclude))
                self._oldest = oldest if oldest is not None else self._oldest
        self.report()

    def _forget(self, rows: Sequence[tuple[str, bytes, int]]) -> None:
        self._refused = False
        for topic, key, size in rows:
            self._count -= 1
            self._bytes -= size
            spool_key = (topic, key)
            self._keys[spool_key] -= 1
            if self._keys[spool_key] <= 0:
                del self._keys[spool_key]
        if not self._count:
            self._oldest = None

    # -- orphans (files of processes that are gone) ------------------------------------------

    async def adopt_orphans(self) -> int:
        if self._store is None:
            return 0
        summary: Summary = await self._run(self._adopt_orphans)
        self._absorb(summary)
        self.report()
        if summary.error is not None:
            self._failed(
                "write", summary.error, "spool: cannot adopt the spool files of processes that are gone"
            )
        if summary.count:
            log.warning("spool: adopted %d record(s) left by a process that is gone", summary.count)
            self._written.set()
        return summary.count

    def _adopt_orphans(self) -> Summary:
        """Spool thread (or start-up): adopt every orphan of the directory (adoption.py)."""
        return adopt_orphans(self._live, self.directory, self.path, self._held_locks)

    def _absorb(self, summary: Summary) -> None:
        self._count += summary.count
        self._bytes += summary.size
        self._keys.update(summary.keys)
        if summary.oldest is not None:
            self._oldest = summary.oldest if self._oldest is None else min(self._oldest, summary.oldest)

    # -- lifecycle ---------------------------------------------------------------------------

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def close(self) -> None:
        """Wait for pending writes, then close; an empty spool's files are removed, a non-empty
        one stays for the next process to adopt."""
        if self._closed:
            return
        self._closed = True
        await self._run(lambda: None)  # every write submitted before now has finished
        store = self._store
        if store is not None:
            try:
                await self._run(store.close)
            except sqlite3.Error as exc:
                log.error("spool: closing %s failed: %s", self.path, exc)
        self._executor.shutdown(wait=True)
        self._errors.flush()
        lock_path = self.path.with_suffix(LOCK_SUFFIX)
        if self._count == 0:
            # Records in Kafka whose deletion failed go with the file: nothing in it waits.
            try:
                remove_files(self.path)
                with contextlib.suppress(FileNotFoundError):
                    lock_path.unlink()
            except OSError as exc:
                log.error(
                    "spool: cannot remove %s (%s); the %d record(s) in it are all in Kafka, and the next "
                    "process that adopts it sends them again",
                    self.path,
                    exc,
                    len(self._undeleted),
                )
        else:
            log.warning(
                "spool: %d record(s) not yet in Kafka stay in %s; the next bridge process delivers them%s",
                self._count,
                self.path,
                f" (and sends again the {len(self._undeleted)} already in Kafka whose deletion failed)"
                if self._undeleted
                else "",
            )
        for fd in (self._lock_fd, *self._held_locks):
            os.close(fd)
