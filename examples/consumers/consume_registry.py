#!/usr/bin/env python3
"""Read a unit21-kafka-bridge topic written in Schema Registry mode (Confluent wire format).

Each value is 00 + the 4-byte big-endian schema id + the Avro body; confluent-kafka's
AvroDeserializer fetches the writer schema by id from the registry.

    pip install 'confluent-kafka' fastavro authlib attrs cachetools httpx2
    python consume_registry.py --bootstrap-servers localhost:9092 \\
        --registry-url http://localhost:8081 unit21.alert
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_record, read_to_end


def consume(
    bootstrap_servers: str,
    registry: SchemaRegistryClient,
    topic: str,
    timeout: float = 30.0,
    emit: Callable[[str], None] = print,
) -> int:
    # No reader schema: each record is decoded with the schema it was written with.
    deserializer = AvroDeserializer(registry)
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": "example-registry"})
    count = 0
    try:
        for msg in read_to_end(consumer, topic, timeout):
            value = msg.value() or b""
            record = deserializer(value, SerializationContext(topic, MessageField.VALUE))
            assert isinstance(record, dict)
            print_record(msg, record, f"registry schema id {int.from_bytes(value[1:5], 'big')}", emit)
            count += 1
    finally:
        consumer.close()
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("topic")
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--registry-url", required=True)
    parser.add_argument("--basic-auth-user-info", help="user:password")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    conf = {"url": args.registry_url}
    if args.basic_auth_user_info:
        conf["basic.auth.user.info"] = args.basic_auth_user_info
    consume(args.bootstrap_servers, SchemaRegistryClient(conf), args.topic, args.timeout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
