"""The Java (kafka-clients + Apache Avro's BinaryMessageDecoder) and Node (kafkajs + avsc) example
consumers decode every record the bridge produced, with nothing but schemas/<topic>.avsc.

`make consumers-deps` installs what they need (Debian's libavro-java, npm ci, the kafka-clients jar);
`make test` runs it first. Without them these tests skip, saying what is missing; under CI they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.contract.codec import SingleObjectCodec
from bridge.contract.schemas import SchemaSet
from bridge.delivery.topics import create_topics
from bridge.ingress.app import Runtime, create_app
from bridge.settings import Settings
from tests.support import (
    EXAMPLES,
    REPO,
    SECRET,
    KafkaCluster,
    all_topics,
    read_topic,
    signed_headers,
    unique_prefix,
)

CONSUMERS = REPO / "examples" / "consumers"
JAVA_RUN = CONSUMERS / "java" / "run.sh"
NODE_DIR = CONSUMERS / "node"
NODE_SCRIPT = NODE_DIR / "consume_single_object.js"
SCHEMAS = SchemaSet.load(REPO / "schemas")
LONG_MAX = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _missing(language: str) -> list[str]:
    if language == "java":
        tools = ["java"]
        files = [
            CONSUMERS / "java" / "lib" / "kafka-clients.jar",
            *(Path("/usr/share/java") / f"{j}.jar" for j in ("avro", "lz4-java", "slf4j-simple")),
        ]
    else:
        tools = ["node"]
        files = [
            NODE_DIR / "node_modules" / name / "package.json" for name in ("kafkajs", "avsc", "lz4-napi")
        ]
    return [t for t in tools if shutil.which(t) is None] + [str(f) for f in files if not f.is_file()]


def _command(language: str) -> list[str]:
    missing = _missing(language)
    if missing:
        reason = f"{language} consumer cannot run, missing {missing}: `make consumers-deps` installs them"
        if os.environ.get("CI"):
            pytest.fail(reason + " (required under CI)")
        pytest.skip(reason)
    return [str(JAVA_RUN)] if language == "java" else ["node", str(NODE_SCRIPT)]


def _bodies() -> list[bytes]:
    bodies = [path.read_bytes() for path in sorted(EXAMPLES.glob("*.json"))]
    alert = json.loads((EXAMPLES / "alert_created.json").read_bytes())
    # A long that JavaScript numbers cannot hold, and an unknown field kept in extras.
    bodies.append(json.dumps({**alert, "unit21_id": LONG_MAX, "priority": "high"}).encode())
    # Milliseconds where Unit21 sends seconds: past year 9999, so the webhook goes to the DLQ.
    bodies.append(json.dumps({**alert, "unit21_id": 7, "change_time": 1_661_957_674_000}).encode())
    bodies.append(json.dumps({"object_type": "WIDGET", "unit21_id": 5, "change": "CREATED"}).encode())
    return bodies


def _plain(value: Any) -> Any:
    """fastavro's decoded record as the other languages print it: timestamps as epoch milliseconds."""
    if isinstance(value, datetime):
        return (value - _EPOCH) // timedelta(milliseconds=1)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Produced:
    bootstrap: str
    topics: list[str]
    # (topic, partition, offset) -> (key, fingerprint hex, record), decoded here with fastavro
    expected: dict[tuple[str, int, int], tuple[str, str, dict[str, Any]]]
    answers: list[dict[str, Any]]


@pytest.fixture(scope="module")
def produced(kafka: KafkaCluster) -> Iterator[Produced]:
    prefix = unique_prefix()
    create_topics({"bootstrap.servers": kafka.bootstrap_servers}, all_topics(prefix), partitions=3)
    # The bridge's defaults, LZ4 compression included: what a consumer meets in production.
    settings = Settings.from_env(
        {}, kafka_bootstrap_servers=kafka.bootstrap_servers, webhook_secrets=(SECRET,), topic_prefix=prefix
    )
    answers = []
    with TestClient(create_app(settings, Runtime.from_settings(settings))) as client:
        for body in _bodies():
            answer = client.post("/webhooks/unit21", content=body, headers=signed_headers(body))
            assert answer.status_code == 200, answer.text
            answers.append(answer.json())
    codec = SingleObjectCodec(SCHEMAS)
    counts: dict[str, int] = {}
    for answer in answers:
        counts[answer["topic"]] = counts.get(answer["topic"], 0) + 1
    expected = {}
    for topic, count in counts.items():
        messages = read_topic(kafka.bootstrap_servers, topic, count)
        assert len(messages) == count, topic
        for msg in messages:
            schema, record = codec.decode(msg.value)
            key = (msg.key or b"").decode()
            expected[(msg.topic, msg.partition, msg.offset)] = (key, schema.fingerprint_hex, _plain(record))
    yield Produced(kafka.bootstrap_servers, sorted(counts), expected, answers)


