"""The commands a newcomer runs: serve, send, tail, topics create — as real processes."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.delivery.embedded import free_port
from tests.support import (
    EXAMPLES,
    SECRET,
    KafkaCluster,
    all_topics,
    child_env,
    stop_process,
    unique_prefix,
    wait_until,
)

CLI = [sys.executable, "-m", "bridge"]


def run(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        CLI + args, capture_output=True, text=True, timeout=timeout, env=child_env(**(env or {}))
    )


@pytest.fixture(params=[1, 2], ids=["1-worker", "2-workers"])
def served(
    kafka: KafkaCluster, prefix: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, dict[str, str]]]:
    port = free_port()
    env = {
        "BRIDGE_WORKERS": str(request.param),
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "UNIT21_WEBHOOK_SECRETS": SECRET,
        "BRIDGE_TOPIC_PREFIX": prefix,
        "BRIDGE_PORT": str(port),
        "BRIDGE_HOST": "127.0.0.1",
    }
    # A file, not a pipe: nobody reads a pipe while the test runs (a full one would block serve),
    # and reading one to report a failure blocks until serve exits.
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*CLI, "serve"], env=child_env(**env), stdout=log, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=1) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    try:
        wait_until(ready, 30, "serve answering /readyz 200", interval=0.1, detail=log_path.read_text)
        yield base, env
    finally:
        stop_process(process)


def test_send_then_tail_round_trip(served: tuple[str, dict[str, str]], prefix: str) -> None:
    base, env = served
    files = [str(EXAMPLES / "alert_created.json"), str(EXAMPLES / "verification_workflow_executed.json")]
    sent = run(["send", "--url", f"{base}/webhooks/unit21", "--secret", SECRET, *files], env)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.count(": 200 {") == 2

    tailed = run(["tail", "alert", "--unit21-json"], env)
    assert tailed.returncode == 0, tailed.stderr
    [line] = [json.loads(x) for x in tailed.stdout.splitlines()]
    assert line["topic"] == f"{prefix}alert"
    assert line["value"] == json.loads((EXAMPLES / "alert_created.json").read_text())
    assert line["headers"]["action"] == "ALERT_CREATED"

    records = run(["tail", f"{prefix}entity"], env)
    [entity] = [json.loads(x) for x in records.stdout.splitlines()]
    assert entity["schema"] == "unit21_kafka_bridge.Entity"
    assert entity["value"]["result"] == "$ACCEPT"
    assert entity["value"]["bridge"]["action"] == "VERIFICATION_WORKFLOW_EXECUTED"


def test_tail_prints_every_record_of_a_batch(kafka: KafkaCluster, prefix: str) -> None:
    """Records produced together land in one batch, and a broker may answer a high watermark
    short of that batch's end (Tansu: its first offset + 1): tail must not stop there."""
    from confluent_kafka import Producer

    from bridge.contract.codec import SingleObjectCodec
    from bridge.contract.parsing import event_id, parse
    from bridge.contract.records import MessageBuilder
    from bridge.contract.schemas import SchemaSet

    schemas = SchemaSet.load()
    builder = MessageBuilder(schemas, SingleObjectCodec(schemas), prefix)
    template = json.loads((EXAMPLES / "rule_created.json").read_text())
    # A long linger and one key: the 20 records go out as one batch to one partition.
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "linger.ms": 500})
    produced = []
    for number in range(20):
        body = json.dumps({**template, "unit21_id": 1000 + number}).encode()
        message = builder.build(
            body, parse(body), event_id=event_id(body), received_at_ms=0, signature_timestamp=None
        )
        assert message.topic == f"{prefix}rule", message.issues
        producer.produce(message.topic, message.value, b"one-key", headers=message.headers)
        produced.append(message.event_id)
    assert producer.flush(20) == 0

    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "BRIDGE_TOPIC_PREFIX": prefix}
    tailed = run(["tail", "rule"], env)
    assert tailed.returncode == 0, tailed.stderr
    assert [json.loads(x)["headers"]["event_id"] for x in tailed.stdout.splitlines()] == produced


def test_send_reports_rejections_with_exit_code(served: tuple[str, dict[str, str]]) -> None:
    base, env = served
    result = run(
        [
            "send",
            "--url",
            f"{base}/webhooks/unit21",
            "--secret",
            "wrong",
            str(EXAMPLES / "rule_created.json"),
        ],
        env,
    )
    assert result.returncode == 1
    assert ': 401 {"error":"invalid_signature"' in result.stdout


