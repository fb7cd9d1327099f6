"""The Grafana dashboard only queries metrics the bridge really exports."""

from __future__ import annotations

import json
import re

from prometheus_client.metrics import MetricWrapperBase

from bridge.ops.metrics import Metrics
from tests.support import REPO

DASHBOARD = REPO / "helm" / "unit21-kafka-bridge" / "dashboards" / "unit21-kafka-bridge.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def exported_sample_names() -> set[str]:
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def test_every_dashboard_query_uses_an_exported_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"unit21_bridge_[a-z0-9_]+", expr)}
    assert used, "no queries found"
    assert used - exported_sample_names() == set()
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for needed in ("throughput", "error ratio", "ack latency p99", "spool", "dlq"):
        assert needed in titles


# Labels Prometheus adds to every series it scrapes (the chart's ServiceMonitor), and `le`.
TARGET_LABELS = {"namespace", "job", "pod", "instance", "service", "le"}


def metric_labels() -> dict[str, set[str]]:
    """Each exported sample name with the label names the bridge gives it."""
    labels: dict[str, set[str]] = {}
    for metric in vars(Metrics()).values():
        if isinstance(metric, MetricWrapperBase):
            [family] = list(metric.describe())
            for suffix in SUFFIXES[family.type]:
                labels[family.name + suffix] = set(metric._labelnames)
    return labels


def test_dashboard_queries_group_and_filter_by_labels_the_metrics_have() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    known = metric_labels()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            names = set(re.findall(r"unit21_bridge_[a-z0-9_]+", expr))
            have = set().union(*(known[name] for name in names)) | TARGET_LABELS
            grouped = {
                label.strip() for group in re.findall(r"by \(([^)]*)\)", expr) for label in group.split(",")
            }
            filtered = set(re.findall(r"([a-z_]+)=~?\"", expr))
            assert grouped | filtered <= have, (panel["title"], expr)
            if "kafka_ack_latency_seconds_bucket" in expr:
                # The drainer's retries during an outage would swamp the webhooks' own latency.
                assert 'path="request"' in expr, expr
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for needed in ("refusals by reason", "kafka connected", "spool bytes", "process memory"):
        assert needed in titles
