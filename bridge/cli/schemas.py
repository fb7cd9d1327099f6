"""`unit21-bridge schemas list | export | build | register | check | docs`.

Each command is a function of (settings, schemas, registry client, output) so tests can hand
it an in-process registry; `add_parser` wires them into the CLI.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bridge.cli.exits import ExitCode, fail
from bridge.contract.compatibility import check_history, check_pair
from bridge.contract.conventions import expanded_json, generated_topic_files, subject_name
from bridge.contract.schemas import SchemaSet, default_schema_dir, source_dir
from bridge.settings import Settings

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient


def subjects(settings: Settings, schemas: SchemaSet) -> dict[str, str]:
    """topic suffix -> registry subject, by BRIDGE_SUBJECT_NAME_STRATEGY."""
    return {
        suffix: subject_name(settings.subject_name_strategy, settings.topic(suffix), ts.full_name)
        for suffix, ts in schemas.by_suffix.items()
    }


def list_schemas(settings: Settings, schemas: SchemaSet, out: TextIO) -> int:
    rows = [("TOPIC", "SUBJECT", "RECORD", "FINGERPRINT")]
    names = subjects(settings, schemas)
    rows += [
        (settings.topic(s), names[s], ts.full_name, ts.fingerprint_hex) for s, ts in schemas.by_suffix.items()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(row)), file=out)
    return ExitCode.OK


def export_schemas(schemas: SchemaSet, directory: Path, out: TextIO) -> int:
    """One self-contained `.avsc` per topic suffix: usable by Spark from_avro and Java's Schema.Parser."""
    directory.mkdir(parents=True, exist_ok=True)
    for suffix, ts in schemas.by_suffix.items():
        path = directory / f"{suffix}.avsc"
        path.write_text(expanded_json(ts, indent=2), "utf-8")
        print(f"{path}\t{ts.full_name}\t{ts.fingerprint_hex}", file=out)
    return ExitCode.OK


def build_schemas(sources: Path, output: Path, check: bool, out: TextIO) -> int:
    """Write the self-contained `<suffix>.avsc` files from the sources; with `check`, only compare."""
    stale = []
    for name, text in generated_topic_files(sources).items():
        path = output / name
        current = path.read_text("utf-8") if path.is_file() else None
        if current == text:
            continue
        stale.append(path)
        if not check:
            path.write_text(text, "utf-8")
            print(f"wrote {path}", file=out)
    if check:
        for path in stale:
            print(f"{path} is out of date with {sources}: run `make schemas`", file=out)
        if not stale:
            print(f"{output}: every topic file is up to date with {sources}", file=out)
        return ExitCode.FAILED if stale else ExitCode.OK
    if not stale:
        print(f"{output}: every topic file was already up to date", file=out)
    return ExitCode.OK


def _compatibility_level(client: SchemaRegistryClient, subject: str) -> str:
    """The level the registry will enforce: the subject's own, else the global one (shown, never changed)."""
    for name, suffix in ((subject, ""), (None, " (global)")):
        try:
            config = client.get_config(name)
        except Exception:  # 404 when the subject has no level of its own
            continue
        level = None if config is None else (config.compatibility_level or config.compatibility)
        if level is not None:
            return f"{getattr(level, 'value', level)}{suffix}"
    return "unknown"


def register_schemas(
    settings: Settings, schemas: SchemaSet, client: SchemaRegistryClient, out: TextIO, err: TextIO
) -> int:
    """Register every subject. Idempotent (the same schema keeps its id and version); the registry
    enforces its own compatibility level, and a rejection is reported with the subject."""
    from bridge.contract.registry import describe_error, registry_schema

    failures = 0
    for suffix, subject in subjects(settings, schemas).items():
        level = _compatibility_level(client, subject)
        try:
            registered = client.register_schema_full_response(subject, registry_schema(schemas[suffix]))
        except Exception as exc:
            print(f"{subject}\tREJECTED\t{describe_error(exc)} (compatibility level {level})", file=err)
            failures += 1
            continue
        print(
            f"{subject}\tid={registered.schema_id}\tversion={registered.version}\tcompatibility={level}",
            file=out,
        )
    return ExitCode.FAILED if failures else ExitCode.OK


