"""The Dockerfile's invariants, checked by parsing it (no Docker engine here to build it)."""

from __future__ import annotations

import json
import re
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[1] / "Dockerfile"
DOCKERIGNORE = DOCKERFILE.with_name(".dockerignore")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    text = DOCKERFILE.read_text()
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        logical.append(current)
        current = ""
    out = []
    for line in logical:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instr in instructions():
        if instr[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instr)
    return result


def args() -> dict[str, str]:
    out = {}
    for word, rest in instructions():
        if word == "ARG" and "=" in rest:
            key, _, value = rest.partition("=")
            out[key] = value
    return out


def resolve(ref: str) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: args()[m.group(1)], ref)


def test_multi_stage_with_a_pinned_slim_base() -> None:
    froms = [resolve(rest.split()[0]) for word, rest in instructions() if word == "FROM"]
    assert len(froms) >= 2, "builder and runtime stages"
    for image in froms:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image


def test_final_stage_runs_as_a_fixed_non_root_uid() -> None:
    final = stages()[-1]
    users = [rest for word, rest in final if word == "USER"]
    assert users, "the final stage must set USER"
    user = users[-1].split(":")[0]
    assert user.isdigit(), "a numeric UID lets Kubernetes verify runAsNonRoot"
    assert int(user) == 10001


def test_exec_form_entrypoint_and_cmd() -> None:
    final = stages()[-1]
    entrypoint = [rest for word, rest in final if word == "ENTRYPOINT"][-1]
    cmd = [rest for word, rest in final if word == "CMD"][-1]
    assert json.loads(entrypoint) == ["unit21-bridge"], "exec form, so SIGTERM reaches the bridge"
    assert json.loads(cmd) == ["serve"]


def test_no_healthcheck_and_no_build_tools_in_the_final_stage() -> None:
    final = stages()[-1]
    assert not [w for w, _ in final if w == "HEALTHCHECK"], "Kubernetes probes the pod instead"
    runs = " ".join(rest for word, rest in final if word == "RUN")
    for tool in ("build-essential", "gcc", "apt-get install", "pip install"):
        assert tool not in runs, f"{tool} in the final stage"
    copies = [rest for word, rest in final if word == "COPY"]
    assert copies and all(c.startswith("--from=builder") for c in copies), "only the built venv is copied"


def test_environment_and_spool_directory() -> None:
    final = stages()[-1]
    env = " ".join(rest for word, rest in final if word == "ENV")
    assert "PYTHONUNBUFFERED=1" in env
    assert "BRIDGE_SPOOL_DIR=/var/lib/unit21-bridge/spool" in env
    runs = " ".join(rest for word, rest in final if word == "RUN")
    assert "mkdir -p /var/lib/unit21-bridge/spool" in runs
    assert "chown" in runs
    assert any(word == "EXPOSE" and rest == "8080" for word, rest in final)


def test_builder_installs_the_wheel() -> None:
    builder = stages()[0]
    runs = " ".join(rest for word, rest in builder if word == "RUN")
    assert "pip wheel" in runs
    copied = " ".join(rest for word, rest in builder if word == "COPY")
    for path in ("pyproject.toml", "bridge", "schemas"):
        assert path in copied


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = DOCKERIGNORE.read_text().split()
    for entry in (".git", ".venv", "tests", "helm"):
        assert entry in ignored
