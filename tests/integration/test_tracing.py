"""Spans from an in-memory exporter, compared with the trace context found in the Kafka record."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.testclient import TestClient

from bridge.ingress.app import Runtime, create_app
from bridge.ops.tracing import Tracing
from bridge.settings import Settings
from tests.support import EXAMPLES, SECRET, KafkaCluster, read_topic, signed_headers

INCOMING_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING_PARENT = "00f067aa0ba902b7"


def traced_app(bootstrap: str, prefix: str) -> tuple[TestClient, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = Settings.from_env(
        {}, kafka_bootstrap_servers=bootstrap, webhook_secrets=(SECRET,), topic_prefix=prefix
    )
    runtime = Runtime.from_settings(settings, tracing=Tracing.from_provider(provider))
    return TestClient(create_app(settings, runtime)), exporter


def test_webhook_span_publish_child_and_traceparent_in_kafka(kafka: KafkaCluster, prefix: str) -> None:
    body = (EXAMPLES / "alert_created.json").read_bytes()
    client, exporter = traced_app(kafka.bootstrap_servers, prefix)
    with client:
        answer = client.post("/webhooks/unit21", content=body, headers=signed_headers(body))
    assert answer.status_code == 200

    spans = {span.kind: span for span in exporter.get_finished_spans()}
    assert set(spans) == {SpanKind.SERVER, SpanKind.PRODUCER}
    server, producer = spans[SpanKind.SERVER], spans[SpanKind.PRODUCER]
    assert server.name == "POST /webhooks/unit21"
    assert producer.name == f"publish {prefix}alert"
    assert producer.parent is not None and producer.parent.span_id == server.context.span_id
    assert producer.context.trace_id == server.context.trace_id
    assert server.attributes is not None and producer.attributes is not None
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["unit21.event_id"] == answer.json()["event_id"]
    assert server.attributes["unit21.action"] == "ALERT_CREATED"
    assert producer.attributes["messaging.destination.name"] == prefix + "alert"
    assert producer.attributes["messaging.kafka.offset"] == answer.json()["offset"]

    [record] = read_topic(kafka.bootstrap_servers, prefix + "alert", 1)
    ctx = producer.context
    expected = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"
    assert record.headers["traceparent"].decode() == expected
    assert ctx.trace_flags.sampled


def test_incoming_traceparent_is_continued(kafka: KafkaCluster, prefix: str) -> None:
    body = (EXAMPLES / "rule_created.json").read_bytes()
    client, exporter = traced_app(kafka.bootstrap_servers, prefix)
    headers = {**signed_headers(body), "traceparent": f"00-{INCOMING_TRACE}-{INCOMING_PARENT}-01"}
    with client:
        assert client.post("/webhooks/unit21", content=body, headers=headers).status_code == 200
    server = next(s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER)
    assert f"{server.context.trace_id:032x}" == INCOMING_TRACE
    assert server.parent is not None and f"{server.parent.span_id:016x}" == INCOMING_PARENT
    [record] = read_topic(kafka.bootstrap_servers, prefix + "rule", 1)
    assert record.headers["traceparent"].decode().startswith(f"00-{INCOMING_TRACE}-")


def test_refused_webhook_has_a_span_but_no_publish(kafka: KafkaCluster, prefix: str) -> None:
    body = (EXAMPLES / "alert_created.json").read_bytes()
    client, exporter = traced_app(kafka.bootstrap_servers, prefix)
    with client:
        headers = signed_headers(body, secret="wrong-secret-1234")
        assert client.post("/webhooks/unit21", content=body, headers=headers).status_code == 401
    [server] = exporter.get_finished_spans()
    assert server.attributes is not None
    assert server.attributes["unit21.error"] == "invalid_signature"
    assert server.attributes["unit21.cause"] == "no_matching_signature"
    assert server.status.status_code is StatusCode.UNSET  # a 4xx is the client's problem
