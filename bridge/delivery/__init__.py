"""Records out: the delivery policy (publish, spool or refuse), the producer, dedup, the disk
spool (store, adoption, listing, drainer), topics, replay and the embedded broker.

The public surface is `__all__`; the modules' other names are internal. Names are imported on
first use, so `send` (which needs the signature, not the producer) stays quick to start."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.exports import lazy_exports

if TYPE_CHECKING:
    from bridge.delivery.dedup import RecentDeliveries
    from bridge.delivery.drainer import Drainer
    from bridge.delivery.embedded import EmbeddedBroker, EmbeddedBrokerError, free_port
    from bridge.delivery.listing import SpoolEntry, list_spooled
    from bridge.delivery.policy import DeliveryPolicy, Outcome, OutcomeKind
    from bridge.delivery.publisher import (
        Publisher,
        PublishError,
        ReadyState,
        body_limit_warning,
        producer_config,
    )
    from bridge.delivery.sizes import record_size
    from bridge.delivery.spool import Spool
    from bridge.delivery.store import SpooledRecord, SpoolError, SpoolFull, spool_files
    from bridge.delivery.topics import create_topics, read_to_end

_MODULE_OF = {
    "DeliveryPolicy": "bridge.delivery.policy",
    "Drainer": "bridge.delivery.drainer",
    "EmbeddedBroker": "bridge.delivery.embedded",
    "EmbeddedBrokerError": "bridge.delivery.embedded",
    "Outcome": "bridge.delivery.policy",
    "OutcomeKind": "bridge.delivery.policy",
    "PublishError": "bridge.delivery.publisher",
    "Publisher": "bridge.delivery.publisher",
    "ReadyState": "bridge.delivery.publisher",
    "RecentDeliveries": "bridge.delivery.dedup",
    "Spool": "bridge.delivery.spool",
    "SpoolEntry": "bridge.delivery.listing",
    "SpoolError": "bridge.delivery.store",
    "SpoolFull": "bridge.delivery.store",
    "SpooledRecord": "bridge.delivery.store",
    "body_limit_warning": "bridge.delivery.publisher",
    "create_topics": "bridge.delivery.topics",
    "free_port": "bridge.delivery.embedded",
    "list_spooled": "bridge.delivery.listing",
    "producer_config": "bridge.delivery.publisher",
    "read_to_end": "bridge.delivery.topics",
    "record_size": "bridge.delivery.sizes",
    "spool_files": "bridge.delivery.store",
}
__all__ = [
    "DeliveryPolicy",
    "Drainer",
    "EmbeddedBroker",
    "EmbeddedBrokerError",
    "Outcome",
    "OutcomeKind",
    "PublishError",
    "Publisher",
    "ReadyState",
    "RecentDeliveries",
    "Spool",
    "SpoolEntry",
    "SpoolError",
    "SpoolFull",
    "SpooledRecord",
    "body_limit_warning",
    "create_topics",
    "free_port",
    "list_spooled",
    "producer_config",
    "read_to_end",
    "record_size",
    "spool_files",
]


__getattr__ = lazy_exports(__name__, _MODULE_OF)
