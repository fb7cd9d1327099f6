"""Durable local spool: records Kafka did not acknowledge in time wait on disk until it does.

A record is appended (and fsync'ed) before the request is answered 202; the `Drainer` sends
spooled records to Kafka in spool order and deletes each one only after the broker's ack.

Why SQLite (the standard library's `sqlite3`) and not a file format of our own: a write-ahead
log that survives kill -9 and power loss needs atomic appends, torn-write detection, crash
recovery, compaction of consumed entries and a way to delete from the head while appending
at the tail. SQLite in WAL mode with `synchronous=FULL` gives all of that (one fsync of the
WAL per commit), is among the most tested storage engines there is, needs no new dependency
and can be inspected with the `sqlite3` shell when something looks wrong.

Layout: one database per process in BRIDGE_SPOOL_DIR, `spool-<pid>-<random>.db`, beside a
`.lock` file on which the process holds an exclusive `flock` for its whole life. A database
whose lock is free belongs to a process that is gone (a crash, kill -9, a replaced uvicorn
worker): a live process adopts it — copies its rows behind its own in one transaction, then
deletes it — at start-up and every ORPHAN_SCAN_SECONDS. The lock guarantees that two live
processes never drain the same file.

Threads: every SQLite call runs on one dedicated thread. The asyncio side keeps the counters
(depth, bytes, which keys are spooled), so the request path reads them without disk I/O.
Concurrent appends are group-committed: one transaction and one fsync carry every record that
arrived while the previous commit was being written.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

log = logging.getLogger("bridge.spool")

SCHEMA_VERSION = 1
FILE_PREFIX = "spool-"
ORPHAN_SCAN_SECONDS = 30.0
_DB_SUFFIX = ".db"
_LOCK_SUFFIX = ".lock"
_SIDE_SUFFIXES = ("-wal", "-shm", "-journal")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    headers BLOB NOT NULL,
    event_id TEXT NOT NULL,
    enqueued_at REAL NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS records_enqueued_at ON records (enqueued_at);
"""
_COLUMNS = "topic, key, value, headers, event_id, enqueued_at, size"

Headers = Sequence[tuple[str, bytes]]
Row = tuple[str, bytes, bytes, bytes, str, float, int]
SpoolKey = tuple[str, bytes]  # (topic, key): what decides the partition, so what must stay in order


class SpoolError(RuntimeError):
    """The spool could not take the record; the caller must not answer 2xx."""


class SpoolFull(SpoolError):
    """BRIDGE_SPOOL_MAX_BYTES reached: answer 503 with Retry-After."""


@dataclass(frozen=True, slots=True)
class SpooledRecord:
    seq: int
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    event_id: str
    enqueued_at: float  # epoch seconds
    size: int


def record_size(topic: str, key: bytes, value: bytes, headers: Headers) -> int:
    return len(topic) + len(key) + len(value) + sum(len(name) + len(data) for name, data in headers)


def encode_headers(headers: Headers) -> bytes:
    # latin-1 maps each byte to one code point and back, so header values survive byte for byte.
    return orjson.dumps([[name, data.decode("latin-1")] for name, data in headers])


def decode_headers(data: bytes) -> list[tuple[str, bytes]]:
    return [(name, value.encode("latin-1")) for name, value in orjson.loads(data)]


@dataclass
class _Summary:
    """Counts of a set of rows, folded into the in-memory counters."""

    count: int = 0
    size: int = 0
    oldest: float | None = None
    keys: Counter[SpoolKey] = field(default_factory=Counter)


