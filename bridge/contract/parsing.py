"""Raw body -> JSON object, and the facts routing needs: object type, action, topic, key.

Numbers are kept exactly. orjson (the fast path) reads a number with a fraction or an exponent
as a binary double, and an integer beyond 64 bits as a double too: that keeps the value of
short numbers only. A body that may hold a number orjson would change takes the exact path
instead: the standard library's parser with fractions and exponents as `decimal.Decimal` (the
digits as sent) and integers as Python ints; `dumps` writes both back as number text. Both
paths end in the same checks, so a body gets the same answer whichever one ran.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from bridge.contract import routes
from bridge.contract.routes import Route
from bridge.errors import BridgeError

# Deepest nesting of objects and arrays a body may have (the top-level object is level 1).
# Unit21 bodies are a few levels deep. The limit keeps every serializer well inside its own
# (orjson writes at most 254 levels; the standard library stops near the interpreter's
# recursion limit), so whatever was parsed can always be written back.
MAX_DEPTH = 128

# When orjson's double keeps a number's value (parse, then shortest-repr write, gives back a
# value-equal decimal): up to 15 significant digits (DBL_DIG) and a value in the normal range.
# orjson keeps integers of up to 18 digits as ints. So the exact path is needed only for
#  - a run of 17 or more digits and dots: a fraction with 16+ digits, an integer with 17+;
#  - a negative exponent of 3+ digits ("e-400"): below 2.2e-308 a double loses digits or
#    becomes 0.0 without a word. (A value too large for a double is no danger: orjson
#    refuses it, and then the exact parser decides.)
# One `bytes.translate` and substring tests find both, plus the nesting pre-check, at a
# fraction of the regex engine's cost. A match inside a string ("Invoice-2024", an account
# number) only sends a body the exact way; no number gets through unchecked.
_NUMBER_MASK = bytes(
    0x30
    if (0x30 <= i <= 0x39 or i == 0x2E)  # digits and "." -> "0"
    else 0x65
    if i in b"eE"
    else 0x2D
    if i == 0x2D  # "-"
    else 0x5B
    if i in b"[{"  # openers, counted for the nesting pre-check
    else 0x20
    for i in range(256)
)
_SEVENTEEN_DIGITS = b"0" * 17
_TINY_EXPONENT = b"e-000"
_MAX_PATH_CHARS = 200
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def needs_exact_path(data: bytes) -> bool:
    """True when `data` may hold a number that orjson's double would not keep exactly."""
    masked = data.translate(_NUMBER_MASK)
    return _SEVENTEEN_DIGITS in masked or _TINY_EXPONENT in masked


