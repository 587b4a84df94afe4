"""Search a whole NDJSON export file from the console, streaming: a filter reads the file
from a byte offset, line by line, and keeps only the lines that match, so a 5 GB file is
never held in memory. One request reads at most BULKOPS_PREVIEW_SEARCH_BYTES for at most
BULKOPS_PREVIEW_SEARCH_MS; where it stops it hands back a cursor (byte offset and line
number) from which "keep searching" goes on.

A filter is one of:
- `element=value`: a top-level element equal to value (`gender=female`, `id=p1`,
  `status=final`), or, for a complex element, holding value anywhere inside
  (`code=8867-4`, `subject=Patient/p1`); case-insensitive;
- `Type/id`: that resource, and the lines that refer to it;
- anything else: text anywhere in the line, case-insensitive.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from exports.preview import PreviewLine, iter_lines, preview_line

_ELEMENT = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*=\s*(.+?)\s*$", re.DOTALL)
_RESOURCE = re.compile(r"^\s*([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})\s*$")

Matcher = Callable[[bytes], bool]


@dataclass(frozen=True)
class Cursor:
    """The start of line `line` is at byte `offset`."""

    offset: int
    line: int


@dataclass(frozen=True)
class Found:
    """A matching line and where it starts, so the browser can open the file there."""

    line: PreviewLine
    offset: int


@dataclass(frozen=True)
class SearchResult:
    found: list[Found]
    last_line: int  # the last line looked at (start.line - 1 if none)
    bytes_read: int
    resume: Cursor | None  # None: the end of the file was reached
    out_of_budget: bool  # stopped by the byte or time limit, not by a full page of matches


def describe_filter(text: str) -> str:
    """What `text` is taken to mean, in words for the page."""
    if element := _ELEMENT.match(text):
        return f"{element.group(1)} = “{element.group(2)}”"
    if resource := _RESOURCE.match(text):
        return f"{resource.group(1)}/{resource.group(2)} and lines that refer to it"
    return f"lines containing “{text}”"


def matcher_for(text: str) -> Matcher:
    """The test one raw line must pass to match the filter `text`."""
    if element := _ELEMENT.match(text):
        return _element_matcher(element.group(1), element.group(2))
    if resource := _RESOURCE.match(text):
        return _resource_matcher(resource.group(1), resource.group(2), text.strip())
    return _text_matcher(text)


def _text_matcher(text: str) -> Matcher:
    needle = text.casefold()
    return lambda raw: needle in raw.decode("utf-8", "replace").casefold()


def _element_matcher(name: str, value: str) -> Matcher:
    wanted = value.casefold()
    prefilter = _text_matcher(value)

    def test(raw: bytes) -> bool:
        if not prefilter(raw):  # most lines never need parsing
            return False
        resource = _parse(raw)
        return resource is not None and _holds(resource.get(name), wanted)

    return test


def _resource_matcher(resource_type: str, resource_id: str, reference: str) -> Matcher:
    refers = _text_matcher(json.dumps(reference))  # the whole string: not Patient/p30
    names_id = _text_matcher(resource_id)

    def test(raw: bytes) -> bool:
        if refers(raw):
            return True
        if not names_id(raw):
            return False
        resource = _parse(raw)
        return (
            resource is not None
            and resource.get("resourceType") == resource_type
            and resource.get("id") == resource_id
        )

    return test


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        resource = json.loads(raw)
    except ValueError:
        return None
    return resource if isinstance(resource, dict) else None


def _holds(value: Any, wanted: str) -> bool:
    """Whether an element is `wanted`, or holds it somewhere inside."""
    if isinstance(value, dict):
        return any(_holds(inner, wanted) for inner in value.values())
    if isinstance(value, list):
        return any(_holds(inner, wanted) for inner in value)
    if isinstance(value, bool):
        return str(value).lower() == wanted
    return value is not None and str(value).casefold() == wanted


def search(
    handle: BinaryIO,
    *,
    start: Cursor,
    size: int,
    matches: Matcher,
    want: int,
    max_bytes: int,
    max_seconds: float,
) -> SearchResult:
    """Up to `want` matching lines from `handle`, a reader that starts at `start` and
    holds at most `max_bytes` plus one line. Stops at the end of the file, at `want`
    matches, or once `max_bytes` were read or `max_seconds` passed (after at least one
    line, so every request moves on)."""
    deadline = time.monotonic() + max_seconds
    found: list[Found] = []
    read, line = 0, start.line - 1
    out_of_budget = False
    for raw, taken, truncated in iter_lines(handle):
        if raw.strip():
            line += 1
            if matches(raw):
                found.append(Found(preview_line(line, raw, truncated), start.offset + read))
        read += taken
        if len(found) >= want:
            break
        if read >= max_bytes or time.monotonic() >= deadline:
            out_of_budget = True
            break
    at = start.offset + read
    resume = Cursor(at, line + 1) if at < size else None
    return SearchResult(found, line, read, resume, out_of_budget and resume is not None)


def find_line(
    handle: BinaryIO, *, start: Cursor, size: int, target: int, max_bytes: int, max_seconds: float
) -> SearchResult:
    """Read on from `start` to the start of line `target` (or of the last line), within
    the same limits as a search: `found` holds that line when it was reached."""
    remaining = target - start.line

    def is_target(raw: bytes) -> bool:
        nonlocal remaining
        remaining -= 1
        return remaining < 0

    return search(
        handle,
        start=start,
        size=size,
        matches=is_target,
        want=1,
        max_bytes=max_bytes,
        max_seconds=max_seconds,
    )
