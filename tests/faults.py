"""Fault injection for the tests: a TCP proxy that can cut, stall and restore a connection.

The technique Toxiproxy made standard: the broker advertises the proxy's address, so every
client connection (bootstrap and per-broker) crosses the proxy, and the test decides when
the network between the bridge and Kafka fails.

    proxy = TcpProxy(upstream_port=broker.port).start()
    broker = EmbeddedBroker(advertised_port=proxy.port)
    proxy.cut()      # reset every open connection and refuse new ones
    proxy.stall()    # keep connections open but forward nothing (a black hole)
    proxy.restore()  # forward again

It runs its own asyncio loop on a daemon thread; the control methods are thread-safe and
return once the new state is in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import httpx2
import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bridge.contract.parsing import event_id
from bridge.delivery.embedded import free_port
from tests.support import EXAMPLES, child_env, signed_headers

State = Literal["open", "cut", "stalled"]

# Figures measured by the fault tests, printed at the end of the run (tests/conftest.py).
FIGURES: list[str] = []


class TcpProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1", port: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._requested_port = port
        self.port = 0
        self.state: State = "open"
        self.connections_accepted = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # -- control (any thread) ------------------------------------------------------------

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def cut(self) -> None:
        """Reset every connection through the proxy and refuse (reset) new ones."""
        self._call(self._set("cut"))

    def stall(self) -> None:
        """Accept and hold connections but forward no byte in either direction."""
        self._call(self._set("stalled"))

    def restore(self) -> None:
        self._call(self._set("open"))

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    # -- the proxy (loop thread) ---------------------------------------------------------

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self._requested_port)
        sock: socket.socket = self._server.sockets[0]
        self.port = sock.getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._abort_all()

    async def _set(self, state: State) -> None:
        assert self._flowing is not None
        self.state = state
        if state == "open":
            self._flowing.set()
        else:
            self._flowing.clear()
        if state == "cut":
            self._abort_all()

    def _abort_all(self) -> None:
        for writer in list(self._writers):
            _abort(writer)
        self._writers.clear()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.state == "cut":
            _abort(client_writer)
            return
        self.connections_accepted += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            _abort(client_writer)
            return
        pair = {client_writer, upstream_writer}
        self._writers |= pair
        try:
            await asyncio.gather(
                self._pump(client_reader, upstream_writer),
                self._pump(upstream_reader, client_writer),
            )
        finally:
            for writer in pair:
                self._writers.discard(writer)
                _abort(writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                await self._flowing.wait()  # stalled: hold the bytes, forward nothing
                if self.state == "cut" or writer.is_closing():
                    break
                writer.write(data)
                await writer.drain()
        _abort(writer)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset, as a failed network or a dead peer looks to the client."""
    transport = writer.transport
    if not transport.is_closing():
        transport.abort()


# -- the bridge as a real process, and a client that keeps posting -----------------------------


