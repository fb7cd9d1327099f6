"""Delivery: getting a record into Kafka, or onto disk until Kafka takes it.

The names other layers, the tests and the bench use; the modules' other names are internal."""

from bridge.delivery.dedup import RecentDeliveries
from bridge.delivery.drainer import Drainer
from bridge.delivery.embedded import EmbeddedBroker, EmbeddedBrokerError, free_port
from bridge.delivery.listing import SpoolEntry, list_spooled
from bridge.delivery.publisher import (
    Publisher,
    PublishError,
    ReadyState,
    body_limit_warning,
    producer_config,
)
from bridge.delivery.replay import replay
from bridge.delivery.sizes import record_size
from bridge.delivery.spool import Spool
from bridge.delivery.store import SpooledRecord, SpoolError, SpoolFull, spool_files
from bridge.delivery.topics import create_topics, read_to_end

__all__ = [
    "Drainer",
    "EmbeddedBroker",
    "EmbeddedBrokerError",
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
    "replay",
    "spool_files",
]
