"""The connection layer in front of the app: uvicorn's httptools protocol, with the limits a
port that anyone on the internet can reach needs.

uvicorn gives an idle timeout after a response (`timeout_keep_alive`) and nothing else: a
connection that never sends a byte, sends its headers one byte a second, or sends a header
of 40 MiB is kept (and buffered) for as long as the client likes. `DoorProtocol` adds, per
connection and at the cost of a few attribute checks per read:

- a connection cap (BRIDGE_MAX_CONNECTIONS): one more is answered 503 and closed at once;
- an idle timeout (BRIDGE_KEEPALIVE_TIMEOUT_SECONDS) from the moment the connection opens,
  not only after a response;
- a request-head deadline (BRIDGE_HEADER_TIMEOUT_SECONDS): the request line and headers must
  be complete this long after the connection opened or its previous answer was sent;
- a request-head size cap (BRIDGE_MAX_HEADER_BYTES, and MAX_HEADER_COUNT headers): counted on
  the bytes before they reach the parser, so an oversized head is never buffered; 431.

The body deadline and the body-memory budget belong to the request, so the webhook endpoint
keeps them (bridge/ingress/body.py). `serve` and `dev` pass this class as uvicorn's `http=`.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import httptools
import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from bridge.errors import BridgeError, ErrorCode
from bridge.ops.refusals import RefusalLog
from bridge.settings import ConfigError, Settings

if TYPE_CHECKING:
    from bridge.ops.metrics import Metrics

log = logging.getLogger("bridge.door")

# More headers than this is no webhook: each costs ~130 bytes of Python objects beyond its
# text, so the count is capped as well as the bytes (Apache's LimitRequestFields is 100).
MAX_HEADER_COUNT: Final = 100
# File descriptors a worker needs beside its client connections: the listening socket,
# librdkafka's broker sockets and pipes, the spool's SQLite files, logs, /proc reads.
RESERVED_FDS: Final = 256
EVENT_WINDOW_SECONDS: Final = 10.0
CLOSE_REASONS: Final = (
    "connection_limit",
    "header_timeout",
    "header_too_large",
    "idle_timeout",
    "body_timeout",
)


class _HeadTooLarge(BridgeError):
    """Raised from the parser's header callback to stop parsing a head with too many headers."""


class Door:
    """The limits and counters of one worker process, shared by all its connections."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.max_connections = settings.max_connections
        self.max_header_bytes = settings.max_header_bytes
        self.header_timeout = settings.header_timeout_seconds
        self.idle_timeout = settings.keepalive_timeout_seconds
        # One line per window and kind, with a count of the rest: a flood of bad connections
        # must not become a flood of log lines.
        self.events = RefusalLog(EVENT_WINDOW_SECONDS, logger=log)
        self._closed = {}
        self._open_gauge = None
        if metrics is not None:
            self._open_gauge = metrics.connections_open
            self._closed = {reason: metrics.connections_closed.labels(reason) for reason in CLOSE_REASONS}
        self._limit_answer = _answer(
            ErrorCode.CONNECTION_LIMIT,
            f"this process has {self.max_connections} connections open (BRIDGE_MAX_CONNECTIONS); retry later",
            retry_after=True,
        )
        self._head_answer = _answer(
            ErrorCode.HEADER_TOO_LARGE,
            f"the request line and headers exceed {self.max_header_bytes} bytes or {MAX_HEADER_COUNT} "
            "headers (BRIDGE_MAX_HEADER_BYTES)",
        )
        self._bad_request = _answer(ErrorCode.BAD_REQUEST, "invalid HTTP request")

    def event(self, kind: str, message: str, *args: object, extra: Mapping[str, Any] | None = None) -> None:
        """A door event (a refused connection, a body that never came): logged with its kind in
        `door_event`, the first of each kind per window; the window's count follows in one line."""
        self.events.once(
            kind,
            logging.WARNING,
            message,
            *args,
            extra={**(extra or {}), "door_event": kind},
            summary=f"door event(s) {kind}",
            summary_fields={"door_event": kind},
            count_field="suppressed",
        )

    def opened(self) -> None:
        if self._open_gauge is not None:
            self._open_gauge.inc()

    def lost(self) -> None:
        if self._open_gauge is not None:
            self._open_gauge.dec()

    def closed(self, reason: str) -> None:
        counter = self._closed.get(reason)
        if counter is not None:
            counter.inc()


def _answer(error: ErrorCode, detail: str, retry_after: bool = False) -> bytes:
    """A complete HTTP/1.1 answer that closes the connection, built once at start-up."""
    status = error.status
    body = orjson.dumps({"error": error.value, "detail": detail})
    phrase = {400: "Bad Request", 431: "Request Header Fields Too Large", 503: "Service Unavailable"}[status]
    head = (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n"
    )
    if retry_after:
        head += "retry-after: 1\r\n"
    return head.encode("ascii") + b"\r\n" + body


