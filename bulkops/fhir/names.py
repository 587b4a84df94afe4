"""A person's name as people read it, from FHIR HumanName elements."""

from __future__ import annotations

from typing import Any


def human_name(names: Any) -> str:
    """The first usable HumanName of a `name` element: its `text`, else given names and
    family; "" for anything malformed."""
    if not isinstance(names, list):
        return ""
    for name in names:
        if not isinstance(name, dict):
            continue
        if isinstance(text := name.get("text"), str) and text:
            return text
        given = name.get("given") if isinstance(name.get("given"), list) else []
        parts = [part for part in [*given, name.get("family")] if isinstance(part, str) and part]
        if parts:
            return " ".join(parts)
    return ""