def test_the_examples_reach_every_kind_of_topic(produced: Produced) -> None:
    suffixes = {topic.split(".", 1)[1] for topic in produced.topics}
    assert suffixes == set(SCHEMAS.by_suffix), "the example webhooks must cover every topic"


@pytest.mark.parametrize("language", ["java", "node"])
def test_each_topic_file_parses_alone_with_the_bridges_fingerprint(language: str) -> None:
    result = subprocess.run(
        [*_command(language), "--check-schemas", "--schemas", str(REPO / "schemas")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert {file: (name, fp) for file, name, fp in rows} == {
        f"{suffix}.avsc": (schema.full_name, schema.fingerprint_hex)
        for suffix, schema in SCHEMAS.by_suffix.items()
    }


@pytest.mark.parametrize("language", ["java", "node"])
def test_consumer_decodes_every_record_with_the_same_values(produced: Produced, language: str) -> None:
    result = subprocess.run(
        [
            *_command(language),
            "--bootstrap-servers",
            produced.bootstrap,
            "--schemas",
            str(REPO / "schemas"),
            "--timeout",
            "60",
            *produced.topics,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    decoded = {(r["topic"], r["partition"], r["offset"]): r for r in lines}
    assert len(decoded) == len(lines), "a record was printed twice"
    assert sorted(decoded) == sorted(produced.expected)
    for place, (key, fingerprint, record) in produced.expected.items():
        line = decoded[place]
        assert (line["key"], line["fingerprint"]) == (key, fingerprint), place
        assert line["schema"] == SCHEMAS.by_fingerprint[bytes.fromhex(fingerprint)].full_name
        assert line["value"] == record, place
    big = [r for r in lines if r["value"].get("unit21_id") == LONG_MAX]
    assert len(big) == 1 and big[0]["value"]["extras"] == {"priority": '"high"'}
    [dead] = [r for r in lines if r["topic"].endswith(".dlq")]
    assert dead["value"]["errors"] == [
        {
            "path": "change_time",
            "reason": "1661957674000 is not an epoch time in seconds between years 1 and 9999",
        }
    ]


STOCK_KAFKAJS = """
const { Kafka, logLevel } = require('kafkajs');
const [bootstrap, topic] = process.argv.slice(1);
const kafka = new Kafka({ brokers: [bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 0 } });
const consumer = kafka.consumer({ groupId: `stock-${process.pid}`, rebalanceTimeout: 1000, sessionTimeout: 6000, retry: { retries: 0 } });
consumer.on(consumer.events.CRASH, ({ payload }) => {
  console.log(`${payload.error.name}: ${payload.error.message}`);
  process.exit(3);
});
(async () => {
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({ eachMessage: async () => { console.log('decoded'); process.exit(0); } });
})();
setTimeout(() => { console.log('timeout'); process.exit(4); }, 30000);
"""


def test_stock_kafkajs_cannot_read_the_bridges_lz4_records(produced: Produced) -> None:
    """Why the Node example registers an LZ4 codec: the bridge's default compression is LZ4."""
    _command("node")
    topic = next(t for t in produced.topics if t.endswith(".alert"))
    result = subprocess.run(
        ["node", "-e", STOCK_KAFKAJS, produced.bootstrap, topic],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=NODE_DIR,
        check=False,
    )
    assert (result.returncode, result.stdout.strip()) == (
        3,
        "KafkaJSNotImplemented: LZ4 compression not implemented",
    ), result.stderr
