"""prometheus/unit21-kafka-bridge.rules.yml: the chart's PrometheusRule rendered for a Prometheus
without the operator. `make prometheus-rules` writes it; tests/helm/test_prometheus_rule.py fails
while it differs from what the template renders."""

from __future__ import annotations

from pathlib import Path

import helm_python
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "helm" / "unit21-kafka-bridge"
RULES_FILE = REPO_ROOT / "prometheus" / "unit21-kafka-bridge.rules.yml"
# The job name a hand-written scrape config would give the bridge; users change it in one place.
PLAIN_SELECTOR = 'job="unit21-kafka-bridge"'
HEADER = f"""\
# Alert rules for unit21-kafka-bridge, for Prometheus' rule_files (no operator needed).
# Generated from helm/unit21-kafka-bridge/templates/prometheusrule.yaml with its default
# thresholds by `make prometheus-rules`; do not edit by hand (a test compares the two).
# Every rule selects {PLAIN_SELECTOR}: if your scrape job is named differently,
# replace that matcher everywhere (e.g. sed 's/job="unit21-kafka-bridge"/job="bridge"/').
# Validate with: promtool check rules {RULES_FILE.relative_to(REPO_ROOT)}
"""


def render_rule_spec(values: dict[str, object] | None = None) -> dict[str, object]:
    chart = helm_python.Chart.load(str(CHART_DIR))
    merged = {"prometheusRule": {"enabled": True, "selector": PLAIN_SELECTOR, **(values or {})}}
    rendered = chart.render(merged, name="unit21-kafka-bridge", namespace="default")
    rule = yaml.safe_load(rendered["unit21-kafka-bridge/templates/prometheusrule.yaml"])
    spec: dict[str, object] = rule["spec"]
    return spec


def rules_file_text() -> str:
    body = yaml.safe_dump(render_rule_spec(), sort_keys=False, width=100, allow_unicode=True)
    return HEADER + body


if __name__ == "__main__":
    RULES_FILE.write_text(rules_file_text())
    print(f"wrote {RULES_FILE.relative_to(REPO_ROOT)}")
