"""One word per failure: the JSON answer's `error`, the log line's `error` and the label of
refusals_total name a refusal alike, and the finer cause travels in the log's `cause`."""

from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient

from bridge.errors import ErrorCode
from bridge.ingress import RULES, create_app
from bridge.ops.metrics import REFUSAL_REASONS
from bridge.settings import Settings
from tests.scrape import parse_metrics, value
from tests.support import EXAMPLES, signed_headers

BODY = (EXAMPLES / "alert_created.json").read_bytes()
PATH = "/webhooks/unit21"


def refused_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "bridge.app" and r.getMessage().startswith("webhook answered")
    ]


def test_answer_log_and_metric_name_each_refusal_alike(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    cases: list[tuple[dict[str, str], bytes, ErrorCode, str | None]] = [
        # (headers, body, the one word, the finer cause in the log)
        (
            {**signed_headers(BODY), "Content-Length": "12x"},
            BODY,
            ErrorCode.BAD_REQUEST,
            "bad_content_length",
        ),
        (
            signed_headers(BODY, secret="not-the-secret"),
            BODY,
            ErrorCode.INVALID_SIGNATURE,
            "no_matching_signature",
        ),
        (signed_headers(BODY) | {"Content-Type": "text/plain"}, BODY, ErrorCode.UNSUPPORTED_MEDIA_TYPE, None),
    ]
    with caplog.at_level(logging.INFO, logger="bridge.app"), TestClient(create_app(settings)) as client:
        answers = [client.post(PATH, content=body, headers=headers) for headers, body, _, _ in cases]
        samples = parse_metrics(client.get("/metrics").text)
    logged = refused_logs(caplog)
    for answer, (_, _, code, cause), line in zip(answers, cases, logged, strict=True):
        assert (answer.status_code, answer.json()["error"]) == (code.status, code.value)
        assert getattr(line, "error") == code.value  # noqa: B009
        assert getattr(line, "cause", None) == cause
        assert value(samples, "unit21_bridge_refusals_total", reason=code.value) == 1


def test_a_webhook_before_the_producer_started_is_refused_not_ready(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # No lifespan: the policy has no producer yet. It was a 500 (the failure counter was
    # labelled with one value of two) before the policy had its own test.
    client = TestClient(create_app(settings))
    with caplog.at_level(logging.INFO, logger="bridge.app"):
        answer = client.post(PATH, content=BODY, headers=signed_headers(BODY))
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert answer.json()["error"] == "not_ready"
    [line] = refused_logs(caplog)
    assert (getattr(line, "error"), getattr(line, "cause")) == ("not_ready", "producer_not_started")  # noqa: B009


def test_every_error_code_has_a_rule_and_the_metric_presets_the_endpoints_words() -> None:
    assert set(ErrorCode) <= set(RULES)
    assert {"kafka_unavailable", "record_too_large", "not_ready", "bad_request", "incomplete_body"} <= set(
        REFUSAL_REASONS
    )
    assert set(REFUSAL_REASONS) <= {code.value for code in ErrorCode}
