"""Prometheus metrics: every metric object the bridge updates, and the `/metrics` exposition.

prometheus-client's registry is the one piece of process state this project tolerates, and
it stays here. Each `Metrics` owns a private `CollectorRegistry`, so several apps in one
process (the tests) never collide on metric names. In multiprocess mode (uvicorn with more
than one worker, `PROMETHEUS_MULTIPROC_DIR` set before the workers start) prometheus-client
writes every value to an mmap'd file per process instead, and `/metrics` merges the files of
all workers, whichever worker answers the scrape.

Hooks for the spool and dedup code: `Metrics.observe_spool(depth, oldest_age_seconds)`,
`Metrics.spool_error(operation)`, `Metrics.spool_health(healthy)`, `Metrics.dedup_hit()` and the
`spooled` counter. The app refreshes the gauges that must be current when Prometheus reads them
(spool age, readiness) in its /metrics handler.

Counters whose label values are known in advance are created at 0 at start-up (`known_labels`,
`Metrics.preset`): a series that appears only at its first increment hides that increment from
`increase()` and `rate()`, so the first auth failure or delivery failure would never alert.

With several workers, a worker that dies (kill -9, OOM) cannot remove its live gauges itself:
the next scrape does (`_drop_dead_workers`), whichever worker answers it.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import Any, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from bridge import __version__
from bridge.errors import SPOOL_OPERATIONS, ErrorCode, SignatureFailure
from bridge.settings import ConfigError, Settings

NAMESPACE: Final = "unit21_bridge"
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

# Unit21 answers its own retries within ~3 s, so the interesting range is 1 ms .. 5 s.
LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
# An authenticated sender chooses `change`, so the action label takes only the known action
# types (routes.KNOWN_ACTIONS); any other is `other`.
OTHER_ACTION: Final = "other"
NO_ACTION: Final = "none"

# Where a delivery attempt came from: a webhook waiting for its answer, or the spool's drainer.
PATHS: Final = ("request", "drain")
DELIVERY_FAILURE_REASONS: Final = (
    "timeout",
    "broker_error",
    "queue_full",
    "not_ready",
    "too_large",
    "rejected",
)
SPOOLED_REASONS: Final = ("timeout", "broker_error", "kafka_disconnected", "key_in_spool")
# The JSON "error" word of every non-2xx the webhook endpoint answers on purpose: every
# ErrorCode but the connection layer's own answers (connections_closed_total counts those), the
# router's 404 and a bug's internal_error.
_NOT_ENDPOINT_REFUSALS: Final = frozenset(
    {ErrorCode.NOT_FOUND, ErrorCode.HEADER_TOO_LARGE, ErrorCode.CONNECTION_LIMIT, ErrorCode.INTERNAL_ERROR}
)
REFUSAL_REASONS: Final = tuple(code.value for code in ErrorCode if code not in _NOT_ENDPOINT_REFUSALS)
# Statuses answered before the body is parsed, so with action="none".
DOOR_STATUSES: Final = ("400", "401", "405", "413", "415", "503")
KAFKA_CLIENT_ERRORS: Final = ("_TRANSPORT", "_ALL_BROKERS_DOWN", "_AUTHENTICATION", "_RESOLVE")
_LIVE_FILE = re.compile(r"^gauge_live[a-z]*_(\d+)\.db$")


class Metrics:
    def __init__(self, *, multiprocess_dir: str | None = None, actions: Collection[str] = ()) -> None:
        """`actions` are the action labels counted by name (the contract's catalogue); any other
        action is counted as `other`, so a client cannot grow the label set."""
        self.multiprocess_dir = multiprocess_dir
        self.actions = frozenset(actions)
        if multiprocess_dir is not None and os.environ.get(MULTIPROC_ENV) != multiprocess_dir:
            # prometheus-client picks its value store when it is imported, from the environment.
            raise ConfigError(
                f"{MULTIPROC_ENV} must be set in the environment before the process starts "
                "(prometheus-client reads it at import time)."
            )
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # Labelled children looked up once: `.labels()` costs more than the update itself and
        # these are updated once per webhook. Keys are bounded (capped actions, our statuses
        # and topics).
        self._request_children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        self._topic_children: dict[tuple[str, str], tuple[Histogram, Counter]] = {}

        self.requests = Counter(
            f"{NAMESPACE}_webhook_requests_total",
            "Webhook requests answered, by Unit21 action and HTTP status.",
            ["action", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            f"{NAMESPACE}_webhook_request_duration_seconds",
            "Time from the first byte of a webhook request to its answer, by HTTP status class.",
            ["status_class"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.auth_failures = Counter(
            f"{NAMESPACE}_auth_failures_total",
            "Webhooks refused with 401 because the signature did not verify, by reason.",
            ["reason"],
            registry=r,
        )
        self.in_flight = Gauge(
            f"{NAMESPACE}_webhook_requests_in_flight",
            "Webhook requests being handled right now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.ack_latency = Histogram(
            f"{NAMESPACE}_kafka_ack_latency_seconds",
            "Time from produce() to the broker's delivery report (success or failure), by topic and "
            "path (request: a webhook waits for it; drain: the spool's drainer).",
            ["topic", "path"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.records_produced = Counter(
            f"{NAMESPACE}_records_produced_total",
            "Records acknowledged by Kafka, by topic.",
            ["topic"],
            registry=r,
        )
        self.delivery_failures = Counter(
            f"{NAMESPACE}_delivery_failures_total",
            "Deliveries Kafka did not acknowledge, by reason (the record was then spooled, retried "
            "from the spool, or the request got a 503), by reason and path (request | drain).",
            ["reason", "path"],
            registry=r,
        )
        self.dead_lettered = Counter(
            f"{NAMESPACE}_dead_lettered_total",
            "Webhooks that failed schema validation, acknowledged on the DLQ topic or spooled for it.",
            registry=r,
        )
        self.unrecognized = Counter(
            f"{NAMESPACE}_unrecognized_total",
            "Webhooks of an unknown object type, acknowledged on the unrecognized topic or spooled for it.",
            registry=r,
        )
        self.kafka_client_errors = Counter(
            f"{NAMESPACE}_kafka_client_errors_total",
            "Errors librdkafka reported through its error callback (broker down, auth, ...), by error name.",
            ["error"],
            registry=r,
        )
        self.producer_resets = Counter(
            f"{NAMESPACE}_producer_resets_total",
            "Producers replaced after a timed-out or fatal delivery.",
            registry=r,
        )
        self.producer_queue = Gauge(
            f"{NAMESPACE}_producer_queue_messages",
            "Messages in librdkafka's local queue waiting for a delivery report.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.spooled = Counter(
            f"{NAMESPACE}_spooled_total",
            "Webhooks written to the disk spool and answered 202, by reason (timeout, broker_error, "
            "kafka_disconnected, key_in_spool).",
            ["reason"],
            registry=r,
        )
        self.spool_depth = Gauge(
            f"{NAMESPACE}_spool_messages",
            "Records waiting in the disk spool for Kafka.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.spool_oldest_age = Gauge(
            f"{NAMESPACE}_spool_oldest_age_seconds",
            "Age of the oldest record in the disk spool (0 when empty), computed at scrape time.",
            registry=r,
            multiprocess_mode="livemax",
        )
        # Multiprocess mode only: each worker's oldest enqueue time (0: empty), from which the
        # scrape computes the age above, so a worker that did not answer the scrape is current too.
        self.spool_oldest_timestamp: Gauge | None = None
        if multiprocess_dir is not None:
            self.spool_oldest_timestamp = Gauge(
                _OLDEST_TIMESTAMP,
                "Enqueue time of the oldest spooled record of each worker (internal).",
                registry=r,
                multiprocess_mode="liveall",
            )
        self.spool_bytes = Gauge(
            f"{NAMESPACE}_spool_bytes",
            "Bytes of the records waiting in the disk spool (what BRIDGE_SPOOL_MAX_BYTES limits).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.spool_limit_bytes = Gauge(
            f"{NAMESPACE}_spool_limit_bytes",
            "BRIDGE_SPOOL_MAX_BYTES of each spool (summed over the workers: each has its own spool).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.spool_parked = Gauge(
            f"{NAMESPACE}_spool_parked_messages",
            "Spooled records Kafka refuses for good, kept on disk and skipped until a restart.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.kafka_connected = Gauge(
            f"{NAMESPACE}_kafka_connected",
            "1 while the producer reaches Kafka; 0 after all brokers went down or a delivery timed out, "
            "and before the first connection (the minimum over the workers).",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.ready = Gauge(
            f"{NAMESPACE}_ready",
            "1 when a readiness check passes (what /readyz runs), by check; the minimum over the workers.",
            ["check"],
            registry=r,
            multiprocess_mode="livemin",
        )
        self.refusals = Counter(
            f"{NAMESPACE}_refusals_total",
            "Webhooks answered non-2xx on purpose, by reason (the JSON error word: overloaded, "
            "spool_full, kafka_unavailable, invalid_signature, ...).",
            ["reason"],
            registry=r,
        )
        self.spool_errors = Counter(
            f"{NAMESPACE}_spool_errors_total",
            "Failed operations on the disk spool, by operation: write (appending records, or probing "
            "whether a failed disk takes writes again), delete (removing records Kafka acknowledged), "
            "read (reading records to deliver).",
            ["operation"],
            registry=r,
        )
        for operation in SPOOL_OPERATIONS:
            self.spool_errors.labels(operation)
        self.spool_healthy = Gauge(
            f"{NAMESPACE}_spool_healthy",
            "1 while every operation on the disk spool works, 0 while writes, deletes or reads fail "
            "(the lowest of the worker processes).",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.dedup_hits = Counter(
            f"{NAMESPACE}_dedup_hits_total",
            "Webhook retries recognised as already published and not produced again.",
            registry=r,
        )
        self.connections_open = Gauge(
            f"{NAMESPACE}_connections_open",
            "Client connections open on the webhook port (BRIDGE_MAX_CONNECTIONS per process).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.connections_closed = Counter(
            f"{NAMESPACE}_connections_closed_total",
            "Client connections the bridge closed on its own, by reason (connection_limit, header_timeout, "
            "header_too_large, idle_timeout, body_timeout).",
            ["reason"],
            registry=r,
        )
        for reason in (
            "connection_limit",
            "header_timeout",
            "header_too_large",
            "idle_timeout",
            "body_timeout",
        ):
            self.connections_closed.labels(reason)
        self.build_info = Gauge(
            f"{NAMESPACE}_build_info",
            "Always 1; the labels say which build is running.",
            ["version", "python_version"],
            registry=r,
            multiprocess_mode="max",
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        if multiprocess_dir is None:
            # process_resident_memory_bytes, process_open_fds, process_start_time_seconds, ...
            # (in multiprocess mode the scrape adds them for every live worker, see render()).
            ProcessCollector(registry=r)
        self.kafka_connected.set(0)
        for combination in known_labels(self):
            self.preset(*combination)

    @staticmethod
    def preset(metric: MetricWrapperBase, combinations: Iterable[Sequence[str]]) -> None:
        """Create these label combinations at 0, so their first increment is visible to increase()."""
        for values in combinations:
            metric.labels(*values)

    def preset_topics(self, topics: Iterable[str]) -> None:
        """The per-topic counters, at 0 (the topics are known once the prefix is). Not the
        ack-latency histograms: 16 series per topic and path, for quantiles, not first events."""
        for topic in topics:
            self.records_produced.labels(topic)

    @classmethod
    def from_settings(cls, settings: Settings, actions: Collection[str]) -> Metrics:
        return cls(multiprocess_dir=settings.prometheus_multiproc_dir, actions=actions)

    # -- hooks ------------------------------------------------------------------------------

    def action_label(self, action: str | None) -> str:
        if not action:
            return NO_ACTION
        return action if action in self.actions else OTHER_ACTION

    def observe_request(self, action: str | None, status: int, seconds: float) -> None:
        key = (self.action_label(action), status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(key[0], str(status)),
                self.request_duration.labels(f"{status // 100}xx"),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_delivery(self, topic: str, seconds: float, acknowledged: bool, path: str = "request") -> None:
        """A delivery report: its latency, and an acknowledged record (failures count by reason)."""
        children = self._topic_children.get((topic, path))
        if children is None:
            children = (self.ack_latency.labels(topic, path), self.records_produced.labels(topic))
            self._topic_children[(topic, path)] = children
        children[0].observe(seconds)
        if acknowledged:
            children[1].inc()

    def observe_spool(self, depth: int, oldest_age_seconds: float) -> None:
        """Called by the spool whenever its content changes (and on a timer while not empty)."""
        self.spool_depth.set(depth)
        self.spool_oldest_age.set(oldest_age_seconds)
        if self.spool_oldest_timestamp is not None:
            self.spool_oldest_timestamp.set(time.time() - oldest_age_seconds if depth else 0)

    def observe_spool_size(self, size_bytes: int, limit_bytes: int, parked: int) -> None:
        self.spool_bytes.set(size_bytes)
        self.spool_limit_bytes.set(limit_bytes)
        self.spool_parked.set(parked)

    def spool_error(self, operation: str) -> None:
        """Called by the spool for each failed write, delete or read."""
        self.spool_errors.labels(operation).inc()

    def spool_health(self, healthy: bool) -> None:
        """Called by the spool when it opens and whenever its health changes."""
        self.spool_healthy.set(1 if healthy else 0)

    def dedup_hit(self) -> None:
        """Called by the dedup store each time a retry is answered without producing again."""
        self.dedup_hits.inc()

    # -- exposition -------------------------------------------------------------------------

    def render(self) -> bytes:
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        _drop_dead_workers(self.multiprocess_dir)
        # A fresh registry per scrape: the collector reads every worker's files each time.
        registry = CollectorRegistry()
        registry.register(_MergedView(self.multiprocess_dir))
        return generate_latest(registry)

    def process_exiting(self) -> None:
        """Drop this process's live gauges (in-flight, queue, spool) from the merged view."""
        if self.multiprocess_dir is not None:
            prometheus_multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]


