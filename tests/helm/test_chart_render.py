"""Render the chart for every value set and check what a cluster and the bridge would check."""

from __future__ import annotations

import base64
import json
from typing import Any

import helm_python
import kubernetes_validate
import pytest

from .conftest import CHART_DIR, FAKE_SECRET_VALUES, NAMESPACE, VALUE_SETS, RenderFn

# Oldest Kubernetes the chart supports, two in between, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.27", "1.30", "1.33", kubernetes_validate.utils.latest_version())

# CRDs are not in the Kubernetes schemas: they are checked structurally below instead.
CRD_KINDS = {
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",  # structure: tests/helm/test_prometheus_rule.py
    "gateway.networking.k8s.io/v1/HTTPRoute",
}

# Endpoints the probes may use; the routes of bridge.app are checked too once it exists.
APP_PROBE_PATHS = {"/healthz", "/readyz"}

# Variables the chart must set although bridge.config does not read all of them yet
# (other engineers are adding them; Settings is consulted too, so new fields are caught).
EXPECTED_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS",
    "UNIT21_WEBHOOK_SECRETS",
    "BRIDGE_ALLOW_UNSIGNED",
    "BRIDGE_TOPIC_PREFIX",
    "BRIDGE_SIGNATURE_TOLERANCE_SECONDS",
    "BRIDGE_MAX_BODY_BYTES",
    "BRIDGE_DELIVERY_TIMEOUT_SECONDS",
    "BRIDGE_HOST",
    "BRIDGE_PORT",
    "BRIDGE_WORKERS",
    "BRIDGE_LOG_LEVEL",
    "BRIDGE_READINESS_CACHE_SECONDS",
    "SCHEMA_REGISTRY_URL",
    "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
    "SCHEMA_REGISTRY_SSL_CA_LOCATION",
    "BRIDGE_SCHEMA_REGISTRY_AUTO_REGISTER",
    "BRIDGE_SUBJECT_NAME_STRATEGY",
    "BRIDGE_SPOOL_ENABLED",
    "BRIDGE_SPOOL_DIR",
    "BRIDGE_SPOOL_MAX_BYTES",
    "BRIDGE_DEDUP_WINDOW_SECONDS",
    "BRIDGE_MAX_CONCURRENCY",
    "BRIDGE_SHUTDOWN_GRACE_SECONDS",
    "BRIDGE_LOG_FORMAT",
    "PROMETHEUS_MULTIPROC_DIR",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CA_LOCATION",
}
# Set only when the feature they configure is configured (an empty value would mislead the app).
CONDITIONAL_ENV = {
    "SCHEMA_REGISTRY_SSL_CA_LOCATION",
    "PROMETHEUS_MULTIPROC_DIR",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CA_LOCATION",
}
SECRET_ENV = {"UNIT21_WEBHOOK_SECRETS", "KAFKA_SASL_PASSWORD", "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO"}


def settings_env_names() -> set[str]:
    """The validation alias of every field of bridge.config.Settings (grows as settings are added)."""
    from pydantic import AliasChoices

    from bridge.settings import Settings

    names: set[str] = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        elif isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
    return names


def all_value_sets() -> list[Any]:
    return [pytest.param(values, id=name) for name, values in VALUE_SETS.items()]


# --- Helm itself ---------------------------------------------------------------------------


@pytest.mark.parametrize("values", all_value_sets())
def test_lint_has_no_errors(values: dict[str, Any]) -> None:
    report = helm_python.lint(
        str(CHART_DIR), values, strict=True, namespace=NAMESPACE, kube_version="v1.30.0"
    )
    problems = [
        m for m in report["messages"] if m["severity"] >= 2 and "icon is recommended" not in m["error"]
    ]
    assert not report["errors"], report["errors"]
    assert not problems, problems


