"""Writing FHIR resources: the one path that keeps bodies, versions and indexes in step.

Every loader (load_fhir, generate_fhir, later $import) and every service that changes a
resource calls `write_resources` (or its one-resource wrappers). It is idempotent: writing
the same content again changes nothing, so reloading a file only bumps the versions of
resources whose content changed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from django.db import transaction

from bulkops.fhir import resource_json
from bulkops.fhir.compartment import COMPARTMENT_TYPES, compartment_patients, group_members
from bulkops.fhir.referenced import stored_references
from bulkops.fhir.references import ConditionalReference, is_valid_id
from bulkops.fhir.resource_types import is_resource_type
from fhirstore.bulk_rows import (
    copy_new,
    count_own_rows,
    insert_absent,
    insert_rows,
    insertable_absent,
    update_rows,
)
from fhirstore.models import CompartmentMembership, GroupMembership, Resource, ResourceIdentifier

# Conditional references point at shared resources (Practitioner, Organization...), never
# at clinical data, so only types outside the compartment keep an identifier index.
IDENTIFIER_TYPES_EXCLUDED = COMPARTMENT_TYPES
SERVER_META = ("versionId", "lastUpdated")
BATCH_SIZE = 1000
RESOURCE_KEY = ("resource_type", "resource_id")
RESOURCE_COLUMNS = (
    "resource_type",
    "resource_id",
    "version_id",
    "last_updated",
    "deleted",
    "body",
    "refers_to",
)


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
    """Per type, what the writes did; `skipped` counts the Bundle entries a loader left
    out because their ifNoneExist matched a stored resource."""

    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)
    deleted: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    COLUMNS = ("created", "updated", "unchanged", "deleted", "skipped")

    def add(self, other: WriteResult) -> None:
        for name in self.COLUMNS:
            getattr(self, name).update(getattr(other, name))

    def totals(self) -> dict[str, int]:
        """Each column summed over types (templates cannot call Counter.total: a Counter
        answers the lookup `total` with 0)."""
        return {name: getattr(self, name).total() for name in self.COLUMNS}


@lru_cache(maxsize=16)  # a load stamps thousands of resources with one `now`
def fhir_instant(moment: datetime) -> str:
    """FHIR `instant` in UTC with milliseconds, e.g. 2024-05-01T12:00:00.000Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def minified(body: dict[str, Any]) -> str:
    """The stored text: minified, every number as its source wrote it."""
    return resource_json.dumps(body)


def _same_content(row: Resource, content: dict[str, Any]) -> bool:
    """Whether the live row already holds `content`: the text it would store at the row's
    version and time is the row's text. Numbers count as written (11208.90 is not
    11208.9: FHIR decimals' precision counts), and no stored body is parsed; a source
    whose keys move gets a new version."""
    return minified(_stamped(content, row.version_id, row.last_updated)) == row.body


def _content(write: ResourceWrite) -> dict[str, Any]:
    """The put's body with its id and without server-set meta: what decides whether a
    write changes anything."""
    content = {**write.body, "id": write.resource_id}
    meta = {k: v for k, v in (content.pop("meta", None) or {}).items() if k not in SERVER_META}
    if meta:
        content["meta"] = meta
    return content


# The stored text's first keys. Unpacking the content after them keeps their places and
# takes its values, the rest following in the source's order.
_HEAD = dict.fromkeys(("resourceType", "id", "meta"))


def _stamped(content: dict[str, Any], version: int, now: datetime) -> dict[str, Any]:
    meta = {**content.get("meta", {}), "versionId": str(version), "lastUpdated": fhir_instant(now)}
    return {**_HEAD, **content, "meta": meta}


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
        if not isinstance(write.body.get("meta") or {}, dict):
            raise StoreError(f"meta of {write.resource_type}/{write.resource_id} is not an object")


def write_resources(
    writes: Iterable[ResourceWrite], *, now: datetime, new_keys: list[str] | None = None
) -> WriteResult:
    """Apply puts and deletes in batches, in one transaction. Raises StoreError (and writes
    nothing) if any write is invalid. `new_keys`, when given, gains the "Type/id" of each
    put of a key no live resource stood for (created, or written over a tombstone)."""
    result = WriteResult()
    run = _WriteRun(now, new_keys)
    with transaction.atomic():
        batch: list[ResourceWrite] = []
        for write in writes:
            batch.append(write)
            if len(batch) >= BATCH_SIZE:
                result.add(_write_batch(batch, run))
                batch = []
        if batch:
            result.add(_write_batch(batch, run))
        count_own_rows(Resource, result.created.total())
    return result


def _existing(writes: Iterable[ResourceWrite]) -> dict[tuple[str, str], Resource]:
    """The stored rows of these writes' keys, in one query whatever the number of types
    (the unique index answers both lists; a row of another key is left out here)."""
    keys = {(w.resource_type, w.resource_id) for w in writes}
    if not keys:
        return {}
    rows = Resource.objects.filter(
        resource_type__in={kind for kind, _ in keys}, resource_id__in={rid for _, rid in keys}
    )
    return {key: row for row in rows if (key := (row.resource_type, row.resource_id)) in keys}


@dataclass
class _WriteRun:
    """One call of write_resources. `straight` says whether its batches' new keys may be
    copied straight into the table (bulk_rows.copy_new): true until a batch finds one of
    its keys stored already, after which each batch lets the unique index sort new keys
    from stored ones (bulk_rows.insert_absent)."""

    now: datetime
    new_keys: list[str] | None
    straight: bool = True


