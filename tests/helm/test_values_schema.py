"""Wrong values fail at install time with a message that names the value and the fix."""

from __future__ import annotations

import json
from typing import Any

import helm_python
import pytest

from .conftest import CHART_DIR, NAMESPACE

SCHEMA_ERRORS = [
    pytest.param({"kafka": {"securityProtocol": "SASL"}}, "/kafka/securityProtocol", id="protocol-enum"),
    pytest.param({"kafka": {"bootstrapServers": "kafka"}}, "/kafka/bootstrapServers", id="bootstrap-no-port"),
    pytest.param({"kafka": {"sasl": {"mechanism": "KERBEROS"}}}, "/kafka/sasl/mechanism", id="sasl-enum"),
    pytest.param({"bridge": {"workers": 0}}, "/bridge/workers", id="workers-min"),
    pytest.param({"bridge": {"wrokers": 2}}, "wrokers", id="typo-is-refused"),
    pytest.param({"bridge": {"logLevel": "TRACE"}}, "/bridge/logLevel", id="log-level"),
    pytest.param({"bridge": {"logFormat": "xml"}}, "/bridge/logFormat", id="log-format"),
    pytest.param({"bridge": {"topicPrefix": "unit21/"}}, "/bridge/topicPrefix", id="topic-prefix"),
    pytest.param({"bridge": {"maxBodyBytes": "1MB"}}, "/bridge/maxBodyBytes", id="int-type"),
    pytest.param({"bridge": {"deliveryTimeoutSeconds": 0}}, "/bridge/deliveryTimeoutSeconds", id="timeout"),
    pytest.param({"schemaRegistry": {"url": "registry:8081"}}, "/schemaRegistry/url", id="registry-url"),
    pytest.param({"schemaRegistry": {"subjectNameStrategy": "record"}}, "subjectNameStrategy", id="strategy"),
    pytest.param({"schemaRegistry": {"basicAuthUserInfo": "no-colon"}}, "basicAuthUserInfo", id="user-info"),
    pytest.param({"unit21": {"webhookSecrets": "fake-a,fake-b"}}, "webhookSecrets", id="secrets-list"),
    pytest.param({"unit21": {"webhookSecrets": ["fake-a,fake-b"]}}, "webhookSecrets/0", id="no-comma"),
    pytest.param({"spool": {"size": "lots"}}, "/spool/size", id="spool-size"),
    pytest.param({"spool": {"dir": "spool"}}, "/spool/dir", id="spool-dir-absolute"),
    pytest.param(
        {"containerSecurityContext": {"readOnlyRootFilesystem": False}},
        "readOnlyRootFilesystem",
        id="read-only-root",
    ),
    pytest.param({"podSecurityContext": {"runAsNonRoot": False}}, "runAsNonRoot", id="non-root"),
    pytest.param({"livenessProbe": {"path": "healthz"}}, "/livenessProbe/path", id="probe-path"),
    pytest.param({"ingress": {"hosts": [{"host": "x.example.com", "paths": []}]}}, "paths", id="ingress"),
    pytest.param({"service": {"type": "ExternalName"}}, "/service/type", id="service-type"),
    pytest.param({"serviceMonitor": {"interval": "30"}}, "/serviceMonitor/interval", id="duration"),
    pytest.param({"replicaCount": -1}, "/replicaCount", id="replicas"),
]

TEMPLATE_ERRORS = [
    pytest.param(
        {"terminationGracePeriodSeconds": 25},
        "terminationGracePeriodSeconds (25) is below the shutdown budget 35",
        id="grace-too-short",
    ),
    pytest.param(
        {"kafka": {"securityProtocol": "SASL_SSL"}},
        "kafka.sasl.mechanism must be set",
        id="sasl-without-mechanism",
    ),
    pytest.param(
        {"existingSecret": "creds", "kafka": {"sasl": {"password": "fake-password"}}},
        "existingSecret is set",
        id="existing-secret-plus-inline",
    ),
    pytest.param(
        {"kafka": {"extraProperties": {"acks": "1"}}},
        "kafka property acks (extraProperties or secretProperties) would override",
        id="protected-kafka-property",
    ),
    pytest.param(
        {"kafka": {"extraProperties": {"sasl.password": "fake"}}},
        "is set by a dedicated value",
        id="dedicated-kafka-property",
    ),
    pytest.param(
        {"kafka": {"tls": {"caSecret": {"name": "kafka-ca", "key": "ca.crt"}}}},
        "use SSL or SASL_SSL",
        id="ca-without-tls",
    ),
    pytest.param(
        {"podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": 1}},
        "not both",
        id="pdb-both",
    ),
    pytest.param({"httpRoute": {"enabled": True}}, "parentRefs", id="route-without-gateway"),
    pytest.param({"otel": {"enabled": True}}, "otel.endpoint", id="otel-without-endpoint"),
    pytest.param(
        {
            "autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2},
            "spool": {"mode": "ephemeral"},
        },
        "maxReplicas must be at least",
        id="hpa-bounds",
    ),
]


@pytest.fixture(scope="module")
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(str(CHART_DIR))


@pytest.mark.parametrize(("values", "where"), SCHEMA_ERRORS)
def test_schema_rejects_wrong_values(chart: helm_python.Chart, values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as excinfo:
        chart.render(values, name="u21", namespace=NAMESPACE)
    message = str(excinfo.value)
    assert "values don't meet the specifications of the schema" in message
    assert where in message, message


@pytest.mark.parametrize(("values", "needle"), TEMPLATE_ERRORS)
def test_inconsistent_values_fail_with_a_clear_message(
    chart: helm_python.Chart, values: dict[str, Any], needle: str
) -> None:
    with pytest.raises(helm_python.HelmError) as excinfo:
        chart.render(values, name="u21", namespace=NAMESPACE)
    assert needle in str(excinfo.value), str(excinfo.value)


def test_schema_accepts_the_defaults(chart: helm_python.Chart) -> None:
    chart.validate_schema(chart.values)


def test_schema_covers_every_default_value() -> None:
    """values.yaml and values.schema.json describe the same keys (typos fail at install time)."""
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    chart = helm_python.Chart.load(str(CHART_DIR))

    def walk(values: dict[str, Any], node: dict[str, Any], prefix: str) -> None:
        props = node.get("properties", {})
        for key, value in values.items():
            assert key in props, f"{prefix}{key} is not in values.schema.json"
            if isinstance(value, dict) and props[key].get("additionalProperties") is False:
                walk(value, props[key], f"{prefix}{key}.")

    walk(chart.values, schema, "")