def check_schemas(
    settings: Settings,
    schemas: SchemaSet,
    client: SchemaRegistryClient | None,
    out: TextIO,
    history_dir: Path | None = None,
) -> int:
    """FULL_TRANSITIVE against schemas/history, and against every version of each registry subject."""
    problems = check_history(schemas, history_dir)
    print(f"history: {len(schemas.by_suffix)} topics checked, {len(problems)} incompatibilities", file=out)
    if client is not None:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        for suffix, subject in subjects(settings, schemas).items():
            try:
                versions = client.get_versions(subject)
            except SchemaRegistryError as exc:
                if exc.http_status_code == 404:
                    print(f"{subject}: not registered (nothing to be compatible with)", file=out)
                    continue
                raise
            current = expanded_json(schemas[suffix])
            found = []
            for version in versions:
                registered = client.get_version(subject, version)
                old = registered.schema.schema_str if registered.schema is not None else None
                if old is None:
                    continue
                found += check_pair(current, old, subject=subject, old_label=f"registry version {version}")
            print(f"{subject}: {len(versions)} versions checked, {len(found)} incompatibilities", file=out)
            problems += found
    for problem in problems:
        print(f"INCOMPATIBLE {problem}", file=out)
    return ExitCode.FAILED if problems else ExitCode.OK


def render_docs(schemas: SchemaSet, output: Path, check: bool, out: TextIO) -> int:
    from bridge.contract.schema_reference import render

    text = render(schemas)
    if check:
        current = output.read_text("utf-8") if output.is_file() else ""
        if current != text:
            print(f"{output} is out of date: run `make schemas`", file=out)
            return ExitCode.FAILED
        print(f"{output} is up to date", file=out)
        return ExitCode.OK
    output.write_text(text, "utf-8")
    print(f"wrote {output}", file=out)
    return ExitCode.OK


# -- CLI wiring ---------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    if getattr(args, "registry_url", None):
        overrides["schema_registry_url"] = args.registry_url
    if getattr(args, "topic_prefix", None) is not None:
        overrides["topic_prefix"] = args.topic_prefix
    return Settings.from_env(None, **overrides)


def _client(settings: Settings) -> SchemaRegistryClient:
    from bridge.contract.registry import new_registry_client

    return new_registry_client(settings)


