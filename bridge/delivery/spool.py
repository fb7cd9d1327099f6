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

from bridge.errors import SPOOL_OPERATIONS, BridgeError
from bridge.ops.refusals import RefusalLog

log = logging.getLogger("bridge.spool")

SCHEMA_VERSION = 1
FILE_PREFIX = "spool-"
ORPHAN_SCAN_SECONDS = 30.0
OPERATIONS = SPOOL_OPERATIONS
# Retrying a failed deletion or probing a failed disk: first after this long, doubling up to the maximum.
REPAIR_MIN_SECONDS = 0.5
REPAIR_MAX_SECONDS = 5.0
PROBE_BYTES = 64 * 1024
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


class SpoolError(BridgeError, RuntimeError):
    """The spool could not take the record; the caller must not answer 2xx."""


class SpoolFull(SpoolError):
    """BRIDGE_SPOOL_MAX_BYTES reached: answer 503 with Retry-After."""


# What a failing disk raises through SQLite and the file calls; SpoolError: the file is being replaced.
_DISK_ERRORS = (sqlite3.Error, OSError, SpoolError)


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
    error: BaseException | None = None  # our disk failed during the scan; the rest waits for the next one


@dataclass
class _Failure:
    """An operation failing since `since` (monotonic), `count` times in a row."""

    since: float
    error: str
    count: int = 1


