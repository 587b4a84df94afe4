"""NDJSON preview for the console: read one page of lines from a byte offset, never the
whole file, and split pretty-printed JSON into tokens the template highlights.

Resource text is untrusted: tokens are plain strings that the template autoescapes;
nothing here produces markup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, BinaryIO

from bulkops.fhir import resource_json

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

    def tokens(self) -> list[tuple[str, str]]:
        return highlight(self.text)


@dataclass(frozen=True)
class PreviewPage:
    lines: list[PreviewLine]
    next_offset: int | None
    bytes_read: int


def read_page(
    handle: BinaryIO, *, offset: int, size: int, first_line: int, count: int
) -> PreviewPage:
    """Up to `count` lines from `handle`, a reader that starts at byte `offset` (the start
    of line `first_line`) of a `size`-byte file and holds at most PAGE_WINDOW bytes.

    A line cut at MAX_LINE_BYTES is skipped to its end within the window; one longer
    than the window continues on the next page.
    """
    lines: list[PreviewLine] = []
    read = 0
    while len(lines) < count and read < MAX_PAGE_BYTES:
        raw = handle.readline(MAX_LINE_BYTES)
        if not raw:
            break
        read += len(raw)
        truncated = not raw.endswith(b"\n")
        if truncated:  # skip the rest of an over-long line without keeping it
            while (chunk := handle.readline(MAX_LINE_BYTES)) and not chunk.endswith(b"\n"):
                read += len(chunk)
            read += len(chunk)
        if raw.strip():
            lines.append(_line(first_line + len(lines), raw, truncated))
    return PreviewPage(lines, offset + read if offset + read < size else None, read)


def _line(number: int, raw: bytes, truncated: bool) -> PreviewLine:
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