@pytest.mark.parametrize("values", all_value_sets())
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_kubernetes(render: RenderFn, values: dict[str, Any], version: str) -> None:
    rendered = render(values)
    assert rendered.objects
    problems = []
    for obj in rendered.objects:
        if f"{obj['apiVersion']}/{obj['kind']}" in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path)
            problems.append(f"{obj['kind']}/{obj['metadata']['name']} at {where}: {exc.message}")
    assert not problems, f"invalid for Kubernetes {version}: {problems}"


@pytest.mark.parametrize("values", all_value_sets())
def test_names_namespaces_and_labels(render: RenderFn, values: dict[str, Any]) -> None:
    seen = set()
    for obj in render(values).objects:
        meta = obj["metadata"]
        key = (obj["kind"], meta["name"])
        assert key not in seen, f"duplicate {key}"
        seen.add(key)
        assert len(meta["name"]) <= 63
        assert meta["namespace"] == NAMESPACE
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert meta["labels"]["app.kubernetes.io/instance"] == "u21"


def test_crds_are_structurally_valid(render: RenderFn) -> None:
    rendered = render(VALUE_SETS["production"])
    monitor = rendered.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint == endpoint | {"port": "http", "path": "/metrics"}
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    service = rendered.one("Service", "kafka-bridge")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}

    route = render(VALUE_SETS["gateway-api"]).one("HTTPRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateway", "sectionName": "https"}]
    assert route["spec"]["hostnames"] == ["unit21.example.com"]
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "Exact", "value": "/webhooks/unit21"}}]
    assert rule["backendRefs"] == [{"name": "u21-unit21-kafka-bridge", "port": 8080}]


def test_servicemonitor_does_not_scrape_the_headless_service_twice(render: RenderFn) -> None:
    rendered = render(VALUE_SETS["spool-statefulset"])
    monitor = rendered.one("ServiceMonitor")
    selector = monitor["spec"]["selector"]
    matched = []
    for service in rendered.of_kind("Service"):
        labels = service["metadata"]["labels"]
        if selector["matchLabels"].items() <= labels.items() and all(
            expr["key"] not in labels
            for expr in selector["matchExpressions"]
            if expr["operator"] == "DoesNotExist"
        ):
            matched.append(service["metadata"]["name"])
    assert matched == ["u21-unit21-kafka-bridge"]


# --- The pod -------------------------------------------------------------------------------


