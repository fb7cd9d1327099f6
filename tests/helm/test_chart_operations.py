"""Day 2 on Kubernetes (issue 14): the default install keeps the 2xx promise, a broken install
looks broken, unsafe values are refused, memory and the shutdown budget follow the settings."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
from typing import Any

import helm_python
import kubernetes_validate
import pytest

from tests.support import child_env

from .conftest import CHART_DIR, NAMESPACE, RELEASE, VALUE_SETS, Rendered, RenderFn

MI = 2**20
KAFKA = {"bootstrapServers": "kafka:9092"}


def refusal(chart: helm_python.Chart, values: dict[str, Any]) -> str:
    """The error Helm gives for these values (schema or template); fails if they render."""
    with pytest.raises(helm_python.HelmError) as excinfo:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    return str(excinfo.value)


def mounts(rendered: Rendered) -> dict[str, str]:
    return {m["name"]: m["mountPath"] for m in rendered.container["volumeMounts"]}


def volumes(rendered: Rendered) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in rendered.pod_spec["volumes"]}


def quantity_bytes(text: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "": 1}
    number, unit = re.fullmatch(r"(\d+)(Ki|Mi|Gi|)", text).groups()  # type: ignore[union-attr]
    return int(number) * units[unit]


# --- 1. The default install keeps spooled records through a pod deletion -------------------


def test_default_spool_is_a_claim_per_pod_that_outlives_the_pod(render: RenderFn) -> None:
    rendered = render({})
    sts = rendered.workload
    assert sts["kind"] == "StatefulSet"
    assert not rendered.of_kind("Deployment")
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    env = rendered.env_sources()
    assert env["BRIDGE_SPOOL_ENABLED"]["value"] == "true"
    # The spool directory is the claim, not an emptyDir that dies with the pod.
    assert mounts(rendered)[claim["metadata"]["name"]] == env["BRIDGE_SPOOL_DIR"]["value"]
    assert claim["metadata"]["name"] not in volumes(rendered)
    assert not [v for v in rendered.pod_spec["volumes"] if "emptyDir" in v and v["name"] != "tmp"]
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "WARNING: spool.mode" not in rendered.notes


def test_ephemeral_spool_is_explicit_and_the_notes_say_what_it_risks(render: RenderFn) -> None:
    rendered = render({"spool": {"mode": "ephemeral", "ephemeralSizeLimit": "3Gi"}})
    assert rendered.workload["kind"] == "Deployment"
    assert not rendered.of_kind("StatefulSet")
    assert volumes(rendered)["spool"]["emptyDir"] == {"sizeLimit": "3Gi"}
    assert rendered.env_sources()["BRIDGE_SPOOL_ENABLED"]["value"] == "true"
    assert "WARNING: spool.mode=ephemeral" in rendered.notes
    assert "LOST when their pod is deleted" in rendered.notes
    off = render({"spool": {"mode": "off"}})
    assert "WARNING: spool.mode=off" in off.notes
    assert "webhooks are lost" in off.notes


@pytest.mark.parametrize(
    "spool",
    [
        {"enabled": True},
        {"disabled": True},
        {"enabled": False, "disabled": True},
        {"emptyDirSizeLimit": "1Gi"},
    ],
)
def test_values_of_the_old_spool_pair_are_refused_with_their_replacement(
    chart: helm_python.Chart, spool: dict[str, Any]
) -> None:
    message = refusal(chart, {"spool": spool})
    assert "spool.mode" in message or "spool.ephemeralSizeLimit" in message, message


def test_spool_mode_has_three_values(chart: helm_python.Chart) -> None:
    message = refusal(chart, {"spool": {"mode": "disk"}})
    assert "/spool/mode" in message


# --- 2. Scale-down never strands records silently -------------------------------------------


def test_autoscaling_a_persistent_spool_needs_scale_down_disabled_or_acknowledged(
    chart: helm_python.Chart, render: RenderFn
) -> None:
    message = refusal(chart, {"autoscaling": {"enabled": True}})
    assert "scaleDown.selectPolicy=Disabled" in message
    assert "acknowledgeScaleDownStrandsSpool=true" in message

    only_up = render(
        {"autoscaling": {"enabled": True, "behavior": {"scaleDown": {"selectPolicy": "Disabled"}}}}
    )
    hpa = only_up.one("HorizontalPodAutoscaler")
    assert hpa["spec"]["behavior"]["scaleDown"]["selectPolicy"] == "Disabled"
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"

    acknowledged = render({"autoscaling": {"enabled": True, "acknowledgeScaleDownStrandsSpool": True}})
    assert acknowledged.one("HorizontalPodAutoscaler")
    assert "Orphaned claims" in acknowledged.notes

    ephemeral = render({"autoscaling": {"enabled": True}, "spool": {"mode": "ephemeral"}})
    assert ephemeral.one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["kind"] == "Deployment"


def test_claims_are_never_deleted_on_scale_down(chart: helm_python.Chart) -> None:
    message = refusal(chart, {"spool": {"persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete"}}})
    assert "whenScaled=Delete" in message and "Use Retain" in message


def _readme_drain_program() -> str:
    readme = (CHART_DIR / "README.md").read_text()
    block = readme.split("<!-- spool-drain-job", 1)[1].split("```console", 1)[1].split("```", 1)[0]
    program = block.split('jq --arg claim "$CLAIM" \'', 1)[1].split("' \\\n", 1)[0]
    return program


@pytest.mark.skipif(shutil.which("jq") is None, reason="the documented command needs jq")
@pytest.mark.parametrize("name", ["production", "existing-secret", "spool-statefulset"])
def test_the_documented_drain_job_mounts_the_claim_with_the_pods_settings(
    render: RenderFn, name: str
) -> None:
    """The README's command, run on the rendered StatefulSet, gives a valid Job that drains the claim."""
    rendered = render(VALUE_SETS[name])
    sts = rendered.workload
    claim = f"spool-{sts['metadata']['name']}-3"  # the StatefulSet controller's claim naming
    result = subprocess.run(
        ["jq", "--arg", "claim", claim, _readme_drain_program()],
        input=json.dumps(sts),
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    job = json.loads(result.stdout)
    for version in ("1.27", "1.33"):
        kubernetes_validate.validate(job, version, strict=True)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    spool_dir = rendered.env_sources()["BRIDGE_SPOOL_DIR"]["value"]
    assert container["args"] == ["spool", "drain", "--spool-dir", spool_dir]
    assert {m["name"]: m["mountPath"] for m in container["volumeMounts"]}["spool"] == spool_dir
    assert {v["name"]: v for v in pod["volumes"]}["spool"] == {
        "name": "spool",
        "persistentVolumeClaim": {"claimName": claim},
    }
    # Same image, settings and secrets as the bridge, so it reaches the same Kafka the same way.
    assert container["image"] == rendered.container["image"]
    assert container["envFrom"] == rendered.container["envFrom"]
    assert container["env"] == rendered.container["env"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["restartPolicy"] == "Never"
    # Never an endpoint of the webhook Service.
    selector = rendered.one("Service", "kafka-bridge")["spec"]["selector"]
    assert not selector.items() <= job["spec"]["template"]["metadata"]["labels"].items()
    assert len(claim) <= 63


def test_the_drain_job_runs_a_command_the_cli_has() -> None:
    """`spool drain --spool-dir` is the ops side's command; checked here once it is in the CLI."""
    import contextlib
    import io

    from bridge.cli.main import build_parser

    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        try:
            args = build_parser().parse_args(
                ["spool", "drain", "--spool-dir", "/var/lib/unit21-bridge/spool"]
            )
        except SystemExit:
            if "invalid choice: 'drain'" in errors.getvalue():
                pytest.skip("`unit21-bridge spool drain` is not on this branch yet (ops helper)")
            raise AssertionError(errors.getvalue()) from None
    assert args.spool_command == "drain"


# --- 3. A broken install looks broken ------------------------------------------------------


class FakeBridge:
    """An HTTP server answering /readyz and the webhook as told; records what the test pod sent."""

    def __init__(self, readyz: tuple[int, dict[str, Any]], webhook: tuple[int, dict[str, Any]]) -> None:
        self.received: list[tuple[bytes, str]] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, status: int, doc: dict[str, Any]) -> None:
                raw = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:
                self._answer(*readyz)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                fake.received.append((body, self.headers["Unit21-Signature"]))
                self._answer(*webhook)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> FakeBridge:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


READY = (
    200,
    {"ready": True, "failing": [], "detail": {"shutting_down": False, "kafka": "connected", "brokers": 3}},
)
PUBLISHED = (
    200,
    {"event_id": "e1", "topic": "unit21.alert", "partition": 0, "offset": 7, "outcome": "published"},
)


def run_test_pod(rendered: Rendered, bridge: FakeBridge) -> subprocess.CompletedProcess[str]:
    (pod,) = rendered.of_kind("Pod")
    container = pod["spec"]["containers"][0]
    pod_env = {e["name"]: e.get("value") for e in container["env"]}
    env = {
        **child_env(),
        "TARGET_URL": f"{bridge.url}/webhooks/unit21",
        "READYZ_URL": f"{bridge.url}/readyz",
        "TEST_BODY": pod_env["TEST_BODY"],
        "UNIT21_WEBHOOK_SECRETS": ",".join(VALUE_SETS["production"]["unit21"]["webhookSecrets"]),
    }
    assert container["command"] == ["python", "-c"]
    return subprocess.run(
        [sys.executable, "-c", container["args"][0]], env=env, capture_output=True, text=True, timeout=30
    )


@pytest.fixture(scope="module")
def with_test_pod(chart: helm_python.Chart) -> Rendered:
    return Rendered(chart.render(VALUE_SETS["production"], name=RELEASE, namespace=NAMESPACE))


def test_helm_test_passes_on_a_published_webhook_signed_like_unit21(with_test_pod: Rendered) -> None:
    with FakeBridge(READY, PUBLISHED) as bridge:
        result = run_test_pod(with_test_pod, bridge)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: published to unit21.alert" in result.stdout
    ((body, signature),) = bridge.received
    fields = dict(part.split("=", 1) for part in signature.split(","))
    secret = VALUE_SETS["production"]["unit21"]["webhookSecrets"][0]
    expected = hmac.new(secret.encode(), fields["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(fields["s0"], expected)
    # Each run posts a distinct body, so the bridge's dedup window never answers for an old run.
    assert b"HELM_TEST_RUN_ID" not in body
    with FakeBridge(READY, PUBLISHED) as again:
        assert run_test_pod(with_test_pod, again).returncode == 0
    assert again.received[0][0] != body


@pytest.mark.parametrize(
    ("readyz", "webhook", "reason"),
    [
        pytest.param(
            (
                200,
                {
                    "ready": True,
                    "failing": [],
                    "detail": {
                        "kafka": "unreachable: 3/3 brokers are down",
                        "kafka_outage": "webhooks are spooled",
                    },
                },
            ),
            PUBLISHED,
            "detail.kafka 'connected'",
            id="ready-only-because-it-spools",
        ),
        pytest.param(
            (503, {"ready": False, "failing": ["kafka"], "detail": {"kafka": "never connected"}}),
            PUBLISHED,
            "/readyz must be 200",
            id="not-ready",
        ),
        pytest.param(
            READY,
            (202, {"event_id": "e1", "topic": "unit21.alert", "spooled": True, "outcome": "published"}),
            "spooled (202)",
            id="spooled-202",
        ),
        pytest.param(
            READY,
            (
                200,
                {
                    "event_id": "e1",
                    "topic": "unit21.unrecognized",
                    "partition": 0,
                    "offset": 1,
                    "outcome": "unrecognized",
                },
            ),
            "outcome is 'unrecognized'",
            id="unrecognized",
        ),
        pytest.param(
            READY,
            (
                200,
                {
                    "event_id": "e1",
                    "topic": "unit21.dlq",
                    "partition": 0,
                    "offset": 1,
                    "outcome": "dead_lettered",
                },
            ),
            "outcome is 'dead_lettered'",
            id="dead-lettered",
        ),
        pytest.param(READY, (200, {**PUBLISHED[1], "duplicate": True}), "dedup window", id="duplicate"),
        pytest.param(
            READY,
            (503, {"error": "kafka_unavailable", "detail": "not acknowledged"}),
            "expected 200, got 503",
            id="503",
        ),
        pytest.param(
            READY,
            (401, {"error": "invalid_signature", "detail": "no match"}),
            "expected 200, got 401",
            id="401",
        ),
    ],
)
def test_helm_test_fails_on_anything_but_kafka_connected_and_published(
    with_test_pod: Rendered,
    readyz: tuple[int, dict[str, Any]],
    webhook: tuple[int, dict[str, Any]],
    reason: str,
) -> None:
    with FakeBridge(readyz, webhook) as bridge:
        result = run_test_pod(with_test_pod, bridge)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL:" in result.stdout and reason in result.stdout, result.stdout


def test_the_default_test_body_is_published_by_the_bridge(render: RenderFn) -> None:
    """Classified and normalised by the bridge's own builder: published, no issues."""
    import time

    from bridge.contract.codec import SingleObjectCodec
    from bridge.contract.records import MessageBuilder
    from bridge.contract.schemas import SchemaSet

    (pod,) = render({"tests": {"enabled": True}}).of_kind("Pod")
    body = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}["TEST_BODY"]
    raw = body.replace("HELM_TEST_RUN_ID", "1-abc").encode()
    schemas = SchemaSet.load()
    message = MessageBuilder(schemas, SingleObjectCodec(schemas), "unit21.").build(
        raw, json.loads(raw), event_id="e", received_at_ms=int(time.time() * 1000), signature_timestamp=None
    )
    assert (message.outcome, message.topic, message.issues) == ("published", "unit21.alert", ())


def _egress_ports(rendered: Rendered) -> set[int]:
    policy = rendered.one("NetworkPolicy")
    ports = set()
    for rule in policy["spec"]["egress"]:
        assert rule.get("ports"), f"an egress rule without ports allows every port: {rule}"
        ports |= {p["port"] for p in rule["ports"] if p["port"] != 53}
    return ports


def test_network_policy_allows_the_ports_of_the_bootstrap_servers(render: RenderFn) -> None:
    rendered = render(
        {
            "kafka": {"bootstrapServers": "b-1.msk.example:9096,b-2.msk.example:9096"},
            "networkPolicy": {"enabled": True},
        }
    )
    assert _egress_ports(rendered) == {9096}
    extra = render(
        {
            "kafka": {"bootstrapServers": "b-1.msk.example:9096,SASL_SSL://b-2.msk.example:9098"},
            "networkPolicy": {"enabled": True, "egress": {"kafka": {"extraPorts": [9094, 9096]}}},
        }
    )
    assert _egress_ports(extra) == {9094, 9096, 9098}
    # No bootstrap address yet: no Kafka rule at all, never a rule that opens every port.
    assert _egress_ports(render({"networkPolicy": {"enabled": True}})) == set()


def test_the_old_kafka_ports_value_is_refused_with_its_replacement(chart: helm_python.Chart) -> None:
    message = refusal(chart, {"networkPolicy": {"egress": {"kafka": {"ports": [9092]}}}})
    assert "extraPorts" in message


# --- 4. Inconsistent or unsafe values are refused -------------------------------------------


@pytest.mark.parametrize(
    "prop",
    [
        "ssl.key.password",
        "sasl.oauthbearer.client.secret",
        "ssl.keystore.password",
        "ssl.key.pem",
        "sasl.oauthbearer.assertion.private.key.passphrase",
        "ssl.truststore.password",
    ],
)
def test_secret_librdkafka_properties_never_reach_the_configmap(chart: helm_python.Chart, prop: str) -> None:
    message = refusal(chart, {"kafka": {**KAFKA, "extraProperties": {prop: "fake-key-secret-4444"}}})
    assert f"kafka.extraProperties.{prop} looks like a secret" in message
    assert "kafka.secretProperties" in message


def test_secret_properties_come_from_secret_key_refs(render: RenderFn) -> None:
    from bridge.settings import Settings

    rendered = render(
        {
            "kafka": {
                **KAFKA,
                "securityProtocol": "SSL",
                "extraProperties": {"ssl.certificate.pem": "-----BEGIN CERTIFICATE-----"},
                "secretProperties": {
                    "ssl.key.password": {"secretName": "kafka-client", "key": "key-password"}
                },
            }
        }
    )
    env = rendered.env_sources()
    assert env["KAFKA_SSL_KEY_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "kafka-client",
        "key": "key-password",
    }
    for config_map in rendered.of_kind("ConfigMap"):
        assert "KAFKA_SSL_KEY_PASSWORD" not in config_map["data"]
    # The variable the kubelet fills in is the librdkafka property the app passes on.
    values = {k: v["value"] for k, v in env.items() if "value" in v}
    settings = Settings.from_env({**values, "KAFKA_SSL_KEY_PASSWORD": "fake-from-secret"})
    assert settings.kafka_properties["ssl.key.password"] == "fake-from-secret"


@pytest.mark.parametrize("prop", ["acks", "sasl.password"])
def test_secret_properties_cannot_override_what_the_bridge_owns(chart: helm_python.Chart, prop: str) -> None:
    message = refusal(
        chart, {"kafka": {**KAFKA, "secretProperties": {prop: {"secretName": "s", "key": "k"}}}}
    )
    assert f"kafka property {prop}" in message


@pytest.mark.parametrize(
    ("sasl", "needle"),
    [
        (
            {"mechanism": "SCRAM-SHA-512", "username": "bridge"},
            "there is no password: set kafka.sasl.password, or existingSecret",
        ),
        (
            {"mechanism": "PLAIN", "password": "fake-sasl-password-2222"},
            "there is no username: set kafka.sasl.username",
        ),
    ],
)
def test_sasl_without_credentials_is_refused(
    chart: helm_python.Chart, sasl: dict[str, str], needle: str
) -> None:
    message = refusal(chart, {"kafka": {**KAFKA, "securityProtocol": "SASL_SSL", "sasl": sasl}})
    assert needle in message


def test_sasl_credentials_may_come_from_the_existing_secret_or_oauth(render: RenderFn) -> None:
    from_secret = render(
        {
            "existingSecret": "creds",
            "kafka": {**KAFKA, "securityProtocol": "SASL_SSL", "sasl": {"mechanism": "PLAIN"}},
        }
    )
    ref = from_secret.env_sources()["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["optional"]) == ("creds", False)
    oauth = render({"kafka": {**KAFKA, "securityProtocol": "SASL_SSL", "sasl": {"mechanism": "OAUTHBEARER"}}})
    assert oauth.workload


def test_pdb_max_unavailable_zero_is_rendered_as_zero(render: RenderFn, chart: helm_python.Chart) -> None:
    rendered = render({"podDisruptionBudget": {"maxUnavailable": 0}})
    assert rendered.one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 0
    assert "maxUnavailable=0 blocks every voluntary eviction" in rendered.notes
    percent = render({"podDisruptionBudget": {"maxUnavailable": "25%"}})
    assert percent.one("PodDisruptionBudget")["spec"]["maxUnavailable"] == "25%"
    message = refusal(chart, {"podDisruptionBudget": {"minAvailable": None, "maxUnavailable": None}})
    assert "needs minAvailable or maxUnavailable" in message


def test_hpa_without_a_target_is_refused(chart: helm_python.Chart) -> None:
    message = refusal(
        chart,
        {
            "spool": {"mode": "ephemeral"},
            "autoscaling": {
                "enabled": True,
                "targetCPUUtilizationPercentage": None,
                "targetMemoryUtilizationPercentage": None,
            },
        },
    )
    assert "Kubernetes would silently target 80 % CPU" in message


def _assert_names_fit(rendered: Rendered) -> None:
    for obj in rendered.objects:
        assert len(obj["metadata"]["name"]) <= 63, obj["metadata"]["name"]
    sts = rendered.workload
    # controller-revision-hash=<name>-<hash of up to 10 characters> is a label value (<= 63).
    assert len(sts["metadata"]["name"]) + 1 + 10 <= 63
    # Claim of ordinal 999: spool-<name>-999.
    assert len(f"spool-{sts['metadata']['name']}-999") <= 63


def test_long_names_fit_kubernetes_limits(chart: helm_python.Chart) -> None:
    values = {**VALUE_SETS["production"], "grafanaDashboard": {"enabled": True}}
    longest = Rendered(
        chart.render({**values, "fullnameOverride": "b" * 52}, name=RELEASE, namespace=NAMESPACE)
    )
    _assert_names_fit(longest)
    assert longest.workload["metadata"]["name"] == "b" * 52
    long_release = Rendered(chart.render(values, name="r" * 53, namespace=NAMESPACE))
    _assert_names_fit(long_release)
    message = refusal(chart, {"fullnameOverride": "c" * 53})
    assert "/fullnameOverride" in message


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        (
            {
                "ingress": {
                    "enabled": True,
                    "hosts": [{"host": "x.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
                }
            },
            'ingress.hosts[0].paths[0].path is "/"',
        ),
        (
            {
                "ingress": {
                    "enabled": True,
                    "hosts": [
                        {
                            "host": "x.example.com",
                            "paths": [{"path": "/webhooks/unit21"}, {"path": "/metrics"}],
                        }
                    ],
                }
            },
            'ingress.hosts[0].paths[1].path is "/metrics"',
        ),
        (
            {
                "ingress": {
                    "hosts": [{"host": "x.example.com", "paths": [{"path": "/readyz", "pathType": "Exact"}]}]
                }
            },
            '"/readyz": only /webhooks/unit21',
        ),
        (
            {
                "httpRoute": {
                    "enabled": True,
                    "parentRefs": [{"name": "gw"}],
                    "paths": [{"path": "/", "type": "PathPrefix"}],
                }
            },
            'httpRoute.paths[0].path is "/"',
        ),
    ],
)
def test_only_the_webhook_path_can_be_exposed(
    chart: helm_python.Chart, values: dict[str, Any], needle: str
) -> None:
    assert needle in refusal(chart, values)


@pytest.mark.parametrize("memory", ["512MB", "512M", "0.5G", "lots"])
def test_memory_in_decimal_or_unknown_units_is_refused(chart: helm_python.Chart, memory: str) -> None:
    message = refusal(chart, {"resources": {"limits": {"cpu": "1", "memory": memory}}})
    assert f'resources.limits.memory is "{memory}"' in message and "Ki, Mi, Gi" in message


def test_spool_claims_are_single_writer_only(chart: helm_python.Chart) -> None:
    message = refusal(chart, {"spool": {"accessModes": ["ReadWriteMany"]}})
    assert "/spool/accessModes/0" in message


# --- 5. Memory per worker -------------------------------------------------------------------

MEMORY_VALUE_SETS = [
    pytest.param({}, id="defaults"),
    pytest.param({"bridge": {"workers": 4}}, id="4-workers"),
    pytest.param({"bridge": {"workers": 2, "maxConcurrency": 16, "maxBodyBytes": 4194304}}, id="big-bodies"),
    pytest.param(
        {"bridge": {"maxConnections": 200, "maxHeaderBytes": 16384, "maxConcurrency": 8}}, id="small"
    ),
    pytest.param(VALUE_SETS["production"], id="production"),
]


@pytest.mark.parametrize("values", MEMORY_VALUE_SETS)
def test_memory_is_workers_times_the_apps_worst_case(render: RenderFn, values: dict[str, Any]) -> None:
    from bridge.settings import Settings

    rendered = render(values)
    env = {k: v["value"] for k, v in rendered.env_sources().items() if "value" in v}
    settings = Settings.from_env(env)
    worker = settings.worst_case_memory_bytes()
    assert int(env["BRIDGE_MEMORY_BUDGET_BYTES"]) == worker == settings.memory_budget_bytes
    resources = rendered.container["resources"]
    assert resources["requests"]["memory"] == resources["limits"]["memory"]
    limit = quantity_bytes(resources["limits"]["memory"])
    supervisor = 64 * MI if settings.workers > 1 else 0
    need = settings.workers * worker + supervisor
    assert need <= limit < need + MI  # rounded up to the next Mi, no further
    assert resources["limits"]["memory"].endswith("Mi")


def test_memory_covers_the_measured_peaks(render: RenderFn) -> None:
    """Peaks measured with bench/worker_memory.py (docs/operations.md § Sizing) and in issue 14."""
    one = quantity_bytes(render({}).container["resources"]["limits"]["memory"])
    four = quantity_bytes(render({"bridge": {"workers": 4}}).container["resources"]["limits"]["memory"])
    assert one >= 323 * MI  # one worker, 64 concurrent ~900 KB bodies (issue 14: 308-323 MiB)
    assert four >= 1086 * MI  # four workers at the old 512 Mi limit: 1,086 MiB and an OOM kill


def test_a_given_memory_limit_must_cover_the_workers(chart: helm_python.Chart, render: RenderFn) -> None:
    message = refusal(
        chart, {"bridge": {"workers": 4}, "resources": {"limits": {"cpu": "1", "memory": "512Mi"}}}
    )
    assert "below what 4 worker(s) can use at worst, 3004Mi" in message
    rendered = render({"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "100m"}}})
    resources = rendered.container["resources"]
    assert resources["limits"]["memory"] == resources["requests"]["memory"] == "1Gi"
    assert rendered.env_sources()["BRIDGE_MEMORY_BUDGET_BYTES"]["value"] == str(2**30)
    message = refusal(chart, {"resources": {"limits": {"memory": "1Gi"}, "requests": {"memory": "256Mi"}}})
    assert "must equal the memory limit" in message


@pytest.mark.parametrize(
    ("values", "volume"),
    [
        ({}, 4 * 2**30),
        ({"bridge": {"workers": 4}}, 4 * 2**30),
        ({"spool": {"mode": "ephemeral", "ephemeralSizeLimit": "3Gi"}, "bridge": {"workers": 2}}, 3 * 2**30),
    ],
)
def test_spool_cap_fits_every_worker_and_an_adoption_in_the_volume(
    render: RenderFn, values: dict[str, Any], volume: int
) -> None:
    rendered = render(values)
    env = rendered.env_sources()
    workers = int(env["BRIDGE_WORKERS"]["value"])
    cap = int(env["BRIDGE_SPOOL_MAX_BYTES"]["value"])
    assert (workers + 2) * cap <= volume < (workers + 2) * (cap + MI)


def test_a_spool_cap_the_volume_cannot_hold_is_refused(chart: helm_python.Chart) -> None:
    message = refusal(chart, {"bridge": {"workers": 4}, "spool": {"maxBytes": 2**30}})
    assert (
        "spool.maxBytes (1073741824) x (bridge.workers + 2 = 6) needs 6144Mi but spool.size holds 4096Mi"
        in message
    )


# --- 12. Shutdown fits its budget -----------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "pre_stop", "grace"),
    [
        ({}, 5, 20),
        ({"preStopSleepSeconds": 10, "bridge": {"shutdownGraceSeconds": 45}}, 10, 45),
        ({"preStopSleepSeconds": 0}, 0, 20),
    ],
)
def test_grace_period_is_derived_from_its_parts(
    render: RenderFn, values: dict[str, Any], pre_stop: int, grace: int
) -> None:
    rendered = render(values)
    assert rendered.container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(pre_stop)]
    assert rendered.env_sources()["BRIDGE_SHUTDOWN_GRACE_SECONDS"]["value"] == str(grace)
    # preStop + drain + 5 s for the process to exit (COMMON shutdown contract) + 5 s margin.
    assert rendered.pod_spec["terminationGracePeriodSeconds"] == pre_stop + grace + 5 + 5


@pytest.mark.parametrize("given", [26, 30, 34])
def test_a_grace_period_below_the_budget_is_refused(chart: helm_python.Chart, given: int) -> None:
    message = refusal(chart, {"terminationGracePeriodSeconds": given})
    assert f"terminationGracePeriodSeconds ({given}) is below the shutdown budget 35" in message


def test_a_longer_grace_period_is_kept(render: RenderFn) -> None:
    assert render({"terminationGracePeriodSeconds": 60}).pod_spec["terminationGracePeriodSeconds"] == 60
