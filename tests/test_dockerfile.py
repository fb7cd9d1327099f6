"""The Dockerfile's invariants, checked by parsing it (no Docker engine here to build it)."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = DOCKERFILE.with_name(".dockerignore")
LOCK = REPO / "requirements.lock"
BUILD_LOCK = REPO / "requirements-build.lock"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


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


def test_multi_stage_with_a_base_pinned_by_digest() -> None:
    froms = [resolve(rest.split()[0]) for word, rest in instructions() if word == "FROM"]
    assert len(froms) >= 2, "builder and runtime stages"
    for image in froms:
        # A tag alone moves whenever Docker Hub rebuilds it; the digest is what makes builds repeatable.
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", image), image
    assert len(set(froms)) == 1, f"builder and runtime must start from the same base: {froms}"


def stage_args(stage: list[tuple[str, str]]) -> dict[str, str]:
    pairs = [rest.partition("=") for word, rest in stage if word == "ARG" and "=" in rest]
    return {key: value for key, _, value in pairs}


def test_final_stage_runs_as_the_non_root_uid_of_its_build_arguments() -> None:
    final = stages()[-1]
    arguments = stage_args(final)
    users = [rest for word, rest in final if word == "USER"]
    assert users, "the final stage must set USER"
    # USER, the account and the spool's owner all come from one pair of arguments, so a
    # --build-arg APP_UID=... cannot leave USER behind.
    assert users[-1] == "${APP_UID}:${APP_GID}"
    runs = " ".join(rest for word, rest in final if word == "RUN")
    assert "--uid ${APP_UID}" in runs and "--gid ${APP_GID}" in runs
    assert "chown -R ${APP_UID}:${APP_GID} /var/lib/unit21-bridge" in runs
    uid, gid = arguments["APP_UID"], arguments["APP_GID"]
    assert uid.isdigit() and gid.isdigit(), "a numeric UID lets Kubernetes verify runAsNonRoot"
    assert int(uid) == 10001 and int(uid) > 0
    # The chart's default security context must name the image's own account.
    values = yaml.safe_load((REPO / "helm" / "unit21-kafka-bridge" / "values.yaml").read_text())
    for context in ("podSecurityContext", "containerSecurityContext"):
        assert values[context]["runAsUser"] == int(uid)
        assert values[context]["runAsGroup"] == int(gid)


def test_oci_labels() -> None:
    final = stages()[-1]
    arguments = stage_args(final)
    labels = dict(
        (key, value.strip('"'))
        for word, rest in final
        if word == "LABEL"
        for key, value in re.findall(r'(\S+)=("[^"]*"|\S+)', rest)
    )
    for key in ("title", "description", "licenses", "source", "version", "revision"):
        assert f"org.opencontainers.image.{key}" in labels, key
    assert labels["org.opencontainers.image.licenses"] == PYPROJECT["project"]["license"]
    # version and revision come from build arguments the release workflow sets.
    assert labels["org.opencontainers.image.version"] == "${VERSION}" and "VERSION" in arguments
    assert labels["org.opencontainers.image.revision"] == "${REVISION}" and "REVISION" in arguments
    source = labels["org.opencontainers.image.source"]
    assert source == "${SOURCE}"
    assert re.fullmatch(r"https://github\.com/[\w.-]+/unit21-kafka-bridge", arguments["SOURCE"])


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


# --- dependencies: hash-locked, generated from pyproject.toml ---------------------------------


def locked(path: Path) -> dict[str, tuple[Version, list[str], str]]:
    """name -> (pinned version, hashes, `# via` annotation) of a `uv pip compile` lock file."""
    out: dict[str, tuple[Version, list[str], str]] = {}
    entries = re.split(r"\n(?=[a-z0-9])", path.read_text(), flags=re.IGNORECASE)
    for entry in entries:
        match = re.match(r"([A-Za-z0-9._-]+)==([^\s;\\]+)", entry)
        if not match:
            continue
        via = " ".join(
            line.strip(" #") for line in entry.splitlines() if line.strip().startswith("#")
        ).removeprefix("via ")
        out[canonicalize_name(match[1])] = (
            Version(match[2]),
            re.findall(r"--hash=sha256:([0-9a-f]{64})", entry),
            via,
        )
    return out


def runtime_requirements() -> list[Requirement]:
    project = PYPROJECT["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["tracing"]]


def test_the_builder_installs_only_hash_locked_wheels() -> None:
    builder = stages()[0]
    runs = [rest for word, rest in builder if word == "RUN"]
    copied = " ".join(rest for word, rest in builder if word == "COPY")
    assert "requirements.lock" in copied and "requirements-build.lock" in copied
    installs = [part for run in runs for part in run.split("&&") if "pip install" in part]
    for lock in ("requirements.lock", "requirements-build.lock"):
        [install] = [part for part in installs if f"-r {lock}" in part]
        assert "--require-hashes" in install and "--only-binary=:all:" in install, install
    others = [part for part in installs if " -r " not in part]
    # Besides the locks only the wheel built from this source tree, from the local directory.
    assert others and all("--no-index" in p and "--no-deps" in p for p in others), others
    assert "--no-build-isolation" in " ".join(runs), "the build backend comes from the build lock"
    assert "pip check" in " ".join(runs)
    assert not [run for run in runs if "apt-get" in run], "wheels only: no compiler in the builder"


def test_the_lock_is_not_ignored_by_the_build_context() -> None:
    ignored = [line for line in DOCKERIGNORE.read_text().splitlines() if line and not line.startswith("#")]
    for name in (LOCK.name, BUILD_LOCK.name):
        assert not [pattern for pattern in ignored if fnmatch.fnmatch(name, pattern)], name


def test_every_locked_package_carries_its_hashes() -> None:
    for path in (LOCK, BUILD_LOCK):
        pins = locked(path)
        assert pins, path
        for name, (_, hashes, _) in pins.items():
            assert hashes, f"{path.name}: {name} has no --hash"
        assert "make lock" in path.read_text().split("\n", 3)[1], "regenerate with `make lock`"


def test_the_lock_matches_pyproject() -> None:
    """Stale lock = a runtime or tracing dependency added, removed or re-bounded in pyproject.toml
    without `make lock` (the lock names the direct dependencies `via unit21-kafka-bridge`)."""
    pins = locked(LOCK)
    wanted = {canonicalize_name(r.name): r for r in runtime_requirements()}
    direct = {name for name, (_, _, via) in pins.items() if "unit21-kafka-bridge (pyproject.toml)" in via}
    assert direct == set(wanted), f"lock is stale (run `make lock`): {direct ^ set(wanted)}"
    for name, requirement in wanted.items():
        version = pins[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{name}=={version} does not satisfy {requirement} (run `make lock`)"
        )
    # Extras resolve to their own packages: uvicorn[standard] brings uvloop and httptools.
    assert {"uvloop", "httptools"} <= set(pins)
    build = locked(BUILD_LOCK)
    for spec in PYPROJECT["build-system"]["requires"]:
        requirement = Requirement(spec)
        pinned = build[canonicalize_name(requirement.name)][0]
        assert requirement.specifier.contains(pinned), f"{requirement} vs {pinned} (run `make lock`)"