def test_probe_paths_exist_in_the_app(render: RenderFn) -> None:
    container = render({}).container
    paths = {
        container[probe]["httpGet"]["path"] for probe in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert paths <= APP_PROBE_PATHS
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "http"
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def test_probe_paths_are_routes_of_the_app() -> None:
    from bridge.ingress.app import create_app
    from bridge.settings import Settings

    app = create_app(Settings.from_env({}))
    route_paths = {getattr(route, "path", None) for route in app.routes}
    assert route_paths >= APP_PROBE_PATHS
    assert {"/webhooks/unit21", "/metrics"} <= route_paths


def test_grafana_dashboard_configmap_carries_the_dashboard(render: RenderFn) -> None:
    assert not [c for c in render({}).of_kind("ConfigMap") if c["metadata"]["name"].endswith("-dashboard")]
    rendered = render({"grafanaDashboard": {"enabled": True}})
    (dashboard,) = [c for c in rendered.of_kind("ConfigMap") if c["metadata"]["name"].endswith("-dashboard")]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((CHART_DIR / "dashboards" / "unit21-kafka-bridge.json").read_text())
    assert json.loads(dashboard["data"]["unit21-kafka-bridge.json"]) == shipped


@pytest.mark.parametrize("values", all_value_sets())
def test_pod_runs_non_root_with_read_only_root_filesystem(render: RenderFn, values: dict[str, Any]) -> None:
    rendered = render(values)
    pod = rendered.pod_spec
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    ctx = rendered.container["securityContext"]
    assert ctx["runAsNonRoot"] is True
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"]["drop"] == ["ALL"]
    assert "add" not in ctx["capabilities"]
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {m["mountPath"]: m["name"] for m in rendered.container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert pod["automountServiceAccountToken"] is False


@pytest.mark.parametrize("values", all_value_sets())
def test_service_links_are_disabled(render: RenderFn, values: dict[str, Any]) -> None:
    """KAFKA_SERVICE_HOST & co. from a Service named kafka would become bogus librdkafka properties."""
    rendered = render(values)
    assert rendered.pod_spec["enableServiceLinks"] is False
    for pod in rendered.of_kind("Pod"):
        assert pod["spec"]["enableServiceLinks"] is False


@pytest.mark.parametrize("values", all_value_sets())
def test_termination_grace_exceeds_drain_plus_prestop(render: RenderFn, values: dict[str, Any]) -> None:
    rendered = render(values)
    env = rendered.env_sources()
    drain = int(env["BRIDGE_SHUTDOWN_GRACE_SECONDS"]["value"])
    command = rendered.container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = int(command[1])
    assert pre_stop > 0
    assert rendered.pod_spec["terminationGracePeriodSeconds"] > drain + pre_stop


def test_termination_grace_is_computed_from_the_drain_grace(render: RenderFn) -> None:
    rendered = render({"bridge": {"shutdownGraceSeconds": 50}, "preStopSleepSeconds": 7})
    assert rendered.pod_spec["terminationGracePeriodSeconds"] == 67
    rendered = render({"terminationGracePeriodSeconds": 90})
    assert rendered.pod_spec["terminationGracePeriodSeconds"] == 90


@pytest.mark.parametrize("values", all_value_sets())
def test_resources_have_requests_and_limits(render: RenderFn, values: dict[str, Any]) -> None:
    resources = render(values).container["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert {"cpu", "memory"} <= resources["limits"].keys()


def test_topology_spread_across_zones(render: RenderFn) -> None:
    rendered = render({})
    constraints = rendered.pod_spec["topologySpreadConstraints"]
    zone = next(c for c in constraints if c["topologyKey"] == "topology.kubernetes.io/zone")
    assert zone["labelSelector"]["matchLabels"] == rendered.workload["spec"]["selector"]["matchLabels"]
    assert "topologySpreadConstraints" not in render(VALUE_SETS["gateway-api"]).pod_spec


def test_config_change_rolls_the_pods(render: RenderFn) -> None:
    base = render({}).workload["spec"]["template"]["metadata"]["annotations"]
    changed = render({"bridge": {"logLevel": "DEBUG"}}).workload["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert base["checksum/config"] != changed["checksum/config"]
    rotated = render({"unit21": {"webhookSecrets": ["fake-rotated-secret"]}})
    assert (
        base["checksum/secret"]
        != rotated.workload["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]
    )


def test_the_webhook_selector_never_matches_the_test_pod(render: RenderFn) -> None:
    rendered = render(VALUE_SETS["production"])
    selector = rendered.one("Service", "kafka-bridge")["spec"]["selector"]
    (test_pod,) = rendered.of_kind("Pod")
    assert not selector.items() <= test_pod["metadata"]["labels"].items()
    assert rendered.workload["spec"]["template"]["metadata"]["labels"].items() >= selector.items()


# --- Environment ---------------------------------------------------------------------------


def test_every_setting_the_app_reads_is_set(render: RenderFn) -> None:
    """Settings' aliases plus the variables being added elsewhere, all configured."""
    expected = settings_env_names() | EXPECTED_ENV
    assert "KAFKA_BOOTSTRAP_SERVERS" in expected  # the Settings import really worked
    full = render(VALUE_SETS["production"]).env_sources()
    assert expected - full.keys() == set()
    defaults = render({}).env_sources()
    assert expected - CONDITIONAL_ENV - defaults.keys() == set()


@pytest.mark.parametrize("values", all_value_sets())
def test_secret_settings_come_from_a_secret(render: RenderFn, values: dict[str, Any]) -> None:
    rendered = render(values)
    secret_name = values.get("existingSecret") or "u21-unit21-kafka-bridge"
    env = rendered.env_sources()
    for name in SECRET_ENV & env.keys():
        ref = env[name].get("valueFrom", {}).get("secretKeyRef")
        assert ref, f"{name} must come from a secretKeyRef, got {env[name]}"
        assert ref["name"] == secret_name
    if values.get("existingSecret"):
        assert not rendered.of_kind("Secret")
    else:
        assert [s["metadata"]["name"] for s in rendered.of_kind("Secret")] == [secret_name]


def test_webhook_secret_is_required_unless_unsigned_is_allowed(render: RenderFn) -> None:
    ref = render({}).env_sources()["UNIT21_WEBHOOK_SECRETS"]["valueFrom"]["secretKeyRef"]
    assert ref["optional"] is False
    ref = render({"bridge": {"allowUnsigned": True}}).env_sources()["UNIT21_WEBHOOK_SECRETS"]
    assert ref["valueFrom"]["secretKeyRef"]["optional"] is True


def test_secrets_are_stored_only_in_the_secret(render: RenderFn) -> None:
    rendered = render(VALUE_SETS["production"])
    (secret,) = rendered.of_kind("Secret")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["UNIT21_WEBHOOK_SECRETS"] == ",".join(VALUE_SETS["production"]["unit21"]["webhookSecrets"])
    assert data["KAFKA_SASL_PASSWORD"] == VALUE_SETS["production"]["kafka"]["sasl"]["password"]
    assert data["SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO"].startswith("fake-registry-user:")
    for path, text in rendered.raw.items():
        if path.endswith("/secret.yaml"):
            continue
        for fake in FAKE_SECRET_VALUES:
            assert fake not in text, f"a secret value leaks into {path}"
            assert base64.b64encode(fake.encode()).decode() not in text, f"a secret value leaks into {path}"


def test_values_reach_the_app_with_the_right_names(render: RenderFn) -> None:
    env = {k: v.get("value") for k, v in render(VALUE_SETS["production"]).env_sources().items()}
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka-0.kafka:9093,kafka-1.kafka:9093"
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert env["KAFKA_SASL_USERNAME"] == "bridge"
    assert env["KAFKA_SSL_CA_LOCATION"] == "/etc/unit21-bridge/kafka-ca/ca.crt"
    assert env["KAFKA_COMPRESSION_TYPE"] == "zstd"
    assert env["KAFKA_LINGER_MS"] == "5"
    assert env["SCHEMA_REGISTRY_URL"] == "https://schema-registry.kafka.svc:8081"
    assert env["SCHEMA_REGISTRY_SSL_CA_LOCATION"] == "/etc/unit21-bridge/registry-ca/ca.crt"
    assert env["BRIDGE_SUBJECT_NAME_STRATEGY"] == "topic_record"
    assert env["BRIDGE_MAX_BODY_BYTES"] == "4194304"  # no 4.194304e+06
    assert env["BRIDGE_WORKERS"] == "4"
    assert env["PROMETHEUS_MULTIPROC_DIR"] == "/run/prometheus-multiproc"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4318"
    assert env["OTEL_SDK_DISABLED"] == "false"
    assert env["OTEL_METRICS_EXPORTER"] == "none"
    assert "deployment.environment=prod" in env["OTEL_RESOURCE_ATTRIBUTES"]
    defaults = {k: v.get("value") for k, v in render({}).env_sources().items()}
    assert defaults["BRIDGE_TOPIC_PREFIX"] == "unit21."
    assert defaults["BRIDGE_SIGNATURE_TOLERANCE_SECONDS"] == "300"
    assert defaults["BRIDGE_MAX_BODY_BYTES"] == "921600"
    assert defaults["BRIDGE_SHUTDOWN_GRACE_SECONDS"] == "20"
    assert defaults["OTEL_SDK_DISABLED"] == "true"


def test_rendered_env_is_accepted_by_the_settings_model(render: RenderFn) -> None:
    """The strings the chart writes parse as the app's types (bool, int, float, literals)."""
    from bridge.settings import Settings

    env = {k: v["value"] for k, v in render(VALUE_SETS["production"]).env_sources().items() if "value" in v}
    env["UNIT21_WEBHOOK_SECRETS"] = "fake-from-secret"
    settings = Settings.from_env(env)
    settings.check_serve()
    assert settings.kafka_properties["security.protocol"] == "SASL_SSL"
    assert settings.kafka_properties["ssl.ca.location"] == "/etc/unit21-bridge/kafka-ca/ca.crt"
    assert settings.max_body_bytes == 4194304
    assert not any(prop.startswith("service") or prop.endswith(".host") for prop in settings.kafka_properties)


def test_prometheus_multiproc_dir_is_an_empty_dir_with_several_workers(render: RenderFn) -> None:
    assert "PROMETHEUS_MULTIPROC_DIR" not in render({}).env_sources()
    rendered = render({"bridge": {"workers": 3}})
    path = rendered.env_sources()["PROMETHEUS_MULTIPROC_DIR"]["value"]
    mounts = {m["mountPath"]: m["name"] for m in rendered.container["volumeMounts"]}
    volumes = {v["name"]: v for v in rendered.pod_spec["volumes"]}
    assert "emptyDir" in volumes[mounts[path]]


def test_kafka_ca_is_mounted_from_a_secret(render: RenderFn) -> None:
    rendered = render(VALUE_SETS["production"])
    mounts = {m["name"]: m for m in rendered.container["volumeMounts"]}
    volumes = {v["name"]: v for v in rendered.pod_spec["volumes"]}
    assert mounts["kafka-ca"]["readOnly"] is True
    assert volumes["kafka-ca"]["secret"]["secretName"] == "kafka-ca"
    env = rendered.env_sources()
    assert env["KAFKA_SSL_CA_LOCATION"]["value"].startswith(mounts["kafka-ca"]["mountPath"] + "/")


# --- Workload shape ------------------------------------------------------------------------


def test_spool_can_be_turned_off_explicitly(render: RenderFn) -> None:
    rendered = render({"spool": {"mode": "off"}})
    assert rendered.workload["kind"] == "Deployment"
    assert rendered.env_sources()["BRIDGE_SPOOL_ENABLED"]["value"] == "false"
    assert "spool" not in {v["name"] for v in rendered.pod_spec["volumes"]}
    assert "spool" not in {m["name"] for m in rendered.container["volumeMounts"]}


def test_spool_uses_a_statefulset_with_a_claim_template(render: RenderFn) -> None:
    rendered = render(VALUE_SETS["spool-statefulset"])
    sts = rendered.workload
    assert sts["kind"] == "StatefulSet"
    assert not rendered.of_kind("Deployment")
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "gp3"
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    env = rendered.env_sources()
    assert env["BRIDGE_SPOOL_ENABLED"]["value"] == "true"
    assert env["BRIDGE_SPOOL_MAX_BYTES"]["value"] == "2147483648"
    mounts = {m["name"]: m["mountPath"] for m in rendered.container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == env["BRIDGE_SPOOL_DIR"]["value"]
    headless = rendered.one("Service", "-headless")
    assert sts["spec"]["serviceName"] == headless["metadata"]["name"]
    assert headless["spec"]["clusterIP"] == "None"
    assert rendered.one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    assert "replicas" not in sts["spec"]


def test_default_storage_class_is_left_to_the_cluster(render: RenderFn) -> None:
    sts = render({}).workload
    assert "storageClassName" not in sts["spec"]["volumeClaimTemplates"][0]["spec"]


def test_autoscaling_and_pdb(render: RenderFn) -> None:
    rendered = render(VALUE_SETS["production"])
    assert "replicas" not in rendered.workload["spec"]
    hpa = rendered.one("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": rendered.workload["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
    pdb = rendered.one("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 2
    assert "maxUnavailable" not in pdb["spec"]
    assert pdb["spec"]["selector"]["matchLabels"] == rendered.workload["spec"]["selector"]["matchLabels"]
    assert not render(VALUE_SETS["gateway-api"]).of_kind("PodDisruptionBudget")


def test_ingress_with_tls_exposes_only_the_webhook(render: RenderFn) -> None:
    ingress = render(VALUE_SETS["production"]).one("Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert ingress["spec"]["tls"] == [{"hosts": ["unit21.example.com"], "secretName": "unit21-bridge-tls"}]
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/webhooks/unit21"
    assert path["pathType"] == "Exact"
    assert path["backend"]["service"] == {"name": "u21-unit21-kafka-bridge", "port": {"name": "http"}}


def test_network_policy_allows_only_the_http_port_in(render: RenderFn) -> None:
    rendered = render(VALUE_SETS["production"])
    policy = rendered.one("NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert (
        policy["spec"]["podSelector"]["matchLabels"] == rendered.workload["spec"]["selector"]["matchLabels"]
    )
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    # The helm test pod can still reach the bridge when sources are restricted.
    assert {"app.kubernetes.io/component": "helm-test", "app.kubernetes.io/instance": "u21"} in [
        peer.get("podSelector", {}).get("matchLabels") for peer in rule["from"]
    ]
    egress_ports = {(p["port"], p["protocol"]) for r in policy["spec"]["egress"] for p in r["ports"]}
    assert {(53, "UDP"), (53, "TCP"), (9093, "TCP"), (8081, "TCP"), (4318, "TCP")} <= egress_ports
    kafka_rule = next(r for r in policy["spec"]["egress"] if {"port": 9093, "protocol": "TCP"} in r["ports"])
    assert kafka_rule["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]


def test_helm_test_pod_posts_a_signed_webhook(render: RenderFn) -> None:
    rendered = render(VALUE_SETS["existing-secret"])
    (pod,) = rendered.of_kind("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    script = container["args"][0]
    assert "Unit21-Signature" in script and "hmac" in script and "sha256" in script
    env = {e["name"]: e for e in container["env"]}
    assert (
        env["TARGET_URL"]["value"] == f"http://u21-unit21-kafka-bridge.{NAMESPACE}.svc:8080/webhooks/unit21"
    )
    json.loads(env["TEST_BODY"]["value"])
    ref = env["UNIT21_WEBHOOK_SECRETS"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == "unit21-bridge-credentials"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["restartPolicy"] == "Never"
    assert not render({}).of_kind("Pod")


# --- NOTES ---------------------------------------------------------------------------------


def test_notes_tell_the_unit21_url_and_never_a_secret(render: RenderFn) -> None:
    notes = render(VALUE_SETS["production"]).notes
    assert "https://unit21.example.com/webhooks/unit21" in notes
    for fake in FAKE_SECRET_VALUES:
        assert fake not in notes
    route_notes = render(VALUE_SETS["gateway-api"]).notes
    assert "https://unit21.example.com/webhooks/unit21" in route_notes
    default_notes = render({}).notes
    assert "port-forward" in default_notes
    assert "kafka.bootstrapServers is empty" in default_notes


def test_image_reference(render: RenderFn) -> None:
    # The default is the image .github/workflows/release.yml publishes (tests/test_release.py).
    published = "ghcr.io/unit21-kafka-bridge/unit21-kafka-bridge"
    assert render({}).container["image"] == f"{published}:0.1.0"
    production = render(VALUE_SETS["production"]).container["image"]
    assert production == "registry.example.com/platform/unit21-kafka-bridge:0.1.0"
    digest = "sha256:" + "a" * 64
    assert render({"image": {"digest": digest}}).container["image"] == f"{published}@{digest}"
    # The digest wins over a tag, for the bridge and for the `helm test` pod alike.
    pinned = render({"image": {"digest": digest, "tag": "9.9.9"}, "tests": {"enabled": True}})
    assert pinned.container["image"] == f"{published}@{digest}"
    [test_pod] = pinned.of_kind("Pod")
    assert [c["image"] for c in test_pod["spec"]["containers"]] == [f"{published}@{digest}"]
    bare = render({"image": {"registry": "", "repository": "mirror.local/u21", "digest": digest}})
    assert bare.container["image"] == f"mirror.local/u21@{digest}"
