"""Bulk Cohort Groups in the store (bulkops/fhir/cohort.py): who matches the member
filters, and saving or refreshing the Group, audited like every Group change."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from django.db import transaction

from accounts.audit import record_event
from accounts.models import AuditEvent
from bulkops.fhir.cohort import CohortError, cohort_body, member_filters_of, parse_member_filters
from bulkops.fhir.references import is_valid_id
from bulkops.fhir.search import TypeSearch
from fhirstore.models import CompartmentMembership, Resource
from fhirstore.search import candidate_rows, matches
from fhirstore.writes import put_resource


def matching_patients(search: TypeSearch) -> set[str]:
    """The patients one filter selects: the Patients it matches, or those in whose
    compartment a resource it matches is."""
    rows = candidate_rows(Resource.objects.filter(resource_type=search.resource_type), search)
    found = matches(rows, search, after=0)
    if search.resource_type == "Patient":
        return {match.resource_id for match in found}
    pks = [match.pk for match in found]
    patients: set[str] = set()
    for start in range(0, len(pks), 500):
        index = CompartmentMembership.objects.filter(resource_id__in=pks[start : start + 500])
        patients.update(index.values_list("patient_id", flat=True))
    live = Resource.objects.live().filter(resource_type="Patient", resource_id__in=patients)
    return set(live.values_list("resource_id", flat=True))


def cohort_members(searches: list[TypeSearch]) -> list[str]:
    """The patients every filter selects (filters are AND-ed), sorted."""
    members: set[str] | None = None
    for search in searches:
        selected = matching_patients(search)
        members = selected if members is None else members & selected
        if not members:
            break
    return sorted(members or ())


def save_cohort(
    *,
    group_id: str | None,
    name: str,
    filters: list[str],
    actor: str,
    now: datetime,
    actor_type: str = AuditEvent.ActorType.OPERATOR,
    within: list[str] | None = None,
) -> Resource:
    """Create (group_id None: a new uuid) or replace a cohort Group, its members the
    patients matching `filters` now (only among `within`, when given). Raises
    CohortError and changes nothing if a filter cannot be applied."""
    group_id = group_id or str(uuid.uuid4())
    if not is_valid_id(group_id):
        raise CohortError(f"{group_id!r} is not a FHIR id.")
    if not name.strip():
        raise CohortError("A cohort needs a name.")
    texts = [text.strip() for text in filters if text.strip()]
    members = cohort_members(parse_member_filters(texts, now=now))
    if within is not None:
        members = [patient for patient in members if patient in set(within)]
    body = cohort_body(
        group_id=group_id, name=name, filters=texts, patient_ids=members, refreshed=now
    )
    with transaction.atomic():
        group = put_resource(resource_type="Group", resource_id=group_id, body=body, now=now)
        record_event(
            actor_type=actor_type,
            actor=actor,
            action="group.cohort_saved",
            details={"group": group_id, "name": name, "filters": texts, "members": len(members)},
        )
    return group


def refresh_cohort(*, group_id: str, actor: str, now: datetime) -> Resource:
    """Recompute a stored cohort Group's members from its own filters."""
    row = Resource.objects.live().filter(resource_type="Group", resource_id=group_id).first()
    body = json.loads(row.body) if row is not None else {}
    filters = member_filters_of(body)
    if not filters:
        raise CohortError(f"Group/{group_id} is not a cohort Group.")
    return save_cohort(
        group_id=group_id, name=body.get("name", ""), filters=filters, actor=actor, now=now
    )
