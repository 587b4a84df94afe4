"""Bulk Cohort Groups (v4 digest §5): a Group whose members are the patients that match
its `member-filter` criteria, in the IG's `bulk-cohort-group` profile.

Each filter is one single-type FHIR search (`application/x-fhir-query`), parsed by the
search engine that evaluates `_typeFilter` (bulkops/fhir/search/), so a filter bulkops
cannot evaluate is refused with the engine's reason, never half applied. A filter on
Patient keeps the patients it matches; a filter on another type of the Patient
compartment keeps the patients in whose compartment a matching resource is. Several
filters are AND-ed. Membership is computed when the Group is saved or refreshed, and
`members-refreshed` (never later than `Group.date`) says when.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bulkops.fhir.compartment import COMPARTMENT_TYPES
from bulkops.fhir.manifest import format_instant
from bulkops.fhir.references import is_valid_id
from bulkops.fhir.search import TypeSearch, UnsupportedSearch, parse_type_search

BULKDATA = "http://hl7.org/fhir/uv/bulkdata"
COHORT_PROFILE = f"{BULKDATA}/StructureDefinition/bulk-cohort-group"
MEMBER_FILTER = f"{BULKDATA}/StructureDefinition/member-filter"
MEMBERS_REFRESHED = f"{BULKDATA}/StructureDefinition/members-refreshed"
FHIR_QUERY = "application/x-fhir-query"
MAX_FILTERS = 20


class CohortError(ValueError):
    """A cohort that cannot be built; the message names the filter and why."""


def parse_member_filters(
    texts: Iterable[str], *, now: datetime, base_url: str = ""
) -> list[TypeSearch]:
    """Each non-empty line a filter; at least one, on Patient or a compartment type."""
    filters = [text.strip() for text in texts if text.strip()]
    if not filters:
        raise CohortError("A cohort needs at least one member filter, e.g. Patient?gender=female.")
    if len(filters) > MAX_FILTERS:
        raise CohortError(f"A cohort takes at most {MAX_FILTERS} member filters.")
    searches = []
    for text in filters:
        try:
            search = parse_type_search(text, now=now, base_url=base_url)
        except UnsupportedSearch as error:
            raise CohortError(f"The member filter {text!r} cannot be applied: {error}.") from None
        if search.resource_type not in COMPARTMENT_TYPES:
            raise CohortError(
                f"The member filter {text!r} cannot select patients: {search.resource_type} "
                "is not in the Patient compartment."
            )
        searches.append(search)
    return searches


def cohort_body(
    *,
    group_id: str,
    name: str,
    filters: Sequence[str],
    patient_ids: Sequence[str],
    refreshed: datetime,
) -> dict[str, Any]:
    """The Group in the `bulk-cohort-group` profile: `actual` iff it has members."""
    members = sorted(set(patient_ids))
    body: dict[str, Any] = {
        "resourceType": "Group",
        "id": group_id,
        "meta": {"profile": [COHORT_PROFILE]},
        "extension": [{"url": MEMBERS_REFRESHED, "valueDateTime": format_instant(refreshed)}],
        "modifierExtension": [
            {
                "url": MEMBER_FILTER,
                "valueExpression": {"language": FHIR_QUERY, "expression": text},
            }
            for text in filters
        ],
        "type": "person",
        "actual": bool(members),
        "name": name,
        "date": format_instant(refreshed),
        "quantity": len(members),
    }
    if members:
        body["member"] = [{"entity": {"reference": f"Patient/{p}"}} for p in members]
    return body


def member_filters_of(body: dict[str, Any]) -> list[str]:
    """The filter expressions of a stored cohort Group (empty for any other Group)."""
    return [
        extension["valueExpression"]["expression"]
        for extension in body.get("modifierExtension", [])
        if extension.get("url") == MEMBER_FILTER
    ]


@dataclass(frozen=True)
class CohortCreate:
    """A client's `bulk-cohort-group` create, checked: its filters parsed, and the
    patients it names (None: every accessible patient)."""

    name: str
    filters: tuple[str, ...]
    searches: tuple[TypeSearch, ...]
    patient_ids: tuple[str, ...] | None


def parse_cohort_create(body: Any, *, now: datetime, base_url: str = "") -> CohortCreate:
    """Check a Group create against the profile (v4 digest §5): `type` person (the only
    one bulkops supports), `name`, no `characteristic`, one or more `member-filter`
    FHIR queries bulkops can evaluate (else CohortError: SHALL reject), and members, if
    any, Patients."""
    if not isinstance(body, dict) or body.get("resourceType") != "Group":
        raise CohortError("The body must be a FHIR Group resource.")
    if body.get("type") != "person":
        raise CohortError("bulkops builds cohorts of patients only: Group.type must be person.")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise CohortError("A cohort Group needs a name.")
    if body.get("characteristic"):
        raise CohortError("A cohort Group has member-filter extensions, not characteristic.")
    expressions = []
    for extension in body.get("modifierExtension") or []:
        if not isinstance(extension, dict) or extension.get("url") != MEMBER_FILTER:
            raise CohortError(
                f"bulkops does not understand the modifierExtension {extension.get('url')!r}."
                if isinstance(extension, dict)
                else "modifierExtension must hold objects."
            )
        expression = extension.get("valueExpression") or {}
        if expression.get("language") != FHIR_QUERY:
            raise CohortError(f"member-filter expressions must be in {FHIR_QUERY}.")
        if not isinstance(expression.get("expression"), str):
            raise CohortError("A member-filter has no expression.")
        expressions.append(expression["expression"].strip())
    searches = parse_member_filters(expressions, now=now, base_url=base_url)
    return CohortCreate(name.strip(), tuple(expressions), tuple(searches), _members(body))


def _members(body: dict[str, Any]) -> tuple[str, ...] | None:
    members = body.get("member")
    if not members:
        return None
    ids = []
    for member in members:
        reference = str((member.get("entity") or {}).get("reference", ""))
        resource_type, _, resource_id = reference.partition("/")
        if resource_type != "Patient" or not is_valid_id(resource_id):
            raise CohortError(f"Cohort members must be Patient references, not {reference!r}.")
        ids.append(resource_id)
    return tuple(dict.fromkeys(ids))