def _cmd(
    func: Callable[[argparse.Namespace, Settings, SchemaSet], int],
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        return func(args, _settings(args), SchemaSet.load())

    return run


def _list(args: argparse.Namespace, settings: Settings, schemas: SchemaSet) -> int:
    return list_schemas(settings, schemas, sys.stdout)


def _export(args: argparse.Namespace, settings: Settings, schemas: SchemaSet) -> int:
    return export_schemas(schemas, Path(args.directory), sys.stdout)


def _build(args: argparse.Namespace) -> int:
    # No SchemaSet.load() here: the generated files may be stale or missing, the sources are the input.
    output = Path(args.output) if args.output else default_schema_dir()
    sources = Path(args.source) if args.source else source_dir(output)
    return build_schemas(sources, output, args.check, sys.stdout)


def _register(args: argparse.Namespace, settings: Settings, schemas: SchemaSet) -> int:
    if not settings.schema_registry_url:
        return fail("schemas register", "set SCHEMA_REGISTRY_URL or pass --registry-url", ExitCode.USAGE)
    return register_schemas(settings, schemas, _client(settings), sys.stdout, sys.stderr)


def _check(args: argparse.Namespace, settings: Settings, schemas: SchemaSet) -> int:
    client = _client(settings) if settings.schema_registry_url else None
    return check_schemas(settings, schemas, client, sys.stdout)


def _docs(args: argparse.Namespace, settings: Settings, schemas: SchemaSet) -> int:
    return render_docs(schemas, Path(args.output), args.check, sys.stdout)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    schemas = sub.add_parser(
        "schemas",
        help="list, export, register and check the topics' Avro schemas",
        formatter_class=_FORMATTER,
        description="The data contract: one Avro schema per topic (schemas/*.avsc), released versions in "
        "schemas/history/<topic>/v<N>.avsc. Registry commands use SCHEMA_REGISTRY_URL, "
        "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO, SCHEMA_REGISTRY_SSL_CA_LOCATION and "
        "BRIDGE_SUBJECT_NAME_STRATEGY.",
    )
    actions = schemas.add_subparsers(dest="schemas_command", required=True, metavar="ACTION")
    for add in (_add_list, _add_export, _add_build, _add_register, _add_check, _add_docs):
        add(actions)


_Actions = argparse._SubParsersAction  # type alias for the `schemas` subcommands
_FORMATTER = argparse.RawDescriptionHelpFormatter


def _registry_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry-url", help="default: SCHEMA_REGISTRY_URL")
    parser.add_argument("--topic-prefix", help="default: BRIDGE_TOPIC_PREFIX")


def _add_list(actions: _Actions[argparse.ArgumentParser]) -> None:
    listing = actions.add_parser(
        "list",
        help="topic, subject, record name and fingerprint of every schema",
        formatter_class=_FORMATTER,
        epilog="example:\n  unit21-bridge schemas list\n"
        "  unit21-bridge schemas list --topic-prefix prod.unit21.",
    )
    _registry_options(listing)
    listing.set_defaults(func=_cmd(_list))


def _add_export(actions: _Actions[argparse.ArgumentParser]) -> None:
    export = actions.add_parser(
        "export",
        help="write one self-contained .avsc per topic (for Spark from_avro, Java, the registry)",
        formatter_class=_FORMATTER,
        epilog="example (the same files as the repository's schemas/<topic>.avsc):\n"
        "  unit21-bridge schemas export ./unit21-schemas",
    )
    export.add_argument("directory", metavar="DIR")
    export.set_defaults(func=_cmd(_export))


def _add_build(actions: _Actions[argparse.ArgumentParser]) -> None:
    build = actions.add_parser(
        "build",
        help="generate the self-contained schemas/<topic>.avsc files from schemas/src/",
        formatter_class=_FORMATTER,
        description="Each topic source in schemas/src/ names the shared types "
        "(schemas/src/<full name>.avsc); "
        "the topic files the bridge loads and consumers open define them inline. `make schemas` runs this "
        "and `schemas docs`.",
        epilog="example:\n  unit21-bridge schemas build\n  unit21-bridge schemas build --check",
    )
    build.add_argument("--source", help="default: the src/ folder of the output folder")
    build.add_argument("--output", help="default: the schemas folder the bridge loads")
    build.add_argument("--check", action="store_true", help="exit 1 if a generated file is out of date")
    build.set_defaults(func=_build)


def _add_register(actions: _Actions[argparse.ArgumentParser]) -> None:
    register = actions.add_parser(
        "register",
        help="register every subject in the Schema Registry (idempotent)",
        formatter_class=_FORMATTER,
        description="Registers the self-contained schema of each topic under its subject. Registering an "
        "unchanged schema returns its existing id. The registry's compatibility level is left as it is and "
        "enforced by the registry: a rejected subject is printed and the exit status is 1.",
        epilog="example:\n  SCHEMA_REGISTRY_URL=https://registry:8081 unit21-bridge schemas register",
    )
    _registry_options(register)
    register.set_defaults(func=_cmd(_register))


def _add_check(actions: _Actions[argparse.ArgumentParser]) -> None:
    check = actions.add_parser(
        "check",
        help="FULL_TRANSITIVE check against schemas/history and, with a registry, every registered version",
        formatter_class=_FORMATTER,
        description="Exit status 1 when any schema is incompatible; each failure names the field and "
        "the rule.",
        epilog="example:\n  unit21-bridge schemas check\n"
        "  SCHEMA_REGISTRY_URL=https://registry:8081 unit21-bridge schemas check",
    )
    _registry_options(check)
    check.set_defaults(func=_cmd(_check))


def _add_docs(actions: _Actions[argparse.ArgumentParser]) -> None:
    docs = actions.add_parser(
        "docs",
        help="generate the schema reference (schemas/README.md)",
        formatter_class=_FORMATTER,
        epilog="example:\n  unit21-bridge schemas docs\n  unit21-bridge schemas docs --check",
    )
    docs.add_argument("--output", default=str(Path("schemas") / "README.md"))
    docs.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    docs.set_defaults(func=_cmd(_docs))
