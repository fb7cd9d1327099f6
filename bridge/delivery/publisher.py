"""confluent-kafka Producer behind an asyncio API: `await publish(...)` resolves on the broker's ack.

This module is the only asyncio/thread seam. Delivery reports are served by polling the
producer from a task on the event loop, so the callbacks run on the loop's own thread and
complete their futures directly: no second Python thread competes for the GIL and no
cross-thread wake-up is paid per message (measured: the poll-thread design spent most of a
request's time there). Only a flush on another thread (shutdown, a retired producer) hands
results over with `call_soon_threadsafe`.
(`AIOProducer` is not used: its batch path cannot send Kafka headers.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException, Producer

from bridge.contract.records import Delivery
from bridge.delivery.sizes import record_size
from bridge.errors import BridgeError
from bridge.ops.refusals import RefusalLog
from bridge.settings import Settings

if TYPE_CHECKING:
    from bridge.ops.metrics import Metrics

log = logging.getLogger("bridge.publisher")

_RESET_ERRORS = frozenset({KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT})
# Kafka will never take these records as they are (produce() raises the size error itself when
# a record exceeds message.max.bytes; a broker answers it for its topic's max.message.bytes):
# retrying, or spooling for a later retry, cannot help.
_TOO_LARGE_ERRORS = frozenset(
    {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_MSG_SIZE}
)
_REJECTED_ERRORS = frozenset({KafkaError.INVALID_RECORD, KafkaError.INVALID_MSG})
# While messages await their reports the loop polls this often; linger.ms batches for 5 ms anyway.
_BUSY_POLL_SECONDS = 0.001
# With nothing in flight, error and log callbacks are still served this often.
_IDLE_POLL_SECONDS = 0.1
# During an outage librdkafka reports each failed connection twice (a log line and the error
# callback) per broker and retry, and each disconnect: one line per kind per window is enough.
KAFKA_LOG_WINDOW_SECONDS = 30.0
_librdkafka_log = logging.getLogger("bridge.librdkafka")


class PublishError(BridgeError):
    """The record was not acknowledged; the caller must not answer 2xx on this path."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        # queue_full | timeout | broker_error: may succeed later;
        # too_large | rejected: Kafka refuses this record for good (see PERMANENT_REASONS).
        self.reason = reason
        self.detail = detail

    @property
    def permanent(self) -> bool:
        return self.reason in PERMANENT_REASONS


PERMANENT_REASONS = frozenset({"too_large", "rejected"})


def message_max_bytes(config: dict[str, Any]) -> int:
    """The largest record produce() accepts under `config` (librdkafka's default: 1,000,000)."""
    return int(config.get("message.max.bytes", 1_000_000))


def producer_config(settings: Settings) -> dict[str, Any]:
    """librdkafka settings; the first block is what makes a 2xx mean 'in Kafka'."""
    config: dict[str, Any] = {
        "client.id": "unit21-kafka-bridge",
        "linger.ms": 5,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 100_000,
        "queue.buffering.max.kbytes": 256 * 1024,
        # Same partition for the same key as Java producers (murmur2), not librdkafka's CRC32.
        "partitioner": "murmur2_random",
        "socket.keepalive.enable": True,
        # Reconnect within a second of the network coming back (librdkafka's default backs off to 10 s).
        "reconnect.backoff.max.ms": 1000,
    }
    config.update(settings.kafka_client_config())
    config.update(
        {
            "enable.idempotence": True,
            "acks": "all",
            # The HTTP answer waits for the report, so the report must come within its deadline.
            "message.timeout.ms": max(1, int(settings.delivery_timeout_seconds * 1000)),
        }
    )
    return config


# A dead-letter or unrecognized record carries the whole body plus the request headers,
# the validation errors and the bridge's metadata.
RECORD_OVERHEAD_BYTES = 64 * 1024


