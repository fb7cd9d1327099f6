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
import socket
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Literal

State = Literal["open", "cut", "stalled"]


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
