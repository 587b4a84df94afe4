"""The resources outside the Patient compartment that a Patient or Group export adds:
those its output refers to (bulkops/fhir/referenced.py), each once.

Partitions that read compartment rows note the references of the lines they write to
the referenced types the job exports, and record them with their files when they
complete (`record_references`), so a retried partition counts once. Of lines written
verbatim, the references are those the store found in the bodies as it wrote them
(`Resource.refers_to`); other lines are searched. When the last partition is done,
`close_references` follows references from those resources to further ones (a
Location's managing Organization) until none is new, and the job gets one more set of
partitions, which read `referenced_rows` type by type (the types of few resources
together, exports.partitions.referenced_partitions): the same files model, leases and
recovery as every other partition. A single one of at most CHUNK_SIZE resources, most
cohorts' case, is run by the worker that planned it, as it plans it
(exports.partitions.plan_referenced_partitions), rather than queued.

Which resources: every resource the written lines refer to, as the store holds it, live
and created before the kick-off, whatever its own lastUpdated. A `_since` export thus
carries the Practitioners, Organizations... its new and changed resources refer to,
even unchanged ones, and every export is closed on its own: a client that merges
`_since` exports never holds a reference it cannot resolve (spec §1.3 allows referenced
resources "whatever their update time"). The rows are written through the job's
`_typeFilter` and `_elements` like any other, and only the references of the lines
actually written (after `_typeFilter` and `_elements`) are followed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from django.db.models import QuerySet

from bulkops.fhir.referenced import indexed_keys, referenced_keys
from exports.models import ExportJob, ExportPartition, ExportReference
from exports.row_chunks import Block
from fhirstore.reads import Resource

BATCH_SIZE = 1000


class ReferenceCollector:
    """The (type, id) keys of the resources of `types` that written lines refer to.

    Lines written as the store holds them refer to what the store found in them when it
    wrote them (`Block.refers_to`); only lines that `_typeFilter` or `_elements` made
    something else of, or that were read without it, are searched."""

    def __init__(self, types: Collection[str]) -> None:
        self.types = frozenset(types)
        self.keys: set[tuple[str, str]] = set()

    def __call__(self, block: Block, lines: bytes) -> None:
        if not self.types:
            return
        if lines is block.records and block.refers_to is not None:
            self.keys |= indexed_keys(block.refers_to, self.types)
        else:
            self.keys |= referenced_keys(lines, self.types)


def record_references(partition: ExportPartition, keys: Iterable[tuple[str, str]]) -> None:
    """Keep what a completing partition's lines refer to (inside its completion's
    transaction: a partition records its references exactly once)."""
    ExportReference.objects.bulk_create(
        [
            ExportReference(
                job_id=partition.job_id,
                partition=partition,
                resource_type=resource_type,
                resource_id=resource_id,
            )
            for resource_type, resource_id in sorted(keys)
        ],
        batch_size=BATCH_SIZE,
    )


def referenced_rows(job: ExportJob, resource_type: str) -> QuerySet[Resource]:
    """Live rows of `resource_type` that existed at kick-off and that the job's output
    refers to, whatever their lastUpdated (see the module docstring)."""
    keys = ExportReference.objects.filter(job=job, resource_type=resource_type)
    return stored_rows(job, resource_type).filter(resource_id__in=keys.values("resource_id"))


def stored_rows(job: ExportJob, resource_type: str) -> QuerySet[Resource]:
    rows = Resource.objects.filter(resource_type=resource_type, deleted=False)
    if job.last_resource_id is not None:
        rows = rows.filter(id__lte=job.last_resource_id)
    return rows


def close_references(job: ExportJob, types: Collection[str]) -> None:
    """Add the resources that the job's referenced resources refer to in turn, until
    none is new. Each round reads only the rows the previous round added."""
    known = set(ExportReference.objects.filter(job=job).values_list("resource_type", "resource_id"))
    frontier = known
    while frontier:
        found: set[tuple[str, str]] = set()
        for resource_type in types:
            ids = sorted(i for t, i in frontier if t == resource_type)
            for start in range(0, len(ids), BATCH_SIZE):
                rows = stored_rows(job, resource_type).filter(
                    resource_id__in=ids[start : start + BATCH_SIZE]
                )
                for body in rows.values_list("body", flat=True):
                    found |= referenced_keys(body.encode(), types)
        frontier = found - known
        known |= frontier
        ExportReference.objects.bulk_create(
            [ExportReference(job=job, resource_type=t, resource_id=i) for t, i in sorted(frontier)],
            batch_size=BATCH_SIZE,
        )
