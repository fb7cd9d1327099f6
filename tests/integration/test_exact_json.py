"""Odd JSON over real HTTP and a real broker: one answer whichever parser runs, numbers exact.

Issue 12 items 6 (lone surrogates, deep nesting) and 7 (1e400), issue 13 item 1 (decimals).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from decimal import Decimal

import pytest
from starlette.testclient import TestClient

from bridge.contract.codec import SingleObjectCodec
from bridge.contract.schemas import SchemaSet
from bridge.settings import Settings
from tests.exact_json import canonical, reference_loads
from tests.support import KafkaCluster, all_topics, read_topic, signed_headers, topic_counts

PATH = "/webhooks/unit21"
MAX_DEPTH = 128  # the documented limit (docs/operations.md, "Bodies the bridge refuses")
CODEC = SingleObjectCodec(SchemaSet.load())
# A 22-digit integer: before, such a body took the standard library's parser, the others orjson.
LONG_RUN = ', "ledger": 1234567890123456789012'
PATHS = pytest.mark.parametrize("extra", ["", LONG_RUN], ids=["orjson-path", "exact-path"])

DECIMAL_BODY = (
    b'{"object_type": "ENTITY", "change": "FLAGGED", "entity_id": "u-decimal", "unit21_id": 7,'
    b' "custom_data": {"fee": 100.10, "limit": 12345678901234567.89,'
    b' "rate": 0.1000000000000000055511151231257827, "count": 12345678901234567890},'
    b' "amount": 12345678901234567.89}'
)


def post(client: TestClient, body: bytes) -> tuple[int, dict[str, object]]:
    answer = client.post(PATH, content=body, headers=signed_headers(body))
    assert answer.headers["content-type"] == "application/json", answer.text
    return answer.status_code, answer.json()


def alert(fields: str, extra: str = "") -> bytes:
    return ('{"object_type": "ALERT", "change": "CREATED", "unit21_id": 5, ' + fields + extra + "}").encode()


@PATHS
def test_a_lone_surrogate_gets_a_400_with_its_place_on_both_paths(
    client: TestClient, prefix: str, kafka: KafkaCluster, extra: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.app")
    status, answer = post(client, alert('"custom_data": {"note": "a \\ud800 b"}', extra))
    detail = (
        "body is not valid JSON: the string at custom_data.note holds the lone UTF-16 surrogate "
        "\\ud800, which is not a Unicode character"
    )
    assert (status, answer) == (400, {"error": "invalid_json", "detail": detail})
    [line] = [r for r in caplog.records if r.getMessage() == "webhook answered 400"]
    assert (getattr(line, "error", None), getattr(line, "detail", None)) == ("invalid_json", detail)
    assert set(topic_counts(kafka.bootstrap_servers, all_topics(prefix)).values()) == {0}


@PATHS
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 961, 1000, 1023, 1024, 1200])
def test_nesting_deeper_than_the_limit_gets_a_400_on_both_paths(
    client: TestClient, extra: str, depth: int
) -> None:
    nested = "[" * (depth - 1) + "]" * (depth - 1)  # under the body object: `depth` levels in all
    status, answer = post(client, ('{"custom_data": ' + nested + extra + "}").encode())
    assert (status, answer) == (
        400,
        {"error": "invalid_json", "detail": f"body nests objects and arrays deeper than {MAX_DEPTH} levels"},
    )


@PATHS
def test_nesting_at_the_limit_is_published(client: TestClient, extra: str) -> None:
    nested = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    status, answer = post(client, alert(f'"custom_data": {nested}', extra))
    assert (status, answer["outcome"]) == (200, "published")


@PATHS
def test_1e400_is_kept_exactly_whichever_path(
    client: TestClient, settings: Settings, kafka: KafkaCluster, extra: str
) -> None:
    status, answer = post(client, alert('"custom_data": {"big": 1e400, "tiny": 1e-400}', extra))
    assert (status, answer["outcome"]) == (200, "published")
    [message] = read_topic(kafka.bootstrap_servers, settings.topic("alert"), 1)
    _, record = CODEC.decode(message.value)
    assert record["custom_data"] == '{"big":1E+400,"tiny":1E-400}'
    if extra:
        assert record["extras"]["ledger"] == "1234567890123456789012"


@PATHS
def test_1e400_in_a_typed_long_is_dead_lettered_with_the_reason(
    client: TestClient, settings: Settings, kafka: KafkaCluster, extra: str
) -> None:
    body = ('{"object_type": "ALERT", "unit21_id": 1e400' + extra + "}").encode()
    status, answer = post(client, body)
    assert (status, answer["outcome"]) == (200, "dead_lettered")
    assert answer["errors"] == [{"path": "unit21_id", "reason": "expected an integer, got number"}]
    [message] = read_topic(kafka.bootstrap_servers, settings.topic("dlq"), 1)
    _, record = CODEC.decode(message.value)
    assert record["payload"] == body.decode()  # kept as sent, nothing rounded


def test_the_decimal_body_comes_back_exact_from_kafka_and_from_tail(
    client: TestClient, settings: Settings, kafka: KafkaCluster
) -> None:
    status, answer = post(client, DECIMAL_BODY)
    assert (status, answer["outcome"], answer["topic"]) == (200, "published", settings.topic("entity"))

    [message] = read_topic(kafka.bootstrap_servers, settings.topic("entity"), 1)
    _, record = CODEC.decode(message.value)
    custom = reference_loads(record["custom_data"])
    assert custom == {
        "fee": Decimal("100.10"),
        "limit": Decimal("12345678901234567.89"),
        "rate": Decimal("0.1000000000000000055511151231257827"),
        "count": 12345678901234567890,
    }
    assert [str(v) for v in custom.values()] == [
        "100.10",
        "12345678901234567.89",
        "0.1000000000000000055511151231257827",
        "12345678901234567890",
    ]
    assert record["extras"] == {"amount": "12345678901234567.89"}

    tailed = subprocess.run(
        [sys.executable, "-m", "bridge", "tail", "entity", "--unit21-json", "--max-messages", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "BRIDGE_TOPIC_PREFIX": settings.topic_prefix,
        },
    )
    assert tailed.returncode == 0, tailed.stderr
    [line] = tailed.stdout.splitlines()
    assert '"custom_data":{"fee":100.10,"limit":12345678901234567.89,' in line
    assert '"rate":0.1000000000000000055511151231257827,"count":12345678901234567890}' in line
    assert '"amount":12345678901234567.89' in line
    assert canonical(reference_loads(line)["value"]) == canonical(reference_loads(DECIMAL_BODY))


def test_tail_reports_a_kept_body_it_cannot_print_and_goes_on(kafka: KafkaCluster, prefix: str) -> None:
    """Records kept before today's checks (a body that is not JSON, one nested 300 levels) are
    named on stderr with their offset; the records after them are still printed."""
    from confluent_kafka import Producer

    from bridge.contract.parsing import event_id, parse
    from bridge.contract.records import MessageBuilder

    builder = MessageBuilder(SchemaSet.load(), CODEC, prefix)
    good = b'{"object_type": "WIDGET", "amount": 1e400}'
    message = builder.build(
        good, parse(good), event_id=event_id(good), received_at_ms=0, signature_timestamp=None
    )
    schema, record = CODEC.decode(message.value)
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    for payload in ["{not json", '{"deep": ' + "[" * 300 + "]" * 300 + "}", good.decode()]:
        producer.produce(message.topic, CODEC.encode(schema, {**record, "payload": payload}), b"k")
    assert producer.flush(20) == 0

    tailed = subprocess.run(
        [sys.executable, "-m", "bridge", "tail", "unrecognized", "--unit21-json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "BRIDGE_TOPIC_PREFIX": prefix},
    )
    assert tailed.returncode == 0, tailed.stderr
    problems = [line for line in tailed.stderr.splitlines() if "cannot print the record" in line]
    assert [line.split(":")[1].strip() for line in problems] == ["offset 0", "offset 1"], tailed.stderr
    [line] = tailed.stdout.splitlines()
    assert reference_loads(line)["value"] == {"object_type": "WIDGET", "amount": Decimal("1E+400")}
