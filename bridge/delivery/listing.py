"""The read-only view of a spool directory that `unit21-bridge spool list` prints: no lock
taken, nothing changed, while the owning processes keep appending and draining."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bridge.delivery.store import SpoolError, decode_headers


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
