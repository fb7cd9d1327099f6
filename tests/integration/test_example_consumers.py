"""The example consumers in examples/consumers/ decode what the bridge really produced.

They are what a data team copies, so they must run from the repository files alone: the
single-object one runs as a subprocess (the way a user runs it), the registry one in-process
because confluent-kafka's mock:// registry lives inside one process.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.cli.main import main as cli_main
from bridge.ingress.app import Runtime, create_app
from bridge.settings import Settings
from tests.support import EXAMPLES, REPO, SECRET, KafkaCluster, signed_headers

CONSUMERS = REPO / "examples" / "consumers"
SAMPLES = ("alert_created.json", "alert_closed.json", "case_created.json")


def _produce(settings: Settings) -> tuple[Runtime, list[dict[str, Any]]]:
    runtime = Runtime.from_settings(settings)
    answers = []
    with TestClient(create_app(settings, runtime)) as client:
        for name in SAMPLES:
            body = (EXAMPLES / name).read_bytes()
            answer = client.post("/webhooks/unit21", content=body, headers=signed_headers(body))
            assert answer.status_code == 200, answer.text
            answers.append(answer.json())
    return runtime, answers


def _settings(kafka: KafkaCluster, prefix: str, **overrides: object) -> Settings:
    return Settings.from_env(
        {},
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        webhook_secrets=(SECRET,),
        topic_prefix=prefix,
        **overrides,
    )


def _by_event(lines: list[str]) -> dict[str, dict[str, Any]]:
    records = [json.loads(line) for line in lines if line.strip()]
    return {r["value"]["bridge"]["event_id"]: r for r in records}


@pytest.mark.parametrize("bundle", ["repository schemas/", "schemas export"])
def test_single_object_consumer_decodes_the_bridges_records(
    kafka: KafkaCluster, prefix: str, tmp_path: Path, bundle: str
) -> None:
    _, answers = _produce(_settings(kafka, prefix))
    schemas_dir = REPO / "schemas"
    if bundle == "schemas export":
        schemas_dir = tmp_path / "bundle"
        assert cli_main(["schemas", "export", str(schemas_dir)]) == 0
    result = subprocess.run(
        [
            sys.executable,
            str(CONSUMERS / "consume_single_object.py"),
            "--bootstrap-servers",
            kafka.bootstrap_servers,
            "--schemas",
            str(schemas_dir),
            f"{prefix}alert",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    decoded = _by_event(result.stdout.splitlines())
    alerts = [a for a in answers if a["topic"] == f"{prefix}alert"]
    assert sorted(decoded) == sorted(a["event_id"] for a in alerts)
    for answer in alerts:
        line = decoded[answer["event_id"]]
        assert (line["partition"], line["offset"]) == (answer["partition"], answer["offset"])
        assert line["schema"] == "unit21_kafka_bridge.Alert"
        assert line["headers"]["event_id"] == answer["event_id"]
        assert line["value"]["bridge"]["action"] in ("ALERT_CREATED", "ALERT_CLOSED")


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", CONSUMERS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_registry_consumer_decodes_the_bridges_records(kafka: KafkaCluster, prefix: str) -> None:
    settings = _settings(
        kafka, prefix, schema_registry_url="mock://consumer-example", schema_registry_auto_register=True
    )
    runtime, answers = _produce(settings)
    assert runtime.registry is not None
    lines: list[str] = []
    count = _load("consume_registry").consume(
        kafka.bootstrap_servers, runtime.registry.client, f"{prefix}case", emit=lines.append
    )
    assert count == 1
    [case] = [a for a in answers if a["topic"] == f"{prefix}case"]
    line = _by_event(lines)[case["event_id"]]
    assert line["schema"] == f"registry schema id {runtime.registry.ids['case']}"
    assert line["value"]["bridge"]["action"] == "CASE_CREATED"
    assert line["key"]


@pytest.mark.parametrize("path", sorted(CONSUMERS.glob("*.py")), ids=lambda p: p.name)
def test_example_consumers_need_only_confluent_kafka_and_fastavro(path: Path) -> None:
    allowed = {"confluent_kafka", "fastavro", "_common", "__future__"} | set(sys.stdlib_module_names)
    tree = ast.parse(path.read_text("utf-8"))
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]  # type: ignore[union-attr]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= allowed, imported - allowed
