"""The release path: the workflow that publishes the image the chart deploys, and the linters
`make lint` runs on it and on the Dockerfile."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "release.yml"
VALUES = REPO / "helm" / "unit21-kafka-bridge" / "values.yaml"
BIN = Path(sys.executable).parent


def workflow() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the key `on` as True.
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def steps(job: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = workflow()["jobs"][job]["steps"]
    return found


def uses(job: str, action: str) -> list[dict[str, Any]]:
    return [s for s in steps(job) if s.get("uses", "").startswith(action + "@")]


def test_runs_on_version_tags_only() -> None:
    on = workflow()["on"]
    assert set(on) == {"push"}
    assert on["push"] == {"tags": ["v[0-9]+.[0-9]+.[0-9]+"]}
    assert workflow()["permissions"] == {"contents": "read"}, "write access only where a job needs it"


def test_every_action_is_pinned_by_commit() -> None:
    for job in workflow()["jobs"]:
        for step in steps(job):
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]


def test_both_platforms_are_built_and_scanned_before_the_push() -> None:
    jobs = workflow()["jobs"]
    assert jobs["scan"]["strategy"]["matrix"]["platform"] == ["linux/amd64", "linux/arm64"]
    [build] = uses("scan", "docker/build-push-action")
    assert build["with"]["load"] is True and "push" not in build["with"]
    [scan] = uses("scan", "aquasecurity/trivy-action")
    assert scan["with"]["image-ref"] == build["with"]["tags"]
    assert scan["with"]["severity"] == "CRITICAL" and scan["with"]["exit-code"] == "1"
    assert uses("scan", "docker/setup-qemu-action") and uses("scan", "docker/setup-buildx-action")
    assert set(jobs["publish"]["needs"]) == {"consistency", "test", "scan"}
    [push] = uses("publish", "docker/build-push-action")
    assert push["with"]["platforms"] == "linux/amd64,linux/arm64" and push["with"]["push"] is True


def test_publishes_to_the_chart_default_and_records_the_digest() -> None:
    consistency = "\n".join(s.get("run", "") for s in steps("consistency"))
    assert 'image="ghcr.io/${owner}/unit21-kafka-bridge"' in consistency
    # The workflow refuses to publish anywhere but the chart's default repository.
    assert ".image.registry" in consistency and ".image.repository" in consistency
    values = yaml.safe_load(VALUES.read_text())["image"]
    assert values["registry"] == "ghcr.io"
    owner, name = values["repository"].split("/")
    assert name == "unit21-kafka-bridge" and owner == owner.lower()
    publish = workflow()["jobs"]["publish"]
    assert publish["permissions"]["packages"] == "write"
    assert publish["outputs"]["digest"] == "${{ steps.build.outputs.digest }}"
    [meta] = uses("publish", "docker/metadata-action")
    assert meta["with"]["images"] == "${{ needs.consistency.outputs.image }}"
    [attest] = uses("publish", "actions/attest-build-provenance")
    assert attest["with"]["subject-digest"] == "${{ steps.build.outputs.digest }}"
    record = "\n".join(s.get("run", "") for s in steps("publish"))
    assert "GITHUB_STEP_SUMMARY" in record and "gh release create" in record
    assert "image.digest=${DIGEST}" in record


def test_make_lint_runs_hadolint_and_actionlint() -> None:
    dry_run = subprocess.run(
        ["make", "-n", "lint"], cwd=REPO, capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert re.search(r"hadolint Dockerfile", dry_run)
    assert re.search(r"actionlint -shellcheck \S+ \.github/workflows/\*\.yml", dry_run)


def tool(name: str) -> str:
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: `pip install -e '.[lint]'` provides it")
    return found


def test_hadolint_passes_the_dockerfile_and_catches_a_bad_one(tmp_path: Path) -> None:
    ok = subprocess.run(
        [tool("hadolint"), str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    failed = subprocess.run([tool("hadolint"), str(bad)], capture_output=True, text=True, timeout=60)
    assert failed.returncode != 0
    assert "DL3007" in failed.stdout  # latest tag


def test_actionlint_passes_the_workflow_and_catches_a_bad_one(tmp_path: Path) -> None:
    args = [tool("actionlint"), "-shellcheck", tool("shellcheck")]
    ok = subprocess.run([*args, str(WORKFLOW)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n"
        "    steps:\n      - run: echo ${{ github.event.head_commit.message }}\n"
        "      - run: echo $undefined_var_without_quotes\n"
    )
    failed = subprocess.run([*args, str(bad)], capture_output=True, text=True, timeout=60)
    assert failed.returncode != 0
    assert "potentially untrusted" in failed.stdout  # script injection
    assert "SC2086" in failed.stdout  # shellcheck ran on the run: script
