"""Stopping: readiness turns false on SIGTERM/SIGINT before anything stops, and the spool is
delivered before the process goes."""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from bridge.delivery.drainer import Drainer
from bridge.delivery.spool import Spool
from bridge.ingress.runtime import Runtime

__all__ = ["drain_before_exit", "flag_shutdown_on_signals"]

log = logging.getLogger("bridge.app")


def flag_shutdown_on_signals(runtime: Runtime) -> None:
    """Turn readiness false the moment SIGTERM/SIGINT arrives, then let uvicorn's own handler
    (installed before the lifespan starts, restored after it ends) begin its graceful stop."""
    if threading.current_thread() is not threading.main_thread():
        return  # an embedding test client; only the main thread may set signal handlers
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if not callable(previous):
            continue

        def handler(sig: int, frame: Any, previous: Any = previous) -> None:
            runtime.begin_shutdown()
            previous(sig, frame)

        signal.signal(signum, handler)


async def drain_before_exit(runtime: Runtime, drainer: Drainer, spool: Spool) -> None:
    """Deliver what the spool holds before the process goes: its volume may go with it (an
    emptyDir, a scaled-down replica's claim). Within BRIDGE_SHUTDOWN_GRACE_SECONDS from the
    signal; what Kafka does not take by then stays on disk for the next process."""
    before = spool.depth() - spool.parked()
    started = time.monotonic()
    await drainer.stop(grace=max(0.5, runtime.shutdown_time_left()), drain=True)
    left = spool.depth() - spool.parked()
    if before:
        level = logging.WARNING if left else logging.INFO
        log.log(
            level,
            "shutdown: delivered %d of %d spooled record(s) to Kafka in %.2f s; %d left in the spool",
            before - left,
            before,
            time.monotonic() - started,
            left,
            extra={"spool_delivered": before - left, "spool_left": left},
        )