def _write_batch(writes: Sequence[ResourceWrite], run: _WriteRun) -> WriteResult:
    now, new_keys = run.now, run.new_keys
    for write in writes:
        validate_write(write)
    # The last write of a key in a batch wins, as if they had been applied in order.
    latest = {(w.resource_type, w.resource_id): w for w in writes}
    contents = {key: _content(write) for key, write in latest.items() if write.body is not None}
    inserted = _insert_absent(contents, run)
    result = WriteResult(created=Counter(kind for kind, _ in inserted))
    # What is left, with the rows it finds: updates, deletes, unchanged content.
    pending = {key: write for key, write in latest.items() if key not in inserted}
    existing = _existing(pending.values())
    new_rows: list[tuple[ResourceWrite, str]] = []  # each with the text to store
    changed_rows: list[Resource] = []
    revived: list[Resource] = []  # tombstones written over
    for key, write in pending.items():
        row = existing.get(key)
        if write.body is None:
            if row is None or row.deleted:
                continue  # nothing live to delete
            row.version_id += 1
            row.deleted, row.body, row.refers_to, row.last_updated = True, "", "", now
            changed_rows.append(row)
            result.deleted[write.resource_type] += 1
            continue
        content = contents[key]
        if row is not None and not row.deleted and _same_content(row, content):
            result.unchanged[write.resource_type] += 1
            continue
        version = 1 if row is None else row.version_id + 1
        body = minified(_stamped(content, version, now))
        if row is not None and row.deleted:
            revived.append(row)
        if row is None:
            new_rows.append((write, body))
            result.created[write.resource_type] += 1
        else:
            row.version_id, row.deleted, row.body, row.last_updated = version, False, body, now
            row.refers_to = stored_references(body)
            changed_rows.append(row)
            result.updated[write.resource_type] += 1
    created = Resource.objects.bulk_create(
        [
            Resource(
                resource_type=write.resource_type,
                resource_id=write.resource_id,
                last_updated=now,
                body=body,
                refers_to=stored_references(body),
            )
            for write, body in new_rows
        ],
        batch_size=BATCH_SIZE,
    )
    update_rows(
        Resource,
        ("version_id", "deleted", "body", "refers_to", "last_updated"),
        [
            (r.pk, r.version_id, r.deleted, r.body, r.refers_to, r.last_updated)
            for r in changed_rows
        ],
    )
    written = [(pk, latest[key]) for key, pk in inserted.items()]
    written += [(row.pk, write) for row, (write, _) in zip(created, new_rows, strict=True)]
    written += [(row.pk, latest[(row.resource_type, row.resource_id)]) for row in changed_rows]
    _reindex(written, changed_rows, latest, now)
    if new_keys is not None:
        new_keys += [f"{kind}/{rid}" for kind, rid in inserted]
        new_keys += [f"{write.resource_type}/{write.resource_id}" for write, _ in new_rows]
        new_keys += [f"{r.resource_type}/{r.resource_id}" for r in revived]
    return result


def _insert_absent(
    contents: dict[tuple[str, str], dict[str, Any]], run: _WriteRun
) -> dict[tuple[str, str], int]:
    """On PostgreSQL, store the first version of every key no row holds yet, the unique
    index telling which (no lookup first, which on a table filling from empty the planner
    answers by scanning every row of the type); the keys inserted, with their primary
    keys. Elsewhere nothing is inserted here: the batch's rows are looked up first.

    Into an empty store, or with keys new to it, the rows go straight into the table, in
    one pass; the first batch holding a stored key falls back to a pass through a
    temporary table that leaves stored keys out, and so does every batch after it."""
    if not contents or not insertable_absent():
        return {}
    bodies = [minified(_stamped(content, 1, run.now)) for content in contents.values()]
    rows = [
        (kind, rid, 1, run.now, False, body, stored_references(body))
        for (kind, rid), body in zip(contents, bodies, strict=True)
    ]
    if run.straight:
        pks = copy_new(Resource, RESOURCE_COLUMNS, rows)
        if pks is not None:
            return dict(zip(contents, pks, strict=True))
        run.straight = False
    returned = insert_absent(Resource, RESOURCE_COLUMNS, rows, unique=RESOURCE_KEY)
    return {(kind, rid): pk for pk, kind, rid in returned}


def _reindex(
    written: list[tuple[int, ResourceWrite]],
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
    compartments: list[tuple[int, str, str]] = []
    memberships: list[tuple[int, str, bool]] = []
    identifiers: list[tuple[int, str, str, str]] = []
    for pk, write in written:
        body = write.body
        if body is None:
            continue
        if body.get("id") != write.resource_id:
            body = {**body, "id": write.resource_id}
        kind = write.resource_type
        compartments += [(pk, kind, patient) for patient in compartment_patients(body)]
        if kind == "Group":
            memberships += [(pk, m.patient_id, m.inactive) for m in group_members(body, now)]
        if kind not in IDENTIFIER_TYPES_EXCLUDED:
            identifiers += _identifier_rows(pk, kind, body)
    insert_rows(CompartmentMembership, ("resource", "resource_type", "patient_id"), compartments)
    insert_rows(GroupMembership, ("group", "patient_id", "inactive"), memberships)
    insert_rows(ResourceIdentifier, ("resource", "resource_type", "system", "value"), identifiers)


def _identifier_rows(pk: int, kind: str, body: dict[str, Any]) -> list[tuple[int, str, str, str]]:
    rows = []
    for identifier in body.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("system") and identifier.get("value"):
            system, value = str(identifier["system"])[:255], str(identifier["value"])[:255]
            rows.append((pk, kind, system, value))
    return rows


def identifier_matches(reference: ConditionalReference) -> list[str]:
    """The ids of every live resource a conditional reference matches."""
    return list(
        ResourceIdentifier.objects.filter(
            resource_type=reference.resource_type,
            system=reference.system,
            value=reference.value,
            resource__deleted=False,
        )
        .values_list("resource__resource_id", flat=True)
        .distinct()
    )


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
