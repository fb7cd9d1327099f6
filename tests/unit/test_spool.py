"""The disk spool: durable, ordered, bounded, adopted after a crash, drained only on ack."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bridge.delivery import Drainer, Publisher, PublishError, Spool, SpooledRecord, SpoolError, SpoolFull
from bridge.settings import ConfigError, check_spool_dir
from tests.faults import small_tmpfs
from tests.support import wait_until_async

T = TypeVar("T")
HEADERS = [("event_id", b"e1"), ("action", b"ALERT_CREATED"), ("binary", bytes(range(256)))]


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await asyncio.wait_for(coro, 60)  # a hung spool or drainer fails the test, not the suite

    return asyncio.run(main())


async def eventually(condition: Any, seconds: float = 5.0, what: str = "the condition") -> None:
    """Poll until `condition()` is true (the drainer works in the background)."""
    await wait_until_async(condition, seconds, what)


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
        measured = time.time()
        before = spool.oldest_age_seconds()
        assert before >= 0.2
        first = (await spool.head(1, 1 << 20))[0]
        await spool.remove([first])
        # Now the second record is the oldest: at least 0.2 s younger than the first, however long
        # the removal took on a loaded machine.
        assert spool.oldest_age_seconds() <= before - 0.2 + (time.time() - measured) + 0.01
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
from bridge.delivery import Spool

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
        [sys.executable, "-c", CRASHING_WRITER, str(tmp_path), "20"],
        capture_output=True,
        text=True,
        timeout=60,
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
        subprocess.run(
            [sys.executable, "-c", CRASHING_WRITER, str(own), "4"], capture_output=True, timeout=60
        )
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
    async def scenario() -> None:
        spool = Spool(tmp_path, 1 << 20)
        publisher = FlakyPublisher(failures=0)
        drainer = Drainer(spool, publisher).start()
        await asyncio.sleep(0.1)  # the drainer found nothing and waits
        await fill(spool, 1)
        # Without a wake-up it would sleep until its next orphan scan, 30 s away.
        await eventually(lambda: spool.depth() == 0, 10, "the idle drainer delivering a new record")
        await drainer.stop(grace=1)
        await spool.close()

    run(scenario())


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
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(writer), "3"], capture_output=True, timeout=60
    )
    assert crashed.returncode == -signal.SIGKILL
    directory = tmp_path / "spool"

    async def scenario() -> tuple[subprocess.CompletedProcess[str], str, str]:
        spool = Spool(directory, 1 << 20)
        await fill(spool, 2, key=b"live-key")
        for path in writer.iterdir():  # after start-up, so the live spool has not adopted it
            path.rename(directory / path.name)
        command = [sys.executable, "-m", "bridge", "spool", "list", "--dir", str(directory)]
        listed = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60)
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
        listed = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60)
        await spool.close()
        return listed

    listed = run(scenario())
    assert listed.returncode == 0 and listed.stdout == ""
    assert listed.stderr.startswith("0 record(s), 0 bytes in 1 spool file(s)"), listed.stderr


def test_spool_list_names_a_missing_directory(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bridge", "spool", "list", "--dir", str(tmp_path / "nowhere")]
    listed = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 2
    assert "nowhere is not a directory" in listed.stderr


# -- a full or failing disk (a real small file system: root only, skipped otherwise) ------------


class AckingPublisher:
    """Acknowledges every record; counts how often each value was produced."""

    def __init__(self) -> None:
        self.produced: Counter[bytes] = Counter()

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Any, path: str = "request"
    ) -> None:
        await asyncio.sleep(0)
        self.produced[value] += 1


class Recorder:
    """The metric hooks: failed operations, and health changes."""

    def __init__(self) -> None:
        self.errors: Counter[str] = Counter()
        self.health: list[bool] = []

    def error(self, operation: str) -> None:
        self.errors[operation] += 1

    def healthy(self, healthy: bool) -> None:
        self.health.append(healthy)


def spool_on(directory: Path, recorder: Recorder) -> Spool:
    return Spool(directory, 1 << 30, on_error=recorder.error, on_health=recorder.healthy)


async def fill_disk(spool: Spool, keys: int = 4) -> int:
    """Append 2 KB records (keys k0..k3) until the disk refuses one; returns how many were written."""
    for i in range(10_000):
        try:
            await spool.append("t.alert", b"k%d" % (i % keys), b"%06d" % i + b"x" * 2000, HEADERS, f"e{i}")
        except SpoolError:
            return i
    raise AssertionError("the disk never filled up")


def test_a_full_disk_never_sends_a_delivered_record_twice_and_frees_its_keys(tmp_path: Path) -> None:
    """Kafka acknowledges, the DELETE fails (disk full): the records leave the counters at once,
    are not produced again by later rounds, and once all are in Kafka the file is replaced by
    an empty one, which frees the disk."""
    recorder = Recorder()

    async def scenario(directory: Path) -> tuple[AckingPublisher, int, dict[str, Any], dict[str, Any]]:
        spool = spool_on(directory, recorder)
        written = await fill_disk(spool)
        assert spool.holds("t.alert", b"k0") and not spool.writable()
        publisher = AckingPublisher()
        drainer = Drainer(spool, publisher, batch_records=10).start()
        await eventually(lambda: spool.depth() == 0, seconds=10)
        during = spool.detail()
        assert not spool.holds("t.alert", b"k0"), "a key whose records are all in Kafka still holds"
        await eventually(spool.healthy, seconds=15)  # replaced, then the probe write works
        after = spool.detail()
        await spool.append("t.alert", b"k0", b"after", HEADERS, "after")  # the disk takes writes again
        await eventually(lambda: spool.depth() == 0)
        await drainer.stop(grace=1)
        await spool.close()
        return publisher, written, during, after

    with small_tmpfs(tmp_path / "spool", "1m") as directory:
        publisher, written, during, after = run(scenario(directory))
        assert files(directory) == []
    assert written > 20
    assert sorted(publisher.produced.values()) == [1] * (written + 1), "a record was produced twice"
    assert during["failing"]["delete"]["failures"] >= 1 and during["healthy"] is False
    assert after["delivered_not_deleted"] == 0 and after["failing"] == {}
    assert recorder.errors["write"] >= 1 and recorder.errors["delete"] >= 1
    assert recorder.health[0] is True and False in recorder.health and recorder.health[-1] is True


class AcksOneKey(AckingPublisher):
    """Kafka takes the records of one key and times out on the others."""

    def __init__(self, key: bytes) -> None:
        super().__init__()
        self.key = key
        self.refused = 0

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Any, path: str = "request"
    ) -> None:
        if key != self.key:
            await asyncio.sleep(0)
            self.refused += 1
            raise PublishError("timeout", "no ack")
        await super().publish(topic, key, value, headers)


def test_a_disk_that_stays_full_keeps_delivered_records_out_of_every_later_round(tmp_path: Path) -> None:
    """The DELETE fails and the file cannot be replaced either (other records still wait in
    it): the key whose records are in Kafka takes webhooks again, and round after round only
    the waiting records are sent."""
    recorder = Recorder()

    async def scenario(directory: Path) -> tuple[AcksOneKey, int, dict[str, Any]]:
        spool = spool_on(directory, recorder)
        written = await fill_disk(spool)
        publisher = AcksOneKey(b"k0")
        drainer = Drainer(spool, publisher, batch_records=50, max_backoff=0.05).start()
        await eventually(lambda: not spool.holds("t.alert", b"k0"), seconds=10)
        await eventually(lambda: publisher.refused >= 20 * written, seconds=20)  # many rounds
        detail = spool.detail()
        assert spool.holds("t.alert", b"k1"), "a key whose records wait in the spool must still hold"
        await drainer.stop(grace=1)
        await spool.close()
        return publisher, written, detail

    with small_tmpfs(tmp_path / "spool", "1m") as directory:
        publisher, written, detail = run(scenario(directory))
    delivered = (written + 3) // 4  # k0 is every fourth record
    assert len(publisher.produced) == delivered and set(publisher.produced.values()) == {1}
    assert detail["delivered_not_deleted"] == delivered and detail["depth"] == written - delivered
    assert detail["failing"]["delete"]["failures"] >= 2  # the deletion was retried, and failed again
    assert recorder.errors["delete"] >= 2


def test_a_failed_write_leaves_no_row_behind_once_the_disk_has_room(tmp_path: Path) -> None:
    """A COMMIT that fails for lack of room must not leave its rows to a later commit: they
    were answered 503 and must never be delivered behind that answer."""

    async def scenario(directory: Path) -> list[str]:
        filler = directory / "filler"
        filler.write_bytes(b"\0" * 600_000)
        spool = Spool(directory, 1 << 30)
        written = await fill_disk(spool, keys=1)
        with pytest.raises(SpoolError):
            await spool.append("t.alert", b"k0", b"refused" * 300, HEADERS, "refused")
        filler.unlink()
        await spool.append("t.alert", b"k0", b"accepted", HEADERS, "accepted")
        ids = [r.event_id for r in await spool.head(100_000, 1 << 30)]
        assert len(ids) == written + 1 == spool.depth()
        await spool.remove(await spool.head(100_000, 1 << 30))
        await spool.close()
        return ids

    with small_tmpfs(tmp_path / "spool", "1m") as directory:
        ids = run(scenario(directory))
    assert "refused" not in ids and ids[-1] == "accepted"


def test_an_orphan_is_not_set_aside_because_our_disk_is_full(tmp_path: Path) -> None:
    """Adopting needs room on our side: a full disk must leave the orphan where it is, intact,
    for a later scan, not rename it `.unreadable` as if it were corrupt."""
    writer = tmp_path / "writer"
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(writer), "5"], capture_output=True, timeout=60
    )
    assert crashed.returncode == -signal.SIGKILL

    async def scenario(directory: Path) -> tuple[int, list[str], int]:
        spool = Spool(directory, 1 << 30)
        for path in writer.iterdir():  # another file system: copied (a crashed writer's files)
            shutil.copyfile(path, directory / path.name)
        filler = directory / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as f:
            for _ in range(2048):
                f.write(b"\0" * 1024)
                f.flush()
        assert await spool.adopt_orphans() == 0
        names = files(directory)
        filler.unlink()
        adopted = await spool.adopt_orphans()
        depth = spool.depth()
        await spool.remove(await spool.head(100, 1 << 30))
        await spool.close()
        return adopted, names, depth

    with small_tmpfs(tmp_path / "spool", "1m") as directory:
        adopted, names_while_full, depth = run(scenario(directory))
    assert not [n for n in names_while_full if n.endswith(".unreadable")], names_while_full
    assert adopted == 5 and depth == 5


def test_disk_failures_are_logged_once_per_window_with_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(directory: Path) -> None:
        spool = Spool(directory, 1 << 30)
        await fill_disk(spool)  # its last append failed
        for i in range(199):
            with pytest.raises(SpoolError):
                await spool.append("t.alert", b"k", b"v" * 2000, HEADERS, f"more-{i}")
        await spool.close()

    with small_tmpfs(tmp_path / "spool", "1m") as directory, caplog.at_level(logging.WARNING, "bridge.spool"):
        run(scenario(directory))
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) <= 4, [r.getMessage() for r in errors]
    assert "cannot write 1 record(s)" in errors[0].getMessage()
    assert sum(getattr(r, "failures", 0) for r in errors) + 1 == 200


FILLING_WRITER = """
import asyncio, os, signal, sys
from pathlib import Path
from bridge.delivery import Spool, SpoolError

