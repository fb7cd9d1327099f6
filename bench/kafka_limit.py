"""The Kafka limit: raw confluent-kafka producing the bridge's own encoded records, no HTTP.

The records (topic, key, Avro value, headers) are built from the same signed bodies before
the clock starts; the producer uses `producer_config(settings)` with a poll thread and a
bounded number of records in flight, like the bridge under load. Prints one JSON line.

usage: python bench/kafka_limit.py BODIES_FILE DURATION_S IN_FLIGHT
(env: KAFKA_BOOTSTRAP_SERVERS, BRIDGE_TOPIC_PREFIX)
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import orjson
from confluent_kafka import Producer

from bridge.contract.codec import SingleObjectCodec
from bridge.contract.parsing import event_id
from bridge.contract.records import MessageBuilder
from bridge.contract.schemas import SchemaSet
from bridge.settings import Settings


def main() -> None:
    bodies_file, duration, in_flight = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    settings = Settings.from_env()
    schemas = SchemaSet.load()
    builder = MessageBuilder(schemas, SingleObjectCodec(schemas), settings.topic_prefix)
    messages: list[tuple[str, bytes, bytes, list[tuple[str, str | bytes | None]]]] = []
    with open(bodies_file, "rb") as lines:
        for line in lines:
            _, body = line.rstrip(b"\n").split(b"\t", 1)
            m = builder.build(
                body, orjson.loads(body), event_id=event_id(body), received_at_ms=0, signature_timestamp=0
            )
            messages.append((m.topic, m.key, m.value, list(m.headers)))

    from bridge.delivery.publisher import producer_config

    producer = Producer(producer_config(settings))
    slots = threading.BoundedSemaphore(in_flight)
    latencies: list[float] = []
    errors = [0]
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            producer.poll(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    sent = 0
    started = time.perf_counter()
    deadline = started + duration
    count = len(messages)
    while time.perf_counter() < deadline:
        slots.acquire()
        topic, key, value, headers = messages[sent % count]
        t0 = time.perf_counter()

        def on_delivery(err: Any, msg: Any, t0: float = t0) -> None:
            if err is None:
                latencies.append(time.perf_counter() - t0)
            else:
                errors[0] += 1
            slots.release()

        try:
            producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
        except BufferError:
            slots.release()
            errors[0] += 1
            continue
        sent += 1
    remaining = producer.flush(30)
    elapsed = time.perf_counter() - started
    stop.set()
    poller.join()
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] * 1e6 if latencies else 0.0

    print(
        "BENCH_JSON "
        + orjson.dumps(
            {
                "acked": len(latencies),
                "sent": sent,
                "errors": errors[0] + remaining,
                "duration_us": elapsed * 1e6,
                "p50_us": pct(50),
                "p99_us": pct(99),
                "p999_us": pct(99.9),
                "max_us": latencies[-1] * 1e6 if latencies else 0.0,
            }
        ).decode(),
        flush=True,
    )


if __name__ == "__main__":
    main()