class _Store:
    """One SQLite spool file. Only the spool thread calls its methods."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        mode = self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise SpoolError(f"{path}: SQLite refused WAL mode (got {mode}); is the file system local?")
        # FULL: the WAL is fsync'ed at every commit, so a 202 survives a power loss, not only a crash.
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA journal_size_limit=67108864")
        self.db.executescript(_SCHEMA)
        self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def insert(self, rows: list[Row]) -> None:
        with self._transaction():
            self.db.executemany(f"INSERT INTO records ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def head(self, max_records: int, max_bytes: int, exclude: Sequence[int] = ()) -> list[SpooledRecord]:
        out: list[SpooledRecord] = []
        total = 0
        skip = f"WHERE seq NOT IN ({','.join('?' * len(exclude))}) " if exclude else ""
        cursor = self.db.execute(
            f"SELECT seq, {_COLUMNS} FROM records {skip}ORDER BY seq LIMIT ?", (*exclude, max_records)
        )
        for seq, topic, key, value, headers, event_id, enqueued_at, size in cursor:
            if out and total + size > max_bytes:
                break
            total += size
            out.append(
                SpooledRecord(seq, topic, key, value, decode_headers(headers), event_id, enqueued_at, size)
            )
        cursor.close()
        return out

    def delete(self, seqs: list[int]) -> float | None:
        """Delete acknowledged rows; returns the enqueue time of the oldest row left."""
        with self._transaction():
            self.db.executemany("DELETE FROM records WHERE seq = ?", [(seq,) for seq in seqs])
        oldest: float | None = self.db.execute("SELECT MIN(enqueued_at) FROM records").fetchone()[0]
        return oldest

    def adopt(self, orphan: Path) -> _Summary:
        """Move every row of a dead process's spool behind ours, in its order, in one transaction."""
        self.db.execute("ATTACH DATABASE ? AS orphan", (str(orphan),))
        try:
            version = self.db.execute("PRAGMA orphan.user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise SpoolError(
                    f"{orphan}: spool format {version} is newer than this bridge ({SCHEMA_VERSION})"
                )
            has_table = self.db.execute(
                "SELECT COUNT(*) FROM orphan.sqlite_master WHERE type = 'table' AND name = 'records'"
            ).fetchone()[0]
            if not has_table:
                return _Summary()
            with self._transaction():
                count, size, oldest = self.db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(enqueued_at) FROM orphan.records"
                ).fetchone()
                keys: Counter[SpoolKey] = Counter(
                    {
                        (topic, key): n
                        for topic, key, n in self.db.execute(
                            "SELECT topic, key, COUNT(*) FROM orphan.records GROUP BY topic, key"
                        )
                    }
                )
                self.db.execute(
                    f"INSERT INTO main.records ({_COLUMNS}) "
                    f"SELECT {_COLUMNS} FROM orphan.records ORDER BY seq"
                )
            return _Summary(count, size, oldest, keys)
        finally:
            self.db.execute("DETACH DATABASE orphan")

    def close(self) -> None:
        self.db.close()


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One waiting record as `unit21-bridge spool list` shows it (no value: it is Avro)."""

    file: str
    seq: int
    topic: str
    key: bytes
    event_id: str
    headers: list[tuple[str, bytes]]
    enqueued_at: float
    size: int


def spool_files(directory: Path) -> list[Path]:
    """The spool databases in `directory`, live processes' and orphans' alike."""
    return sorted(directory.glob(f"{FILE_PREFIX}*{_DB_SUFFIX}"))


def list_spooled(files: Sequence[Path]) -> Iterator[SpoolEntry]:
    """Every record waiting in these spool files (see `spool_files`), file by file in spool order.

    Read-only and lock-free: the owning processes keep appending and draining meanwhile, so this
    is a snapshot per file. A file adopted (deleted) between listing and opening is skipped."""
    for db in files:
        try:
            connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        except sqlite3.OperationalError:
            continue
        try:
            rows = connection.execute(
                "SELECT seq, topic, key, event_id, headers, enqueued_at, size FROM records ORDER BY seq"
            )
            for seq, topic, key, event_id, headers, enqueued_at, size in rows:
                yield SpoolEntry(
                    db.name, seq, topic, key, event_id, decode_headers(headers), enqueued_at, size
                )
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):  # a file whose process had not created it yet
                raise SpoolError(f"{db}: {exc}") from exc
        finally:
            connection.close()


def _lock(path: Path, *, create: bool) -> int | None:
    """An exclusive flock on `path`, or None when another live process holds it."""
    try:
        fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The file may have been unlinked by its adopter between our open() and flock().
        if os.fstat(fd).st_ino != os.stat(path).st_ino:
            raise FileNotFoundError(path)
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)
        return None
    return fd


def _remove_files(db: Path) -> None:
    for path in (db, *(db.with_name(db.name + suffix) for suffix in _SIDE_SUFFIXES)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class Spool:
    """This process's spool: an append-only queue on disk with in-memory counters."""

    def __init__(
        self, directory: Path, max_bytes: int, observer: Callable[[int, float], None] | None = None
    ) -> None:
        """`observer(depth, oldest_age_seconds)` is told whenever they change (the metrics gauges)."""
        self.directory = directory
        self.max_bytes = max_bytes
        self._observer = observer
        try:
            directory.mkdir(parents=True, exist_ok=True)
            name = f"{FILE_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
            self.path = directory / f"{name}{_DB_SUFFIX}"
            lock_fd = _lock(directory / f"{name}{_LOCK_SUFFIX}", create=True)
            if lock_fd is None:
                raise OSError(f"{name}{_LOCK_SUFFIX} is locked by another process")
            self._lock_fd = lock_fd
            self._store = _Store(self.path)
        except (OSError, sqlite3.Error) as exc:
            raise SpoolError(f"BRIDGE_SPOOL_DIR={directory}: cannot open the spool: {exc}") from exc
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
        self._closed = False
        self._absorb(self._adopt_orphans())  # start-up: blocking is fine, nothing is served yet
        self.report()
        if self._count:
            log.warning(
                "spool: adopted %d record(s) (%d bytes) left by earlier processes in %s; draining them first",
                self._count,
                self._bytes,
                directory,
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

    def holds(self, topic: str, key: bytes) -> bool:
        """True while an earlier record for this partition key waits here: a new one must queue behind it."""
        return bool(self._count) and (topic, key) in self._keys

    def report(self) -> None:
        """Tell the observer the current depth and age (the drainer also calls this on a timer)."""
        if self._observer is not None:
            self._observer(self._count, self.oldest_age_seconds())

    def detail(self) -> dict[str, Any]:
        return {
            "depth": self._count,
            "bytes": self._bytes,
            "max_bytes": self.max_bytes,
            "oldest_age_seconds": round(self.oldest_age_seconds(), 3),
            "parked": len(self._parked),
            "file": str(self.path),
        }

    def parked(self) -> int:
        return len(self._parked)

    # -- writing -----------------------------------------------------------------------------

    async def append(self, topic: str, key: bytes, value: bytes, headers: Headers, event_id: str) -> None:
        """Return once the record is committed to disk; raise SpoolFull or SpoolError otherwise."""
        if self._closed:
            raise SpoolError("the spool is closed")
        size = record_size(topic, key, value, headers)
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
            self._store.insert([row for row, _ in batch])
        except Exception as exc:  # sqlite3.Error, OSError (disk full, I/O error)
            loop.call_soon_threadsafe(self._append_failed, batch, exc)
        else:
            loop.call_soon_threadsafe(self._append_done, batch)

    def _append_done(self, batch: list[tuple[Row, asyncio.Future[None]]]) -> None:
        for _, future in batch:
            if not future.done():
                future.set_result(None)
        self._written.set()
        self.report()

    def _append_failed(self, batch: list[tuple[Row, asyncio.Future[None]]], exc: Exception) -> None:
        log.error("spool: cannot write %d record(s) to %s: %s", len(batch), self.path, exc)
        self._forget([(row[0], row[1], row[6]) for row, _ in batch])
        self.report()
        for _, future in batch:
            if not future.done():
                future.set_exception(SpoolError(f"cannot write to the spool: {exc}"))

    # -- draining ----------------------------------------------------------------------------

    async def head(self, max_records: int, max_bytes: int) -> list[SpooledRecord]:
        """The oldest committed records, in spool order (at least one if any, whatever its size)."""
        self._written.clear()
        records: list[SpooledRecord] = await self._run(
            self._store.head, max_records, max_bytes, tuple(self._parked)
        )
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
        """Delete records Kafka acknowledged."""
        if not records:
            return
        oldest = await self._run(self._store.delete, [r.seq for r in records])
        for record in records:
            self._parked.discard(record.seq)
        self._forget([(r.topic, r.key, r.size) for r in records])
        if self._count:
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
        summary: _Summary = await self._run(self._adopt_orphans)
        self._absorb(summary)
        self.report()
        if summary.count:
            log.warning("spool: adopted %d record(s) left by a process that is gone", summary.count)
            self._written.set()
        return summary.count

    def _adopt_orphans(self) -> _Summary:
        total = _Summary()
        for db in spool_files(self.directory):
            if db == self.path:
                continue
            lock_path = db.with_suffix(_LOCK_SUFFIX)
            fd = _lock(lock_path, create=True)
            if fd is None:
                continue  # a live process owns it
            try:
                if not db.exists():
                    lock_path.unlink()  # adopted by someone else meanwhile; this lock file is ours
                    continue
                try:
                    summary = self._store.adopt(db)
                except (sqlite3.Error, SpoolError) as exc:
                    kept = db.with_name(db.name + ".unreadable")
                    db.rename(kept)
                    log.error("spool: cannot adopt %s (%s); kept it as %s for inspection", db, exc, kept)
                    lock_path.unlink()
                    continue
                _remove_files(db)
                lock_path.unlink()
                log.info("spool: adopted %d record(s) from %s", summary.count, db.name)
                total.count += summary.count
                total.size += summary.size
                if summary.oldest is not None:
                    total.oldest = (
                        summary.oldest if total.oldest is None else min(total.oldest, summary.oldest)
                    )
                total.keys.update(summary.keys)
            finally:
                os.close(fd)
        return total

    def _absorb(self, summary: _Summary) -> None:
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
        await self._run(self._store.close)
        self._executor.shutdown(wait=True)
        lock_path = self.path.with_suffix(_LOCK_SUFFIX)
        if self._count == 0:
            _remove_files(self.path)
            with contextlib.suppress(FileNotFoundError):
                lock_path.unlink()
        else:
            log.warning(
                "spool: %d record(s) not yet in Kafka stay in %s; the next bridge process delivers them",
                self._count,
                self.path,
            )
        os.close(self._lock_fd)


# -- the drainer ------------------------------------------------------------------------------


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
                batch = await self.spool.head(self.batch_records, self.batch_bytes)
                if not batch:
                    self._finish_run()
                    if stopping:
                        return
                    await self.spool.wait_for_records(max(0.0, next_scan - time.monotonic()))
                    continue
                if self._run_started is None:
                    self._run_started = time.monotonic()
                acked, failures = await self._send(batch)
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
            elif getattr(result, "permanent", False):
                # Retrying cannot help, and counting it as a failure would hold the whole spool
                # at the longest backoff.
                self.spool.park(record, f"{getattr(result, 'reason', '')}: {result}")
            else:
                failed.append(result)
        await self.spool.remove(acked)
        self._run_count += len(acked)
        self.delivered += len(acked)
        if failed:
            reasons = Counter(getattr(exc, "reason", type(exc).__name__) for exc in failed)
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
