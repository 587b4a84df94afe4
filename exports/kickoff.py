"""From a kick-off request to an export plan: the checks every surface shares.

The FHIR API (`export_views.kick_off`), the console's launch form and its scope lint
call `plan_export`, so a console preview shows exactly the warnings, refusals and types
the API would produce for the same client and parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from bulkops.fhir.compartment import COMPARTMENT_TYPES
from bulkops.fhir.export_types import TypePlan, plan_export_types
from bulkops.fhir.outcome import NOT_FOUND, FhirError
from bulkops.fhir.params import (
    GROUP,
    SYSTEM,
    V2,
    ExportParameters,
    export_path,
    parse_export_parameters,
)
from bulkops.fhir.referenced import REFERENCED_TYPES
from bulkops.fhir.resource_types import R4_RESOURCE_TYPES
from bulkops.fhir.scopes import ReadAccess, readable_types
from fhirstore.reads import GroupMembership, Resource, check_group_binding, group_exists

# The console exporting on its own behalf reads every type (no scopes, no binding).
CONSOLE_ACCESS = readable_types(["system/*.read"])


def access_for(client: Any) -> ReadAccess:
    """What a token with all of the client's registered scopes could read (None: the
    console itself)."""
    return CONSOLE_ACCESS if client is None else readable_types(client.scopes.split())


def kickoff_path(level: str, group_id: str, version: str = V2) -> str:
    """The FHIR kick-off path of a level, for the manifest's `request` URL."""
    return f"/fhir{export_path(level, group_id, version)}"


@dataclass(frozen=True)
class ExportPlan:
    """Validated parameters and the resource types an export will write."""

    parameters: ExportParameters
    type_plan: TypePlan

    @property
    def warnings(self) -> tuple[str, ...]:
        """The warnings the job keeps and the manifest reports, in that order."""
        return (*self.type_plan.warnings, *self.parameters.warnings)


def plan_export(
    *,
    client: Any,
    level: str,
    group_id: str,
    pairs: Sequence[tuple[str, str]],
    handling: str,
    now: datetime,
    method: str,
    access: ReadAccess,
    base_url: str = "",
    version: str = V2,
) -> ExportPlan:
    """Check a kick-off for `client` with read `access`; raise FhirError like the API.
    `client` None is the console exporting on its own behalf: no group binding.
    `base_url` is this server's FHIR base (for `_typeFilter` references to it);
    `version` the Bulk Data version of the kick-off ($export or $export-v4)."""
    if client is not None:
        check_group_binding(client, level=level, group_id=group_id)
    if level == GROUP and not group_exists(group_id):
        raise FhirError(404, f"Group/{group_id} does not exist.", code=NOT_FOUND)
    parameters = parse_export_parameters(
        pairs,
        level=level,
        handling=handling,
        now=now,
        method=method,
        base_url=base_url,
        clock_skew=timedelta(seconds=settings.BULKOPS_SINCE_CLOCK_SKEW),
        version=version,
    )
    check_patients(parameters, level=level, group_id=group_id)
    type_plan = plan_export_types(
        level=level,
        requested=parameters.types,
        # Patient blocks hold compartments only (exports/patient_blocks.py).
        level_types=R4_RESOURCE_TYPES
        if level == SYSTEM and not parameters.organize_output_by
        else COMPARTMENT_TYPES,
        access=access,
        filtered=[search.resource_type for search in parameters.type_filters],
        referenced=() if level == SYSTEM else REFERENCED_TYPES,
    )
    return ExportPlan(parameters, type_plan)


def check_patients(parameters: ExportParameters, *, level: str, group_id: str) -> None:
    """`patient` must name patients the export would include (spec §1.3): existing ones,
    and for a Group its active members (the membership rule of Group exports,
    `GroupMembership.objects.active_in`), so an inactive member is refused like an
    outsider rather than giving an export that is silently empty.

    Refused under lenient handling too: dropping the patients named wrongly would
    export other patients than the client listed, and dropping all of them would
    export the whole Group or every patient.
    """
    if not parameters.patients:
        return
    included = Resource.objects.filter(
        resource_type="Patient", resource_id__in=parameters.patients, deleted=False
    ).values_list("resource_id", flat=True)
    known = set(included)
    if level == GROUP:
        known &= set(
            GroupMembership.objects.active_in([group_id])
            .filter(patient_id__in=parameters.patients)
            .values_list("patient_id", flat=True)
        )
    missing = [f"Patient/{pid}" for pid in parameters.patients if pid not in known]
    if missing:
        raise FhirError(400, not_included_message(missing, level=level, group_id=group_id))


def not_included_message(references: Sequence[str], *, level: str, group_id: str) -> str:
    """The refusal naming `references`, in the singular for one patient."""
    one = len(references) == 1
    if level == GROUP:
        where = (
            f"{'a member' if one else 'members'} of Group/{group_id}; a Group export "
            "includes only its active members"
        )
    else:
        where = "a known patient" if one else "known patients"
    return f"{', '.join(references)} {'is not' if one else 'are not'} {where}."
