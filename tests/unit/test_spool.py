"""The disk spool: durable, ordered, bounded, adopted after a crash, drained only on ack."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bridge.config import ConfigError, check_spool_dir
from bridge.publisher import PublishError
from bridge.spool import Drainer, Spool, SpooledRecord, SpoolFull

T = TypeVar("T")
HEADERS = [("event_id", b"e1"), ("action", b"ALERT_CREATED"), ("binary", bytes(range(256)))]


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


async def eventually(condition: Any, seconds: float = 5.0) -> None:
    """Poll until `condition()` is true (the drainer works in the background)."""
    for _ in range(int(seconds / 0.005)):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not met in time")


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def fill(spool: Spool, n: int, key: bytes = b"k", topic: str = "t.alert") -> None:
    for i in range(n):
        await spool.append(topic, key, f"value-{i}".encode(), HEADERS, f"e{i}")


def test_records_come_back_byte_for_byte_and_in_order(tmp_path: Path) -> None:
    async def scenario() -> list[SpooledRecord]:
        spool = Spool(tmp_path, 1 << 20)
        await fill(spool, 3)
        assert spool.depth() == 3
        assert spool.holds("t.alert", b"k") and not spool.holds("t.alert", b"other")
        assert not spool.holds("t.case", b"k")  # order matters per partition, i.e. per topic and key
        head = await spool.head(10, 1 << 20)
        await spool.remove(head)
        assert spool.depth() == 0 and spool.size_bytes() == 0 and not spool.holds("t.alert", b"k")
        await spool.close()
        return head

    head = run(scenario())
    assert [r.value for r in head] == [b"value-0", b"value-1", b"value-2"]
    assert [r.event_id for r in head] == ["e0", "e1", "e2"]
    assert all(r.headers == HEADERS and r.key == b"k" and r.topic == "t.alert" for r in head)
    assert files(tmp_path) == []  # an empty spool leaves nothing behind


def test_head_is_bounded_by_count_and_bytes_but_never_empty(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, int, int]:
        spool = Spool(tmp_path, 1 << 20)
        await fill(spool, 10)
        by_count = len(await spool.head(4, 1 << 20))
        by_bytes = len(await spool.head(100, 1))
        everything = len(await spool.head(100, 1 << 20))
        return by_count, by_bytes, everything

    assert run(scenario()) == (4, 1, 10)


def test_a_full_spool_refuses_without_counting_the_record(tmp_path: Path) -> None:
    async def scenario() -> None:
        spool = Spool(tmp_path, 400)
        with pytest.raises(SpoolFull, match="BRIDGE_SPOOL_MAX_BYTES"):
            await fill(spool, 100)
        depth, used = spool.depth(), spool.size_bytes()
        assert 0 < depth < 100 and used <= 400
        with pytest.raises(SpoolFull):
            await spool.append("t.alert", b"k", b"x" * 300, HEADERS, "big")
        assert (spool.depth(), spool.size_bytes()) == (depth, used)
        await spool.close()

    run(scenario())


def test_concurrent_appends_are_all_committed(tmp_path: Path) -> None:
    async def scenario() -> list[bytes]:
        spool = Spool(tmp_path, 1 << 24)
        await asyncio.gather(
            *(spool.append("t", str(i).encode(), str(i).encode(), [], f"e{i}") for i in range(300))
        )
        assert spool.depth() == 300
        values = [r.value for r in await spool.head(1000, 1 << 24)]
        await spool.close()
        return values

    assert sorted(run(scenario()), key=int) == [str(i).encode() for i in range(300)]


def test_oldest_age_tracks_the_oldest_record(tmp_path: Path) -> None:
    async def scenario() -> None:
        spool = Spool(tmp_path, 1 << 20)
        assert spool.oldest_age_seconds() == 0.0
        await fill(spool, 1)
        await asyncio.sleep(0.2)
        await fill(spool, 1, key=b"k2")
        assert spool.oldest_age_seconds() >= 0.2
        first = (await spool.head(1, 1 << 20))[0]
        await spool.remove([first])
        assert spool.oldest_age_seconds() < 0.2
        detail = spool.detail()
        assert detail["depth"] == 1 and detail["max_bytes"] == 1 << 20
        await spool.close()

    run(scenario())


def test_a_closed_non_empty_spool_is_adopted_by_the_next_process(tmp_path: Path) -> None:
    async def first() -> None:
        spool = Spool(tmp_path, 1 << 20)
        await fill(spool, 5)
        await spool.close()

    async def second() -> list[bytes]:
        spool = Spool(tmp_path, 1 << 20)
        assert spool.depth() == 5 and spool.holds("t.alert", b"k")
        values = [r.value for r in await spool.head(10, 1 << 20)]
        await spool.remove(await spool.head(10, 1 << 20))
        await spool.close()
        return values

    run(first())
    assert len([name for name in files(tmp_path) if name.endswith(".db")]) == 1
    assert run(second()) == [f"value-{i}".encode() for i in range(5)]
    assert files(tmp_path) == []


CRASHING_WRITER = """
import asyncio, os, signal, sys
from pathlib import Path
from bridge.spool import Spool

