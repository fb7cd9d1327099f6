"""JSON compared the way a data team compares amounts: numbers as decimals, types kept apart.

Python's `==` says `True == 1 == 1.0` and `Decimal("0.1") != 0.1`; neither is the question.
`canonical` writes a value as JSON text in which every node is tagged with its JSON kind (an
integer stays distinct from a number with a fraction or exponent, and both from a boolean),
object keys are sorted, and each number is reduced to a normalised decimal (trailing zeros
cut, so 100.10 and 100.1 are equal, 1E+400 and 10E+399 too) computed without rounding.

`reference_loads` is the obvious exact parser (the standard library with Decimal fractions),
used to read what the code under test wrote; `number_texts` generates JSON number text of
every shape and `expected` gives its tagged value straight from the text.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st


def decimal_key(value: Decimal) -> str:
    """The exact value of a finite decimal as `[-]digitsEexponent`, with no trailing zeros."""
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int), f"not a finite number: {value}"
    text = "".join(map(str, digits)).lstrip("0")
    if not text:
        return "0"  # 0, -0.0 and 0E+7 are one value
    stripped = text.rstrip("0")
    return f"{'-' if sign else ''}{stripped}E{exponent + len(text) - len(stripped)}"


def tagged(value: Any) -> Any:
    if value is None:
        return ["null"]
    if isinstance(value, bool):
        return ["boolean", value]
    if isinstance(value, int):
        return ["integer", str(value)]
    if isinstance(value, float):
        # The text a JSON writer gives a double (the shortest that reads back as it).
        return ["number", decimal_key(Decimal(repr(value)))]
    if isinstance(value, Decimal):
        return ["number", decimal_key(value)]
    if isinstance(value, str):
        return ["string", value]
    if isinstance(value, list):
        return ["array", [tagged(item) for item in value]]
    if isinstance(value, dict):
        return ["object", {key: tagged(item) for key, item in value.items()}]
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def canonical(value: Any) -> str:
    return json.dumps(tagged(value), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def reference_loads(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal, parse_constant=_no_constants)


def _number(sign: str, whole: str, fraction: str | None, zeros: int, exponent: str | None) -> str:
    text = sign + whole
    if fraction is not None:
        text += "." + fraction + "0" * zeros
    return text + (exponent or "")


# JSON number text of every shape: short and long, trailing zeros, exponents up to 10^6.
number_texts = st.builds(
    _number,
    st.sampled_from(["", "-"]),
    st.just("0") | st.builds(str.__add__, st.sampled_from("123456789"), st.text("0123456789", max_size=25)),
    st.none() | st.text("0123456789", min_size=1, max_size=25),
    st.integers(0, 8),
    st.none()
    | st.builds(
        lambda e, s, d: e + s + d,
        st.sampled_from("eE"),
        st.sampled_from(["", "+", "-"]),
        st.integers(0, 10**6).map(str) | st.text("0123456789", min_size=1, max_size=4),
    ),
)


def expected(text: str) -> Any:
    if any(c in text for c in ".eE"):
        return ["number", decimal_key(Decimal(text))]
    return ["integer", str(int(text))]