_OLDEST_TIMESTAMP: Final = f"{NAMESPACE}_spool_oldest_enqueued_timestamp_seconds"
_OLDEST_AGE: Final = f"{NAMESPACE}_spool_oldest_age_seconds"


def known_labels(m: Metrics) -> list[tuple[MetricWrapperBase, list[tuple[str, ...]]]]:
    """Every label combination known at start-up, per metric (created at 0)."""
    return [
        (m.auth_failures, [(reason.value,) for reason in SignatureFailure]),
        (m.delivery_failures, [(reason, path) for reason in DELIVERY_FAILURE_REASONS for path in PATHS]),
        (m.spooled, [(reason,) for reason in SPOOLED_REASONS]),
        (m.refusals, [(reason,) for reason in REFUSAL_REASONS]),
        (m.requests, [(NO_ACTION, status) for status in DOOR_STATUSES]),
        (m.request_duration, [("2xx",), ("4xx",), ("5xx",)]),
        (m.kafka_client_errors, [(name,) for name in KAFKA_CLIENT_ERRORS]),
    ]


def _process_alive(pid: int) -> bool:
    """False for a process that is gone or a zombie (killed, not yet reaped by uvicorn's supervisor)."""
    if pid == os.getpid():
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # "pid (comm) state ...": comm may contain spaces and parentheses, the state follows the last ")".
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: fall back to signal 0 (a zombie still counts as alive there)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _worker_pids(path: str) -> set[int]:
    pids: set[int] = set()
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(path):
            match = _LIVE_FILE.match(name)
            if match:
                pids.add(int(match.group(1)))
    return pids


