"""What the request path needs: the pure parts built at once, the producer and the spool in
the lifespan (app.py)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from bridge.contract import routes
from bridge.contract.codec import Codec, SingleObjectCodec
from bridge.contract.records import MessageBuilder
from bridge.contract.schemas import SchemaSet
from bridge.delivery.dedup import RecentDeliveries
from bridge.delivery.policy import DeliveryPolicy
from bridge.delivery.publisher import Publisher
from bridge.delivery.spool import Spool
from bridge.ingress import readiness
from bridge.ingress.body import BodyBudget
from bridge.ops.metrics import Metrics
from bridge.ops.refusals import RefusalLog
from bridge.ops.tracing import Tracing, tracing_from_settings
from bridge.settings import Settings

if TYPE_CHECKING:
    from bridge.contract.registry import RegistryCodec

__all__ = ["Runtime"]


class Runtime:
    def __init__(
        self,
        settings: Settings,
        builder: MessageBuilder,
        *,
        registry: RegistryCodec | None = None,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.builder = builder
        self.registry = registry  # set in Schema Registry mode: ids resolved in the lifespan
        self.secrets = tuple(s.encode("utf-8") for s in settings.webhook_secrets)
        self.topics = routes.all_topics(settings.topic_prefix)
        self.recent = RecentDeliveries(settings.dedup_window_seconds, settings.dedup_max_entries)
        self.refusals = RefusalLog()
        self.in_flight = 0  # webhooks past their body, being handled: BRIDGE_MAX_CONCURRENCY
        self.bodies = BodyBudget(settings.max_concurrency * settings.max_body_bytes)
        self.metrics = metrics or Metrics.from_settings(settings, routes.KNOWN_ACTIONS)
        self.tracing = tracing or tracing_from_settings(settings)
        self.metrics.preset_topics(self.topics)
        self.policy = DeliveryPolicy(None, None, self.recent, self.metrics, self.tracing)
        # Set by SIGTERM/SIGINT (or the lifespan's end), so readiness fails before anything stops.
        self.shutdown_started: float | None = None
        # Components add their own check here (name -> check); /readyz runs them all.
        self.readiness: dict[str, readiness.ReadinessCheck] = readiness.default_checks(self)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, metrics: Metrics | None = None, tracing: Tracing | None = None
    ) -> Runtime:
        schemas = SchemaSet.load()
        registry: RegistryCodec | None = None
        codec: Codec = SingleObjectCodec(schemas)
        if settings.schema_registry_url:
            from bridge.contract.registry import registry_codec  # imports the registry client only when used

            codec = registry = registry_codec(settings, schemas)
        builder = MessageBuilder(schemas, codec, settings.topic_prefix)
        return cls(settings, builder, registry=registry, metrics=metrics, tracing=tracing)

    @property
    def publisher(self) -> Publisher | None:
        return self.policy.publisher

    @property
    def spool(self) -> Spool | None:
        return self.policy.spool

    def attach(self, publisher: Publisher | None, spool: Spool | None) -> None:
        """The producer and the spool the policy delivers with (None, None: not started or stopped)."""
        self.policy = DeliveryPolicy(publisher, spool, self.recent, self.metrics, self.tracing)

    @property
    def shutting_down(self) -> bool:
        return self.shutdown_started is not None

    def begin_shutdown(self) -> None:
        if self.shutdown_started is None:
            self.shutdown_started = time.monotonic()

    def shutdown_time_left(self) -> float:
        """Seconds left of BRIDGE_SHUTDOWN_GRACE_SECONDS since the signal."""
        started = self.shutdown_started if self.shutdown_started is not None else time.monotonic()
        return self.settings.shutdown_grace_seconds - (time.monotonic() - started)

    async def check_readiness(self, *, scrape: bool = False) -> tuple[list[str], dict[str, Any]]:
        return await readiness.check_readiness(self, scrape=scrape)

    def refresh_gauges(self) -> None:
        """The gauges that must be current when Prometheus reads them."""
        publisher, spool = self.publisher, self.spool
        if publisher is not None:
            self.metrics.producer_queue.set(publisher.queue_length())
        if spool is not None:
            spool.report()
