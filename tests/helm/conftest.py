"""Shared helpers of the Helm chart tests: render the chart with Helm's own Go SDK, offline."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "helm" / "unit21-kafka-bridge"
RELEASE = "u21"
NAMESPACE = "payments"

# The bridge package must be importable for the env-var coverage test even when the
# project itself is not installed in the virtualenv.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# Obvious fakes: a test fails if any of them shows up outside a Secret.
FAKE_WEBHOOK_SECRET_1 = "fake-webhook-secret-one-0000"
FAKE_WEBHOOK_SECRET_2 = "fake-webhook-secret-two-1111"
FAKE_SASL_PASSWORD = "fake-sasl-password-2222"
FAKE_REGISTRY_USER_INFO = "fake-registry-user:fake-registry-password-3333"
FAKE_SECRET_VALUES = (
    FAKE_WEBHOOK_SECRET_1,
    FAKE_WEBHOOK_SECRET_2,
    FAKE_SASL_PASSWORD,
    "fake-registry-password-3333",
)

# Production-like value sets; each is rendered, linted and validated.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "production": {
        "image": {
            "registry": "registry.example.com",
            "repository": "platform/unit21-kafka-bridge",
            "tag": "0.1.0",
        },
        "unit21": {"webhookSecrets": [FAKE_WEBHOOK_SECRET_1, FAKE_WEBHOOK_SECRET_2]},
        "kafka": {
            "bootstrapServers": "kafka-0.kafka:9093,kafka-1.kafka:9093",
            "securityProtocol": "SASL_SSL",
            "sasl": {"mechanism": "SCRAM-SHA-512", "username": "bridge", "password": FAKE_SASL_PASSWORD},
            "tls": {"caSecret": {"name": "kafka-ca", "key": "ca.crt"}},
            "extraProperties": {"compression.type": "zstd", "linger.ms": 5},
        },
        "schemaRegistry": {
            "url": "https://schema-registry.kafka.svc:8081",
            "basicAuthUserInfo": FAKE_REGISTRY_USER_INFO,
            "tls": {"caSecret": {"name": "registry-ca", "key": "ca.crt"}},
            "subjectNameStrategy": "topic_record",
        },
        "bridge": {"workers": 4, "logFormat": "json", "maxBodyBytes": 4194304},
        "otel": {
            "enabled": True,
            "endpoint": "http://otel-collector.observability:4318",
            "tracesEndpoint": "http://otel-collector.observability:4318/v1/traces",
            "resourceAttributes": {"deployment.environment": "prod"},
        },
        "extraEnv": [{"name": "OTEL_METRICS_EXPORTER", "value": "none"}],
        "autoscaling": {
            "enabled": True,
            "minReplicas": 3,
            "maxReplicas": 12,
            "targetMemoryUtilizationPercentage": 80,
            # The persistent spool (default) with an HPA: it only scales up.
            "behavior": {"scaleDown": {"selectPolicy": "Disabled"}},
        },
        "podDisruptionBudget": {"enabled": True, "minAvailable": 2, "maxUnavailable": None},
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
            "hosts": [
                {"host": "unit21.example.com", "paths": [{"path": "/webhooks/unit21", "pathType": "Exact"}]}
            ],
            "tls": [{"secretName": "unit21-bridge-tls", "hosts": ["unit21.example.com"]}],
        },
        "networkPolicy": {
            "enabled": True,
            "ingress": {"from": [{"namespaceSelector": {"matchLabels": {"name": "ingress-nginx"}}}]},
            "egress": {"kafka": {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]}},
        },
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "tests": {"enabled": True},
    },
    "existing-secret": {
        "existingSecret": "unit21-bridge-credentials",
        "kafka": {
            "bootstrapServers": "kafka:9092",
            "securityProtocol": "SASL_PLAINTEXT",
            "sasl": {"mechanism": "PLAIN"},
        },
        "schemaRegistry": {"url": "http://schema-registry:8081"},
        "tests": {"enabled": True},
    },
    "spool-statefulset": {
        "unit21": {"webhookSecrets": [FAKE_WEBHOOK_SECRET_1]},
        "kafka": {"bootstrapServers": "kafka:9092", "securityProtocol": "SSL"},
        "schemaRegistry": {"url": "http://schema-registry:8081"},
        "spool": {"mode": "persistent", "size": "10Gi", "storageClass": "gp3", "maxBytes": 2147483648},
        "autoscaling": {"enabled": True, "acknowledgeScaleDownStrandsSpool": True},
        "serviceMonitor": {"enabled": True},
        "networkPolicy": {"enabled": True},
    },
    "ephemeral-spool": {
        "unit21": {"webhookSecrets": [FAKE_WEBHOOK_SECRET_1]},
        "kafka": {"bootstrapServers": "kafka:9092"},
        "spool": {"mode": "ephemeral", "ephemeralSizeLimit": "3Gi"},
        "autoscaling": {"enabled": True},
        "networkPolicy": {"enabled": True},
    },
    "gateway-api": {
        "unit21": {"webhookSecrets": [FAKE_WEBHOOK_SECRET_1]},
        "kafka": {"bootstrapServers": "kafka:9092"},
        "httpRoute": {
            "enabled": True,
            "parentRefs": [{"name": "public", "namespace": "gateway", "sectionName": "https"}],
            "hostnames": ["unit21.example.com"],
        },
        "podDisruptionBudget": {"enabled": False},
        "serviceAccount": {"create": False, "name": "bridge-sa"},
        "topologySpread": {"enabled": False},
        "spool": {"mode": "off"},
    },
}


class Rendered:
    """The manifests of one render: parsed objects plus the raw text per template."""

    def __init__(self, raw: dict[str, str]) -> None:
        self.raw = raw
        self.notes = raw.get("unit21-kafka-bridge/templates/NOTES.txt", "")
        self.objects: list[dict[str, Any]] = []
        for path, text in raw.items():
            if path.endswith("NOTES.txt"):
                continue
            for doc in yaml.safe_load_all(text):
                if doc:
                    self.objects.append(doc)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name_suffix: str = "") -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"].endswith(name_suffix)]
        assert len(found) == 1, f"expected one {kind}{name_suffix!r}, found {len(found)}"
        return found[0]

    @property
    def workload(self) -> dict[str, Any]:
        found = self.of_kind("Deployment") + self.of_kind("StatefulSet")
        assert len(found) == 1, f"expected exactly one workload, found {[o['kind'] for o in found]}"
        return found[0]

    @property
    def pod_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.workload["spec"]["template"]["spec"]
        return spec

    @property
    def container(self) -> dict[str, Any]:
        containers = self.pod_spec["containers"]
        assert [c["name"] for c in containers] == ["bridge"]
        return dict(containers[0])

    def env_sources(self) -> dict[str, dict[str, Any]]:
        """Every variable the bridge container gets, name -> where it comes from."""
        config_maps = {o["metadata"]["name"]: o.get("data", {}) for o in self.of_kind("ConfigMap")}
        out: dict[str, dict[str, Any]] = {}
        for source in self.container.get("envFrom", []):
            ref = source.get("configMapRef")
            if ref:
                for key, value in config_maps[ref["name"]].items():
                    out[key] = {"configMap": ref["name"], "value": value}
        for entry in self.container.get("env", []):
            out[entry["name"]] = entry
        return out


@pytest.fixture(scope="session")
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(str(CHART_DIR))


RenderFn = Callable[[dict[str, Any]], Rendered]


@pytest.fixture(scope="session")
def render(chart: helm_python.Chart) -> Iterator[RenderFn]:
    cache: dict[str, Rendered] = {}

    def _render(values: dict[str, Any]) -> Rendered:
        key = yaml.safe_dump(values, sort_keys=True)
        if key not in cache:
            cache[key] = Rendered(chart.render(values, name=RELEASE, namespace=NAMESPACE))
        return cache[key]

    yield _render