async def main():
    spool = Spool(Path(sys.argv[1]), 1 << 20)
    for i in range(int(sys.argv[2])):
        await spool.append("t.alert", b"k", b"v%d" % i, [("event_id", b"e%d" % i)], "e%d" % i)
    print(spool.path, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


def test_records_survive_kill_9_and_are_adopted_in_order(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(tmp_path), "20"], capture_output=True, text=True
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    orphan = Path(result.stdout.strip())
    assert orphan.exists()

    async def adopt() -> list[bytes]:
        spool = Spool(tmp_path, 1 << 20)
        values = [r.value for r in await spool.head(100, 1 << 20)]
        await spool.close()
        return values

    assert run(adopt()) == [b"v%d" % i for i in range(20)]
    assert not orphan.exists()


def test_the_spools_of_several_dead_processes_are_all_adopted(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    for i in range(3):  # each in its own directory, or the next writer would adopt the last one
        own = tmp_path / f"writer-{i}"
        subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(own), "4"], capture_output=True)
        for path in own.iterdir():  # database, WAL, shared memory and lock file
            path.rename(shared / path.name)
    assert len(list(shared.glob("*.db"))) == 3

    spool = Spool(shared, 1 << 20)
    assert spool.depth() == 12
    assert [p.name for p in shared.glob("*.db")] == [spool.path.name]  # the orphans are gone
    run(spool.close())


def test_a_live_process_spool_is_never_adopted(tmp_path: Path) -> None:
    async def scenario() -> None:
        owner = Spool(tmp_path, 1 << 20)
        await fill(owner, 2)
        other = Spool(tmp_path, 1 << 20)  # same directory, a second "process": flock says no
        assert other.depth() == 0
        assert await other.adopt_orphans() == 0
        assert owner.path.exists()
        await other.close()
        await owner.remove(await owner.head(10, 1 << 20))
        await owner.close()

    run(scenario())


def test_an_unreadable_orphan_is_kept_aside_not_deleted(tmp_path: Path) -> None:
    (tmp_path / "spool-1-deadbeef.db").write_bytes(b"this is not a database" * 100)

    async def scenario() -> None:
        spool = Spool(tmp_path, 1 << 20)
        assert spool.depth() == 0
        await spool.close()

    run(scenario())
    assert "spool-1-deadbeef.db.unreadable" in files(tmp_path)


def test_an_unwritable_spool_dir_names_the_variable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"BRIDGE_SPOOL_DIR=.*BRIDGE_SPOOL_ENABLED=false"):
        check_spool_dir(blocker / "spool")
    check_spool_dir(tmp_path / "new" / "spool")  # created when missing
    assert (tmp_path / "new" / "spool").is_dir()


