"""/metrics after real traffic through a real broker: every counter moves exactly as expected."""

from __future__ import annotations

import json
import platform
import socket

from starlette.testclient import TestClient

from bridge import __version__
from bridge.app import create_app
from bridge.config import Settings
from tests.scrape import parse_metrics, total, value
from tests.support import EXAMPLES, SECRET, KafkaCluster, read_topic, signed_headers

P = "unit21_bridge_"


def settings_for(bootstrap: str, prefix: str, **overrides: object) -> Settings:
    return Settings.from_env(
        {}, kafka_bootstrap_servers=bootstrap, webhook_secrets=(SECRET,), topic_prefix=prefix, **overrides
    )


def post(client: TestClient, body: bytes, headers: dict[str, str]) -> int:
    return client.post("/webhooks/unit21", content=body, headers=headers).status_code


def test_metrics_count_real_traffic_exactly(kafka: KafkaCluster, prefix: str) -> None:
    alert = (EXAMPLES / "alert_created.json").read_bytes()
    rule = json.loads((EXAMPLES / "rule_created.json").read_bytes())
    dlq_body = json.dumps({**rule, "unit21_id": "not-an-integer"}).encode()
    unknown_body = json.dumps({"object_type": "SOMETHING_NEW", "change": "created"}).encode()

    with TestClient(create_app(settings_for(kafka.bootstrap_servers, prefix))) as client:
        assert post(client, alert, signed_headers(alert)) == 200
        assert post(client, alert, signed_headers(alert, secret="wrong-secret")) == 401
        assert post(client, alert, {"Content-Type": "application/json"}) == 401
        assert post(client, alert, {**signed_headers(alert), "Unit21-Signature": "garbage"}) == 401
        assert post(client, dlq_body, signed_headers(dlq_body)) == 200
        assert post(client, unknown_body, signed_headers(unknown_body)) == 200
        assert post(client, b"{not json", signed_headers(b"{not json")) == 400
        response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    m = parse_metrics(response.text)

    assert value(m, P + "webhook_requests_total", action="ALERT_CREATED", status="200") == 1
    assert value(m, P + "webhook_requests_total", action="RULE_CREATED", status="200") == 1
    assert value(m, P + "webhook_requests_total", action="SOMETHING_NEW_created", status="200") == 1
    assert value(m, P + "webhook_requests_total", action="none", status="401") == 3
    assert value(m, P + "webhook_requests_total", action="none", status="400") == 1
    assert total(m, P + "webhook_requests_total") == 7

    assert value(m, P + "auth_failures_total", reason="no_matching_signature") == 1
    assert value(m, P + "auth_failures_total", reason="missing_header") == 1
    assert value(m, P + "auth_failures_total", reason="malformed_header") == 1
    assert total(m, P + "auth_failures_total") == 3

    assert value(m, P + "records_produced_total", topic=prefix + "alert") == 1
    assert value(m, P + "records_produced_total", topic=prefix + "dlq") == 1
    assert value(m, P + "records_produced_total", topic=prefix + "unrecognized") == 1
    assert total(m, P + "records_produced_total") == 3
    assert value(m, P + "dead_lettered_total") == 1
    assert value(m, P + "unrecognized_total") == 1
    assert total(m, P + "delivery_failures_total") == 0

    for topic in ("alert", "dlq", "unrecognized"):
        assert value(m, P + "kafka_ack_latency_seconds_count", topic=prefix + topic, path="request") == 1
        assert value(m, P + "kafka_ack_latency_seconds_sum", topic=prefix + topic, path="request") > 0
        assert value(m, P + "kafka_ack_latency_seconds_count", topic=prefix + topic, path="drain") == 0
    assert value(m, P + "webhook_request_duration_seconds_count", status_class="2xx") == 3
    assert value(m, P + "webhook_request_duration_seconds_count", status_class="4xx") == 4
    assert value(m, P + "webhook_requests_in_flight") == 0
    assert value(m, P + "producer_queue_messages") == 0
    assert value(m, P + "spool_messages") == 0
    assert value(m, P + "dedup_hits_total") == 0
    build = {"version": __version__, "python_version": platform.python_version()}
    assert value(m, P + "build_info", **build) == 1

    # Tracing is off by default: the record carries no trace context.
    [record] = read_topic(kafka.bootstrap_servers, prefix + "alert", 1)
    assert "traceparent" not in record.headers


def test_each_app_counts_only_its_own_traffic(kafka: KafkaCluster, prefix: str) -> None:
    alert = (EXAMPLES / "alert_created.json").read_bytes()
    settings = settings_for(kafka.bootstrap_servers, prefix)
    with TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as second:
        assert post(first, alert, signed_headers(alert)) == 200
        assert total(parse_metrics(second.get("/metrics").text), P + "webhook_requests_total") == 0
        assert total(parse_metrics(first.get("/metrics").text), P + "webhook_requests_total") == 1


def test_unreachable_broker_counts_delivery_failures(prefix: str) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"
    alert = (EXAMPLES / "alert_created.json").read_bytes()
    # Without the spool a failed delivery is a 503; with it (the default) a spooled 202:
    # tests/integration/test_delivery.py counts that path.
    settings = settings_for(
        dead, prefix, delivery_timeout_seconds=0.5, readiness_cache_seconds=0, spool_enabled=False
    )
    with TestClient(create_app(settings)) as client:
        response = client.post("/webhooks/unit21", content=alert, headers=signed_headers(alert))
        assert response.status_code == 503
        ready = client.get("/readyz")
        m = parse_metrics(client.get("/metrics").text)

    assert ready.status_code == 503
    assert ready.json()["failing"] == ["kafka"]
    assert value(m, P + "delivery_failures_total", reason="timeout", path="request") == 1
    assert value(m, P + "webhook_requests_total", action="ALERT_CREATED", status="503") == 1
    assert value(m, P + "records_produced_total", topic=prefix + "alert") == 0
    assert value(m, P + "kafka_ack_latency_seconds_count", topic=prefix + "alert", path="request") == 1
    assert total(m, P + "kafka_client_errors_total") >= 1
    assert value(m, P + "webhook_request_duration_seconds_count", status_class="5xx") == 1
