"""Create the bridge's topics (idempotently) with an AdminClient."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]


def create_topics(
    admin_config: Mapping[str, Any],
    names: Sequence[str],
    *,
    partitions: int = 6,
    replication_factor: int = -1,
    config: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> dict[str, str]:
    """Create missing topics; returns topic -> "created" | "exists". Raises on any other error."""
    admin = AdminClient(dict(admin_config))
    new = [
        NewTopic(
            name, num_partitions=partitions, replication_factor=replication_factor, config=dict(config or {})
        )
        for name in names
    ]
    # Keep `admin` referenced until every future resolved: destroying it early fails them all.
    futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
    result: dict[str, str] = {}
    errors: list[str] = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            result[name] = "created"
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                result[name] = "exists"
            else:
                errors.append(f"{name}: {err.str()}")
    del admin
    if errors:
        raise RuntimeError("could not create topics: " + "; ".join(errors))
    return result
