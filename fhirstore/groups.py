"""Operators' Group management: the service the console and the operator API call.

A Group is stored like any other resource (so Group export and /fhir/Group see it); the
store keeps GroupMembership in step with `member`, and every change is audited.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.audit import record_event
from accounts.models import AuditEvent
from bulkops.errors import InvalidRequest
from bulkops.fhir.names import human_name
from bulkops.fhir.references import is_valid_id
from fhirstore.models import Resource
from fhirstore.writes import delete_resource, put_resource


class GroupError(InvalidRequest):
    """An operator's Group change that cannot be made; nothing was changed."""


def group_body(*, group_id: str, name: str, patient_ids: list[str]) -> dict[str, Any]:
    """An R4 person Group naming each patient once, in the order given."""
    members = list(dict.fromkeys(patient_ids))
    return {
        "resourceType": "Group",
        "id": group_id,
        "type": "person",
        "actual": True,
        "name": name,
        "quantity": len(members),
        "member": [{"entity": {"reference": f"Patient/{p}"}} for p in members],
    }


def _check(group_id: str, name: str, patient_ids: list[str]) -> None:
    if not is_valid_id(group_id):
        raise GroupError(f"invalid group id {group_id!r}")
    if not name.strip():
        raise GroupError("a group needs a name")
    bad = [p for p in patient_ids if not is_valid_id(p)]
    if bad:
        raise GroupError(f"invalid patient ids: {', '.join(map(repr, bad))}")
    known = set(
        Resource.objects.live()
        .filter(resource_type="Patient", resource_id__in=patient_ids)
        .values_list("resource_id", flat=True)
    )
    unknown = sorted(set(patient_ids) - known)
    if unknown:
        raise GroupError(f"no such patients: {', '.join(unknown)}")


def upsert_group(
    *,
    group_id: str | None,
    name: str,
    patient_ids: list[str],
    actor: str,
    request: HttpRequest | None = None,
) -> Resource:
    """Create (group_id None: a new uuid) or replace a Group of existing patients."""
    group_id = group_id or str(uuid.uuid4())
    _check(group_id, name, patient_ids)
    with transaction.atomic():
        group = put_resource(
            resource_type="Group",
            resource_id=group_id,
            body=group_body(group_id=group_id, name=name, patient_ids=patient_ids),
            now=timezone.now(),
        )
        record_event(
            actor_type=AuditEvent.ActorType.OPERATOR,
            actor=actor,
            action="group.upserted",
            request=request,
            details={"group": group_id, "name": name, "members": len(set(patient_ids))},
        )
    return group


def delete_group(*, group_id: str, actor: str, request: HttpRequest | None = None) -> None:
    """Tombstone a Group; its memberships go with it."""
    if not is_valid_id(group_id):
        raise GroupError(f"no such group: {group_id!r}")
    with transaction.atomic():
        if not delete_resource(resource_type="Group", resource_id=group_id, now=timezone.now()):
            raise GroupError(f"no such group: {group_id}")
        record_event(
            actor_type=AuditEvent.ActorType.OPERATOR,
            actor=actor,
            action="group.deleted",
            request=request,
            details={"group": group_id},
        )


PATIENT_MATCHES = 20


def find_patients(query: str) -> list[tuple[str, str]]:
    """(id, name) of up to PATIENT_MATCHES live Patients whose id starts with `query` or
    whose name contains it, ids first: the Data page's search when editing a Group."""
    query = query.strip()
    if not query:
        return []
    patients = Resource.objects.live().filter(resource_type="Patient")
    by_id = patients.filter(resource_id__istartswith=query).order_by("resource_id")
    found = {row.resource_id: row for row in by_id[:PATIENT_MATCHES]}
    # The body holds names as JSON text: a containment test there finds candidates,
    # and only those whose name itself holds the text are kept.
    candidates = patients.filter(body__icontains=query).order_by("resource_id")
    for row in candidates.exclude(resource_id__in=list(found))[: PATIENT_MATCHES * 5]:
        if len(found) >= PATIENT_MATCHES:
            break
        if query.casefold() in _patient_name(row).casefold():
            found[row.resource_id] = row
    return [(patient_id, _patient_name(row)) for patient_id, row in found.items()]


def _patient_name(row: Resource) -> str:
    try:
        body = json.loads(row.body) if row.body else {}
    except ValueError:
        return ""
    return human_name(body.get("name")) if isinstance(body, dict) else ""
