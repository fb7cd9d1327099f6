"""The naive baseline: what a team writes in an afternoon.

Parse the JSON, produce it, block on `flush()` until the broker acknowledges, answer 200.
No signature check, no schema, no Avro. The producer settings are the bridge's own
(`producer_config`), so the difference is the per-request flush, not the settings.
"""

from __future__ import annotations

import json
import os

from confluent_kafka import Producer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge.delivery.publisher import producer_config
from bridge.settings import Settings

TOPIC = os.environ.get("BRIDGE_TOPIC_PREFIX", "naive.") + "webhooks"
producer = Producer(producer_config(Settings.from_env()))


async def webhook(request: Request) -> JSONResponse:
    doc = json.loads(await request.body())
    key = str(doc.get("unit21_id") or doc.get("event_id") or "").encode()
    producer.produce(TOPIC, value=json.dumps(doc).encode(), key=key)
    if producer.flush(10) != 0:
        return JSONResponse({"error": "not delivered"}, status_code=503)
    return JSONResponse({"ok": True})


app = Starlette(routes=[Route("/webhooks/unit21", webhook, methods=["POST"])])
