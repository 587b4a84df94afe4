"""The NDJSON browser's lines as CSV, safe to open in a spreadsheet.

Resource text is untrusted: a cell that starts with `=`, `+`, `-` or `@` (or a tab or
carriage return, which some spreadsheets strip before looking) would be read as a
formula, so such cells get a leading apostrophe (OWASP's CSV injection advice).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Protocol

from exports.preview import PreviewLine

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Writable(Protocol):
    def write(self, text: str) -> object: ...


def write_lines_csv(out: _Writable, lines: Iterable[PreviewLine]) -> None:
    """One row per line: line number, type, id, lastUpdated, then one column per summary
    label, in the order the labels first appear."""
    lines = list(lines)
    labels: list[str] = []
    for line in lines:
        labels += [label for label, _ in line.summary if label not in labels]
    writer = csv.writer(out)
    writer.writerow(["line", "resourceType", "id", "lastUpdated", *labels])
    for line in lines:
        facts = dict(line.summary)
        row = [line.resource_type, line.resource_id, line.last_updated]
        row += [facts.get(label, "") for label in labels]
        writer.writerow([line.number, *map(safe_cell, row)])


def safe_cell(text: str) -> str:
    """`text`, with a leading apostrophe if a spreadsheet would take it for a formula."""
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text
