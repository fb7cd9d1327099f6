"""/readyz and ready{check}: each component's readiness check and the run over all of them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bridge.delivery.publisher import ReadyState

if TYPE_CHECKING:
    from bridge.ingress.runtime import Runtime

__all__ = ["ReadinessCheck", "check_readiness", "default_checks"]

# A component's readiness (kafka, and the spool or registry when present): `ready` plus the
# fields it adds to the /readyz detail, e.g. {"kafka": "connected", "brokers": 3}.
ReadinessCheck = Callable[[], Awaitable[ReadyState]]


def default_checks(runtime: Runtime) -> dict[str, ReadinessCheck]:
    async def kafka() -> ReadyState:
        return await kafka_ready(runtime)

    async def spool() -> ReadyState:
        return spool_ready(runtime)

    checks: dict[str, ReadinessCheck] = {"kafka": kafka, "spool": spool}
    if runtime.registry is not None:

        async def schema_registry() -> ReadyState:
            return await registry_ready(runtime)

        checks["schema_registry"] = schema_registry
    return checks


async def kafka_ready(runtime: Runtime) -> ReadyState:
    publisher = runtime.publisher
    if publisher is None:
        return ReadyState(False, {"kafka": "producer not started"})
    state = await publisher.ready(runtime.topics, runtime.settings.readiness_cache_seconds)
    spool = runtime.spool
    if not state.ready and not state.reachable and not publisher.ever_connected:
        # A wrong address, a blocked port or bad credentials must look broken: tolerating
        # an outage is for a bridge that was connected, or a rollout would proceed on pods
        # that can never deliver what they spool.
        return ReadyState(
            False, {"kafka": "never connected", "kafka_detail": state.detail.get("kafka")}, False
        )
    if not state.ready and not state.reachable and spool is not None:
        if spool.has_room() and spool.writable():
            # The spool takes the webhooks while Kafka is away: stay in the Service, or Unit21's
            # retries would meet a closed door and the webhooks would be lost.
            return ReadyState(True, {**state.detail, "kafka_outage": "webhooks are spooled"})
        if not spool.writable():
            # Neither Kafka nor the disk can keep a 2xx promise: out of the Service, so that
            # Unit21's retries reach a pod that can (docs/delivery.md).
            return ReadyState(False, {**state.detail, "kafka_outage": "the spool's disk is failing"})
    return state


def spool_ready(runtime: Runtime) -> ReadyState:
    """Never fails on its own: a full or failing spool matters only while Kafka is away (see
    kafka_ready); with Kafka up, webhooks go to Kafka and the detail shows the spool's health."""
    if runtime.spool is None:
        return ReadyState(True, {"spool": {"enabled": runtime.settings.spool_enabled}})
    return ReadyState(True, {"spool": {"enabled": True, **runtime.spool.detail()}})


async def registry_ready(runtime: Runtime) -> ReadyState:
    registry = runtime.registry
    assert registry is not None
    status = await asyncio.to_thread(registry.resolve_if_due, runtime.settings.readiness_cache_seconds)
    detail: dict[str, Any] = {"schema_registry": status.detail}
    if status.failing_subject is not None:
        detail["schema_registry_subject"] = status.failing_subject
    return ReadyState(status.ready, detail)


async def check_readiness(runtime: Runtime, *, scrape: bool = False) -> tuple[list[str], dict[str, Any]]:
    """Run every readiness check: (the failing ones, the /readyz detail); sets ready{check}.

    For a scrape (`scrape=True`) a check that raises counts as failing (ready 0) instead of
    failing the scrape: /readyz answers that bug with a logged 500 on every probe."""
    gauge = runtime.metrics.ready
    if runtime.shutting_down:
        gauge.labels("shutdown").set(0)
        return ["shutdown"], {"shutting_down": True}
    gauge.labels("shutdown").set(1)
    detail: dict[str, Any] = {"shutting_down": False}
    failing: list[str] = []
    for name, check in runtime.readiness.items():
        if scrape:
            try:
                state = await check()
            except Exception as exc:
                state = ReadyState(False, {name: f"check failed: {type(exc).__name__}"})
        else:
            state = await check()
        detail.update(state.detail)
        gauge.labels(name).set(1 if state.ready else 0)
        if not state.ready:
            failing.append(name)
    return failing, detail