class _Store:
    """One SQLite spool file. Only the spool thread calls its methods."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            mode = self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise SpoolError(f"{path}: SQLite refused WAL mode (got {mode}); is the file system local?")
            # FULL: the WAL is fsync'ed at every commit, so a 202 survives a power loss, not only a crash.
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA journal_size_limit=67108864")
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise SpoolError(
                    f"{path}: spool format {version} is newer than this bridge ({SCHEMA_VERSION})"
                )
            self.db.executescript(_SCHEMA)
            if version != SCHEMA_VERSION:  # written only when it changes: opening needs no room
                self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            self.db.close()
            raise

    def summary(self) -> _Summary:
        """Counts of every row (for the in-memory counters of a file taken over as it is)."""
        count, size, oldest = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(enqueued_at) FROM records"
        ).fetchone()
        keys: Counter[SpoolKey] = Counter(
            {
                (topic, key): n
                for topic, key, n in self.db.execute(
                    "SELECT topic, key, COUNT(*) FROM records GROUP BY topic, key"
                )
            }
        )
        return _Summary(count, size, oldest, keys)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (disk full, I/O error) may leave the transaction open, and a later
            # COMMIT would then write rows whose request was answered 503. SQLite may already
            # have rolled back by itself; a failing ROLLBACK must not hide the first error.
            if self.db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
            raise

    def insert(self, rows: list[Row]) -> None:
        with self._transaction():
            self.db.executemany(f"INSERT INTO records ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def head(self, max_records: int, max_bytes: int, exclude: Sequence[int] = ()) -> list[SpooledRecord]:
        out: list[SpooledRecord] = []
        total = 0
        # One JSON parameter, not one per seq: a failed disk can leave more undeleted seqs than
        # SQLite takes parameters.
        skip = "WHERE seq NOT IN (SELECT value FROM json_each(?)) " if exclude else ""
        params: tuple[Any, ...] = (orjson.dumps(list(exclude)).decode(),) if exclude else ()
        cursor = self.db.execute(
            f"SELECT seq, {_COLUMNS} FROM records {skip}ORDER BY seq LIMIT ?", (*params, max_records)
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

    def delete(self, seqs: list[int]) -> None:
        """Delete acknowledged rows."""
        with self._transaction():
            self.db.executemany("DELETE FROM records WHERE seq = ?", [(seq,) for seq in seqs])

    def oldest(self, exclude: Sequence[int] = ()) -> float | None:
        """The enqueue time of the oldest row not in `exclude` (rows in Kafka, not yet deleted)."""
        if exclude:
            query = "SELECT MIN(enqueued_at) FROM records WHERE seq NOT IN (SELECT value FROM json_each(?))"
            row = self.db.execute(query, (orjson.dumps(list(exclude)).decode(),)).fetchone()
        else:
            row = self.db.execute("SELECT MIN(enqueued_at) FROM records").fetchone()
        oldest: float | None = row[0]
        return oldest

    def probe(self) -> None:
        """Does the disk take writes again? A committed (fsync'ed) write of PROBE_BYTES, more
        than a batch of ordinary records: a write of a page or two can fit on a disk that still
        refuses every record, and the spool would then claim to work when it does not."""
        with self._transaction():
            self.db.execute("CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
            self.db.execute("INSERT OR REPLACE INTO probe (id, data) VALUES (1, zeroblob(?))", (PROBE_BYTES,))
        with contextlib.suppress(sqlite3.Error), self._transaction():  # the next probe replaces it anyway
            self.db.execute("DELETE FROM probe")

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
        try:
            directory.mkdir(parents=True, exist_ok=True)
            name = f"{FILE_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
            self.path = directory / f"{name}{_DB_SUFFIX}"
            lock_fd = _lock(directory / f"{name}{_LOCK_SUFFIX}", create=True)
            if lock_fd is None:
                raise OSError(f"{name}{_LOCK_SUFFIX} is locked by another process")
            self._lock_fd = lock_fd
            taken_over = _Summary()
            try:
                # None only while the file is being replaced and the new one could not be created yet.
                self._store: _Store | None = _Store(self.path)
            except sqlite3.Error as exc:
                taken_over = self._take_over_an_orphan(exc)
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
                directory,
            )

    def _take_over_an_orphan(self, error: sqlite3.Error) -> _Summary:
        """No room (or a failing disk) for a new spool file: use a dead process's file as it is.

        Adopting copies rows, which needs room too, so a disk filled by a process that is gone
        would keep every later one from starting, and its records would never be delivered.
        Opening an existing file needs no room; holding its lock makes it this process's own.
        Raises `error` when there is no such file."""
        for db in spool_files(self.directory):
            if db == self.path:
                continue
            lock_path = db.with_suffix(_LOCK_SUFFIX)
            fd = _lock(lock_path, create=True)
            if fd is None:
                continue  # a live process owns it
            try:
                store = _Store(db)
            except (sqlite3.Error, SpoolError) as exc:
                log.error("spool: cannot take over %s either: %s", db, exc)
                os.close(fd)
                continue
            try:
                summary = store.summary()
            except sqlite3.Error as exc:
                log.error("spool: cannot take over %s either: %s", db, exc)
                store.close()
                os.close(fd)
                continue
            own_lock = self.path.with_suffix(_LOCK_SUFFIX)
            with contextlib.suppress(OSError):
                _remove_files(self.path)
                own_lock.unlink()
            os.close(self._lock_fd)
            log.warning(
                "spool: no room for a new spool file in %s (%s); took over %s, left by a process that "
                "is gone, as this process's spool (%d record(s) in it)",
                self.directory,
                error,
                db.name,
                summary.count,
            )
            self.path, self._lock_fd, self._store = db, fd, store
            return summary
        raise error

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
        except _DISK_ERRORS as exc:
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
        except _DISK_ERRORS:
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

    def _live(self) -> _Store:
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
        self._store = _Store(self.path)

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
        except _DISK_ERRORS as exc:
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
        except _DISK_ERRORS as exc:
            self._undeleted.update(seqs)
            self._failed(
                "delete", exc, "spool: cannot delete %d record(s) in Kafka from %s", len(seqs), self.path
            )
        for record in records:
            self._parked.discard(record.seq)
        self._forget([(r.topic, r.key, r.size) for r in records])
        if self._count:
            exclude = tuple(self._undeleted)
            with contextlib.suppress(*_DISK_ERRORS):  # the age stays as it was until a read works
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
        summary: _Summary = await self._run(self._adopt_orphans)
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

    def _adopt_orphans(self) -> _Summary:
        total = _Summary()
        try:
            for db in spool_files(self.directory):
                if db != self.path:
                    self._adopt(db, total)
        except _DISK_ERRORS as exc:  # our disk: the orphans wait for the next scan
            total.error = exc
        return total

    def _adopt(self, db: Path, total: _Summary) -> None:
        """Move one orphan's rows behind ours and remove it; add what was adopted to `total`."""
        lock_path = db.with_suffix(_LOCK_SUFFIX)
        fd = _lock(lock_path, create=True)
        if fd is None:
            return  # a live process owns it
        try:
            if not db.exists():
                lock_path.unlink()  # adopted by someone else meanwhile; this lock file is ours
                return
            store = self._live()
            try:
                summary = store.adopt(db)
            except (sqlite3.Error, SpoolError) as exc:
                if not _unreadable(exc):
                    raise  # our side failed (disk full, I/O error): the orphan is intact, try later
                kept = db.with_name(db.name + ".unreadable")
                db.rename(kept)
                log.error("spool: cannot adopt %s (%s); kept it as %s for inspection", db, exc, kept)
                lock_path.unlink()
                return
            log.info("spool: adopted %d record(s) from %s", summary.count, db.name)
            total.count += summary.count
            total.size += summary.size
            if summary.oldest is not None:
                total.oldest = summary.oldest if total.oldest is None else min(total.oldest, summary.oldest)
            total.keys.update(summary.keys)
            try:
                _remove_files(db)
                lock_path.unlink()
            except OSError:
                self._held_locks.append(fd)  # the rows are ours now; the file must not be adopted again
                fd = -1
                raise
        finally:
            if fd >= 0:
                os.close(fd)

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
        store = self._store
        if store is not None:
            try:
                await self._run(store.close)
            except sqlite3.Error as exc:
                log.error("spool: closing %s failed: %s", self.path, exc)
        self._executor.shutdown(wait=True)
        self._errors.flush()
        lock_path = self.path.with_suffix(_LOCK_SUFFIX)
        if self._count == 0:
            # Records in Kafka whose deletion failed go with the file: nothing in it waits.
            try:
                _remove_files(self.path)
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


def _unreadable(exc: BaseException) -> bool:
    """Whether adopting failed because of the orphan itself (corrupt, not a database, too new)."""
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB")
    return isinstance(exc, SpoolError)


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
