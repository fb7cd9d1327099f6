"""gc.freeze() is process-wide: a server process takes it once started, an app in a test never."""

from __future__ import annotations

import gc

from starlette.testclient import TestClient

from bridge.ingress import create_app
from bridge.settings import Settings


def test_an_app_in_a_test_does_not_freeze_the_collector_and_a_server_app_does(settings: Settings) -> None:
    before = gc.get_freeze_count()
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() == before
    try:
        with TestClient(create_app(settings, freeze_gc=True)) as client:
            assert client.get("/healthz").status_code == 200
            assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()  # the rest of the suite runs with the collector as it found it
