"""The handler's delivery table: what each Kafka/spool outcome answers (no broker needed)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.responses import Response

from bridge.contract.parsing import event_id, parse
from bridge.contract.records import Delivery, OutgoingMessage
from bridge.delivery import Spool
from bridge.delivery.publisher import PublishError
from bridge.ingress.app import Runtime, WebhookEndpoint
from bridge.settings import Settings
from tests.support import EXAMPLES

BODY = (EXAMPLES / "alert_created.json").read_bytes()


class FakePublisher:
    def __init__(self, failure: str | None = None, connected: bool = True) -> None:
        self.failure = failure
        self.connected = connected
        self.ever_connected = True
        self.calls = 0

    def refuses(self, key: bytes, value: bytes, headers: Any) -> PublishError | None:
        return None

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Any, path: str = "request"
    ) -> Delivery:
        self.calls += 1
        if self.failure is not None:
            raise PublishError(self.failure, "simulated")
        return Delivery(topic, 1, 41 + self.calls)


def setup(
    tmp_path: Path, publisher: FakePublisher, *, spool: bool = True, max_bytes: int = 1 << 20
) -> tuple[WebhookEndpoint, OutgoingMessage]:
    settings = Settings.from_env({}, spool_enabled=spool, spool_dir=tmp_path)
    runtime = Runtime.from_settings(settings)
    runtime.publisher = publisher  # type: ignore[assignment]
    runtime.spool = Spool(tmp_path, max_bytes) if spool else None
    message = runtime.builder.build(
        BODY,
        parse(BODY),
        event_id=event_id(BODY),
        received_at_ms=int(time.time() * 1000),
        signature_timestamp=None,
    )
    return WebhookEndpoint(runtime), message


def deliver(endpoint: WebhookEndpoint, message: OutgoingMessage) -> tuple[Response, dict[str, Any]]:
    async def go() -> tuple[Response, dict[str, Any]]:
        context: dict[str, Any] = {}
        return await endpoint._publish(message, context), context

    return asyncio.run(go())


def body(response: Response) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(bytes(response.body))
    return parsed


def test_ack_is_200_with_where_it_landed(tmp_path: Path) -> None:
    endpoint, message = setup(tmp_path, FakePublisher())
    response, _ = deliver(endpoint, message)
    assert response.status_code == 200
    assert body(response) == {
        "event_id": message.event_id,
        "topic": "unit21.alert",
        "partition": 1,
        "offset": 42,
        "outcome": "published",
    }


@pytest.mark.parametrize("failure", ["timeout", "broker_error"])
def test_no_ack_is_spooled_and_answered_202(tmp_path: Path, failure: str) -> None:
    publisher = FakePublisher(failure)
    endpoint, message = setup(tmp_path, publisher)
    response, context = deliver(endpoint, message)
    assert response.status_code == 202
    assert body(response) == {
        "event_id": message.event_id,
        "topic": "unit21.alert",
        "spooled": True,
        "outcome": "published",
    }
    assert context["spool_reason"] == failure
    spool = endpoint.runtime.spool
    assert spool is not None and spool.depth() == 1 and spool.holds(message.topic, message.key)


def test_known_disconnected_producer_spools_without_waiting(tmp_path: Path) -> None:
    publisher = FakePublisher(connected=False)
    endpoint, message = setup(tmp_path, publisher)
    response, context = deliver(endpoint, message)
    assert (response.status_code, context["spool_reason"], publisher.calls) == (202, "kafka_disconnected", 0)


def test_a_key_waiting_in_the_spool_sends_its_next_record_behind_it(tmp_path: Path) -> None:
    publisher = FakePublisher()
    endpoint, message = setup(tmp_path, publisher)
    spool = endpoint.runtime.spool
    assert spool is not None
    asyncio.run(spool.append(message.topic, message.key, b"earlier", [], "earlier"))
    response, context = deliver(endpoint, message)
    assert (response.status_code, context["spool_reason"], publisher.calls) == (202, "key_in_spool", 0)


def test_queue_full_is_503_at_once_and_not_spooled(tmp_path: Path) -> None:
    endpoint, message = setup(tmp_path, FakePublisher("queue_full"))
    response, _ = deliver(endpoint, message)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert endpoint.runtime.spool is not None and endpoint.runtime.spool.depth() == 0


def test_without_a_spool_a_failed_delivery_is_503(tmp_path: Path) -> None:
    endpoint, message = setup(tmp_path, FakePublisher("timeout"), spool=False)
    response, _ = deliver(endpoint, message)
    assert response.status_code == 503 and body(response)["error"] == "kafka_unavailable"


def test_a_full_spool_is_503_with_retry_after(tmp_path: Path) -> None:
    endpoint, message = setup(tmp_path, FakePublisher("timeout"), max_bytes=64)
    response, _ = deliver(endpoint, message)
    assert response.status_code == 503 and response.headers["retry-after"]
    assert body(response)["error"] == "spool_full"


def test_a_duplicate_gets_the_first_answer_and_is_not_published_again(tmp_path: Path) -> None:
    publisher = FakePublisher()
    endpoint, message = setup(tmp_path, publisher)
    first, _ = deliver(endpoint, message)
    second, context = deliver(endpoint, message)
    assert publisher.calls == 1
    assert second.status_code == 200 and context["duplicate"] is True
    assert body(second) == {**body(first), "duplicate": True}


def test_a_spooled_webhook_is_a_duplicate_too(tmp_path: Path) -> None:
    publisher = FakePublisher("timeout")
    endpoint, message = setup(tmp_path, publisher)
    deliver(endpoint, message)
    second, _ = deliver(endpoint, message)
    assert publisher.calls == 1
    assert second.status_code == 200 and body(second)["spooled"] is True
    assert endpoint.runtime.spool is not None and endpoint.runtime.spool.depth() == 1


def test_a_failed_delivery_is_not_remembered(tmp_path: Path) -> None:
    publisher = FakePublisher("queue_full")
    endpoint, message = setup(tmp_path, publisher)
    deliver(endpoint, message)
    publisher.failure = None
    retry, _ = deliver(endpoint, message)
    assert retry.status_code == 200 and publisher.calls == 2
