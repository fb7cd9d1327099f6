"""Helpers shared by the tests: a real Kafka cluster, topic reading, signing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bridge.contract import routes
from bridge.delivery.topics import read_to_end
from bridge.ingress.signature import signature_header

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "webhooks"
SHARED_SAMPLES = REPO.parent / "shared" / "unit21" / "samples"
SECRET = "test-secret-012345678"

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 0.05,
    detail: Callable[[], str] | None = None,
) -> T:
    """Poll `predicate` until it returns something truthy and return that; after `timeout`
    seconds fail, naming `what` did not happen (and `detail()`, e.g. a log tail)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            more = f"\n{detail()}" if detail is not None else ""
            raise AssertionError(f"{what}: not within {timeout} s{more}")
        time.sleep(interval)


async def wait_until_async(
    predicate: Callable[[], T | None], seconds: float, what: str, interval: float = 0.005
) -> T:
    """`wait_until` inside an event loop: the loop keeps running while it waits."""
    deadline = time.monotonic() + seconds
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {seconds} s")
        await asyncio.sleep(interval)


def stop_process(process: subprocess.Popen[str] | subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`: a test never leaves one behind."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


# What a process the tests start may inherit from the shell: nothing the bridge reads, so a
# developer's exported BRIDGE_TOPIC_PREFIX or SCHEMA_REGISTRY_URL cannot change (or hang) a test.
# BRIDGE_SPOOL_DIR stays: tests/conftest.py points it at the session's temporary directory.
BRIDGE_VARIABLE_PREFIXES = ("BRIDGE_", "KAFKA_", "UNIT21_", "SCHEMA_REGISTRY_", "OTEL_", "PROMETHEUS_")


def child_env(**given: str) -> dict[str, str]:
    """The environment for a `serve`/`dev`/CLI subprocess: the shell's minus the bridge's own
    variables, plus exactly the settings the test gives."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(BRIDGE_VARIABLE_PREFIXES) or name == "BRIDGE_SPOOL_DIR"
    }
    env.update(given)
    return env


@dataclass(frozen=True)
class KafkaCluster:
    bootstrap_servers: str
    kind: str  # external | docker | embedded


# The one shell variable the suite honours: an external cluster to test against. Read once, at
# import, before tests/conftest.py clears the bridge's variables from every test's environment.
EXTERNAL_BOOTSTRAP_SERVERS = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")


def choose_broker_kind() -> str:
    if EXTERNAL_BOOTSTRAP_SERVERS:
        return "external"
    if docker_available():
        return "docker"
    return "embedded"


def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


@contextmanager
def start_cluster(kind: str) -> Iterator[KafkaCluster]:
    if kind == "external":
        yield KafkaCluster(EXTERNAL_BOOTSTRAP_SERVERS, kind)
    elif kind == "docker":
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:7.6.1") as container:
            yield KafkaCluster(container.get_bootstrap_server(), kind)
    else:
        from bridge.delivery.embedded import EmbeddedBroker

        with EmbeddedBroker() as broker:
            yield KafkaCluster(broker.bootstrap_servers, kind)


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


all_topics = routes.all_topics


def signed_headers(body: bytes, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {"Content-Type": "application/json", "Unit21-Signature": signature_header(secret, ts, body)}


@dataclass
class ReadMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 20.0) -> list[ReadMessage]:
    """Every record of a topic from the beginning, once `expected` are there (assign, not subscribe)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "tests", "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        out: list[ReadMessage] = []
        deadline = time.monotonic() + timeout
        while len(out) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            out.append(
                ReadMessage(
                    msg.topic(),
                    msg.partition(),
                    msg.offset(),
                    msg.key(),
                    msg.value(),
                    dict(msg.headers() or []),
                )
            )
        return out
    finally:
        consumer.close()


def topic_counts(bootstrap: str, topics: list[str]) -> dict[str, int]:
    """Records per topic, counted by reading them all (bridge.topics.read_to_end): watermarks
    alone undercount on Tansu, which answers a batch's first offset + 1."""
    counts = dict.fromkeys(topics, 0)
    for msg in read_to_end({"bootstrap.servers": bootstrap}, topics, "tests-count", timeout=30):
        counts[msg.topic() or ""] += 1
    return counts
