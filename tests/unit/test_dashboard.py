"""The Grafana dashboard only queries metrics the bridge really exports."""

from __future__ import annotations

import json
import re

from bridge.metrics import Metrics
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