def body_limit_warning(settings: Settings) -> str | None:
    """Why a body the HTTP limit accepts could make a record Kafka refuses, or None."""
    limit = message_max_bytes(producer_config(settings))
    if settings.max_body_bytes + RECORD_OVERHEAD_BYTES <= limit:
        return None
    return (
        f"BRIDGE_MAX_BODY_BYTES={settings.max_body_bytes} leaves less than {RECORD_OVERHEAD_BYTES} bytes "
        f"under Kafka's message.max.bytes={limit}: a body near the limit can make a record Kafka refuses "
        "(answered 413 record_too_large). Lower BRIDGE_MAX_BODY_BYTES or raise KAFKA_MESSAGE_MAX_BYTES "
        "and the topics' max.message.bytes."
    )


@dataclass
class ReadyState:
    ready: bool
    detail: dict[str, Any] = field(default_factory=dict)
    reachable: bool = True  # False: no broker answered (as opposed to a broker saying topics are missing)


class Publisher:
    def __init__(
        self, config: dict[str, Any], *, delivery_timeout: float, metrics: Metrics | None = None
    ) -> None:
        self._metrics = metrics
        self._config = dict(config)
        self._config["error_cb"] = self._on_error
        self._quiet = RefusalLog(KAFKA_LOG_WINDOW_SECONDS, logger=log)
        self._config["logger"] = _ThrottledLibrdkafkaLog(self._quiet)
        self._delivery_timeout = delivery_timeout
        # Checked before a record is spooled without a produce attempt: a record produce() would
        # refuse must not wait on disk to be refused forever.
        self.max_message_bytes = message_max_bytes(self._config)
        self._producer = self._new_producer()
        self._lock = threading.Lock()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._loop_thread: int | None = None
        self._wake: asyncio.Event | None = None
        self._reset_requested = False
        self._last_reset = 0.0
        # (loop time, future) in deadline order, as every message gets the same timeout.
        self._deadlines: deque[tuple[float, asyncio.Future[Delivery]]] = deque()
        self._ready_cache: tuple[float, ReadyState] | None = None
        # True once a broker answered (metadata or an acknowledgement) since this process started:
        # tolerating an outage is for a bridge that was connected, not for a wrong address.
        self.ever_connected = False
        # False from "all brokers down" or a timed-out delivery until the next acknowledgement:
        # while it is False, a caller with a spool writes there at once instead of waiting out
        # the delivery deadline. Written by callbacks, read on the loop (a plain bool).
        self._connected = True
        self._show_connected()

    @property
    def connected(self) -> bool:
        return self._connected

    @connected.setter
    def connected(self, value: bool) -> None:
        first = value and not self.ever_connected
        if first:
            self.ever_connected = True
        if first or value != self._connected:
            self._connected = value
            self._show_connected()

    def _show_connected(self) -> None:
        if self._metrics is not None:
            self._metrics.kafka_connected.set(1 if self._connected and self.ever_connected else 0)

    def _new_producer(self) -> Producer:
        try:
            return Producer(self._config)
        except KafkaException as exc:
            raise ValueError(f"invalid Kafka producer configuration: {exc.args[0].str()}") from None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start serving delivery reports; call it from inside the running event loop."""
        self._loop_thread = threading.get_ident()
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._serve_reports(), name="kafka-reports")

    async def _serve_reports(self) -> None:
        wake = self._wake
        assert wake is not None
        loop = asyncio.get_running_loop()
        deadlines = self._deadlines
        while not self._stopping:
            producer = self._producer
            try:
                producer.poll(0)
            except Exception:
                # An exception from a callback surfaces here. This task is what completes every
                # waiting request (and expires the overdue ones), so it must outlive any of them.
                log.exception("kafka: error while serving delivery reports")
            now = loop.time()
            while deadlines and (deadlines[0][1].done() or deadlines[0][0] <= now):
                _expire(deadlines.popleft()[1])
            waiting = len(producer)
            if self._metrics is not None:
                self._metrics.producer_queue.set(waiting)
            if waiting:
                await asyncio.sleep(_BUSY_POLL_SECONDS)
            else:
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), _IDLE_POLL_SECONDS)

    def queue_length(self) -> int:
        """Messages waiting in librdkafka for a delivery report."""
        return len(self._producer)

    def close(self, timeout: float) -> int:
        """Flush what is in flight; returns how many messages were still undelivered.

        Callable on the loop or on another thread (the app flushes via `asyncio.to_thread`);
        the polling task sees `_stopping` and ends by itself.
        """
        self._stopping = True
        if self._wake is not None and self._loop_thread == threading.get_ident():
            self._wake.set()
        remaining: int = self._producer.flush(timeout)
        if remaining:
            log.error("shutdown: %d message(s) not acknowledged within %.1f s", remaining, timeout)
        return remaining

    # -- publishing ------------------------------------------------------------------------

    def refuses(self, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]]) -> PublishError | None:
        """The error produce() would raise for a record over message.max.bytes, without producing.

        Measured by `record_size`, as the spool measures it: it never refuses a record librdkafka
        would take."""
        size = record_size(key, value, headers)
        if size <= self.max_message_bytes:
            return None
        self._count_failure("too_large")
        detail = f"{size} bytes exceed message.max.bytes={self.max_message_bytes}"
        return PublishError("too_large", detail)

    async def publish(
        self,
        topic: str,
        key: bytes,
        value: bytes,
        headers: Sequence[tuple[str, bytes]],
        path: str = "request",
    ) -> Delivery:
        """Resolve on the broker's ack. `path` labels the metrics: "request" (a webhook waits for
        this answer) or "drain" (the spool's drainer retries), so retries do not inflate the first."""
        if self._task is None:
            raise RuntimeError("Publisher.start() must be called before publish()")
        if self._reset_requested:
            self._reset_producer()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Delivery] = loop.create_future()
        on_delivery = self._reporter(loop, future, topic, path)
        try:
            self._producer.produce(
                topic,
                value=value,
                key=key,
                headers=headers if isinstance(headers, list) else list(headers),  # it takes lists or dicts
                on_delivery=on_delivery,
            )
        except BufferError:
            self._count_failure("queue_full", path)
            raise PublishError("queue_full", "the producer's local queue is full") from None
        except KafkaException as exc:
            error = exc.args[0]
            reason = _failure_reason(error)
            self._count_failure(reason, path)
            raise PublishError(reason, error.str()) from None
        if self._wake is not None and not self._wake.is_set():
            self._wake.set()
        # librdkafka reports a timeout itself at message.timeout.ms; this deadline is only a
        # safety net, swept by the polling task (a timer per message cost more than the sweep).
        self._deadlines.append((loop.time() + self._delivery_timeout + 1.0, future))
        try:
            return await future
        except TimeoutError:
            self.connected = False
            self._count_failure("timeout", path)
            raise PublishError(
                "timeout", f"no acknowledgement from Kafka within {self._delivery_timeout:.1f} s"
            ) from None

    def _reporter(
        self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Delivery], topic: str, path: str
    ) -> Callable[[KafkaError | None, Any], None]:
        """The delivery callback of one message: completes `future` and observes the metrics."""
        metrics = self._metrics
        sent = time.perf_counter()

        def on_delivery(err: KafkaError | None, msg: Any) -> None:
            if metrics is not None:
                metrics.observe_delivery(topic, time.perf_counter() - sent, err is None, path)
                if err is not None:
                    metrics.delivery_failures.labels(_failure_reason(err), path).inc()
            if err is not None:
                if err.code() in _RESET_ERRORS or err.fatal():
                    self._reset_requested = True
                    self.connected = False
                result: Any = err
                complete: Any = _fail
            else:
                self.connected = True
                result, complete = Delivery(msg.topic(), msg.partition(), msg.offset()), _succeed
            if threading.get_ident() == self._loop_thread:
                complete(future, result)
            else:  # a flush on another thread: shutdown, or a retired producer
                loop.call_soon_threadsafe(complete, future, result)

        return on_delivery

    def _reset_producer(self) -> None:
        """Replace the producer after a timed-out or fatal delivery.

        An idempotent producer that lost messages to a timeout can be stuck on sequence
        numbers (and a fatal error needs a new instance anyway). Its pending messages are
        purged, which fails their futures, so those requests get a non-2xx and are retried.
        """
        with self._lock:
            now = time.monotonic()
            if now - self._last_reset < self._delivery_timeout:
                return
            self._reset_requested = False
            self._last_reset = now
            old, self._producer = self._producer, self._new_producer()
        if self._metrics is not None:
            self._metrics.producer_resets.inc()
        log.warning("kafka producer replaced after a timed-out or fatal delivery")
        threading.Thread(target=_retire, args=(old,), name="kafka-retire", daemon=True).start()

    def _count_failure(self, reason: str, path: str = "request") -> None:
        if self._metrics is not None:
            self._metrics.delivery_failures.labels(reason, path).inc()

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.connected = False
        if self._metrics is not None:
            self._metrics.kafka_client_errors.labels(err.name()).inc()
        fields = {"kafka_error": err.name(), "fatal": err.fatal()}
        if err.fatal():
            self._reset_requested = True
            log.error("fatal kafka error: %s", err.str(), extra=fields)
        else:
            self._quiet.once(
                f"error:{err.name()}",
                logging.WARNING,
                "kafka error: %s",
                err.str(),
                extra=fields,
                summary=f"kafka error(s) {err.name()}",
                summary_fields={"kafka_error": err.name()},
            )

    def flush_logs(self) -> None:
        """Write the counts of the librdkafka lines held back (at shutdown)."""
        self._quiet.flush()

    # -- readiness -------------------------------------------------------------------------

    async def ready(self, topics: Sequence[str], cache_seconds: float) -> ReadyState:
        cached = self._ready_cache
        if cached is not None and time.monotonic() - cached[0] < cache_seconds:
            return cached[1]
        state = await asyncio.to_thread(self._check_topics, topics)
        self._ready_cache = (time.monotonic(), state)
        return state

    def _check_topics(self, topics: Sequence[str]) -> ReadyState:
        try:
            metadata = self._producer.list_topics(timeout=2.0)
        except KafkaException as exc:
            return ReadyState(False, {"kafka": f"unreachable: {exc.args[0].str()}"}, reachable=False)
        # A broker answered: the next webhook tries Kafka again instead of going to the spool.
        self.connected = True
        missing = [t for t in topics if t not in metadata.topics or metadata.topics[t].error is not None]
        if missing:
            return ReadyState(False, {"kafka": "connected", "missing_topics": missing})
        return ReadyState(True, {"kafka": "connected", "brokers": len(metadata.brokers)})