class BridgeProcess:
    """`unit21-bridge serve` in a subprocess (what kill -9 and SIGTERM must be tested on)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.env = child_env(**env, BRIDGE_HOST="127.0.0.1", BRIDGE_PORT=str(self.port))
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.port}"
        self.webhook_url = f"{self.url}/webhooks/unit21"

    def start(self, timeout: float = 30.0) -> BridgeProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bridge", "serve"], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx2.HTTPError):
                if httpx2.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            time.sleep(0.1)
        raise AssertionError(f"serve did not become ready within {timeout} s:\n{self.log()}")

    def readyz(self) -> dict[str, Any]:
        answer: dict[str, Any] = httpx2.get(f"{self.url}/readyz", timeout=5).json()
        return answer

    def spool_depth(self) -> int:
        depth: int = self.readyz()["detail"]["spool"]["depth"]
        return depth

    def wait_for_empty_spool(self, timeout: float = 30.0) -> float:
        """Seconds until the spool is empty."""
        started = time.monotonic()
        while self.spool_depth():
            if time.monotonic() - started > timeout:
                raise AssertionError(f"spool not drained within {timeout} s: {self.readyz()}\n{self.log()}")
            time.sleep(0.05)
        return time.monotonic() - started

    def rss_bytes(self) -> int:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()


def alert_body(n: int, keys: int = 40) -> bytes:
    """A distinct, valid ALERT webhook (distinct body, so a distinct event_id), `keys` entities."""
    doc = dict(_ALERT)
    doc["unit21_id"] = 50_000_000 + n
    doc["alert_id"] = f"load-{n}"
    doc["entities"] = [{"entity_id": f"u-load-{n % keys}", "entity_type": "user", "resolution": "UNRESOLVED"}]
    return orjson.dumps(doc)


_ALERT: dict[str, Any] = orjson.loads((EXAMPLES / "alert_created.json").read_bytes())


@dataclass
class Outcome:
    event_id: str
    status: int  # 0: no HTTP answer (connection refused or reset)
    seconds: float
    retry_after: str | None = None


@dataclass
class LoadRun:
    outcomes: list[Outcome] = field(default_factory=list)

    def ids(self, *statuses: int) -> set[str]:
        return {o.event_id for o in self.outcomes if o.status in statuses}

    def count(self, *statuses: int) -> int:
        return sum(1 for o in self.outcomes if o.status in statuses)

    @property
    def accepted(self) -> set[str]:
        return {o.event_id for o in self.outcomes if 200 <= o.status < 300}


class Load:
    """Posts distinct signed webhooks from `concurrency` senders until stopped (or `limit` sent).

    Each webhook is posted once and never retried, so every 2xx answer is a promise the test
    can check against Kafka.
    """

    def __init__(
        self,
        url: str,
        concurrency: int = 16,
        limit: int | None = None,
        start: int = 0,
        keepalive: bool = True,
    ) -> None:
        self.url = url
        self.keepalive = keepalive
        self.concurrency = concurrency
        self.limit = limit
        self.run = LoadRun()
        self._next = start
        self._first = start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="load", daemon=True)

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> LoadRun:
        self._stop.set()
        self._thread.join(timeout=60)
        if self._thread.is_alive():
            raise AssertionError("the load's senders did not stop within 60 s of being told to")
        return self.run

    def run_for(self, seconds: float) -> LoadRun:
        """Posts until `limit` webhooks are answered or `seconds` pass, whichever comes first."""
        self._thread.join(timeout=seconds)
        return self.stop()

    def join(self, timeout: float = 120) -> LoadRun:
        """Waits for `limit` webhooks to be answered; fails, and stops the senders, after `timeout`."""
        self._thread.join(timeout=timeout)
        if self._thread.is_alive():
            self._stop.set()
            raise AssertionError(
                f"{len(self.run.outcomes)} of {self.limit} webhooks answered within {timeout} s"
            )
        return self.run

    async def _main(self) -> None:
        limits = httpx2.Limits(
            max_connections=self.concurrency,
            max_keepalive_connections=self.concurrency if self.keepalive else 0,
        )
        async with httpx2.AsyncClient(timeout=30, limits=limits) as client:
            await asyncio.gather(*(self._sender(client) for _ in range(self.concurrency)))

    async def _sender(self, client: httpx2.AsyncClient) -> None:
        while not self._stop.is_set():
            n = self._next
            if self.limit is not None and n - self._first >= self.limit:
                return
            self._next += 1
            body = alert_body(n)
            started = time.perf_counter()
            try:
                answer = await client.post(self.url, content=body, headers=signed_headers(body))
                status, retry_after = answer.status_code, answer.headers.get("retry-after")
            except httpx2.HTTPError:
                status, retry_after = 0, None
                await asyncio.sleep(0.01)  # the bridge is gone: do not spin
            self.run.outcomes.append(
                Outcome(event_id(body), status, time.perf_counter() - started, retry_after)
            )


def kafka_event_ids(bootstrap: str, topic: str, expected: set[str], timeout: float = 30.0) -> list[str]:
    """The `event_id` header of every record in `topic`, duplicates included.

    Reads until every expected id was seen and then one idle second more (to catch extra
    copies). Not from the high watermarks: Tansu reports the base offset of the last batch
    + 1 there, which undercounts after a multi-record batch such as a spool drain.
    """
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "fault-tests", "enable.auto.commit": False}
    )
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        ids: list[str] = []
        deadline = time.monotonic() + timeout
        idle_since = time.monotonic()
        while time.monotonic() < deadline:
            msg = consumer.poll(0.1)
            if msg is None or msg.error() is not None:
                if expected <= set(ids) and time.monotonic() - idle_since > 1.0:
                    break
                continue
            idle_since = time.monotonic()
            ids.append(dict(msg.headers() or [])["event_id"].decode())
        return ids
    finally:
        consumer.close()


# -- a spool disk that fills up or fails -------------------------------------------------------

# EXT4_IOC_SHUTDOWN (= XFS_IOC_GOINGDOWN, _IOR('X', 125, __u32)) with EXT4_GOING_FLAGS_NOLOGFLUSH:
# the file system shuts down as it does on a fatal device error; every later read, write,
# fsync, create and unlink on it fails with EIO until it is unmounted.
_EXT4_IOC_SHUTDOWN = 0x8004587D
_EXT4_GOING_FLAGS_NOLOGFLUSH = 2


def _run_root(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system for the spool needs root (the test runs as a user)")


@contextlib.contextmanager
def small_tmpfs(directory: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of `size` mounted on `directory`: a spool disk that fills up for real (ENOSPC)."""
    _need_root()
    directory.mkdir(parents=True, exist_ok=True)
    mounted = _run_root("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(directory))
    if mounted.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield directory
    finally:
        _unmount(directory)


class Ext4Loop:
    """An ext4 file system on a loop device, mounted on `directory`, that `shut_down` can fail."""

    def __init__(self, directory: Path, image: Path, size_bytes: int = 16 * 2**20) -> None:
        self.directory = directory
        self.image = image
        self.size_bytes = size_bytes
        self.device: str | None = None

    def __enter__(self) -> Ext4Loop:
        _need_root()
        for tool in ("losetup", "mkfs.ext4"):
            if shutil.which(tool) is None:
                pytest.skip(f"{tool} is not installed (util-linux, e2fsprogs)")
        with self.image.open("wb") as f:
            f.truncate(self.size_bytes)
        attached = _run_root("losetup", "--find", "--show", str(self.image))
        if attached.returncode != 0:
            self.image.unlink()
            pytest.skip(f"no loop device available: {attached.stderr.strip()}")
        self.device = attached.stdout.strip()
        try:
            made = _run_root("mkfs.ext4", "-q", "-F", self.device)
            assert made.returncode == 0, made.stderr
            self.directory.mkdir(parents=True, exist_ok=True)
            mounted = self._mount()
            if mounted.returncode != 0:
                pytest.skip(f"mounting an ext4 loop device is not permitted here: {mounted.stderr.strip()}")
        except BaseException:
            self._detach()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if os.path.ismount(self.directory):
                _unmount(self.directory)
        finally:
            self._detach()

    def shut_down(self) -> None:
        """Fail the file system: see _EXT4_IOC_SHUTDOWN."""
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            fcntl.ioctl(fd, _EXT4_IOC_SHUTDOWN, struct.pack("I", _EXT4_GOING_FLAGS_NOLOGFLUSH))
        finally:
            os.close(fd)

    def remount(self) -> None:
        """Unmount the failed file system and mount it again (the disk "comes back")."""
        _unmount(self.directory)
        mounted = self._mount()
        assert mounted.returncode == 0, mounted.stderr

    def _mount(self) -> subprocess.CompletedProcess[str]:
        assert self.device is not None
        return _run_root("mount", "-t", "ext4", self.device, str(self.directory))

    def _detach(self) -> None:
        if self.device is not None:
            _run_root("losetup", "--detach", self.device)
            self.device = None
        self.image.unlink(missing_ok=True)


def _unmount(directory: Path) -> None:
    # A bridge process killed by the test may still hold files open for a moment.
    for _ in range(50):
        if _run_root("umount", str(directory)).returncode == 0:
            return
        time.sleep(0.1)
    lazy = _run_root("umount", "--lazy", str(directory))
    assert lazy.returncode == 0, lazy.stderr


class DiskFiller:
    """Keeps a file system full: a filler file takes whatever space frees up, until stopped."""

    def __init__(self, directory: Path, seconds: float) -> None:
        self.path = directory / "filler"
        self.seconds = seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, name="disk-filler", daemon=True)

    def start(self) -> DiskFiller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def remove(self) -> None:
        self.stop()
        self.path.unlink(missing_ok=True)

    def _fill(self) -> None:
        deadline = time.monotonic() + self.seconds
        fd: int | None = None
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    if fd is None:
                        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                    os.write(fd, b"\0" * 4096)
                except OSError:  # full: wait for space to free up
                    self._stop.wait(0.02)
        finally:
            if fd is not None:
                os.close(fd)
