"""`_format` values the FHIR read surface accepts (R4 http.html#mime-type): JSON only."""

from __future__ import annotations

JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json"})


def is_json_format(value: str | None) -> bool:
    """True when `_format` is absent or asks for JSON (parameters after `;` ignored)."""
    return value is None or value.split(";")[0].strip().lower() in JSON_FORMATS
