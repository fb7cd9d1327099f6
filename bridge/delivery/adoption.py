"""Spool files of processes that are gone: a database whose `.lock` no live process holds.

A live process adopts such a file (copies its rows behind its own in one transaction, then
deletes it) at start-up and every ORPHAN_SCAN_SECONDS, under the orphan's lock, so two live
processes never drain the same file. When there is no room for a new spool file at all, a
process takes one over as it is instead (`take_over_an_orphan`). Both run on the spool thread
(or at start-up, before anything is served).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from bridge.delivery.store import (
    DISK_ERRORS,
    LOCK_SUFFIX,
    SpoolError,
    Store,
    Summary,
    lock_file,
    remove_files,
    spool_files,
    unreadable,
)

log = logging.getLogger("bridge.spool")

ORPHAN_SCAN_SECONDS = 30.0


def adopt_orphans(live: Callable[[], Store], directory: Path, own: Path, held_locks: list[int]) -> Summary:
    """Move the rows of every orphan in `directory` behind ours (`live()`: our store) and remove it.

    A failure of our own disk ends the scan (in `error`); the orphans left wait for the next one.
    The locks of orphans adopted but not removable are appended to `held_locks`: the caller
    keeps them, so the same rows are not adopted (and sent) twice."""
    total = Summary()
    try:
        for db in spool_files(directory):
            if db != own:
                _adopt(live, db, total, held_locks)
    except DISK_ERRORS as exc:  # our disk: the orphans wait for the next scan
        total.error = exc
    return total


def _adopt(live: Callable[[], Store], db: Path, total: Summary, held_locks: list[int]) -> None:
    """Move one orphan's rows behind ours and remove it; add what was adopted to `total`."""
    lock_path = db.with_suffix(LOCK_SUFFIX)
    fd = lock_file(lock_path, create=True)
    if fd is None:
        return  # a live process owns it
    try:
        if not db.exists():
            lock_path.unlink()  # adopted by someone else meanwhile; this lock file is ours
            return
        store = live()
        try:
            summary = store.adopt(db)
        except (sqlite3.Error, SpoolError) as exc:
            if not unreadable(exc):
                raise  # our side failed (disk full, I/O error): the orphan is intact, try later
            kept = db.with_name(db.name + ".unreadable")
            db.rename(kept)
            log.error("spool: cannot adopt %s (%s); kept it as %s for inspection", db, exc, kept)
            lock_path.unlink()
            return
        log.info("spool: adopted %d record(s) from %s", summary.count, db.name)
        _add(total, summary)
        try:
            remove_files(db)
            lock_path.unlink()
        except OSError:
            held_locks.append(fd)  # the rows are ours now; the file must not be adopted again
            fd = -1
            raise
    finally:
        if fd >= 0:
            os.close(fd)


def _add(total: Summary, summary: Summary) -> None:
    total.count += summary.count
    total.size += summary.size
    if summary.oldest is not None:
        total.oldest = summary.oldest if total.oldest is None else min(total.oldest, summary.oldest)
    total.keys.update(summary.keys)


def take_over_an_orphan(directory: Path, own: Path, error: sqlite3.Error) -> tuple[Path, int, Store, Summary]:
    """No room (or a failing disk) for a new spool file: use a dead process's file as it is.

    Adopting copies rows, which needs room too, so a disk filled by a process that is gone
    would keep every later one from starting, and its records would never be delivered.
    Opening an existing file needs no room; holding its lock makes it this process's own.
    Returns (its path, its lock, its store, its counts); raises `error` when there is no such file."""
    for db in spool_files(directory):
        if db == own:
            continue
        fd = lock_file(db.with_suffix(LOCK_SUFFIX), create=True)
        if fd is None:
            continue  # a live process owns it
        try:
            store = Store(db)
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
        log.warning(
            "spool: no room for a new spool file in %s (%s); took over %s, left by a process that "
            "is gone, as this process's spool (%d record(s) in it)",
            directory,
            error,
            db.name,
            summary.count,
        )
        return db, fd, store, summary
    raise error
