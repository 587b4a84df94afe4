"""What a backend client may read: the one access policy of the FHIR API.

Every /fhir endpoint that hands out resources asks this module; none applies a rule of
its own. Two rules decide:

- Scopes: the token's read access names the types a client may read
  (`accounts.bearer.require_read`, on the same `ReadAccess` the export's type planning
  uses).
- Group binding: a client bound to groups (`BackendClient.bound_groups`) may run only
  Group exports of those groups, and may read only what such an export gives it: the
  resources in the Patient compartments of the groups' active members (the membership
  the export's partitions read, `GroupMembership.objects.active_in`), plus the bound
  Group resources themselves. Nothing else, not even other Groups.

The members' Devices are indexed with their patient (bulkops/fhir/compartment.py), so a
bound client reads them like compartment data. The other resources a Group export adds
because its data refers to them (Practitioner, Organization, Location, Medication,
PractitionerRole; exports/referenced.py) are found per export, from the lines it
writes, and no index says which of them a group's data refers to: a bound client gets
them in its exports but cannot read them here. If that rule grows, it grows here, in
`visible_resources` and `is_visible`, and nowhere else.

A resource a client may not see answers exactly like one that does not exist (the same
404 and text), so a bound client cannot even learn which ids exist outside its groups.
Jobs and files are isolated by client where they are looked up (`export_views`).
"""

from __future__ import annotations

from accounts.bearer import FhirRequest, require_read
from accounts.models import BackendClient
from bulkops.fhir.outcome import FORBIDDEN, NOT_FOUND, FhirError
from bulkops.fhir.params import GROUP, SYSTEM
from fhirstore.models import CompartmentMembership, GroupMembership, Resource, ResourceQuerySet


def bound_group_ids(client: BackendClient) -> list[str]:
    """The Groups `client` is bound to; none means it is not restricted to groups."""
    return sorted(client.bound_groups.values_list("group_id", flat=True))


def visible_resources(client: BackendClient, resource_type: str) -> ResourceQuerySet:
    """The `resource_type` rows, tombstones included, that `client`'s group binding lets
    it see: every one for an unbound client. Lists and searches filter with this.

    For a bound client it is a semi-join through the compartment index
    (`resource_type, patient_id, resource`) from the members to their rows, never a
    loop over rows: a search costs what the members' data costs, whatever the size of
    the store. Types outside the compartment have no index rows, so none is visible.
    """
    rows = Resource.objects.filter(resource_type=resource_type)
    groups = bound_group_ids(client)
    if not groups:
        return rows
    if resource_type == "Group":
        return rows.filter(resource_id__in=groups)
    compartments = CompartmentMembership.objects.filter(resource_type=resource_type)
    return rows.filter(pk__in=compartments.of_active_members(groups).values("resource_id"))


def is_visible(client: BackendClient, row: Resource) -> bool:
    """Whether `client`'s group binding lets it see `row`: `visible_resources`' rule for
    one row already loaded.

    It probes from the row's own few compartment entries into the membership index,
    so one read costs the same whatever the size of the groups; filtering by
    `visible_resources` instead makes SQLite first list every member's rows of the
    type.
    """
    groups = bound_group_ids(client)
    if not groups:
        return True
    if row.resource_type == "Group":
        return row.resource_id in groups
    patients = row.compartments.values("patient_id")
    return GroupMembership.objects.active_in(groups).filter(patient_id__in=patients).exists()


def readable_resources(request: FhirRequest, resource_type: str) -> ResourceQuerySet:
    """The `resource_type` rows the request's client may read; a 403 naming the missing
    scope when its token does not cover the type."""
    require_read(request, resource_type)
    return visible_resources(request.client, resource_type)


def readable_resource(request: FhirRequest, resource_type: str, resource_id: str) -> Resource:
    """One resource the request's client may read (possibly a tombstone), or the same
    404 whether it does not exist or the client may not see it; a 403 naming the
    missing scope when its token does not cover the type."""
    require_read(request, resource_type)
    row = Resource.objects.filter(resource_type=resource_type, resource_id=resource_id).first()
    if row is None or not is_visible(request.client, row):
        raise FhirError(404, f"{resource_type}/{resource_id} not found", code=NOT_FOUND)
    return row


def check_group_binding(client: BackendClient, *, level: str, group_id: str) -> None:
    """A client bound to groups may export only those groups: a 403 otherwise.

    Refused before the Group is looked up, so the answer is the same whether or not
    `group_id` exists.
    """
    bound = bound_group_ids(client)
    if not bound:
        return
    if level != GROUP:
        raise FhirError(
            403,
            f"This client may export only its groups ({', '.join(bound)}); "
            f"{'system-level' if level == SYSTEM else 'Patient-level'} exports are refused.",
            code=FORBIDDEN,
        )
    if group_id not in bound:
        raise FhirError(403, f"This client may not export Group/{group_id}.", code=FORBIDDEN)
