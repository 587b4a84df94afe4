"""FHIR JSON with exact numbers: parse and write resource bodies without losing a digit.

FHIR decimals carry their precision (R4 datatypes.html#decimal: 0.010 is not 0.01, and
the original precision is kept), but Python's json turns every number with a fraction
or an exponent into a float, so a body parsed and written again came back with
`11208.90` as `11208.9` and `1.000000000000000000001` as `1.0`. `loads` keeps such a
number as a `JsonNumber`, its text exactly as written, and `dumps` writes that text back,
so every number leaves as its source wrote it: `1e2` stays `1e2` (the FHIR decimal
grammar allows an exponent; turning it into `100` would claim three significant digits
where the source gave one). Integers stay Python ints: their digits are their text
(only `-0`, which no FHIR integer may be, is written `0`). NaN and Infinity are not JSON
numbers; `loads` refuses them, as any JSON parser outside Python does.

Only bodies that are rewritten need this: stored bodies are exported as their bytes.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Any


class JsonNumber:
    """A JSON number with a fraction or an exponent, kept as its text; two are equal
    when they are written the same."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JsonNumber) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"JsonNumber({self.text!r})"

    def __str__(self) -> str:
        return self.text


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# Built once: json.loads with options builds a decoder per call, which on a bulk load
# took as long as the parse itself.
DECODER = json.JSONDecoder(parse_float=JsonNumber, parse_constant=_refuse_constant)


def loads(text: str | bytes) -> Any:
    """A body bulkops wrote (the store, its own export files), numbers kept exact."""
    if not isinstance(text, str):
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    return DECODER.decode(text)


def dumps(
    value: Any, *, sort_keys: bool = False, ensure_ascii: bool = False, indent: int | None = None
) -> str:
    """JSON of a parsed body, minified unless `indent` is given; JsonNumbers are written
    as their text.

    The encoder is a short recursive walk with json's own C string escaping: as fast as
    json.dumps on FHIR resources (mostly strings), whose encoder has no hook to write a
    number's text verbatim.
    """
    if indent is None:
        text = _c_dumps(value, sort_keys=sort_keys, ensure_ascii=ensure_ascii)
        if text is not None:
            return text
    out: list[str] = []
    escape = encode_basestring_ascii if ensure_ascii else encode_basestring
    _write(value, out, escape, sort_keys, indent, 0)
    return "".join(out)


# What json's C encoder writes in place of each JsonNumber, spliced out afterwards. A
# quote can only stand unescaped around a string, so this text appears exactly where a
# JsonNumber was or where a string (key or value) is this one private-use character.
_NUMBER_MARK = "\ue000"


class _NumberMarks(threading.local):
    """The texts of the JsonNumbers the encoder met in the current call, in order: one
    list per thread, as the encoders below are shared."""

    def __init__(self) -> None:
        self.texts: list[str] = []


_numbers = _NumberMarks()


def _number_mark(item: Any) -> str:
    if isinstance(item, JsonNumber):
        _numbers.texts.append(item.text)
        return _NUMBER_MARK
    raise ValueError(f"{item!r} is not a JSON value")


def _encoder(*, sort_keys: bool, ensure_ascii: bool) -> tuple[json.JSONEncoder, str]:
    encoder = json.JSONEncoder(
        separators=(",", ":"),
        sort_keys=sort_keys,
        ensure_ascii=ensure_ascii,
        check_circular=False,
        allow_nan=False,
        default=_number_mark,
    )
    return encoder, encoder.encode(_NUMBER_MARK)


# Built once, as for DECODER: one per (sort_keys, ensure_ascii), with its mark's JSON text.
_ENCODERS = {
    (sort_keys, ensure_ascii): _encoder(sort_keys=sort_keys, ensure_ascii=ensure_ascii)
    for sort_keys in (False, True)
    for ensure_ascii in (False, True)
}


def _c_dumps(value: Any, *, sort_keys: bool, ensure_ascii: bool) -> str | None:
    """`dumps` by json's C encoder, three to four times faster than the walk below on
    stored bodies: its output is the walk's (same string escaping, separators and int
    text), JsonNumbers written as a mark then replaced by their text. None when a
    string in the value is the mark itself, or the value is not JSON: the walk then
    writes it, or raises."""
    encoder, mark = _ENCODERS[(sort_keys, ensure_ascii)]
    _numbers.texts = numbers = []
    try:
        text = encoder.encode(value)
    except ValueError:
        return None  # a float (out of range, or not finite) or not JSON: the walk decides
    if not numbers:
        return text
    parts = text.split(mark)
    if len(parts) != len(numbers) + 1:
        return None
    return "".join(part + number for part, number in zip(parts, [*numbers, ""], strict=True))


def _write(
    value: Any,
    out: list[str],
    escape: Callable[[str], str],
    sort_keys: bool,
    indent: int | None,
    level: int,
) -> None:
    if isinstance(value, str):
        out.append(escape(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = "" if indent is None else "\n" + " " * (indent * (level + 1))
        colon = ":" if indent is None else ": "
        before = "{" + inner
        for key, item in sorted(value.items()) if sort_keys else value.items():
            out.append(before + escape(key) + colon)
            _write(item, out, escape, sort_keys, indent, level + 1)
            before = "," + inner
        out.append("}" if indent is None else "\n" + " " * (indent * level) + "}")
    elif isinstance(value, list | tuple):
        if not value:
            out.append("[]")
            return
        inner = "" if indent is None else "\n" + " " * (indent * (level + 1))
        before = "[" + inner
        for item in value:
            out.append(before)
            _write(item, out, escape, sort_keys, indent, level + 1)
            before = "," + inner
        out.append("]" if indent is None else "\n" + " " * (indent * level) + "]")
    elif isinstance(value, JsonNumber):
        out.append(value.text)
    elif value is None:
        out.append("null")
    elif value is True or value is False:
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float) and math.isfinite(value):
        out.append(float.__repr__(value))
    else:
        raise ValueError(f"{value!r} is not a JSON value")
