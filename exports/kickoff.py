"""From a kick-off request to an export plan: the checks every surface shares.

The FHIR API (`export_views.kick_off`), the console's launch form and its scope lint
call `plan_export`, so a console preview shows exactly the warnings, refusals and types
the API would produce for the same client and parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bulkops.fhir.compartment import COMPARTMENT_TYPES
from bulkops.fhir.export_types import TypePlan, plan_export_types
from bulkops.fhir.outcome import NOT_FOUND, FhirError
from bulkops.fhir.params import GROUP, SYSTEM, ExportParameters, parse_export_parameters
from bulkops.fhir.referenced import REFERENCED_TYPES
from bulkops.fhir.resource_types import R4_RESOURCE_TYPES
from bulkops.fhir.scopes import ReadAccess
from fhirstore.reads import GroupMembership, Resource, check_group_binding, group_exists


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
) -> ExportPlan:
    """Check a kick-off for `client` with read `access`; raise FhirError like the API.
    `client` None is the console exporting on its own behalf: no group binding.
    `base_url` is this server's FHIR base (for `_typeFilter` references to it)."""
    if client is not None:
        check_group_binding(client, level=level, group_id=group_id)
    if level == GROUP and not group_exists(group_id):
        raise FhirError(404, f"Group/{group_id} does not exist.", code=NOT_FOUND)
    parameters = parse_export_parameters(
        pairs, level=level, handling=handling, now=now, method=method, base_url=base_url
    )
    check_patients(parameters, level=level, group_id=group_id)
    type_plan = plan_export_types(
        level=level,
        requested=parameters.types,
        level_types=R4_RESOURCE_TYPES if level == SYSTEM else COMPARTMENT_TYPES,
        access=access,
        filtered=[search.resource_type for search in parameters.type_filters],
        referenced=() if level == SYSTEM else REFERENCED_TYPES,
    )
    return ExportPlan(parameters, type_plan)


def check_patients(parameters: ExportParameters, *, level: str, group_id: str) -> None:
    """`patient` must name existing patients (and, for a Group, its members): spec §1.3."""
    if not parameters.patients:
        return
    known = set(
        Resource.objects.filter(
            resource_type="Patient", resource_id__in=parameters.patients, deleted=False
        ).values_list("resource_id", flat=True)
    )
    if level == GROUP:
        known &= set(
            GroupMembership.objects.filter(
                group__resource_type="Group",
                group__resource_id=group_id,
                patient_id__in=parameters.patients,
            ).values_list("patient_id", flat=True)
        )
    missing = [f"Patient/{pid}" for pid in parameters.patients if pid not in known]
    if missing:
        where = f"members of Group/{group_id}" if level == GROUP else "known patients"
        raise FhirError(400, f"{', '.join(missing)} are not {where}.")
