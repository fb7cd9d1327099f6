"""The declared public surface of each package, pinned: a name added to or dropped from an
`__all__` is a decision, made here, not a side effect. And nothing outside bridge/ reaches into
a private name of it."""

from __future__ import annotations

import importlib
import re

import pytest

from tests.support import REPO

PUBLIC = {
    "bridge": ["__version__"],
    "bridge.cli": ["ExitCode", "UVICORN_OPTIONS", "build_parser"],
    "bridge.contract": [
        "Codec",
        "DecodeError",
        "Delivery",
        "DetectingCodec",
        "MessageBuilder",
        "NormalizationError",
        "OutgoingMessage",
        "PayloadError",
        "RegistryCodec",
        "SchemaLoadError",
        "SchemaSet",
        "SingleObjectCodec",
        "TopicSchema",
        "check_history",
        "check_pair",
        "classify",
        "compile_normalizer",
        "dumps",
        "event_id",
        "loads",
        "parse",
        "record_key",
        "registry_codec",
    ],
    "bridge.delivery": [
        "DeliveryPolicy",
        "Drainer",
        "EmbeddedBroker",
        "EmbeddedBrokerError",
        "Outcome",
        "OutcomeKind",
        "PublishError",
        "Publisher",
        "ReadyState",
        "RecentDeliveries",
        "Spool",
        "SpoolEntry",
        "SpoolError",
        "SpoolFull",
        "SpooledRecord",
        "body_limit_warning",
        "create_topics",
        "free_port",
        "list_spooled",
        "producer_config",
        "read_to_end",
        "record_size",
        "spool_files",
    ],
    "bridge.ingress": [
        "BridgeApp",
        "Door",
        "DoorProtocol",
        "HEADER_NAME",
        "RULES",
        "Refusal",
        "Runtime",
        "SignatureError",
        "WEBHOOK_PATH",
        "WebhookEndpoint",
        "answer",
        "app_from_env",
        "create_app",
        "log_fields",
        "raise_fd_limit",
        "sign",
        "signature_header",
        "uvicorn_options",
        "verify",
    ],
    "bridge.ops": [
        "JsonFormatter",
        "Metrics",
        "RefusalLog",
        "SpanHandle",
        "TextFormatter",
        "Tracing",
        "configure_logging",
        "prepare_multiprocess_dir",
        "tracing_from_settings",
    ],
}


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_each_package_declares_its_public_names(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == PUBLIC[package]
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name} does not resolve"


PRIVATE_USE = re.compile(r"from bridge[\w.]* import [^#\n]*\b_[a-z]\w*|\bbridge\.[\w.]*\._[a-z]\w*")


def test_tests_bench_and_examples_use_no_private_name_of_the_bridge() -> None:
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for folder in ("tests", "bench", "examples")
        for path in (REPO / folder).rglob("*.py")
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if PRIVATE_USE.search(line) and path.name != "test_public_api.py"
    ]
    assert not found, "\n".join(found)
