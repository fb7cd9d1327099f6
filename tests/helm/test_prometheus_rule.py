"""The alert rules: the PrometheusRule template (opt-in), the plain rules file generated from it,
and promtool's verdict on both — syntax (`promtool check rules`) and that each alert fires on
the series that mean trouble and stays quiet otherwise (`promtool test rules`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from .conftest import NAMESPACE, RenderFn
from .rules_file import RULES_FILE, render_rule_spec, rules_file_text

# One alert per condition the on-call needs (issue 14, item 7).
EXPECTED_ALERTS = {
    "targetDown": ["Unit21BridgeTargetDown", "Unit21BridgeAllTargetsDown"],
    "kafkaUnreachable": ["Unit21BridgeKafkaUnreachable"],
    "spoolBacklogAge": ["Unit21BridgeSpoolBacklogOld"],
    "spooling": ["Unit21BridgeSpooling"],
    "spoolNearlyFull": ["Unit21BridgeSpoolNearlyFull"],
    "parkedRecords": ["Unit21BridgeParkedRecords"],
    "http5xxRatio": ["Unit21BridgeHigh5xxRatio"],
    "http401Ratio": ["Unit21BridgeHigh401Ratio"],
    "permanentDeliveryFailures": ["Unit21BridgePermanentDeliveryFailures"],
    "deadLetters": ["Unit21BridgeDeadLetters"],
    "slowKafkaAcks": ["Unit21BridgeSlowKafkaAcks"],
    "noWebhooks": ["Unit21BridgeNoWebhooks"],
}
DURATION = re.compile(r"([0-9]+(ms|s|m|h|d|w|y))+")
ON = {"prometheusRule": {"enabled": True}}


def rules_of(rule: dict[str, Any]) -> dict[str, dict[str, Any]]:
    [group] = rule["spec"]["groups"]
    return {r["alert"]: r for r in group["rules"]}


# --- the template ------------------------------------------------------------------------------


def test_off_by_default(render: RenderFn) -> None:
    assert not render({}).of_kind("PrometheusRule")
    assert not render({"serviceMonitor": {"enabled": True}}).of_kind("PrometheusRule")


def assert_structurally_valid(rule: dict[str, Any]) -> None:
    """What the PrometheusRule CRD (monitoring.coreos.com/v1) accepts, strictly: the schema is
    not among kubernetes-validate's, so its structure is checked here."""
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    assert set(rule) == {"apiVersion", "kind", "metadata", "spec"}
    meta = rule["metadata"]
    assert set(meta) <= {"name", "namespace", "labels", "annotations"}
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", meta["name"]) and len(meta["name"]) <= 63
    for key, value in {**meta.get("labels", {}), **meta.get("annotations", {})}.items():
        assert isinstance(key, str) and isinstance(value, str), (key, value)
    assert set(rule["spec"]) == {"groups"}
    names = set()
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["name"]
        if "interval" in group:
            assert DURATION.fullmatch(group["interval"])
        for r in group["rules"]:
            assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, set(r)
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", r["alert"])
            assert r["alert"] not in names, f"duplicate alert {r['alert']}"
            names.add(r["alert"])
            assert isinstance(r["expr"], str) and r["expr"].strip()
            assert DURATION.fullmatch(r["for"]), r["for"]
            for key, value in {**r["labels"], **r["annotations"]}.items():
                assert isinstance(value, str) and value, (r["alert"], key, value)
            assert r["labels"]["severity"]
            assert {"summary", "description"} <= set(r["annotations"])


def test_on_renders_every_alert_as_a_valid_prometheus_rule(render: RenderFn) -> None:
    rendered = render(ON)
    rule = rendered.one("PrometheusRule")
    assert_structurally_valid(rule)
    assert rule["metadata"]["namespace"] == NAMESPACE
    alerts = rules_of(rule)
    assert sorted(alerts) == sorted(a for names in EXPECTED_ALERTS.values() for a in names)
    # The default selector is what the ServiceMonitor's scrape produces: job = the Service's name.
    # (not the StatefulSet's headless Service, which the ServiceMonitor does not scrape)
    (service,) = [
        s["metadata"]["name"] for s in rendered.of_kind("Service") if s["spec"].get("clusterIP") != "None"
    ]
    for name, r in alerts.items():
        assert f'job="{service}",namespace="{NAMESPACE}"' in r["expr"], name


