"""Parsing JSON that comes from outside bulkops: request bodies, uploads, pasted keys,
documents fetched from key servers and remote Bulk Data servers.

Python's json module recurses once per nesting level, so a few kilobytes of `[` raise
RecursionError, which no caller expects: a request became an HTML 500 and a worker task
crashed. `loads` counts the nesting *before* json sees the text and refuses more than
MAX_DEPTH levels with a JSONDecodeError, the error every caller already turns into "not
valid JSON" in its own shape (OperationOutcome, RFC 6749 JSON, the API's error body, a
form error, a failed job). Text that is not UTF-8 and integers too long for Python to
convert raise the same error instead of their own kinds of ValueError.

FHIR resources nest 10-20 levels (a Bundle entry's resource, its extensions and their
values); MAX_DEPTH leaves room for far odder documents while keeping every recursive
walk over a parsed value (ours, DRF's, the JSON encoder's) far from the recursion limit.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from bulkops.fhir import resource_json

MAX_DEPTH = 100

# String literals, escapes included (a quoted bracket does not nest). An unterminated
# one runs to the end of the text: json stops there, so nothing after it can nest. Every
# quote starts a match that cannot fail, so the scan never backtracks over the text.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class UnacceptableJson(json.JSONDecodeError):
    """Input refused before or around json's parsing; its text is only the reason (there
    is no meaningful line and column to point at)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, "", 0)
        self.args = (reason,)


def loads(data: str | bytes | bytearray, **options: Any) -> Any:
    """The value `json.loads(data, **options)` returns, for data of at most MAX_DEPTH
    nested arrays and objects; JSONDecodeError for anything else."""
    return _decoded(data, json.JSONDecoder(**options) if options else _PLAIN)


def loads_resource(data: str | bytes | bytearray) -> Any:
    """`loads` for FHIR data from outside: decimals kept as written, NaN and Infinity
    refused (bulkops.fhir.resource_json)."""
    return _decoded(data, resource_json.DECODER)


_PLAIN = json.JSONDecoder()


def _decoded(data: str | bytes | bytearray, decoder: json.JSONDecoder) -> Any:
    if isinstance(data, str):
        text = data
    else:
        try:  # as json.loads decodes bytes: UTF-8, -16 or -32, told apart by the first bytes
            text = data.decode(json.detect_encoding(data), "surrogatepass")
        except UnicodeDecodeError as error:
            raise UnacceptableJson(f"the text is not UTF-8 ({error.reason})") from None
    if text.startswith("\ufeff"):
        raise UnacceptableJson("the text starts with a byte order mark")
    if _nests_too_deep(text):
        raise UnacceptableJson(f"arrays and objects nest deeper than {MAX_DEPTH} levels")
    try:
        return decoder.decode(text)
    except json.JSONDecodeError:
        raise
    except ValueError as error:  # e.g. an integer of more than 4300 digits
        raise UnacceptableJson(str(error)) from None


def _nests_too_deep(text: str) -> bool:
    """Whether arrays and objects in `text` nest deeper than MAX_DEPTH, found without
    recursion: brackets outside string literals, counted in C-speed passes."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False  # too few brackets to nest that deep
    # Two passes beat one with an alternation: about twice json's own time in all.
    brackets = _NOT_BRACKETS.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets), initial=0)) > MAX_DEPTH
