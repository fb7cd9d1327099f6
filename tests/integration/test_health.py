"""/healthz stays cheap; /readyz reports each component and fails first at shutdown."""

from __future__ import annotations

from starlette.testclient import TestClient

from bridge.ingress.app import create_app
from bridge.settings import Settings
from tests.support import SECRET, KafkaCluster


def settings_for(bootstrap: str, prefix: str) -> Settings:
    return Settings.from_env(
        {}, kafka_bootstrap_servers=bootstrap, webhook_secrets=(SECRET,), topic_prefix=prefix
    )


def test_ready_while_running_and_not_ready_once_shutdown_began(kafka: KafkaCluster, prefix: str) -> None:
    client = TestClient(create_app(settings_for(kafka.bootstrap_servers, prefix)))
    with client:
        health = client.get("/healthz")
        ready = client.get("/readyz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] is True and body["failing"] == []
    assert body["detail"]["kafka"] == "connected"
    assert body["detail"]["shutting_down"] is False

    # The lifespan has shut down: readiness says so, liveness does not care.
    after = client.get("/readyz")
    assert after.status_code == 503
    assert after.json() == {"ready": False, "failing": ["shutdown"], "detail": {"shutting_down": True}}
    assert client.get("/healthz").status_code == 200
