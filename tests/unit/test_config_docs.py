"""docs/configuration.md is generated from Settings, and says something about every setting."""

from __future__ import annotations

from bridge.contract import settings_reference as config_docs
from bridge.settings import Settings
from tests.support import REPO


def test_configuration_reference_is_current() -> None:
    committed = (REPO / "docs" / "configuration.md").read_text("utf-8")
    assert committed == config_docs.render(), "docs/configuration.md is stale: run `make config-docs`"


def test_every_setting_is_described_under_its_variable() -> None:
    text = config_docs.render()
    for name, field in Settings.model_fields.items():
        variable = config_docs.variable(field)
        if variable is None:
            assert name == "kafka_properties"
            continue
        assert field.description and len(field.description) > 15, f"{variable} needs a description"
        assert f"| `{variable}` |" in text
