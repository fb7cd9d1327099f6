"""The spool's storage: one SQLite file per process, and the file-level rules every spool
module shares (names, locks, removal, what counts as a disk failure).

Why SQLite (the standard library's `sqlite3`) and not a file format of our own: a write-ahead
log that survives kill -9 and power loss needs atomic appends, torn-write detection, crash
recovery, compaction of consumed entries and a way to delete from the head while appending
at the tail. SQLite in WAL mode with `synchronous=FULL` gives all of that (one fsync of the
WAL per commit), is among the most tested storage engines there is, needs no new dependency
and can be inspected with the `sqlite3` shell when something looks wrong.

Layout: one database per process in BRIDGE_SPOOL_DIR, `spool-<pid>-<random>.db`, beside a
`.lock` file on which the process holds an exclusive `flock` for its whole life (`lock_file`).
A database whose lock is free belongs to a process that is gone (bridge/delivery/adoption.py).
Only the spool thread calls a `Store`'s methods.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bridge.delivery.sizes import Headers
from bridge.errors import BridgeError

SCHEMA_VERSION = 1
FILE_PREFIX = "spool-"
PROBE_BYTES = 64 * 1024
DB_SUFFIX = ".db"
LOCK_SUFFIX = ".lock"
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

Row = tuple[str, bytes, bytes, bytes, str, float, int]
SpoolKey = tuple[str, bytes]  # (topic, key): what decides the partition, so what must stay in order


class SpoolError(BridgeError, RuntimeError):
    """The spool could not take the record; the caller must not answer 2xx."""


class SpoolFull(SpoolError):
    """BRIDGE_SPOOL_MAX_BYTES reached: answer 503 with Retry-After."""


# What a failing disk raises through SQLite and the file calls; SpoolError: the file is being replaced.
DISK_ERRORS = (sqlite3.Error, OSError, SpoolError)


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


def encode_headers(headers: Headers) -> bytes:
    # latin-1 maps each byte to one code point and back, so header values survive byte for byte.
    return orjson.dumps([[name, data.decode("latin-1")] for name, data in headers])


def decode_headers(data: bytes) -> list[tuple[str, bytes]]:
    return [(name, value.encode("latin-1")) for name, value in orjson.loads(data)]


@dataclass
class Summary:
    """Counts of a set of rows, folded into the in-memory counters."""

    count: int = 0
    size: int = 0
    oldest: float | None = None
    keys: Counter[SpoolKey] = field(default_factory=Counter)
    error: BaseException | None = None  # our disk failed during the scan; the rest waits for the next one


class Store:
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

    def summary(self) -> Summary:
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
        return Summary(count, size, oldest, keys)

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

    def adopt(self, orphan: Path) -> Summary:
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
                return Summary()
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
            return Summary(count, size, oldest, keys)
        finally:
            self.db.execute("DETACH DATABASE orphan")

    def close(self) -> None:
        self.db.close()


def spool_files(directory: Path) -> list[Path]:
    """The spool databases in `directory`, live processes' and orphans' alike."""
    return sorted(directory.glob(f"{FILE_PREFIX}*{DB_SUFFIX}"))


def lock_file(path: Path, *, create: bool) -> int | None:
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


def remove_files(db: Path) -> None:
    for path in (db, *(db.with_name(db.name + suffix) for suffix in _SIDE_SUFFIXES)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def unreadable(exc: BaseException) -> bool:
    """Whether adopting failed because of the orphan itself (corrupt, not a database, too new)."""
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB")
    return isinstance(exc, SpoolError)
