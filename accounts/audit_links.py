"""What the audit trail shows beside entries other apps wrote (a file read: a link to the
page that was read, and which lines), without accounts importing those apps: each
registers a describer when Django starts, in its AppConfig.ready."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# An entry's details -> the extra columns it fills ("file_url", "file_part"), or None
# when the entry is not one of the describer's.
Describer = Callable[[dict[str, Any]], dict[str, str] | None]

_describers: list[Describer] = []


def register(describer: Describer) -> None:
    if describer not in _describers:
        _describers.append(describer)


def extras(details: dict[str, Any]) -> dict[str, str]:
    """The first registered describer's columns for these details, or none."""
    for describer in _describers:
        if (found := describer(details)) is not None:
            return found
    return {}
