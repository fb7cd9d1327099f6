from __future__ import annotations

import subprocess
import sys

import pytest

from bridge.ops.tracing import tracing_from_settings
from bridge.settings import Settings


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}, False),
    ],
)
def test_tracing_is_on_only_when_an_exporter_is_configured(env: dict[str, str], enabled: bool) -> None:
    settings = Settings.from_env(env)
    assert settings.tracing_enabled is enabled
    tracing = tracing_from_settings(settings)
    assert tracing.enabled is enabled
    tracing.shutdown()


def test_configured_but_not_installed_fails_with_the_fix() -> None:
    # A fresh interpreter where the SDK cannot be imported, as in an install without [tracing].
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from bridge.settings import Settings, ConfigError\n"
        "from bridge.ops.tracing import tracing_from_settings\n"
        "assert not tracing_from_settings(Settings.from_env({})).enabled\n"
        "try:\n"
        "    tracing_from_settings(Settings.from_env({'OTEL_TRACES_EXPORTER': 'otlp'}))\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert "unit21-kafka-bridge[tracing]" in out
