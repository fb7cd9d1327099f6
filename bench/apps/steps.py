"""The bridge's essential steps and nothing else: where the bridge's time goes, as two rows.

Not a product: a measuring stick for `make bench`. It calls the bridge's own functions, in
the bridge's order, and leaves out everything that is not needed to turn one signed webhook
into one acknowledged Avro record: no load shedding, no content checks beyond the signature,
no dedup, no spool, no metrics, no tracing, no log line.

- `BENCH_STEPS_KAFKA=0` ("steps, no Kafka"): read the body, verify the HMAC, parse, normalize
  and encode (`MessageBuilder.build`), answer with the event_id and topic. The cost of the
  Python pipeline alone.
- `BENCH_STEPS_KAFKA=1` ("essentials"): the same, plus `Publisher.publish` (produce, wait for
  the broker's ack) before answering, as the bridge does.

The bridge's own rate over these two rows splits its cost into: the operational features
(bridge vs essentials), Kafka (essentials vs steps), and the pipeline (steps vs HTTP limit).
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bridge.contract.codec import SingleObjectCodec
from bridge.contract.parsing import event_id, parse
from bridge.contract.records import MessageBuilder
from bridge.contract.schemas import SchemaSet
from bridge.delivery.publisher import Publisher, producer_config
from bridge.ingress.signature import HEADER_NAME, verify
from bridge.settings import Settings

settings = Settings.from_env()
schemas = SchemaSet.load()
builder = MessageBuilder(schemas, SingleObjectCodec(schemas), settings.topic_prefix)
secrets = tuple(secret.encode("utf-8") for secret in settings.webhook_secrets)
with_kafka = os.environ.get("BENCH_STEPS_KAFKA", "1") == "1"
signature_header = HEADER_NAME.encode()


async def read_body(receive: Receive) -> bytes:
    """The whole body (the benchmark's bodies are trusted: the door's limits are not measured here)."""
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


class Steps:
    def __init__(self) -> None:
        self.publisher: Publisher | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        signature = next((v.decode("latin-1") for k, v in scope["headers"] if k == signature_header), None)
        timestamp = verify(
            signature, body, secrets, now=time.time(), tolerance_seconds=settings.signature_tolerance_seconds
        )
        message = builder.build(
            body,
            parse(body),
            event_id=event_id(body),
            received_at_ms=int(time.time() * 1000),
            signature_timestamp=timestamp,
        )
        answer: dict[str, Any] = {"event_id": message.event_id, "topic": message.topic}
        if self.publisher is not None:
            topic, key, value = message.topic, message.key, message.value
            delivery = await self.publisher.publish(topic, key, value, message.headers)
            answer.update(partition=delivery.partition, offset=delivery.offset)
        await Response(orjson.dumps(answer), media_type="application/json")(scope, receive, send)


steps = Steps()


async def readyz(request: Request) -> Response:
    return Response(b'{"ready":true}', media_type="application/json")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    publisher = None
    if with_kafka:
        publisher = Publisher(producer_config(settings), delivery_timeout=settings.delivery_timeout_seconds)
        publisher.start()
    steps.publisher = publisher
    gc.collect()
    gc.freeze()  # as the bridge does once started
    yield
    if publisher is not None:
        publisher.close(5)


app = Starlette(routes=[Route("/webhooks/unit21", steps), Route("/readyz", readyz)], lifespan=lifespan)
