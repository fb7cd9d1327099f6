"""A TCP proxy that delays every chunk by a fixed time in each direction: a broker across a network.

usage: python bench/latency.py LISTEN_PORT UPSTREAM_PORT ONE_WAY_DELAY_MS

Tansu on loopback acknowledges in well under a millisecond; a replicated cluster with
`acks=all` takes milliseconds. The bench puts this proxy between the clients and a second
embedded broker (which advertises the proxy's port, so every connection crosses it) to show
what the round trip does to each design. Delays, never throttles: chunks are forwarded in
order, each at its arrival time plus the delay, however many are in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def receive() -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                queue.put_nowait((loop.time() + delay, data))
        queue.put_nowait((0.0, b""))

    async def forward() -> None:
        with contextlib.suppress(OSError):
            while True:
                due, data = await queue.get()
                if not data:
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
        writer.close()

    await asyncio.gather(receive(), forward())


async def main(listen_port: int, upstream_port: int, delay: float) -> None:
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            _pipe(client_reader, upstream_writer, delay), _pipe(upstream_reader, client_writer, delay)
        )

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000))
