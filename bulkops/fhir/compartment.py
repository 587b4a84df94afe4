"""Which patients' compartments a resource belongs to (R4 Patient CompartmentDefinition).

The rules come from the official definition via the generated table in
`compartment_paths.py` (see docs/derive_compartment_paths.py). Two deliberate choices:

- A Patient is in its own compartment (the compartment's identity is the patient), and in
  the compartment of any patient its `link.other` names.
- Group is listed in the definition (via `member`), but Group rows are never compartment
  data here: a group export must not leak other groups' membership (spec §5.6). Group
  membership is kept in its own table instead; see `group_members`.

Device is not in the R4 Patient compartment although it has `Device.patient` (the patient
a device is affixed to or used by). Patient and Group exports include their patients'
devices all the same (ONC (g)(10) expects a cohort's implantable devices), so the index
also links a Device to the patient its `patient` names (`INDEXED_PATHS`), while
`COMPARTMENT_TYPES` stays the definition's. See bulkops/fhir/referenced.py for the other
resources outside the compartment that those exports add.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from bulkops.fhir.compartment_paths import PATIENT_COMPARTMENT_PATHS
from bulkops.fhir.references import parse_reference
from bulkops.fhir.walk import walk

NOT_COMPARTMENT_DATA = frozenset({"Group"})
COMPARTMENT_TYPES: frozenset[str] = frozenset(PATIENT_COMPARTMENT_PATHS) - NOT_COMPARTMENT_DATA
# The compartment index's rules: the definition's, and a Device's patient.
INDEXED_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    **PATIENT_COMPARTMENT_PATHS,
    "Device": (("patient",),),
}
INDEXED_TYPES: frozenset[str] = frozenset(INDEXED_PATHS) - NOT_COMPARTMENT_DATA


# Each path as walk's steps, built once rather than per resource.
_INDEXED_STEPS: dict[str, tuple[tuple[tuple[str], ...], ...]] = {
    kind: tuple(tuple((name,) for name in path) for path in paths)
    for kind, paths in INDEXED_PATHS.items()
}


@lru_cache(maxsize=4096)
def _patient_of(reference: str) -> str | None:
    """The patient id a reference names, if it names a Patient. Cached: a file's
    resources name the same few patients again and again."""
    key = parse_reference(reference)
    return key.resource_id if key is not None and key.resource_type == "Patient" else None


def _patient_ids(node: dict[str, Any], steps: tuple[tuple[str], ...]) -> Iterator[str]:
    if len(steps) == 1:  # most paths (subject, patient): the element itself, no walk
        found = node.get(steps[0][0])
        values = walk(found, ()) if isinstance(found, list) else (found,)
    else:
        values = walk(node, steps)
    for value in values:
        reference = value.get("reference") if isinstance(value, dict) else None
        if isinstance(reference, str) and (patient_id := _patient_of(reference)) is not None:
            yield patient_id


def compartment_patients(resource: dict[str, Any]) -> set[str]:
    """Ids of the patients in whose compartment `resource` is (empty if none), a Device
    counting as in its patient's (see the module docstring).

    References must already be `Patient/x` or absolute; loaders rewrite urn:uuid ones first.
    """
    resource_type = resource.get("resourceType")
    if resource_type not in INDEXED_TYPES:
        return set()
    patients = {
        patient_id
        for steps in _INDEXED_STEPS[resource_type]
        for patient_id in _patient_ids(resource, steps)
    }
    if resource_type == "Patient" and isinstance(resource.get("id"), str):
        patients.add(resource["id"])
    return patients


@dataclass(frozen=True)
class GroupMember:
    patient_id: str
    inactive: bool


def group_members(group: dict[str, Any], now: datetime) -> list[GroupMember]:
    """The patients a Group names in `member.entity`, once each.

    A member is inactive when it says `inactive: true` or its `period.end` has passed
    (spec §5.3: group exports skip them). Non-Patient entities are ignored.
    """
    members: dict[str, GroupMember] = {}
    for member in group.get("member") or []:
        if not isinstance(member, dict):
            continue
        entity = member.get("entity") or {}
        key = parse_reference(entity.get("reference", "")) if isinstance(entity, dict) else None
        if key is None or key.resource_type != "Patient":
            continue
        inactive = member.get("inactive") is True or _period_ended(member.get("period"), now)
        previous = members.get(key.resource_id)
        # A patient listed twice is active if any of its entries is.
        members[key.resource_id] = GroupMember(
            key.resource_id, inactive and (previous is None or previous.inactive)
        )
    return list(members.values())


def _period_ended(period: Any, now: datetime) -> bool:
    if not isinstance(period, dict) or not isinstance(period.get("end"), str):
        return False
    end = period["end"]
    try:
        ended_at = datetime.fromisoformat(end if "T" in end else f"{end}T23:59:59+00:00")
    except ValueError:
        return False
    if ended_at.tzinfo is None:
        ended_at = ended_at.replace(tzinfo=now.tzinfo)
    return ended_at < now
