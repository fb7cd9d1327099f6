from __future__ import annotations

import json
import logging
import sys

from bridge.logs import JsonFormatter, TextFormatter


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


def test_json_timestamp_is_the_iso_time_of_the_record_in_milliseconds() -> None:
    from datetime import UTC, datetime

    formatter = JsonFormatter()
    # Second boundaries, values that round up to the next second, and ordinary ones.
    created = [0.0, 1.0, 1_700_000_000.0, 1_700_000_000.9999996, 1_700_000_000.0004999, 1_795_450_372.060]
    created += [1_700_000_000 + i * 0.0173 for i in range(2000)]
    for value in created:
        rec = record()
        rec.created = value
        expected = datetime.fromtimestamp(value, UTC).isoformat(timespec="milliseconds")
        assert json.loads(formatter.format(rec))["ts"] == expected, value