async def main():
    spool = Spool(Path(sys.argv[1]), 1 << 30)
    for i in range(100_000):
        try:
            await spool.append("t.alert", b"k%d" % (i % 4), b"%06d" % i + b"x" * 2000, [], "e%d" % i)
        except SpoolError:
            print(i, flush=True)
            break
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


def test_a_process_starts_on_a_disk_filled_by_one_that_is_gone(tmp_path: Path) -> None:
    """kill -9 with the spool's disk full: the next process has no room for a file of its own
    (nor to copy the rows into one), so it takes the dead one's file over as it is, delivers
    its records once, and then frees the disk."""

    async def scenario(directory: Path) -> tuple[int, AckingPublisher, dict[str, Any]]:
        spool = Spool(directory, 1 << 30)
        depth = spool.depth()
        assert spool.holds("t.alert", b"k0")
        publisher = AckingPublisher()
        drainer = Drainer(spool, publisher, batch_records=10).start()
        await eventually(lambda: spool.depth() == 0 and spool.healthy(), seconds=15)
        await spool.append("t.alert", b"k0", b"after", HEADERS, "after")  # room again
        await eventually(lambda: spool.depth() == 0)
        detail = spool.detail()
        await drainer.stop(grace=1)
        await spool.close()
        return depth, publisher, detail

    with small_tmpfs(tmp_path / "spool", "1m") as directory:
        crashed = subprocess.run(
            [sys.executable, "-c", FILLING_WRITER, str(directory)], capture_output=True, text=True, timeout=60
        )
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        written = int(crashed.stdout)
        depth, publisher, detail = run(scenario(directory))
        assert files(directory) == []
    assert depth == written > 20
    assert len(publisher.produced) == written + 1 and set(publisher.produced.values()) == {1}
    assert detail["failing"] == {}


def test_the_spool_and_the_publisher_weigh_a_record_the_same(tmp_path: Path) -> None:
    # 10 + 1,961 + (8 + 2) + (6 + 13) = 2,000 bytes of key, value and headers: exactly what a
    # producer with message.max.bytes=2000 takes. The spool must weigh it the same (it used to
    # add the topic's name), or a record Kafka takes could be refused by a spool with room for it.
    key, value, headers = b"customer-7", b"v" * 1961, [("event_id", b"e1"), ("action", b"ALERT_CREATED")]
    publisher = Publisher({"message.max.bytes": 2000, "log_level": 0}, delivery_timeout=1.0)
    try:
        assert publisher.refuses(key, value, headers) is None
        assert publisher.refuses(key, value + b"v", headers) is not None
    finally:
        publisher.close(0)

    async def scenario() -> tuple[int, int]:
        spool = Spool(tmp_path, 2000)
        await spool.append("unit21.alert", key, value, headers, "e1")
        counted = spool.size_bytes()
        head = await spool.head(1, 2000)
        await spool.remove(head)
        await spool.close()
        return counted, head[0].size

    assert run(scenario()) == (2000, 2000)
