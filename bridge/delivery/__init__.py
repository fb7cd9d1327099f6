"""Records out: the delivery policy (publish, spool or refuse), the producer, dedup, the disk
spool, topics, replay and the embedded broker. The public surface is `__all__`."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bridge.delivery.dedup import RecentDeliveries
    from bridge.delivery.embedded import EmbeddedBroker, free_port
    from bridge.delivery.policy import DeliveryPolicy, Outcome, OutcomeKind
    from bridge.delivery.publisher import (
        Publisher,
        PublishError,
        ReadyState,
        body_limit_warning,
        producer_config,
    )
    from bridge.delivery.spool import Drainer, Spool, SpoolError, SpoolFull
    from bridge.delivery.topics import create_topics, read_to_end

__all__ = [
    "DeliveryPolicy",
    "Drainer",
    "EmbeddedBroker",
    "Outcome",
    "OutcomeKind",
    "PublishError",
    "Publisher",
    "ReadyState",
    "RecentDeliveries",
    "Spool",
    "SpoolError",
    "SpoolFull",
    "body_limit_warning",
    "create_topics",
    "free_port",
    "producer_config",
    "read_to_end",
]

_MODULE_OF = {
    "DeliveryPolicy": "bridge.delivery.policy",
    "Drainer": "bridge.delivery.spool",
    "EmbeddedBroker": "bridge.delivery.embedded",
    "Outcome": "bridge.delivery.policy",
    "OutcomeKind": "bridge.delivery.policy",
    "PublishError": "bridge.delivery.publisher",
    "Publisher": "bridge.delivery.publisher",
    "ReadyState": "bridge.delivery.publisher",
    "RecentDeliveries": "bridge.delivery.dedup",
    "Spool": "bridge.delivery.spool",
    "SpoolError": "bridge.delivery.spool",
    "SpoolFull": "bridge.delivery.spool",
    "body_limit_warning": "bridge.delivery.publisher",
    "create_topics": "bridge.delivery.topics",
    "free_port": "bridge.delivery.embedded",
    "producer_config": "bridge.delivery.publisher",
    "read_to_end": "bridge.delivery.topics",
}


def __getattr__(name: str) -> Any:
    # Imported on first use: `send` needs the signature, not the producer and the app.
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