_door: Door | None = None


def install(door: Door) -> None:
    """Called by create_app: the connections of this process use `door`'s limits."""
    global _door
    _door = door


def current() -> Door:
    global _door
    if _door is None:  # an app built without create_app: the configured defaults, no metrics
        _door = Door(Settings.from_env())
    return _door


class DoorProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the connection limits described above."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.door = current()
        self._counted = False
        self._awaiting_head = True  # between requests or inside a request line/headers
        self._head_room = self.door.max_header_bytes
        self._header_count = 0
        self._heads_completed = 0
        self._head_timer: asyncio.TimerHandle | None = None

    # -- connection lifetime ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        door = self.door
        if len(self.connections) > door.max_connections:
            self.connections.discard(self)
            door.closed("connection_limit")
            door.event(
                "connection_limit",
                "connection limit reached: %d connections open (BRIDGE_MAX_CONNECTIONS); new ones are "
                "answered 503 and closed",
                door.max_connections,
            )
            transport.write(door._limit_answer)
            transport.close()
            return
        self._counted = True
        door.opened()
        self._arm_head_timer()
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self._counted:
            self._counted = False
            self.door.lost()
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def timeout_keep_alive_handler(self) -> None:
        if not self.transport.is_closing():
            self.door.closed("idle_timeout")
            self.transport.close()

    def _arm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.door.header_timeout, self._head_deadline)

    def _head_deadline(self) -> None:
        """No request head completed in time since the connection opened or the last answer."""
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # an answer is still being worked on; the next head's deadline starts after it
        # Not awaiting a head: the rest of a body answered before it was read (413, 503...)
        # is still trickling in, which would otherwise keep the connection forever.
        self.door.closed("header_timeout" if self._awaiting_head else "body_timeout")
        self.transport.close()

    # -- reading ---------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._awaiting_head:
            room = self._head_room
            if len(data) > room:
                self._feed_beyond_room(data, room)
                return
            self._head_room = room - len(data)
        self._feed(data)

    def _feed_beyond_room(self, data: bytes, room: int) -> None:
        """More bytes than the head may still take: feed what fits, and the rest only if the
        head ended within it (it was the start of the body)."""
        heads = self._heads_completed
        self._feed(data[:room])
        if self.transport.is_closing():
            return
        if self._heads_completed == heads:
            self._refuse_head()
            return
        self._feed(data[room:])

    def _feed(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse_head()
            else:
                log.error("the HTTP parser's callback failed", exc_info=exc.__context__ or exc)
                self._close_with(self.door._bad_request)
        except httptools.HttpParserError:
            self.logger.debug("invalid HTTP request received")
            self._close_with(self.door._bad_request)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def _refuse_head(self) -> None:
        door = self.door
        door.closed("header_too_large")
        door.event(
            "header_too_large",
            "request head over %d bytes or %d headers from %s: answered 431 and closed "
            "(BRIDGE_MAX_HEADER_BYTES)",
            door.max_header_bytes,
            MAX_HEADER_COUNT,
            self.client[0] if self.client else "?",
        )
        self._close_with(door._head_answer)

    def _close_with(self, answer: bytes) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the request in progress will not be answered on this connection
            self.cycle.message_event.set()
        self.transport.write(answer)
        self.transport.close()

    # -- parser callbacks ------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > MAX_HEADER_COUNT:
            raise _HeadTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._heads_completed += 1
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        # What follows on this connection is the next request's head.
        self._awaiting_head = True
        self._head_room = self.door.max_header_bytes
        self._header_count = 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # the next request's head is already complete
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._arm_head_timer()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn arguments that put the door in front of the app (`serve` and `dev`)."""
    return {
        "http": DoorProtocol,
        "ws": "none",  # the bridge has no WebSocket route: an Upgrade gets a plain HTTP answer
        "timeout_keep_alive": settings.keepalive_timeout_seconds,
    }


def raise_fd_limit(settings: Settings) -> int:
    """Raise this process's soft open-file limit to its hard limit (the workers inherit it) and
    check that BRIDGE_MAX_CONNECTIONS fits below it; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
    needed = settings.max_connections + RESERVED_FDS
    if soft != resource.RLIM_INFINITY and needed > soft:
        raise ConfigError(
            f"BRIDGE_MAX_CONNECTIONS={settings.max_connections} plus {RESERVED_FDS} descriptors for the "
            f"bridge's own files and sockets exceeds the open-file limit of {soft} (ulimit -n; hard limit "
            f"{hard}): lower BRIDGE_MAX_CONNECTIONS to at most {max(0, soft - RESERVED_FDS)} or raise "
            "the limit."
        )
    return soft