def test_values_set_labels_namespace_thresholds_and_durations(render: RenderFn) -> None:
    values = {
        "prometheusRule": {
            "enabled": True,
            "namespace": "monitoring",
            "labels": {"release": "kube-prometheus-stack"},
            "selector": 'job="bridge",cluster="eu1"',
            "additionalRuleLabels": {"team": "payments"},
            "interval": "30s",
            "rules": {
                "spoolBacklogAge": {"minutes": 30, "for": "2m", "severity": "page"},
                "http5xxRatio": {"ratio": 0.1},
                "slowKafkaAcks": {"seconds": 1.5},
                "noWebhooks": {"window": "6h", "for": "30m"},
                "deadLetters": {"enabled": False},
            },
        }
    }
    rule = render(values).one("PrometheusRule")
    assert_structurally_valid(rule)
    assert rule["metadata"]["namespace"] == "monitoring"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"]["groups"][0]["interval"] == "30s"
    alerts = rules_of(rule)
    assert "Unit21BridgeDeadLetters" not in alerts
    backlog = alerts["Unit21BridgeSpoolBacklogOld"]
    assert backlog["expr"] == 'unit21_bridge_spool_oldest_age_seconds{job="bridge",cluster="eu1"} > 1800'
    assert backlog["for"] == "2m" and backlog["labels"] == {"severity": "page", "team": "payments"}
    assert "30 minutes" in backlog["annotations"]["summary"]
    assert alerts["Unit21BridgeHigh5xxRatio"]["expr"].endswith("> 0.1")
    assert alerts["Unit21BridgeSlowKafkaAcks"]["expr"].endswith("> 1.5")
    no_webhooks = alerts["Unit21BridgeNoWebhooks"]
    assert "[6h]" in no_webhooks["expr"] and no_webhooks["for"] == "30m"
    for r in alerts.values():
        assert r["labels"]["team"] == "payments"
        assert 'job="bridge",cluster="eu1"' in r["expr"]


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"rules": {"spooling": {"for": "10 minutes"}}}, "/prometheusRule/rules/spooling/for"),
        ({"rules": {"spoolNearlyFull": {"ratio": 80}}}, "/prometheusRule/rules/spoolNearlyFull/ratio"),
        ({"rules": {"noWebhooks": {"windw": "1h"}}}, "/prometheusRule/rules/noWebhooks"),
        ({"selector": '{job="x"}'}, "/prometheusRule/selector"),
        ({"rules": {"parked": {"enabled": True}}}, "/prometheusRule/rules"),
    ],
)
def test_schema_refuses_bad_rule_values(chart: helm_python.Chart, values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm_python.HelmError) as excinfo:
        chart.render({"prometheusRule": {"enabled": True, **values}}, name="u21", namespace=NAMESPACE)
    assert where in str(excinfo.value), str(excinfo.value)


# --- the plain rules file ----------------------------------------------------------------------


