"""A few readable facts per exported resource, for the NDJSON browser's summary column
and its CSV: who a Patient is, what an Observation measured, and so on, instead of only
type, id and lastUpdated.

Resources are untrusted input: every value comes back as plain text (the template
escapes it, the CSV writer neutralises formulas), and a malformed element is skipped,
never an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bulkops.fhir.names import human_name

Facts = list[tuple[str, str]]


def summarize(resource: dict[str, Any]) -> Facts:
    """(label, text) pairs worth reading for `resource`, empty ones left out."""
    describe = _BY_TYPE.get(str(resource.get("resourceType", "")), _generic)
    return [(label, text) for label, text in describe(resource) if text]


def _patient(resource: dict[str, Any]) -> Facts:
    return [
        ("name", human_name(resource.get("name"))),
        ("gender", _text(resource.get("gender"))),
        ("born", _text(resource.get("birthDate"))),
    ]


def _observation(resource: dict[str, Any]) -> Facts:
    return [
        ("code", _concept(resource.get("code"))),
        ("value", _observation_value(resource)),
        ("subject", _reference(resource.get("subject"))),
        ("effective", _effective(resource)),
    ]


def _condition(resource: dict[str, Any]) -> Facts:
    return [
        ("code", _concept(resource.get("code"))),
        ("status", _concept(resource.get("clinicalStatus"))),
        ("subject", _reference(resource.get("subject"))),
    ]


def _encounter(resource: dict[str, Any]) -> Facts:
    types = resource.get("type")
    return [
        ("type", _concept(types[0]) if isinstance(types, list) and types else ""),
        ("class", _coding(resource.get("class"))),
        ("period", _period(resource.get("period"))),
        ("subject", _reference(resource.get("subject"))),
    ]


def _medication_request(resource: dict[str, Any]) -> Facts:
    medication = _concept(resource.get("medicationCodeableConcept")) or _reference(
        resource.get("medicationReference")
    )
    return [
        ("medication", medication),
        ("status", _text(resource.get("status"))),
        ("subject", _reference(resource.get("subject"))),
    ]


def _generic(resource: dict[str, Any]) -> Facts:
    return [
        ("code", _concept(resource.get("code"))),
        ("subject", _reference(resource.get("subject") or resource.get("patient"))),
        ("status", _text(resource.get("status"))),
    ]


_BY_TYPE: dict[str, Callable[[dict[str, Any]], Facts]] = {
    "Patient": _patient,
    "Observation": _observation,
    "Condition": _condition,
    "Encounter": _encounter,
    "MedicationRequest": _medication_request,
}


def _text(value: Any) -> str:
    return str(value) if isinstance(value, (str, int, float)) and value != "" else ""


def _coding(coding: Any) -> str:
    if not isinstance(coding, dict):
        return ""
    return _text(coding.get("display")) or _text(coding.get("code"))


def _concept(concept: Any) -> str:
    """A CodeableConcept's text, else its first coding's display (or code)."""
    if not isinstance(concept, dict):
        return ""
    if text := _text(concept.get("text")):
        return text
    codings = concept.get("coding")
    for coding in codings if isinstance(codings, list) else []:
        if said := _coding(coding):
            return said
    return ""


def _reference(reference: Any) -> str:
    if not isinstance(reference, dict):
        return ""
    return _text(reference.get("display")) or _text(reference.get("reference"))


def _quantity(quantity: Any) -> str:
    if not isinstance(quantity, dict):
        return ""
    value = _text(quantity.get("value"))
    unit = _text(quantity.get("unit")) or _text(quantity.get("code"))
    return f"{value} {unit}".strip() if value else ""


def _period(period: Any) -> str:
    if not isinstance(period, dict):
        return ""
    start, end = _text(period.get("start")), _text(period.get("end"))
    return f"{start} – {end}" if start and end else start or end


def _observation_value(resource: dict[str, Any]) -> str:
    for key, read in (
        ("valueQuantity", _quantity),
        ("valueCodeableConcept", _concept),
        ("valueString", _text),
        ("valueBoolean", lambda value: _text(str(value).lower()) if value in (True, False) else ""),
        ("valueInteger", _text),
        ("valueDateTime", _text),
    ):
        if key in resource and (said := read(resource[key])):
            return said
    components = resource.get("component")
    if isinstance(components, list):
        parts = [
            f"{_concept(part.get('code'))} {_quantity(part.get('valueQuantity'))}".strip()
            for part in components
            if isinstance(part, dict)
        ]
        return "; ".join(part for part in parts if part)
    return ""


def _effective(resource: dict[str, Any]) -> str:
    return _text(resource.get("effectiveDateTime")) or _period(resource.get("effectivePeriod"))
