"""The FHIR resource store: resources, the Patient compartment index, Group membership.

Rows are written only through fhirstore/writes.py, which keeps the index tables in step
with the resource bodies. The tables keep the names they were created with when the
store was part of the exports app: fhirstore's first migration moved only Django's
record of the models, not a row.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db import models


class ResourceQuerySet(models.QuerySet["Resource"]):
    def live(self) -> ResourceQuerySet:
        """Resources that are not tombstones."""
        return self.filter(deleted=False)

    def stored_types(self) -> list[str]:
        """Types with at least one live resource, for the CapabilityStatement."""
        types = self.live().values_list("resource_type", flat=True).distinct().order_by()
        return sorted(types)


class Resource(models.Model):
    """One FHIR resource, current version only. `body` is the minified JSON exactly as an
    export writes it (meta.versionId and meta.lastUpdated set by the server); a deleted
    resource stays as a tombstone so `_since` exports can report it."""

    id = models.BigAutoField(primary_key=True)  # keyset pagination key for exports
    resource_type = models.CharField(max_length=64)
    resource_id = models.CharField(max_length=64)
    version_id = models.PositiveIntegerField(default=1)
    last_updated = models.DateTimeField()
    deleted = models.BooleanField(default=False)
    body = models.TextField(blank=True)
    # The resources outside the Patient compartment the body refers to, as
    # bulkops.fhir.referenced.stored_references finds them: what a Patient or Group
    # export adds for the lines it writes verbatim, without searching them again. NULL
    # for a row stored before the column, or by a release without it while an upgrade
    # runs: exports search that row's body instead, and `fill_references` fills it.
    refers_to = models.TextField(null=True, blank=True)  # noqa: DJ001 - NULL: not known

    objects = ResourceQuerySet.as_manager()

    class Meta:
        db_table = "exports_resource"
        constraints = [
            models.UniqueConstraint(
                fields=["resource_type", "resource_id"], name="resource_type_id_unique"
            )
        ]
        indexes = [
            models.Index(fields=["resource_type", "last_updated"], name="resource_type_updated"),
            models.Index(fields=["resource_type", "id"], name="resource_type_pk"),
        ]

    def __str__(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"


class CompartmentMembershipQuerySet(models.QuerySet["CompartmentMembership"]):
    def of_active_members(self, group_ids: Iterable[str]) -> CompartmentMembershipQuerySet:
        """Rows in the compartments of the active members of the Groups `group_ids`:
        what a Group export reads, and what a client bound to them may read."""
        return self.filter(
            patient_id__in=GroupMembership.objects.active_in(group_ids).values("patient_id")
        )


class CompartmentMembership(models.Model):
    """Resource R is in patient P's compartment (R4 Patient CompartmentDefinition).
    `resource_type` is copied from the resource so Patient/Group exports filter by type
    without a join."""

    # An index derived from the bodies, written only by fhirstore.writes with the keys of
    # rows it has just written, and never deleted but by the ORM, which cascades: no
    # database constraint. Its check, a row lock on the resource for each index row at
    # commit, was a tenth of a bulk load's time. The unique constraint below, led by
    # the resource, serves lookups by resource: no index of its own.
    resource = models.ForeignKey(
        Resource,
        on_delete=models.CASCADE,
        related_name="compartments",
        db_constraint=False,
        db_index=False,
    )
    resource_type = models.CharField(max_length=64)
    patient_id = models.CharField(max_length=64)

    objects = CompartmentMembershipQuerySet.as_manager()

    class Meta:
        db_table = "exports_compartmentmembership"
        constraints = [
            models.UniqueConstraint(
                fields=["resource", "patient_id"], name="compartment_resource_patient_unique"
            )
        ]
        indexes = [
            # Patient/Group exports page by resource id within each patient's rows.
            models.Index(
                fields=["resource_type", "patient_id", "resource"],
                name="compartment_type_patient_res",
            ),
            # A Patient or Group export's partition reads its id range of the members'
            # rows: with the range in the index, and the type beside it, PostgreSQL reads
            # only that range of each member's rows from the index alone, where the
            # former (patient_id, resource_type) index made it fetch every row of every member
            # from the table for each partition.
            models.Index(
                fields=["patient_id", "resource"],
                include=["resource_type"],
                name="compartment_patient_res",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.resource_id} in Patient/{self.patient_id}"


class GroupMembershipQuerySet(models.QuerySet["GroupMembership"]):
    def active_in(self, group_ids: Iterable[str]) -> GroupMembershipQuerySet:
        """The active members of the Groups `group_ids`.

        The one definition of membership that Group exports and the read rule of
        clients bound to groups (fhirstore/access.py) share, so the two cannot drift.
        Inactive members (`member.inactive`, or a `member.period` that had ended when
        the Group was written) are left out, as spec §5.3 asks of Group exports.
        """
        return self.filter(
            group__resource_type="Group", group__resource_id__in=list(group_ids), inactive=False
        )


class GroupMembership(models.Model):
    """Patient P is a member of Group G (from Group.member.entity). `inactive` members
    (member.inactive, or an ended member.period) are kept but skipped by exports."""

    group = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="memberships")
    patient_id = models.CharField(max_length=64)
    inactive = models.BooleanField(default=False)

    objects = GroupMembershipQuerySet.as_manager()

    class Meta:
        db_table = "exports_groupmembership"
        constraints = [
            models.UniqueConstraint(fields=["group", "patient_id"], name="group_patient_unique")
        ]

    def __str__(self) -> str:
        return f"Patient/{self.patient_id} in {self.group_id}"


class ResourceIdentifier(models.Model):
    """`identifier` (system|value) of shared resources, so loaders can resolve Synthea's
    conditional references (`Practitioner?identifier=...`) with one indexed lookup.
    Only types outside the Patient compartment (plus Patient) are indexed: those are the
    targets of conditional references, and skipping the rest keeps bulk loads fast."""

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="identifiers")
    resource_type = models.CharField(max_length=64)
    system = models.CharField(max_length=255)
    value = models.CharField(max_length=255)

    class Meta:
        db_table = "exports_resourceidentifier"
        indexes = [
            models.Index(fields=["resource_type", "system", "value"], name="identifier_lookup")
        ]

    def __str__(self) -> str:
        return f"{self.resource_type}?identifier={self.system}|{self.value}"


class CohortRequest(models.Model):
    """A client's asynchronous create of a Bulk Cohort Group (fhirstore/cohort_api.py):
    its status URL is addressed by `uuid`; `group_id` is the Group once built."""

    class Status(models.TextChoices):
        ACCEPTED = "accepted"
        COMPLETED = "completed"
        FAILED = "failed"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    client = models.ForeignKey(
        "accounts.BackendClient", on_delete=models.CASCADE, related_name="cohort_requests"
    )
    name = models.CharField(max_length=200)
    filters = models.JSONField(default=list)
    patient_ids = models.JSONField(null=True, blank=True)  # the members the client named
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACCEPTED)
    group_id = models.CharField(max_length=64, blank=True)
    failure_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"cohort request {self.uuid} ({self.status})"