class PayloadError(BridgeError, ValueError):
    """The body is not a JSON object; answered with 400."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse(body: bytes) -> dict[str, Any]:
    doc = _parse_value(body, "body")
    if not isinstance(doc, dict):
        raise PayloadError(f"body must be a JSON object, got {json_type(doc)}")
    return doc


def loads(text: str) -> Any:
    """The value of JSON text the bridge stored (a JSON-text field, a kept body), numbers exact."""
    # No depth limit: what is stored was taken already (bodies kept before the limit existed
    # may be deeper); the parsers' own limits still apply.
    return _parse_value(text.encode(), "JSON text", max_depth=None)


def _parse_value(data: bytes, subject: str, max_depth: int | None = MAX_DEPTH) -> Any:
    masked = data.translate(_NUMBER_MASK)
    if _SEVENTEEN_DIGITS in masked or _TINY_EXPONENT in masked:
        doc = _parse_exact(data, subject)
    else:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            # orjson refuses some bodies the exact parser takes (1e400 is a double's infinity)
            # and words others differently: the exact parser gives the answer on every refusal.
            doc = _parse_exact(data, subject)
    if max_depth is not None and masked.count(b"[") > max_depth and deeper_than(doc, max_depth):
        raise PayloadError(_too_deep(subject))
    return doc


def _too_deep(subject: str) -> str:
    return f"{subject} nests objects and arrays deeper than {MAX_DEPTH} levels"


def _parse_exact(data: bytes, subject: str) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"{subject} is not valid UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        doc = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except RecursionError:
        # The parser recursed far deeper than MAX_DEPTH before the interpreter stopped it.
        raise PayloadError(_too_deep(subject)) from None
    except ValueError as exc:
        raise PayloadError(f"{subject} is not valid JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(data) is not None:
        # The standard library reads a lone "\\ud800" into a str that no UTF-8 encoder accepts.
        found = _lone_surrogate(doc)
        if found is not None:
            # The path may hold the surrogate itself (a key): escaped, so the answer can be encoded.
            where = found[0].encode("utf-8", "backslashreplace").decode("utf-8") or "<top level>"
            if len(where) > _MAX_PATH_CHARS:  # keys are the sender's: keep the answer small
                where = where[:_MAX_PATH_CHARS] + "..."
            code = found[1]
            raise PayloadError(
                f"{subject} is not valid JSON: the string at {where} holds the "
                f"lone UTF-16 surrogate \\u{code:04x}, which is not a Unicode character"
            )
    return doc


def deeper_than(doc: Any, limit: int) -> bool:
    """True when objects and arrays nest more than `limit` levels in `doc`."""
    if limit < _ORJSON_WRITE_LIMIT:
        # orjson.dumps refuses to write past its own nesting limit. Wrapped in enough lists
        # that this limit falls right after `limit`, the document is written only if it is
        # shallow enough: a proof at C speed (a 500-entity alert: ~25 us, the walk ~150 us).
        # When orjson refuses (too deep, or an integer beyond 64 bits), the walk decides.
        wrapped = doc
        for _ in range(_ORJSON_WRITE_LIMIT - limit):
            wrapped = [wrapped]
        try:
            orjson.dumps(wrapped, default=_number_text)
        except TypeError:
            pass
        else:
            return False
    level = [doc]
    for _ in range(limit):  # level by level, without recursion
        below: list[Any] = []
        for value in level:
            children = value.values() if type(value) is dict else value
            below += [child for child in children if type(child) in _CONTAINERS]
        if not below:
            return False
        level = below
    return True


_CONTAINERS = frozenset((dict, list))  # exactly what both parsers build


def _orjson_write_limit() -> int:
    """The deepest nesting orjson.dumps writes (254 in orjson 3.x; 0 if it has no limit)."""
    value: list[Any] = []
    for depth in range(1, 4097):
        try:
            orjson.dumps(value)
        except orjson.JSONEncodeError:
            return depth - 1
        value = [value]
    return 0


_ORJSON_WRITE_LIMIT = _orjson_write_limit()


def _lone_surrogate(doc: Any) -> tuple[str, int] | None:
    """The path of the first string (key or value) holding an unpaired surrogate, and that code point."""
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            code = _surrogate_in(value)
            if code is not None:
                return path, code
        elif isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else str(key)
                code = _surrogate_in(key)
                if code is not None:
                    return child, code
                stack.append((item, child))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{index}]") for index, item in enumerate(value))
    return None


def _surrogate_in(text: str) -> int | None:
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return ord(text[exc.start])
    return None


# -- writing ---------------------------------------------------------------------------------

_U64_MAX = 2**64 - 1
_I64_MIN = -(2**63)


def _number_text(value: Any) -> Any:
    if isinstance(value, Decimal) and value.is_finite():
        text = str(value)  # "100.10", "1E+400": JSON number text, every digit kept
        if "." not in text and "E" not in text:
            # 1.5e1 parses to 15 with exponent 0 and would print as the integer "15": a
            # number sent with a fraction or an exponent stays one, apart from integers.
            text += ".0"
        return orjson.Fragment(text)
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """JSON text for a parsed value: exact for Decimals and for integers of any size.

    `default` serialises other types (as orjson's `default`), after Decimals.
    """
    fallback = _number_text if default is None else _chain(default)
    try:
        return orjson.dumps(value, default=fallback).decode("utf-8")
    except TypeError:  # an integer beyond 64 bits, which orjson refuses without asking `default`
        return orjson.dumps(_wide_integers_as_text(value), default=fallback).decode("utf-8")


def _chain(default: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def fallback(value: Any) -> Any:
        return _number_text(value) if isinstance(value, Decimal) else default(value)

    return fallback


def _wide_integers_as_text(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if _I64_MIN <= value <= _U64_MAX else orjson.Fragment(str(value))
    if isinstance(value, dict):
        return {key: _wide_integers_as_text(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_wide_integers_as_text(item) for item in value]
    return value


def event_id(body: bytes) -> str:
    """Stable id of a webhook: a retry carries the same body, so it gets the same id."""
    return hashlib.sha256(body).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Classified:
    route: Route
    object_type: str
    action: str
    valid_object_type: bool  # False: the payload's object_type was present but not a string


def classify(doc: dict[str, Any]) -> Classified:
    raw_type = doc.get("object_type")
    if raw_type is None:
        if "exports" in doc:
            return Classified(
                routes.FILE_EXPORT, routes.FILE_EXPORT.object_type, routes.FILE_EXPORT_ACTION, True
            )
        return Classified(routes.UNRECOGNIZED, routes.UNRECOGNIZED.object_type, routes.UNKNOWN_ACTION, True)
    if not isinstance(raw_type, str) or not raw_type:
        return Classified(routes.UNRECOGNIZED, routes.UNRECOGNIZED.object_type, routes.UNKNOWN_ACTION, False)
    change = doc.get("change")
    if isinstance(change, str) and change:
        if raw_type == routes.ENTITY.object_type and change.startswith(routes.VERIFICATION_PREFIX):
            action = change
        else:
            action = f"{raw_type}_{change}"
    else:
        action = raw_type
    route = routes.BY_OBJECT_TYPE.get(raw_type, routes.UNRECOGNIZED)
    return Classified(route, raw_type, action, True)


def record_key(doc: dict[str, Any], classified: Classified, fallback_id: str) -> bytes:
    """The entity the webhook is about, so all of one entity's webhooks share a partition."""
    entity_id = doc.get("entity_id")
    if isinstance(entity_id, str) and entity_id:
        return entity_id.encode("utf-8")
    for array in ("entities", "flagged_entities"):
        items = doc.get(array)
        if isinstance(items, list):
            for item in items:
                if isinstance(item, dict):
                    nested = item.get("entity_id")
                    if isinstance(nested, str) and nested:
                        return nested.encode("utf-8")
    prefix = classified.object_type.lower()
    if classified.route is routes.FILE_EXPORT:
        exports = doc.get("exports")
        if isinstance(exports, list) and exports and isinstance(exports[0], dict):
            first = exports[0].get("id")
            if _is_id(first):
                return f"file_export:{first}".encode()
    for name in classified.route.id_fields:
        value = doc.get(name)
        if _is_id(value):
            return f"{prefix}:{value}".encode()
    # Nothing identifies the subject: key on the webhook itself, which still keeps retries together.
    return f"{prefix}:{fallback_id}".encode()


def _is_id(value: object) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, str) and bool(value)
    )


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