class FlakyPublisher:
    """Fails the first `failures` calls, then acknowledges; records what was acknowledged."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.acked: list[bytes] = []

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Any, path: str = "request"
    ) -> None:
        await asyncio.sleep(0)
        if self.failures > 0:
            self.failures -= 1
            raise PublishError("timeout", "no ack")
        self.acked.append(value)


def test_drainer_deletes_only_after_ack_and_retries_failures(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[bytes], int]:
        spool = Spool(tmp_path, 1 << 20)
        await fill(spool, 8)
        publisher = FlakyPublisher(failures=8)  # the whole first batch fails
        drainer = Drainer(spool, publisher, batch_records=8).start()
        await eventually(lambda: spool.depth() == 0)
        await drainer.stop(grace=1)
        depth = spool.depth()
        await spool.close()
        return publisher.acked, depth

    acked, depth = run(scenario())
    assert depth == 0
    assert acked == [f"value-{i}".encode() for i in range(8)]


def test_drainer_wakes_up_for_new_records(tmp_path: Path) -> None:
    async def scenario() -> float:
        spool = Spool(tmp_path, 1 << 20)
        publisher = FlakyPublisher(failures=0)
        drainer = Drainer(spool, publisher).start()
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await fill(spool, 1)
        await eventually(lambda: spool.depth() == 0)
        elapsed = time.monotonic() - started
        await drainer.stop(grace=1)
        await spool.close()
        return elapsed

    assert run(scenario()) < 0.5


def test_drainer_stop_leaves_undelivered_records_on_disk(tmp_path: Path) -> None:
    async def scenario() -> int:
        spool = Spool(tmp_path, 1 << 20)
        await fill(spool, 3)
        drainer = Drainer(spool, FlakyPublisher(failures=10**6)).start()
        await asyncio.sleep(0.1)
        await drainer.stop(grace=1)
        depth = spool.depth()
        await spool.close()
        return depth

    assert run(scenario()) == 3
    assert any(name.endswith(".db") for name in os.listdir(tmp_path))


def test_spool_list_shows_live_and_orphaned_records_without_touching_them(tmp_path: Path) -> None:
    """`unit21-bridge spool list` reads every spool file read-only: a live process's and a
    killed one's (its WAL never checkpointed), which stays where it is for adoption."""
    writer = tmp_path / "writer"
    crashed = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(writer), "3"], capture_output=True)
    assert crashed.returncode == -signal.SIGKILL
    directory = tmp_path / "spool"

    async def scenario() -> tuple[subprocess.CompletedProcess[str], str, str]:
        spool = Spool(directory, 1 << 20)
        await fill(spool, 2, key=b"live-key")
        for path in writer.iterdir():  # after start-up, so the live spool has not adopted it
            path.rename(directory / path.name)
        command = [sys.executable, "-m", "bridge", "spool", "list", "--dir", str(directory)]
        listed = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True)
        await fill(spool, 1, key=b"live-key")  # the live spool goes on working
        assert spool.depth() == 3
        await spool.remove(await spool.head(10, 1 << 20))
        live = spool.path.name
        await spool.close()
        [orphan] = directory.glob("*.db")
        return listed, live, orphan.name

    listed, live, orphan = run(scenario())
    assert listed.returncode == 0, listed.stderr
    lines = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(x["seq"], x["event_id"], x["key"], x["action"]) for x in lines if x["file"] == live] == [
        (1, "e0", "live-key", "ALERT_CREATED"),
        (2, "e1", "live-key", "ALERT_CREATED"),
    ]
    assert [(x["seq"], x["event_id"], x["key"], x["topic"]) for x in lines if x["file"] == orphan] == [
        (i + 1, f"e{i}", "k", "t.alert") for i in range(3)
    ]
    assert len(lines) == 5 and all(x["age_seconds"] >= 0 for x in lines)
    assert "5 record(s)" in listed.stderr and "in 2 spool file(s)" in listed.stderr


def test_spool_list_counts_an_empty_live_spool(tmp_path: Path) -> None:
    async def scenario() -> subprocess.CompletedProcess[str]:
        spool = Spool(tmp_path, 1 << 20)
        command = [sys.executable, "-m", "bridge", "spool", "list", "--dir", str(tmp_path)]
        listed = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True)
        await spool.close()
        return listed

    listed = run(scenario())
    assert listed.returncode == 0 and listed.stdout == ""
    assert listed.stderr.startswith("0 record(s), 0 bytes in 1 spool file(s)"), listed.stderr


def test_spool_list_names_a_missing_directory(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bridge", "spool", "list", "--dir", str(tmp_path / "nowhere")]
    listed = subprocess.run(command, capture_output=True, text=True)
    assert listed.returncode == 2
    assert "nowhere is not a directory" in listed.stderr