def test_serve_refuses_to_start_without_secrets(kafka: KafkaCluster) -> None:
    result = run(
        ["serve"], {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "UNIT21_WEBHOOK_SECRETS": ""}
    )
    assert result.returncode == 2
    assert "UNIT21_WEBHOOK_SECRETS is not set" in result.stderr


def test_serve_rejects_unknown_kafka_properties(kafka: KafkaCluster) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "UNIT21_WEBHOOK_SECRETS": "x",
        "KAFKA_NOT_A_THING": "1",
    }
    result = run(["serve"], env)
    assert result.returncode == 2
    assert "not.a.thing" in result.stderr


def test_topics_create_is_idempotent(kafka: KafkaCluster) -> None:
    prefix = unique_prefix()
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "BRIDGE_TOPIC_PREFIX": prefix}
    first = run(["topics", "create", "--partitions", "2", "--replication-factor", "1"], env)
    assert first.returncode == 0, first.stderr
    assert sorted(first.stdout.splitlines()) == sorted(f"{t}\tcreated" for t in all_topics(prefix))
    second = run(["topics", "create", "--partitions", "2", "--replication-factor", "1"], env)
    assert sorted(second.stdout.splitlines()) == sorted(f"{t}\texists" for t in all_topics(prefix))


def test_every_command_has_help_with_an_example() -> None:
    """Walks the real parser, so a command added without an example fails here."""
    from bridge.cli.main import build_parser

    def leaves(parser: argparse.ArgumentParser, path: list[str]) -> Iterator[tuple[list[str], str]]:
        groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not groups:
            yield path, parser.format_help()
        for group in groups:
            for name, child in group.choices.items():
                yield from leaves(child, [*path, name])

    found = dict((" ".join(path), text) for path, text in leaves(build_parser(), []))
    assert {
        "serve",
        "dev",
        "send",
        "tail",
        "topics create",
        "schemas list",
        "spool list",
        "dlq replay",
    } <= set(found)
    missing = [command for command, text in found.items() if "example" not in text]
    assert not missing, f"--help without an example: {missing}"
    assert run(["spool", "list", "--help"]).returncode == 0


def test_dev_starts_an_embedded_broker_and_accepts_a_signed_sample(tmp_path: Path) -> None:
    port = free_port()
    env = child_env(HOME=str(Path.home()))
    log_path = tmp_path / "dev.log"  # a file: reading a pipe line by line blocks if dev goes quiet
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*CLI, "dev", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def printed_secret() -> str | None:
        if process.poll() is not None:
            raise AssertionError(f"dev exited with {process.returncode}:\n{log_path.read_text()}")
        for line in log_path.read_text().splitlines():
            if "signing secret" in line:
                return line.split(":", 1)[1].strip()
        return None

    def sent_sample() -> subprocess.CompletedProcess[str] | None:
        sent = run(
            [
                "send",
                "--url",
                f"http://127.0.0.1:{port}/webhooks/unit21",
                "--secret",
                secret,
                str(EXAMPLES / "case_created.json"),
            ],
            timeout=20,
        )
        return sent if sent.returncode == 0 else None

    try:
        secret = wait_until(printed_secret, 30, "dev printing its signing secret", detail=log_path.read_text)
        sent = wait_until(
            sent_sample, 30, "dev accepting a signed sample", interval=0.2, detail=log_path.read_text
        )
        assert '"topic":"unit21.case"' in sent.stdout
    finally:
        stop_process(process)
    assert "EMBEDDED" in log_path.read_text()


def test_tail_and_dlq_replay_exit_alike_on_a_missing_topic(kafka: KafkaCluster) -> None:
    """One exit-code table (bridge/cli/exits.py): a missing topic is 'unavailable', whichever
    command meets it (tail said 2, as for bad arguments, and dlq replay 1, as for failed items)."""
    from bridge.cli import ExitCode

    prefix = unique_prefix()  # no topic of this prefix exists
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "BRIDGE_TOPIC_PREFIX": prefix}
    tailed = run(["tail", "dlq"], env)
    replayed = run(["dlq", "replay"], env)
    assert f"{prefix}dlq does not exist" in tailed.stderr
    assert f"{prefix}dlq does not exist" in replayed.stderr
    assert tailed.returncode == replayed.returncode == ExitCode.UNAVAILABLE == 3
