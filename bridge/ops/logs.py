"""Logging set-up for the CLI commands (the library code only creates loggers).

Two formats, one record: `json` writes one object per line for log pipelines, `text` a
readable line for a terminal. Structured fields travel as `extra=` on the record (the
webhook line: event_id, action, topic, partition, offset, status, latency_ms) and both
formats print them. librdkafka's log and error callbacks arrive here through the
`bridge.librdkafka` and `bridge.delivery.publisher` loggers, so they share the format.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson

LogFormat = Literal["json", "text"]

# Attributes every LogRecord has; anything else on a record came from `extra=`
# (except uvicorn's `color_message`: the same text with terminal escapes).
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName", "color_message"}
)


# A field's value can come from the sender (an action built from `change`, a path in a
# dead-letter reason): cut to this many characters, with how many were cut, so one request
# cannot write megabytes of log.
MAX_FIELD_CHARS = 256


def capped(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else str(value)
    if len(text) <= MAX_FIELD_CHARS:
        return value
    return f"{text[:MAX_FIELD_CHARS]}...[{len(text) - MAX_FIELD_CHARS} more characters cut]"


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    attributes = vars(record)
    names = attributes.keys() - _STANDARD_ATTRIBUTES  # most records have none
    if not names:
        return {}
    return {k: capped(attributes[k]) for k in attributes if k in names and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """`{"ts": ..., "level": ..., "logger": ..., "message": ..., <extra fields>}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode("utf-8")


class TextFormatter(logging.Formatter):
    """The classic line, followed by the structured fields as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = extra_fields(record)
        if not fields:
            return line
        head, sep, tail = line.partition("\n")  # keep a traceback below the fields
        return head + " " + " ".join(f"{k}={v}" for k, v in fields.items()) + sep + tail


def make_formatter(fmt: LogFormat) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


def configure_logging(level: str = "INFO", fmt: LogFormat = "text", stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(make_formatter(fmt))
    logging.basicConfig(level=level, handlers=[handler], force=True)