def test_the_plain_rules_file_is_the_rendered_template() -> None:
    assert RULES_FILE.read_text() == rules_file_text(), "stale: run `make prometheus-rules`"
    plain = yaml.safe_load(RULES_FILE.read_text())
    assert_structurally_valid({"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                               "metadata": {"name": "plain"}, "spec": plain})  # fmt: skip
    alerts = {r["alert"] for r in plain["groups"][0]["rules"]}
    assert alerts == {a for names in EXPECTED_ALERTS.values() for a in names}


# --- promtool ----------------------------------------------------------------------------------


def promtool() -> str:
    local = Path(sys.executable).parent / "promtool"
    found = str(local) if local.exists() else shutil.which("promtool")
    if found is None:
        reason = "promtool is not installed: `make promtool` unpacks it from Debian's prometheus package"
        if os.environ.get("CI"):
            pytest.fail(reason + " (required under CI)")
        pytest.skip(reason)
    return found


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({}, id="defaults"),
        pytest.param({"selector": 'job=~"bridge-.*",cluster!="dev"', "interval": "1m"}, id="custom"),
    ],
)
def test_promtool_checks_the_rendered_rules(tmp_path: Path, values: dict[str, Any]) -> None:
    spec = render_rule_spec(values)
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = run_promtool("check", "rules", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 13 rules found" in result.stdout


def test_promtool_checks_the_plain_rules_file() -> None:
    result = run_promtool("check", "rules", str(RULES_FILE), cwd=RULES_FILE.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 13 rules found" in result.stdout


def test_promtool_catches_a_broken_expression(tmp_path: Path) -> None:
    """The check can fail: a rules file with a PromQL syntax error is refused."""
    broken = RULES_FILE.read_text().replace("== 0", "== == 0", 1)
    path = tmp_path / "broken.yml"
    path.write_text(broken)
    result = run_promtool("check", "rules", str(path), cwd=tmp_path)
    assert result.returncode != 0
    assert "Unit21BridgeTargetDown" in result.stdout + result.stderr or "parse" in result.stderr


J = 'job="unit21-kafka-bridge"'
INST = 'instance="10.0.0.7:8080"'
BASE = {"job": "unit21-kafka-bridge"}
POD = {**BASE, "instance": "10.0.0.7:8080"}


def alert_cases(descriptions: dict[str, str]) -> list[dict[str, Any]]:
    """promtool unit tests: input series (one sample a minute), when to evaluate, what must fire."""

    def fired(
        alert: str, severity: str, labels: dict[str, str], summary: str, description: str | None = None
    ) -> dict[str, Any]:
        return {
            "exp_labels": {"severity": severity, **labels},
            "exp_annotations": {"summary": summary, "description": description or descriptions[alert]},
        }

    def case(series: dict[str, str], checks: list[tuple[str, str, list[dict[str, Any]]]]) -> dict[str, Any]:
        return {
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in series.items()],
            "alert_rule_test": [{"eval_time": t, "alertname": a, "exp_alerts": e} for t, a, e in checks],
        }

    pod = "10.0.0.7:8080"
    return [
        # A target that stops answering: quiet for the first 5 minutes, then both alerts.
        case(
            {f"up{{{J},{INST}}}": "1 0x15"},
            [
                ("4m", "Unit21BridgeTargetDown", []),
                (
                    "7m",
                    "Unit21BridgeTargetDown",
                    [
                        fired(
                            "Unit21BridgeTargetDown",
                            "critical",
                            POD,
                            f"Prometheus cannot scrape the bridge at {pod}.",
                        )
                    ],
                ),
                (
                    "7m",
                    "Unit21BridgeAllTargetsDown",
                    [
                        fired(
                            "Unit21BridgeAllTargetsDown",
                            "critical",
                            {},
                            "No bridge target is up; webhooks are not being received.",
                        )
                    ],
                ),
            ],
        ),
        case(
            {f"up{{{J},{INST}}}": "1x15", f'up{{{J},instance="b"}}': "0x15"},
            [("10m", "Unit21BridgeAllTargetsDown", [])],  # one healthy pod is enough
        ),
        case(
            {
                f"unit21_bridge_kafka_connected{{{J},{INST}}}": "1 1 0x10",
                f'unit21_bridge_kafka_connected{{{J},instance="b"}}': "1x12",
            },
            [
                (
                    "8m",
                    "Unit21BridgeKafkaUnreachable",
                    [
                        fired(
                            "Unit21BridgeKafkaUnreachable",
                            "critical",
                            POD,
                            f"The bridge at {pod} is not connected to Kafka.",
                        )
                    ],
                )
            ],
        ),
        # The oldest record ages a minute a minute; 15 minutes is the threshold, 1m the `for`.
        case(
            {f"unit21_bridge_spool_oldest_age_seconds{{{J},{INST}}}": "0+60x30"},
            [
                ("15m", "Unit21BridgeSpoolBacklogOld", []),
                (
                    "20m",
                    "Unit21BridgeSpoolBacklogOld",
                    [
                        fired(
                            "Unit21BridgeSpoolBacklogOld",
                            "warning",
                            POD,
                            f"Acknowledged webhooks have waited more than 15 minutes for Kafka on {pod}.",
                            descriptions["Unit21BridgeSpoolBacklogOld"].replace(
                                "{{ $value | humanizeDuration }}", "20m 0s"
                            ),
                        )
                    ],
                ),
            ],
        ),
        # One webhook a second goes to the spool for 20 minutes.
        case(
            {f'unit21_bridge_spooled_total{{{J},{INST},reason="timeout"}}': "0+60x30"},
            [
                ("8m", "Unit21BridgeSpooling", []),
                (
                    "20m",
                    "Unit21BridgeSpooling",
                    [
                        fired(
                            "Unit21BridgeSpooling",
                            "warning",
                            POD,
                            f"The bridge at {pod} has been spooling webhooks for more than 10m.",
                            descriptions["Unit21BridgeSpooling"].replace("{{ $value | humanize }}", "1"),
                        )
                    ],
                ),
            ],
        ),
        case(
            {
                f"unit21_bridge_spool_bytes{{{J},{INST}}}": "850x10",
                f"unit21_bridge_spool_limit_bytes{{{J},{INST}}}": "1000x10",
                f'unit21_bridge_spool_bytes{{{J},instance="off"}}': "0x10",
                f'unit21_bridge_spool_limit_bytes{{{J},instance="off"}}': "0x10",  # spool off: no alert
            },
            [
                (
                    "8m",
                    "Unit21BridgeSpoolNearlyFull",
                    [
                        fired(
                            "Unit21BridgeSpoolNearlyFull", "critical", POD, f"The spool of {pod} is 85% full."
                        )
                    ],
                )
            ],
        ),
        case(
            {f"unit21_bridge_spool_parked_messages{{{J},{INST}}}": "0 0 2x10"},
            [
                (
                    "5m",
                    "Unit21BridgeParkedRecords",
                    [
                        fired(
                            "Unit21BridgeParkedRecords",
                            "warning",
                            POD,
                            f"2 spooled record(s) on {pod} are refused by Kafka for good.",
                        )
                    ],
                )
            ],
        ),
        # 10 % of answers are 503; 2 % is below the threshold.
        case(
            {
                f'unit21_bridge_webhook_requests_total{{{J},{INST},action="ALERT_CREATED",status="200"}}': "0+90x20",
                f'unit21_bridge_webhook_requests_total{{{J},{INST},action="none",status="503"}}': "0+10x20",
            },
            [
                (
                    "12m",
                    "Unit21BridgeHigh5xxRatio",
                    [
                        fired(
                            "Unit21BridgeHigh5xxRatio",
                            "critical",
                            BASE,
                            "10% of webhooks to unit21-kafka-bridge are answered 5xx.",
                        )
                    ],
                )
            ],
        ),
        case(
            {
                f'unit21_bridge_webhook_requests_total{{{J},{INST},action="ALERT_CREATED",status="200"}}': "0+98x20",
                f'unit21_bridge_webhook_requests_total{{{J},{INST},action="none",status="503"}}': "0+2x20",
            },
            [("12m", "Unit21BridgeHigh5xxRatio", [])],
        ),
        case(
            {
                f'unit21_bridge_webhook_requests_total{{{J},{INST},action="ALERT_CREATED",status="200"}}': "0+50x30",
                f'unit21_bridge_webhook_requests_total{{{J},{INST},action="none",status="401"}}': "0+50x30",
            },
            [
                ("9m", "Unit21BridgeHigh401Ratio", []),
                (
                    "20m",
                    "Unit21BridgeHigh401Ratio",
                    [
                        fired(
                            "Unit21BridgeHigh401Ratio",
                            "critical",
                            BASE,
                            "50% of webhooks to unit21-kafka-bridge fail signature verification.",
                        )
                    ],
                ),
            ],
        ),
        # One record too large fires at once; timeouts (spooled, retried) never do.
        case(
            {
                f'unit21_bridge_delivery_failures_total{{{J},{INST},reason="too_large"}}': "0 0 1x10",
                f'unit21_bridge_delivery_failures_total{{{J},{INST},reason="timeout"}}': "0+10x12",
            },
            [
                (
                    "3m",
                    "Unit21BridgePermanentDeliveryFailures",
                    [
                        fired(
                            "Unit21BridgePermanentDeliveryFailures",
                            "critical",
                            {**BASE, "reason": "too_large"},
                            "Kafka refuses records for good (too_large).",
                        )
                    ],
                )
            ],
        ),
        case(
            {f"unit21_bridge_dead_lettered_total{{{J},{INST}}}": "0x20 3x10"},
            [
                ("19m", "Unit21BridgeDeadLetters", []),
                (
                    "25m",
                    "Unit21BridgeDeadLetters",
                    [
                        fired(
                            "Unit21BridgeDeadLetters",
                            "warning",
                            BASE,
                            "3 webhook(s) went to the DLQ topic in the last 15m.",
                        )
                    ],
                ),
                ("40m", "Unit21BridgeDeadLetters", []),
            ],
        ),
        # Every request-path ack lands between 1 s and 2 s: p99 = 1.99 s. The drainer's slow
        # retries (path="drain") alone never fire it.
        case(
            {
                f'unit21_bridge_kafka_ack_latency_seconds_bucket{{{J},{INST},path="request",topic="t",le="0.5"}}': "0x30",
                f'unit21_bridge_kafka_ack_latency_seconds_bucket{{{J},{INST},path="request",topic="t",le="1.0"}}': "0x30",
                f'unit21_bridge_kafka_ack_latency_seconds_bucket{{{J},{INST},path="request",topic="t",le="2.0"}}': "0+10x30",
                f'unit21_bridge_kafka_ack_latency_seconds_bucket{{{J},{INST},path="request",topic="t",le="+Inf"}}': "0+10x30",
            },
            [
                (
                    "20m",
                    "Unit21BridgeSlowKafkaAcks",
                    [
                        fired(
                            "Unit21BridgeSlowKafkaAcks",
                            "warning",
                            BASE,
                            "Kafka acknowledges webhooks slowly (p99 1.99s).",
                        )
                    ],
                )
            ],
        ),
        case(
            {
                f'unit21_bridge_kafka_ack_latency_seconds_bucket{{{J},{INST},path="drain",topic="t",le="1.0"}}': "0x30",
                f'unit21_bridge_kafka_ack_latency_seconds_bucket{{{J},{INST},path="drain",topic="t",le="+Inf"}}': "0+10x30",
                f'unit21_bridge_kafka_ack_latency_seconds_bucket{{{J},{INST},path="request",topic="t",le="1.0"}}': "0+10x30",
                f'unit21_bridge_kafka_ack_latency_seconds_bucket{{{J},{INST},path="request",topic="t",le="+Inf"}}': "0+10x30",
            },
            [("20m", "Unit21BridgeSlowKafkaAcks", [])],
        ),
        # Up for an hour, nothing accepted (only 401s): fires; with accepted traffic: quiet.
        case(
            {
                f"up{{{J},{INST}}}": "1x60",
                f'unit21_bridge_webhook_requests_total{{{J},{INST},action="none",status="401"}}': "0+5x60",
            },
            [
                (
                    "30m",
                    "Unit21BridgeNoWebhooks",
                    [
                        fired(
                            "Unit21BridgeNoWebhooks",
                            "warning",
                            BASE,
                            "No webhook accepted by unit21-kafka-bridge in 3h.",
                        )
                    ],
                )
            ],
        ),
        case(
            {
                f"up{{{J},{INST}}}": "1x60",
                f'unit21_bridge_webhook_requests_total{{{J},{INST},action="ALERT_CREATED",status="202"}}': "0 1x60",
            },
            [("30m", "Unit21BridgeNoWebhooks", [])],
        ),
    ]


def test_promtool_unit_tests_every_alert_fires_when_it_should(tmp_path: Path) -> None:
    plain = yaml.safe_load(RULES_FILE.read_text())
    descriptions = {r["alert"]: r["annotations"]["description"] for r in plain["groups"][0]["rules"]}
    cases = alert_cases(descriptions)
    tested = {check["alertname"] for c in cases for check in c["alert_rule_test"] if check["exp_alerts"]}
    assert tested == set(descriptions), f"alerts never shown firing: {set(descriptions) - tested}"
    shutil.copy(RULES_FILE, tmp_path / RULES_FILE.name)
    (tmp_path / "tests.yml").write_text(
        yaml.safe_dump({"rule_files": [RULES_FILE.name], "evaluation_interval": "1m", "tests": cases})
    )
    result = run_promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_chart_readme_documents_every_alert_and_its_defaults() -> None:
    from .conftest import CHART_DIR

    readme = (CHART_DIR / "README.md").read_text()
    rules = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["prometheusRule"]["rules"]
    rows = {m[1]: m[0] for m in re.finditer(r"^\| (\w+) \| `Unit21Bridge.*$", readme, flags=re.MULTILINE)}
    assert set(rules) == set(EXPECTED_ALERTS)
    for key, settings in rules.items():
        row = rows.get(key)
        assert row, f"prometheusRule.rules.{key} has no row in the README's alert table"
        for alert in EXPECTED_ALERTS[key]:
            assert f"`{alert}`" in row
        for setting, value in settings.items():
            if setting != "enabled":
                expected = f"`{value}`" if setting in ("for", "severity") else f"`{setting}: {value}`"
                assert expected in row, f"{key}.{setting}={value} not in: {row}"
