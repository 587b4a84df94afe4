"""NDJSON preview for the console: read one page of lines from a byte offset, never the
whole file, and split pretty-printed JSON into tokens the template highlights.

Resource text is untrusted: tokens are plain strings that the template autoescapes;
nothing here produces markup.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from bulkops.fhir import resource_json
from exports.resource_summary import summarize

MAX_PAGE_BYTES = 1024 * 1024  # a page never reads more than this, whatever N is
MAX_LINE_BYTES = 256 * 1024  # a longer line is shown cut, not read in full
PAGE_WINDOW = MAX_PAGE_BYTES + MAX_LINE_BYTES  # the bytes one page may fetch at most
_TOKEN = re.compile(
    r'(?P<string>"(?:[^"\\]|\\.)*")(?P<colon>\s*:)?'
    r"|(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
    r"|(?P<literal>true|false|null)"
    r"|(?P<other>[^\"\-\dtfn]+|.)",
    re.DOTALL,
)


@dataclass(frozen=True)
class PreviewLine:
    number: int
    resource_type: str
    resource_id: str
    last_updated: str
    text: str
    truncated: bool
    summary: tuple[tuple[str, str], ...] = ()

    def tokens(self) -> list[tuple[str, str]]:
        return highlight(self.text)


@dataclass(frozen=True)
class PreviewPage:
    lines: list[PreviewLine]
    next_offset: int | None
    bytes_read: int


def iter_lines(handle: BinaryIO) -> Iterator[tuple[bytes, int, bool]]:
    """(line, bytes it took, cut) for each line `handle` holds, never more than
    MAX_LINE_BYTES of one line in memory.

    A line cut at MAX_LINE_BYTES is skipped to its end within what `handle` holds; one
    longer than that continues where the next read starts.
    """
    while raw := handle.readline(MAX_LINE_BYTES):
        taken = len(raw)
        truncated = not raw.endswith(b"\n")
        if truncated:  # skip the rest of an over-long line without keeping it
            while (chunk := handle.readline(MAX_LINE_BYTES)) and not chunk.endswith(b"\n"):
                taken += len(chunk)
            taken += len(chunk)
        yield raw, taken, truncated


def read_page(
    handle: BinaryIO, *, offset: int, size: int, first_line: int, count: int
) -> PreviewPage:
    """Up to `count` lines from `handle`, a reader that starts at byte `offset` (the start
    of line `first_line`) of a `size`-byte file and holds at most PAGE_WINDOW bytes."""
    lines: list[PreviewLine] = []
    read = 0
    for raw, taken, truncated in iter_lines(handle):
        read += taken
        if raw.strip():
            lines.append(preview_line(first_line + len(lines), raw, truncated))
        if len(lines) >= count or read >= MAX_PAGE_BYTES:
            break
    return PreviewPage(lines, offset + read if offset + read < size else None, read)


def page_before(handle: BinaryIO, *, window_start: int, offset: int, count: int) -> tuple[int, int]:
    """Where the page of up to `count` lines that ends at byte `offset` starts, and how
    many lines it holds: `handle` holds the bytes from `window_start` to `offset` (at
    most PAGE_WINDOW, so "previous page" reads one window like "next page" does).

    The window's first piece may be the tail of a longer line: it only counts when the
    window starts at the beginning of the file.
    """
    data = handle.read()
    starts: list[int] = []
    position = 0
    for piece in data.split(b"\n")[:-1]:
        whole = window_start == 0 or position > 0
        if whole and piece.strip():
            starts.append(position)
        position += len(piece) + 1
    starts = starts[-count:]
    while starts and position - starts[0] > MAX_PAGE_BYTES and len(starts) > 1:
        starts.pop(0)
    if not starts:
        return offset, 0
    return window_start + starts[0], len(starts)


def preview_line(number: int, raw: bytes, truncated: bool) -> PreviewLine:
    text = raw.decode("utf-8", "replace").strip()
    resource: Any = None
    if not truncated:
        try:
            resource = resource_json.loads(text)
        except ValueError:
            resource = None
    if isinstance(resource, dict):
        meta = resource.get("meta") if isinstance(resource.get("meta"), dict) else {}
        return PreviewLine(
            number,
            str(resource.get("resourceType", "")),
            str(resource.get("id", "")),
            str(meta.get("lastUpdated", "")),
            resource_json.dumps(resource, indent=2),
            False,
            tuple(summarize(resource)),
        )
    return PreviewLine(number, "", "", "", text, truncated)


def highlight(text: str) -> list[tuple[str, str]]:
    """(css class, text) pairs: key, string, number, literal or plain punctuation."""
    tokens: list[tuple[str, str]] = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup or "other"
        if match.group("string") is not None:
            kind = "key" if match.group("colon") else "string"
            tokens.append((kind, match.group("string")))
            if match.group("colon"):
                tokens.append(("other", match.group("colon")))
            continue
        tokens.append((kind, match.group(0)))
    return tokens
