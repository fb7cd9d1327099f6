from __future__ import annotations

import pytest
from pydantic import ValidationError

from bridge.delivery.publisher import producer_config
from bridge.settings import ConfigError, Settings


def test_defaults_match_the_documented_ones() -> None:
    settings = Settings.from_env({})
    assert settings.topic_prefix == "unit21."
    assert settings.signature_tolerance_seconds == 300
    assert settings.max_body_bytes == 900 * 1024
    assert settings.webhook_secrets == ()


def test_secrets_are_comma_separated() -> None:
    settings = Settings.from_env({"UNIT21_WEBHOOK_SECRETS": " a1 ,b2,, "})
    assert settings.webhook_secrets == ("a1", "b2")


def test_kafka_pass_through_becomes_librdkafka_properties() -> None:
    settings = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "k:9092",
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_LINGER_MS": "20",
        }
    )
    config = producer_config(settings)
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["linger.ms"] == "20"
    assert config["bootstrap.servers"] == "k:9092"
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    assert config["partitioner"] == "murmur2_random"
    assert config["message.timeout.ms"] == 2000


@pytest.mark.parametrize("name", ["KAFKA_ACKS", "KAFKA_ENABLE_IDEMPOTENCE", "KAFKA_MESSAGE_TIMEOUT_MS"])
def test_delivery_critical_properties_cannot_be_overridden(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: "1"})


def test_serve_refuses_to_start_without_secrets() -> None:
    settings = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "k:9092"})
    with pytest.raises(ConfigError, match="UNIT21_WEBHOOK_SECRETS"):
        settings.check_serve()
    Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "BRIDGE_ALLOW_UNSIGNED": "true"}).check_serve()


def test_invalid_values_name_the_variable() -> None:
    with pytest.raises(ValidationError, match="BRIDGE_SIGNATURE_TOLERANCE_SECONDS"):
        Settings.from_env({"BRIDGE_SIGNATURE_TOLERANCE_SECONDS": "soon"})
    with pytest.raises(ValidationError, match="BRIDGE_TOPIC_PREFIX"):
        Settings.from_env({"BRIDGE_TOPIC_PREFIX": "bad prefix/"})


def test_from_env_reads_only_the_mapping_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_TOPIC_PREFIX", "leaked.")
    monkeypatch.setenv("BRIDGE_SPOOL_DIR", "/nonexistent/spool")
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("BRIDGE_ALLOW_UNSIGNED", "true")
    settings = Settings.from_env({})
    assert settings.topic_prefix == "unit21."
    assert str(settings.spool_dir) != "/nonexistent/spool"
    assert settings.schema_registry_url == ""
    assert settings.allow_unsigned is False
    assert Settings.from_env({"BRIDGE_TOPIC_PREFIX": "given."}).topic_prefix == "given."


def test_every_error_code_has_its_status() -> None:
    from bridge.errors import ErrorCode

    assert {code: code.status for code in ErrorCode}[ErrorCode.SPOOL_ERROR] == 503
    assert all(400 <= code.status < 600 for code in ErrorCode)