class _ThrottledLibrdkafkaLog:
    """What confluent-kafka calls as `logger.log(level, "%s [%s] %s", facility, client, text)`:
    the first line of each level and facility per window, then a count."""

    def __init__(self, quiet: RefusalLog) -> None:
        self._quiet = quiet

    def log(self, level: int, msg: str, *args: Any) -> None:
        facility = str(args[0]) if args else "?"
        self._quiet.once(
            f"log:{level}:{facility}",
            level,
            msg,
            *args,
            summary=f"librdkafka {facility} line(s)",
            summary_fields={"facility": facility},
            logger=_librdkafka_log,
        )


def _succeed(future: asyncio.Future[Delivery], delivery: Delivery) -> None:
    if not future.done():
        future.set_result(delivery)


def _expire(future: asyncio.Future[Delivery]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _failure_reason(err: KafkaError) -> str:
    code = err.code()
    if code in _RESET_ERRORS:
        return "timeout"
    if code in _TOO_LARGE_ERRORS:
        return "too_large"
    if code in _REJECTED_ERRORS:
        return "rejected"
    return "broker_error"


def _fail(future: asyncio.Future[Delivery], err: KafkaError) -> None:
    if not future.done():
        future.set_exception(PublishError(_failure_reason(err), err.str()))


def _retire(producer: Producer) -> None:
    producer.purge()
    producer.flush(5.0)
