"""Prometheus metrics: every metric object the bridge updates, and the `/metrics` exposition.

prometheus-client's registry is the one piece of process state this project tolerates, and
it stays here. Each `Metrics` owns a private `CollectorRegistry`, so several apps in one
process (the tests) never collide on metric names. In multiprocess mode (uvicorn with more
than one worker, `PROMETHEUS_MULTIPROC_DIR` set before the workers start) prometheus-client
writes every value to an mmap'd file per process instead, and `/metrics` merges the files of
all workers, whichever worker answers the scrape.

Hooks for the spool and dedup code: `Metrics.observe_spool(depth, oldest_age_seconds)`,
`Metrics.spool_error(operation)`, `Metrics.spool_health(healthy)`, `Metrics.dedup_hit()` and the
`spooled` counter.
"""

from __future__ import annotations

import os
import platform
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

from bridge import __version__
from bridge.config import ConfigError, Settings
from bridge.routes import KNOWN_ACTIONS
from bridge.spool import OPERATIONS as SPOOL_OPERATIONS

NAMESPACE: Final = "unit21_bridge"
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

# Unit21 answers its own retries within ~3 s, so the interesting range is 1 ms .. 5 s.
LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
# An authenticated sender chooses `change`, so the action label takes only the known action
# types (routes.KNOWN_ACTIONS); any other is `other`.
OTHER_ACTION: Final = "other"
NO_ACTION: Final = "none"


class Metrics:
    def __init__(self, *, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
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
        self._topic_children: dict[str, tuple[Histogram, Counter]] = {}

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
            "Time from produce() to the broker's delivery report (success or failure), by topic.",
            ["topic"],
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
            "from the spool, or the request got a 503).",
            ["reason"],
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
            "Age of the oldest record in the disk spool (0 when empty).",
            registry=r,
            multiprocess_mode="livemax",
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

    @classmethod
    def from_settings(cls, settings: Settings) -> Metrics:
        return cls(multiprocess_dir=settings.prometheus_multiproc_dir)

    # -- hooks ------------------------------------------------------------------------------

    @staticmethod
    def action_label(action: str | None) -> str:
        if not action:
            return NO_ACTION
        return action if action in KNOWN_ACTIONS else OTHER_ACTION

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

    def observe_delivery(self, topic: str, seconds: float, acknowledged: bool) -> None:
        """A delivery report: its latency, and an acknowledged record (failures count by reason)."""
        children = self._topic_children.get(topic)
        if children is None:
            children = (self.ack_latency.labels(topic), self.records_produced.labels(topic))
            self._topic_children[topic] = children
        children[0].observe(seconds)
        if acknowledged:
            children[1].inc()

    def observe_spool(self, depth: int, oldest_age_seconds: float) -> None:
        """Called by the spool whenever its content changes (and on a timer while not empty)."""
        self.spool_depth.set(depth)
        self.spool_oldest_age.set(oldest_age_seconds)

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
        # A fresh registry per scrape: the collector reads every worker's files each time.
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def process_exiting(self) -> None:
        """Drop this process's live gauges (in-flight, queue, spool) from the merged view."""
        if self.multiprocess_dir is not None:
            prometheus_multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]


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
