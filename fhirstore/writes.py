"""Writing FHIR resources: the one path that keeps bodies, versions and indexes in step.

Every loader (load_fhir, generate_fhir, later $import) and every service that changes a
resource calls `write_resources` (or its one-resource wrappers). It is idempotent: writing
the same content again changes nothing, so reloading a file only bumps the versions of
resources whose content changed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import transaction

from bulkops.fhir.compartment import COMPARTMENT_TYPES, compartment_patients, group_members
from bulkops.fhir.references import is_valid_id
from bulkops.fhir.resource_types import is_resource_type
from fhirstore.models import CompartmentMembership, GroupMembership, Resource, ResourceIdentifier

# Conditional references point at shared resources (Practitioner, Organization...), never
# at clinical data, so only types outside the compartment keep an identifier index.
IDENTIFIER_TYPES_EXCLUDED = COMPARTMENT_TYPES
SERVER_META = ("versionId", "lastUpdated")
BATCH_SIZE = 1000


class StoreError(ValueError):
    """A write the store refuses (bad type, id or body); nothing is written."""


@dataclass(frozen=True)
class ResourceWrite:
    """Put `body` as `resource_type/resource_id`, or delete it when `body` is None."""

    resource_type: str
    resource_id: str
    body: dict[str, Any] | None


@dataclass
class WriteResult:
    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)
    deleted: Counter[str] = field(default_factory=Counter)

    def add(self, other: WriteResult) -> None:
        for name in ("created", "updated", "unchanged", "deleted"):
            getattr(self, name).update(getattr(other, name))

    def totals(self) -> dict[str, int]:
        """Resources per outcome, all types together. Templates read these: a Counter's
        `.total` there is a key lookup, which answers 0 for every Counter."""
        return {
            name: getattr(self, name).total()
            for name in ("created", "updated", "unchanged", "deleted")
        }


def fhir_instant(moment: datetime) -> str:
    """FHIR `instant` in UTC with milliseconds, e.g. 2024-05-01T12:00:00.000Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def minified(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _content(body: dict[str, Any]) -> dict[str, Any]:
    """The body without server-set meta: what decides whether a write changes anything."""
    meta = {k: v for k, v in (body.get("meta") or {}).items() if k not in SERVER_META}
    content = {k: v for k, v in body.items() if k != "meta"}
    if meta:
        content["meta"] = meta
    return content


def _stamped(content: dict[str, Any], version: int, now: datetime) -> dict[str, Any]:
    meta = {**content.get("meta", {}), "versionId": str(version), "lastUpdated": fhir_instant(now)}
    rest = {k: v for k, v in content.items() if k not in ("resourceType", "id", "meta")}
    return {"resourceType": content["resourceType"], "id": content["id"], "meta": meta, **rest}


def validate_write(write: ResourceWrite) -> None:
    """Raise StoreError if `write` can never be stored (checked before any row is touched)."""
    if not is_resource_type(write.resource_type):
        raise StoreError(f"unknown resource type {write.resource_type!r}")
    if not is_valid_id(write.resource_id):
        raise StoreError(f"invalid id {write.resource_id!r} for {write.resource_type}")
    if write.body is not None:
        if write.body.get("resourceType") != write.resource_type:
            raise StoreError(f"body is not a {write.resource_type}")
        if write.body.get("id", write.resource_id) != write.resource_id:
            raise StoreError(f"body id does not match {write.resource_type}/{write.resource_id}")


def write_resources(writes: Iterable[ResourceWrite], *, now: datetime) -> WriteResult:
    """Apply puts and deletes in batches, in one transaction. Raises StoreError (and writes
    nothing) if any write is invalid."""
    result = WriteResult()
    with transaction.atomic():
        batch: list[ResourceWrite] = []
        for write in writes:
            batch.append(write)
            if len(batch) >= BATCH_SIZE:
                result.add(_write_batch(batch, now))
                batch = []
        if batch:
            result.add(_write_batch(batch, now))
    return result


def _existing(writes: Sequence[ResourceWrite]) -> dict[tuple[str, str], Resource]:
    ids_by_type: dict[str, list[str]] = {}
    for write in writes:
        ids_by_type.setdefault(write.resource_type, []).append(write.resource_id)
    found: dict[tuple[str, str], Resource] = {}
    for resource_type, ids in ids_by_type.items():
        for row in Resource.objects.filter(resource_type=resource_type, resource_id__in=ids):
            found[(row.resource_type, row.resource_id)] = row
    return found


def _write_batch(writes: Sequence[ResourceWrite], now: datetime) -> WriteResult:
    for write in writes:
        validate_write(write)
    # The last write of a key in a batch wins, as if they had been applied in order.
    latest = {(w.resource_type, w.resource_id): w for w in writes}
    existing = _existing(list(latest.values()))
    result = WriteResult()
    new_rows: list[Resource] = []
    changed_rows: list[Resource] = []
    for key, write in latest.items():
        row = existing.get(key)
        if write.body is None:
            if row is None or row.deleted:
                continue  # nothing live to delete
            row.version_id += 1
            row.deleted, row.body, row.last_updated = True, "", now
            changed_rows.append(row)
            result.deleted[write.resource_type] += 1
            continue
        content = _content({**write.body, "id": write.resource_id})
        if row is not None and not row.deleted and _content(json.loads(row.body)) == content:
            result.unchanged[write.resource_type] += 1
            continue
        version = 1 if row is None else row.version_id + 1
        body = minified(_stamped(content, version, now))
        if row is None:
            new_rows.append(
                Resource(
                    resource_type=write.resource_type,
                    resource_id=write.resource_id,
                    version_id=version,
                    last_updated=now,
                    body=body,
                )
            )
            result.created[write.resource_type] += 1
        else:
            row.version_id, row.deleted, row.body, row.last_updated = version, False, body, now
            changed_rows.append(row)
            result.updated[write.resource_type] += 1
    Resource.objects.bulk_create(new_rows, batch_size=BATCH_SIZE)
    Resource.objects.bulk_update(
        changed_rows, ["version_id", "deleted", "body", "last_updated"], batch_size=BATCH_SIZE
    )
    _reindex(new_rows, changed_rows, latest, now)
    return result


def _reindex(
    new_rows: list[Resource],
    changed_rows: list[Resource],
    writes: dict[tuple[str, str], ResourceWrite],
    now: datetime,
) -> None:
    """Replace the compartment, group and identifier rows of every written resource.

    A tombstone keeps its compartment rows: a Patient or Group `_since` export must
    still find the deletion to list it in deleted[] (spec §2.3).
    """
    if changed_rows:
        pks = [row.pk for row in changed_rows]
        rewritten = [
            row.pk
            for row in changed_rows
            if writes[(row.resource_type, row.resource_id)].body is not None
        ]
        CompartmentMembership.objects.filter(resource_id__in=rewritten).delete()
        GroupMembership.objects.filter(group_id__in=pks).delete()
        ResourceIdentifier.objects.filter(resource_id__in=pks).delete()
    compartments: list[CompartmentMembership] = []
    memberships: list[GroupMembership] = []
    identifiers: list[ResourceIdentifier] = []
    for row in (*new_rows, *changed_rows):
        body = writes[(row.resource_type, row.resource_id)].body
        if body is None:
            continue
        body = {**body, "id": row.resource_id}
        compartments += [
            CompartmentMembership(resource=row, resource_type=row.resource_type, patient_id=p)
            for p in compartment_patients(body)
        ]
        if row.resource_type == "Group":
            memberships += [
                GroupMembership(group=row, patient_id=m.patient_id, inactive=m.inactive)
                for m in group_members(body, now)
            ]
        if row.resource_type not in IDENTIFIER_TYPES_EXCLUDED:
            identifiers += _identifier_rows(row, body)
    CompartmentMembership.objects.bulk_create(compartments, batch_size=BATCH_SIZE)
    GroupMembership.objects.bulk_create(memberships, batch_size=BATCH_SIZE)
    ResourceIdentifier.objects.bulk_create(identifiers, batch_size=BATCH_SIZE)


def _identifier_rows(row: Resource, body: dict[str, Any]) -> list[ResourceIdentifier]:
    rows = []
    for identifier in body.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("system") and identifier.get("value"):
            rows.append(
                ResourceIdentifier(
                    resource=row,
                    resource_type=row.resource_type,
                    system=str(identifier["system"])[:255],
                    value=str(identifier["value"])[:255],
                )
            )
    return rows


def find_by_identifier(resource_type: str, system: str, value: str) -> str | None:
    """The id of the live `resource_type` with identifier system|value, if exactly one."""
    ids = list(
        ResourceIdentifier.objects.filter(
            resource_type=resource_type, system=system, value=value, resource__deleted=False
        ).values_list("resource__resource_id", flat=True)[:2]
    )
    return ids[0] if len(ids) == 1 else None


def put_resource(
    *, resource_type: str, resource_id: str, body: dict[str, Any], now: datetime
) -> Resource:
    """Create or update one resource (no-op when the content is unchanged)."""
    write_resources([ResourceWrite(resource_type, resource_id, body)], now=now)
    return Resource.objects.get(resource_type=resource_type, resource_id=resource_id)


def delete_resource(*, resource_type: str, resource_id: str, now: datetime) -> bool:
    """Tombstone one resource; False when there was nothing live to delete."""
    result = write_resources([ResourceWrite(resource_type, resource_id, None)], now=now)
    return bool(result.deleted)
