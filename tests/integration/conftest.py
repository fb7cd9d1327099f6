from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bridge.app import create_app
from bridge.config import Settings
from tests.support import SECRET, KafkaCluster


@pytest.fixture
def settings(kafka: KafkaCluster, prefix: str, tmp_path: Path) -> Settings:
    return Settings.from_env(
        {},
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        webhook_secrets=(SECRET, "second-secret-for-rotation"),
        topic_prefix=prefix,
        max_body_bytes=4096,
        spool_dir=tmp_path / "spool",
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client