def _drop_dead_workers(path: str) -> None:
    """Remove the live gauges (spool, queue, in-flight, connected) of workers that died without
    cleaning up; their counters and histograms stay, as the totals they counted still happened."""
    for pid in _worker_pids(path):
        if not _process_alive(pid):
            with contextlib.suppress(FileNotFoundError):
                prometheus_multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


class _MergedView(Collector):
    """Every worker's files merged, with the oldest spool age computed now and the process
    metrics of every live worker (label `pid`), as the workers' RSS add up in the pod."""

    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self) -> Iterator[Any]:
        merged = prometheus_multiprocess.MultiProcessCollector(None, path=self.path)  # type: ignore[no-untyped-call]
        for family in merged.collect():  # type: ignore[no-untyped-call]
            if family.name == _OLDEST_AGE:
                continue
            if family.name == _OLDEST_TIMESTAMP:
                stamps = [s.value for s in family.samples if s.value > 0]
                age = max(0.0, time.time() - min(stamps)) if stamps else 0.0
                yield GaugeMetricFamily(
                    _OLDEST_AGE, "Age of the oldest record in the disk spool (0 when empty).", value=age
                )
                continue
            yield family
        yield from _process_families(sorted(_worker_pids(self.path) | {os.getpid()}))


def _process_families(pids: Sequence[int]) -> Iterator[Metric]:
    families: dict[str, Metric] = {}
    for pid in pids:
        collector = ProcessCollector(pid=_constant(pid), registry=None)
        for family in collector.collect():
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(family.name, family.documentation, family.type)
            for sample in family.samples:
                merged.add_sample(sample.name, {"pid": str(pid)}, sample.value)
    yield from families.values()


def _constant(pid: int) -> Callable[[], int]:
    return lambda: pid


def prepare_multiprocess_dir(path: str) -> int:
    """Remove the value files a previous run left behind (prometheus-client requires a clean
    directory at start-up); returns how many were removed."""
    removed = 0
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))
            removed += 1
    return removed
