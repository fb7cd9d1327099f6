"""/metrics after real traffic through a real broker: every counter moves exactly as expected."""

from __future__ import annotations

import json
import platform
import socket
import time
from pathlib import Path

from starlette.testclient import TestClient

from bridge import __version__
from bridge.ingress.app import create_app
from bridge.settings import Settings
from tests.integration.conftest import FaultyKafka
from tests.scrape import parse_metrics, total, value
from tests.support import EXAMPLES, SECRET, KafkaCluster, read_topic, signed_headers, wait_until

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
    # Not a catalogued action type: `other`, so a sender cannot mint label values.
    assert value(m, P + "webhook_requests_total", action="other", status="200") == 1
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


def test_a_fresh_bridge_exports_every_known_series_at_zero(kafka: KafkaCluster, prefix: str) -> None:
    """increase() sees a counter's first increment only if the series existed before it."""
    settings = settings_for(kafka.bootstrap_servers, prefix)
    with TestClient(create_app(settings)) as client:
        text = client.get("/metrics").text
    m = parse_metrics(text)

    def present(name: str, **labels: str) -> bool:
        return (P + name, tuple(sorted(labels.items()))) in m

    for reason in ("missing_header", "malformed_header", "stale_timestamp", "no_matching_signature"):
        assert present("auth_failures_total", reason=reason)
    for reason in ("timeout", "broker_error", "queue_full", "not_ready", "too_large", "rejected"):
        for path in ("request", "drain"):
            assert present("delivery_failures_total", reason=reason, path=path)
    for reason in ("timeout", "broker_error", "kafka_disconnected", "key_in_spool"):
        assert present("spooled_total", reason=reason)
    for reason in (
        "overloaded",
        "spool_full",
        "kafka_unavailable",
        "spool_error",
        "not_ready",
        "invalid_signature",
    ):
        assert present("refusals_total", reason=reason)
    for status in ("400", "401", "413", "415", "503"):
        assert present("webhook_requests_total", action="none", status=status)
    for topic in ("alert", "case", "entity", "rule", "event", "file_export", "unrecognized", "dlq"):
        assert present("records_produced_total", topic=prefix + topic)
    assert present("dead_lettered_total") and present("unrecognized_total")
    counters = [v for (name, _), v in m.items() if name.endswith("_total") and name.startswith(P)]
    assert len(counters) > 50 and not any(counters)  # all there, all at 0

    assert value(m, P + "kafka_connected") == 1
    assert value(m, P + "ready", check="kafka") == 1
    assert value(m, P + "ready", check="spool") == 1
    assert value(m, P + "spool_limit_bytes") == settings.spool_max_bytes
    assert present("spool_bytes") and present("spool_parked_messages") and present("spool_oldest_age_seconds")
    assert value(m, "process_resident_memory_bytes") > 10 * 2**20
    assert value(m, "process_open_fds") > 0
    assert abs(value(m, "process_start_time_seconds") - time.time()) < 600


def test_spool_gauges_are_current_at_scrape_and_drain_retries_are_labelled_drain(
    cuttable: FaultyKafka, tmp_path: Path
) -> None:
    prefix = cuttable.topics()
    settings = settings_for(
        cuttable.bootstrap,
        prefix,
        delivery_timeout_seconds=0.5,
        readiness_cache_seconds=0,
        spool_dir=tmp_path / "spool",
    )
    alert = (EXAMPLES / "alert_created.json").read_bytes()
    bodies = [alert.replace(b"11532778", str(70_000_000 + n).encode()) for n in range(3)]
    with TestClient(create_app(settings)) as client:
        cuttable.proxy.cut()
        statuses = [post(client, body, signed_headers(body)) for body in bodies]
        first_answer = time.time()
        while time.time() - first_answer < 5.0:  # the drainer's backoff is past 2 s by now
            time.sleep(0.1)
        scrape_started = time.time()
        during = parse_metrics(client.get("/metrics").text)
        scrape_ended = time.time()

        def drain_failures_so_far() -> float:
            m = parse_metrics(client.get("/metrics").text)
            return sum(
                value(m, P + "delivery_failures_total", reason=r, path="drain")
                for r in ("timeout", "broker_error")
            )

        # Counted below from `after`: the retries must have happened before Kafka comes back.
        wait_until(lambda: drain_failures_so_far() >= 3, 30, "three drain retries during the cut")
        cuttable.proxy.restore()
        deadline = time.monotonic() + 30
        while client.get("/readyz").json()["detail"]["spool"]["depth"]:
            assert time.monotonic() < deadline, "the spool did not drain"
            time.sleep(0.1)
        after = parse_metrics(client.get("/metrics").text)
    assert statuses == [202, 202, 202]
    age = value(during, P + "spool_oldest_age_seconds")
    # The oldest record was spooled a little before `first_answer`; the age is as of the scrape
    # (not of the drainer's last report, up to its 4 s backoff earlier).
    assert scrape_started - first_answer <= age <= scrape_ended - first_answer + 1.0, age
    assert value(during, P + "spool_messages") == 3
    assert value(during, P + "spool_bytes") > 3 * 500
    assert value(during, P + "spool_limit_bytes") == settings.spool_max_bytes
    assert value(during, P + "spool_parked_messages") == 0
    assert value(during, P + "kafka_connected") == 0
    assert value(during, P + "ready", check="kafka") == 1  # spooling, with room: ready

    assert value(after, P + "spool_messages") == 0 and value(after, P + "spool_bytes") == 0
    assert value(after, P + "spool_oldest_age_seconds") == 0
    assert value(after, P + "kafka_connected") == 1
    topic = prefix + "alert"
    assert value(after, P + "kafka_ack_latency_seconds_count", topic=topic, path="drain") >= 3
    request_failures = sum(
        value(after, P + "delivery_failures_total", reason=r, path="request")
        for r in ("timeout", "broker_error")
    )
    drain_failures = sum(
        value(after, P + "delivery_failures_total", reason=r, path="drain")
        for r in ("timeout", "broker_error")
    )
    assert request_failures <= 1  # at most the first webhook waited for its deadline
    assert drain_failures >= 3  # the drainer's retries during the cut, counted apart
    assert value(after, P + "records_produced_total", topic=topic) == 3
