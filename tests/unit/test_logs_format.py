from __future__ import annotations

import json
import logging
import sys

import pytest

from bridge.ops.logs import JsonFormatter, TextFormatter


def record(**extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("bridge.app", logging.INFO, __file__, 1, "webhook answered %d", (200,), None)
    rec.__dict__.update(extra)
    return rec


def test_json_line_has_message_and_extra_fields() -> None:
    line = json.loads(JsonFormatter().format(record(event_id="abc", status=200, partition=1)))
    assert line["message"] == "webhook answered 200"
    assert (line["level"], line["logger"]) == ("INFO", "bridge.app")
    assert (line["event_id"], line["status"], line["partition"]) == ("abc", 200, 1)
    assert "msg" not in line and "args" not in line


def test_json_line_carries_the_exception() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    line = json.loads(JsonFormatter().format(rec))
    assert "RuntimeError: boom" in line["exception"]


def test_text_line_appends_fields_as_key_value() -> None:
    text = TextFormatter().format(record(event_id="abc", status=200))
    assert text.endswith("INFO bridge.app webhook answered 200 event_id=abc status=200")


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        (0.0, "1970-01-01T00:00:00.000+00:00"),
        (1_700_000_000.0, "2023-11-14T22:13:20.000+00:00"),
        (1_700_000_000.0004999, "2023-11-14T22:13:20.000+00:00"),
        (1_700_000_000.0173, "2023-11-14T22:13:20.017+00:00"),
        (1_700_000_000.9999996, "2023-11-14T22:13:21.000+00:00"),  # the microsecond rounds up
        (1_795_450_372.060, "2026-11-23T16:12:52.060+00:00"),
    ],
)
def test_json_timestamp_is_the_iso_time_of_the_record_in_milliseconds(created: float, expected: str) -> None:
    rec = record()
    rec.created = created
    assert json.loads(JsonFormatter().format(rec))["ts"] == expected
