"""The chart's README lists every value, and the chart tracks the app's version."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import yaml

from .conftest import CHART_DIR, REPO_ROOT

# Maps whose keys are user data (labels, properties), not chart parameters.
FREE_FORM = {
    "commonLabels",
    "podAnnotations",
    "podLabels",
    "nodeSelector",
    "affinity",
    "updateStrategy",
    "kafka.extraProperties",
    "kafka.secretProperties",
    "otel.resourceAttributes",
    "spool.annotations",
    "spool.persistentVolumeClaimRetentionPolicy",
    "serviceAccount.annotations",
    "service.annotations",
    "service.labels",
    "ingress.annotations",
    "httpRoute.annotations",
    "httpRoute.labels",
    "serviceMonitor.labels",
    "grafanaDashboard.labels",
    "prometheusRule.labels",
    "prometheusRule.annotations",
    "prometheusRule.additionalRuleLabels",
    # Each alert's settings are in the README's "Alert rules" table (tests/helm/test_prometheus_rule.py).
    "prometheusRule.rules",
    "autoscaling.behavior",
    "resources",
    "tests.resources",
    "podSecurityContext",
    "containerSecurityContext",
}


def value_paths(values: dict[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in FREE_FORM:
            paths.extend(value_paths(value, f"{path}."))
        else:
            paths.append(path)
    return paths


def test_readme_lists_every_value() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    readme = (CHART_DIR / "README.md").read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE))
    missing = [p for p in value_paths(values) if p not in documented]
    assert not missing, f"values missing from the README's parameter table: {missing}"
    unknown = [p for p in documented if p not in value_paths(values)]
    assert not unknown, f"README documents values that do not exist: {unknown}"


def test_readme_names_the_environment_variable_of_every_setting() -> None:
    readme = (CHART_DIR / "README.md").read_text()
    from .test_chart_render import EXPECTED_ENV, settings_env_names

    for name in sorted(settings_env_names() | EXPECTED_ENV):
        assert f"`{name}`" in readme, f"{name} is not mentioned in the chart README"


def test_app_version_matches_the_package() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]
    assert chart["apiVersion"] == "v2"
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])
