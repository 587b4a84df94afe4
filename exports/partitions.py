"""Running an export: plan partitions, stream each one, finalise the manifest.

A job is split into partitions (id ranges) so every available worker shares one export
(ARCHITECTURE "Data flow", step 3). A system-level export of every type in the store
(a plain `$export`) is split into all-types partitions: the store interleaves types (a
patient's resources are loaded together), so reading type by type would visit each
table page once per type, while one pass in id order reads it once
(docs/performance.md); once that pass takes more than one partition, each type small
enough for one partition gets one of its own, so it makes one file rather than one per
range (`all_types_slots`). Patient and Group exports make the same one pass, over id
ranges cut from the chosen patients' compartment rows, each partition reading its
range's ids from the compartment index, then their rows 10,000 at a time: reading type by
type, 1,000 ids a page, made a Group export 1.7 times slower per resource than a plain
one. A system export of a `_type` subset is split by type, through the
(resource_type, id) index.
Each partition reads chunks by keyset pagination on id, each chunk one block of joined
records per type (exports/row_chunks.py), writes stored bytes verbatim (parsing only for
`_elements` and the types a `_typeFilter` names, whose rows the database has already
narrowed as far as fhirstore/filter_pushdown.py can) to one file series per type while it
reads the next chunk, checks for cancellation between chunks, and records its files and
counters in one transaction at the end. The partition that completes the job runs the
finaliser. Every step is idempotent: a redelivered task finds its work done or redoes it
under the same file names.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Max, Q, QuerySet, Value, Window
from django.db.models.functions import Greatest, Mod, RowNumber
from django.utils import timezone

from accounts.audit import record_event
from accounts.models import AuditEvent
from bulkops.fhir import resource_json
from bulkops.fhir.compartment import INDEXED_TYPES
from bulkops.fhir.elements import selected_elements, subset_resource
from bulkops.fhir.manifest import deletion_bundle_line, warning_outcome_line
from bulkops.fhir.params import SYSTEM, ElementSelection
from bulkops.fhir.resource_types import R4_RESOURCE_TYPES
from bulkops.fhir.type_filters import TypeFilters
from exports.finish_hooks import export_finished
from exports.models import ExportFile, ExportJob, ExportPartition, ExportReference
from exports.ndjson_files import RecordSink, RotatingNdjsonWriter, TypedNdjsonFiles, WrittenFile
from exports.orphans import sweep_orphans
from exports.referenced import (
    ReferenceCollector,
    close_references,
    record_references,
    referenced_rows,
)
from exports.row_chunks import Block, binary_rows, read_chunk, read_id_chunk
from exports.storage import job_storage
from fhirstore.reads import CompartmentMembership, GroupMembership, Resource, rows_filter

logger = logging.getLogger(__name__)

CHUNK_SIZE = 10_000  # rows per read and per progress/cancellation check
BUCKETS_PER_PARTITION = 64  # id buckets counted in planning a Patient/Group export, per `size` ids
SAMPLED_PATIENTS = 128  # at most about this many patients' rows plan a Patient/Group export
LAST_ID = 2**62
ALL_TYPES = "*"  # resource_type of a system-level partition: every type the job exports
SMALL_TYPES = "+"  # resource_type of a partition reading the small types in its `types`
Range = tuple[int, int, int]  # lower id (exclusive), upper id (inclusive), rows


def plan_export(job_id: int) -> list[int]:
    """Create the job's partitions once; return the ids of those still pending.

    A redelivered planning task re-queues pending partitions; claiming makes the
    duplicates harmless.
    """
    with transaction.atomic():
        job = ExportJob.objects.select_for_update().get(pk=job_id)
        if job.status == ExportJob.Status.ACCEPTED:
            create_partitions(job)
    if job.partitions_total == 0:
        begin_finalizing(job.pk, "")
    return list(
        ExportPartition.objects.filter(
            job=job, job__status=ExportJob.Status.RUNNING, status=ExportPartition.Status.PENDING
        ).values_list("pk", flat=True)
    )


@dataclass(frozen=True)
class Organizer:
    """How an `organizeOutputBy` export ($export-v4) is planned and run. The organisers
    (exports/patient_blocks.py) build on this module, so it cannot import them: they
    register here when the app starts (exports.apps)."""

    partition_type: str  # the resource_type of its partitions
    slots: Callable[[ExportJob, int], list[tuple[str, Iterable[Range]]]]
    work: Callable[[ExportJob, ExportPartition, TypeFilters], tuple[Any, Any, Iterator[Any]]]


ORGANIZERS: dict[str, Organizer] = {}  # by organizeOutputBy value


def create_partitions(job: ExportJob) -> None:
    size = settings.BULKOPS_PARTITION_SIZE
    groups: list[list[str]] = []  # the types of each SMALL_TYPES partition, in sequence
    read_types: set[str] = set()  # the types the partitions read, when one reads several
    if organizer := ORGANIZERS.get(job.parameters.get("organizeOutputBy", "")):
        slots = organizer.slots(job, size)
    elif job.level != SYSTEM:
        slots = [(ALL_TYPES, member_id_ranges(*planning_rows(job), size, read_types))]
    elif exports_every_stored_type(job):
        slots, groups = all_types_slots(job, size, read_types)
    else:
        slots = [(t, id_ranges(candidate_rows(job, [t]), "id", size)) for t in job.types]
    partitions = slot_partitions(job, slots, groups)
    ExportPartition.objects.bulk_create(partitions)
    job.status = ExportJob.Status.RUNNING
    job.partitions_total = len(partitions)
    if not partitions:
        job.types_total = 0
    elif job.level != SYSTEM or partitions[0].resource_type in (ALL_TYPES, SMALL_TYPES):
        job.types_total = len(read_types)
    else:
        job.types_total = len({p.resource_type for p in partitions})
    job.rows_planned = sum(p.rows_planned for p in partitions)
    job.save(update_fields=["status", "partitions_total", "types_total", "rows_planned"])
    logger.info("export planned", extra={"job": job.uuid, "partition": len(partitions)})


def slot_partitions(
    job: ExportJob,
    slots: Iterable[tuple[str, Iterable[Range]]],
    groups: list[list[str]],
    *,
    first: int = 0,
    referenced: bool = False,
) -> list[ExportPartition]:
    """A partition per range of each (resource_type, ranges) slot, numbered from `first`
    within its slot; the n-th SMALL_TYPES partition reads the types of `groups[n]`."""
    return [
        ExportPartition(
            job=job,
            resource_type=resource_type,
            sequence=first + number,
            lower_id=lower,
            upper_id=upper,
            rows_planned=rows,
            types=groups[number] if resource_type == SMALL_TYPES else [],
            referenced=referenced,
        )
        for resource_type, ranges in slots
        for number, (lower, upper, rows) in enumerate(ranges)
    ]


def small_types_slot(counts: dict[str, int], groups: list[list[str]]) -> tuple[str, list[Range]]:
    """The SMALL_TYPES slot of `groups` (small_type_groups): one partition per group,
    reading the whole id range of its types."""
    return SMALL_TYPES, [(0, LAST_ID, sum(counts[t] for t in group)) for group in groups]


def all_types_slots(
    job: ExportJob, size: int, read_types: set[str]
) -> tuple[list[tuple[str, Iterable[Range]]], list[list[str]]]:
    """The partitions of a plain export: id ranges of the whole table, read in one pass,
    and, once there is more than one range, partitions for the small types; with the
    types of each of those. `read_types` gains every type the job has rows of.

    A file never spans partitions (each is written by one worker, under names a retry
    overwrites), so in the pass every type gets a file per range it has rows in: 10
    Organizations spread over 8 ranges would make 8 files. The types of at most `size`
    rows (BULKOPS_PARTITION_SIZE) are read instead by SMALL_TYPES partitions of at most
    `size` rows each (`small_type_groups`), each making one file per type (rotated at
    BULKOPS_MAX_RESOURCES_PER_FILE); the pass skips their rows. Larger types stay in the
    pass, whose single read of the table is what makes a plain export fast
    (docs/performance.md). When every type is small the pass is left out.

    Small types share partitions because a store interleaves types: the rows of a type
    of a few thousand lie on nearly every table page, so a partition per type walked
    the table (or as many pages) once per type, 16 times for a 200k-resource store,
    where a group of types walks it once.

    The types' sizes come from one grouped count of the job's rows: asking each type
    for its first `size + 1` rows, then cutting its range by keyset steps, visited every
    row of every small type three times through the (resource_type, id) index and took
    1.4-2.9 s of a 200k-resource export's planning, against 0.12 s for the count.
    """
    ranges = list(id_ranges(all_types_rows(job), "id", size))
    counts = candidate_counts(job)
    read_types.update(counts)
    if len(ranges) < 2:
        return [(ALL_TYPES, ranges)], []
    groups = small_type_groups(counts, size)
    small = small_types_slot(counts, groups)
    if sum(len(group) for group in groups) == len(counts):
        return [small], groups
    return [(ALL_TYPES, ranges), small], groups


def small_type_groups(counts: dict[str, int], size: int) -> list[list[str]]:
    """The types of at most `size` rows, in groups of at most `size` rows together: each
    type, largest first, joins the first group it fits in."""
    groups: list[tuple[int, list[str]]] = []
    for resource_type, rows in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if rows > size:
            continue
        fits = next((n for n, (held, _) in enumerate(groups) if held + rows <= size), None)
        if fits is None:
            groups.append((rows, [resource_type]))
        else:
            held, types = groups[fits]
            groups[fits] = (held + rows, [*types, resource_type])
    return [sorted(types) for _, types in groups]


def candidate_counts(job: ExportJob) -> dict[str, int]:
    """Type -> how many rows of it the job exports, for the types it has rows of."""
    rows = candidate_rows(job, None).values("resource_type").annotate(n=Count("id"))
    return {row["resource_type"]: row["n"] for row in rows.order_by()}


def own_partition_types(job: ExportJob) -> set[str]:
    """The types an all-types partition leaves out: those of its SMALL_TYPES partitions."""
    small = job.partitions.filter(resource_type=SMALL_TYPES, referenced=False)
    groups = small.values_list("types", flat=True)
    return {resource_type for types in groups for resource_type in types}


def types_read(partition: ExportPartition) -> list[str]:
    """The types a partition other than an all-types one reads."""
    return partition.types or [partition.resource_type]


def exports_every_stored_type(job: ExportJob) -> bool:
    """No stored resource is of a type the job leaves out (index probes, no scan)."""
    left_out = [t for t in R4_RESOURCE_TYPES if t not in set(job.types)]
    return not Resource.objects.filter(resource_type__in=left_out).exists()


def all_types_rows(job: ExportJob) -> QuerySet[Resource]:
    """The rows an all-types job's ranges are cut from.

    A plain export takes nearly every row, so its ranges are cut along the primary key
    alone: an index-only scan, 0.11 s for the 1M store against 0.44-0.64 s to read
    every row's heap tuple for `candidate_rows`' filters. Their row counts then include
    the rows the pass skips (tombstones, rows created after the kick-off, and the small
    types read by partitions of their own, see `all_types_slots`), which only shifts the
    progress estimate: a job still reaches 100% when its last partition is done. A
    `_since` export may take few rows, so its ranges count those; so may an `_until`
    export.
    """
    if job.parameters.get("_since") or job.parameters.get("_until"):
        return candidate_rows(job, None)
    return Resource.objects.all()


def candidate_rows(job: ExportJob, types: list[str] | None) -> QuerySet[Resource]:
    """Rows of `types` (None: of any type) the job exports (spec §2.3, §1.3 `_since`;
    `_until` from the Bulk Data 3.0 ballot: last updated at or before it).

    The rows that existed at transactionTime (ids up to the job's `last_resource_id`),
    as they are when read: the output SHALL hold every change up to transactionTime
    and SHOULD NOT hold later ones, and the store keeps no earlier versions, so a
    resource changed while the export runs is exported as changed rather than left out,
    and one deleted meanwhile as a tombstone. Rows created since are left out.
    Tombstones are candidates only for `_since` exports, which list them in deleted[].
    """
    rows = Resource.objects.all()
    if job.last_resource_id is not None:
        rows = rows.filter(id__lte=job.last_resource_id)
    if types is not None:
        # A filter on type makes the database read by (resource_type, id) and sort;
        # all-types partitions leave it out to read straight along the primary key.
        rows = rows.filter(resource_type__in=types)
    if until := job.parameters.get("_until"):
        rows = rows.filter(last_updated__lte=datetime.fromisoformat(until))
    since = job.parameters.get("_since")
    if since:
        return rows.filter(last_updated__gt=datetime.fromisoformat(since))
    return rows.filter(deleted=False)


def id_ranges(ids: QuerySet, field: str, size: int) -> Iterator[tuple[int, int, int]]:
    """(lower exclusive, upper inclusive, row count) ranges of about `size` resource ids
    each, found by keyset steps along an index on `field`.

    Each step is one query for the count and the last of the next `size` ids: the last
    range, and a set of ids that fits in one (most types of a `_type` export, every
    referenced type), costs one walk of its rows, not a search for the size-th id and
    then a count."""
    lower = 0
    while True:
        after = ids.filter(**{f"{field}__gt": lower}).order_by(field)
        step = after.values(field).distinct()[:size].aggregate(n=Count(field), last=Max(field))
        if step["n"] < size:
            if step["n"]:
                yield lower, LAST_ID, step["n"]
            return
        yield lower, step["last"], size
        lower = step["last"]


def planning_rows(job: ExportJob) -> tuple[QuerySet[CompartmentMembership], float]:
    """The compartment rows a Patient or Group export is planned from, and how many of
    the job's rows each stands for.

    For more than SAMPLED_PATIENTS patients, the rows of a sample of them: every n-th in
    the order they were stored, so the sample follows the store as the cohort does, each
    sampled patient standing for its neighbours. Counting the rows of a 1,000-member
    Group of the 1M store took 0.04-0.06 s, a tenth of the export, in which the other
    worker waited; those of a sample of 143, 0.01 s, and the two partitions cut from it
    held 72,773 and 73,160 rows (a sample taken in id order instead left 6-8% more in
    one than the other, whose worker then finished last).

    The database picks the sample (window functions), so a cohort of any size is never
    listed in the worker."""
    position = Window(RowNumber(), order_by="id")
    total = Window(Count("id"))
    every = Greatest(total / SAMPLED_PATIENTS, Value(1))
    sampled = (
        job_patients(job)
        .annotate(total=total, offset=Mod(position - 1, every))
        .filter(offset=0)
        .values_list("resource_id", "total")
    )
    sample = list(sampled)
    patients = sample[0][1] if sample else 0
    if patients <= SAMPLED_PATIENTS:
        return member_rows(job), 1.0
    rows = CompartmentMembership.objects.filter(patient_id__in=[pid for pid, _ in sample])
    return of_types(rows, job.types), patients / len(sample)


def job_patients(job: ExportJob) -> QuerySet[Resource]:
    """The stored Patients of a Patient or Group export (the patients an organised one
    makes blocks for): every live Patient, the `patient` parameter's, a Group's active
    members."""
    rows = Resource.objects.filter(resource_type="Patient", deleted=False)
    if job.last_resource_id is not None:
        rows = rows.filter(id__lte=job.last_resource_id)
    if patients := job.parameters.get("patient"):
        rows = rows.filter(resource_id__in=[p.removeprefix("Patient/") for p in patients])
    if job.level == ExportJob.Level.GROUP:
        members = GroupMembership.objects.active_in([job.group_id]).values("patient_id")
        rows = rows.filter(resource_id__in=members)
    return rows


def member_id_ranges(
    ids: QuerySet[CompartmentMembership], weight: float, size: int, types: set[str]
) -> list[Range]:
    """The ranges of a Patient or Group export, cut from the members' compartment rows of
    every type the job exports (`ids`, each standing for `weight` rows, see
    `planning_rows`); the types of those rows are added to `types` on the way (from a
    sample: those of its patients, for the progress line only).

    The rows are counted per type and bucket of `size // BUCKETS_PER_PARTITION`
    consecutive ids in one grouped query on the compartment index, and the ranges end at
    bucket ends, each holding about an equal share of the rows, as many ranges as
    `partition_count` says, so the workers finish together (cut every `size` rows, a
    146,000-resource Group export made two full partitions and a third that one worker
    read alone while the other waited). Planning thus reads no id: streaming every
    member id in order took 0.13 s of a 1,000-member Group export of the 1M store, the
    histogram 0.05-0.07 s, and it stays a few thousand rows whatever the store's size.
    A range's count is an estimate (a resource in two members' compartments counts
    twice), for progress only: each partition reads exactly the ids of its range.

    Keyset steps (`id_ranges`) would ask for "the next `size` ids in id order", and for
    ids spread over many patients PostgreSQL answers that by walking the whole
    compartment index in id order, filtering out other patients' rows: a cost that
    follows the store, not the group (docs/performance.md)."""
    width = max(1, size // BUCKETS_PER_PARTITION)
    histogram: dict[int, int] = {}
    buckets = (
        ids.annotate(bucket=F("resource_id") / width)
        .values_list("bucket", "resource_type")
        .annotate(rows=Count("resource_id"))
        .order_by()
    )
    for bucket, resource_type, rows in buckets:
        types.add(resource_type)
        histogram[bucket] = histogram.get(bucket, 0) + rows
    ends, counted = [], 0.0  # each bucket's last id, and the rows up to it
    for bucket in sorted(histogram):
        counted += histogram[bucket] * weight
        ends.append(((bucket + 1) * width - 1, round(counted)))
    return equal_shares(ends, partition_count(round(counted), size))


def equal_shares(ends: list[tuple[int, int]], parts: int) -> list[Range]:
    """`parts` ranges of about equal rows, cut at the ends in `ends`: (last id, rows up to
    it and including it), ascending. The last range is open-ended."""
    total = ends[-1][1] if ends else 0
    counts = [rows for _, rows in ends]
    ranges: list[Range] = []
    lower, below = 0, 0
    for part in range(1, parts):
        target = total * part / parts
        at = bisect_left(counts, target)  # the first end at or past the target
        if at and target - counts[at - 1] <= counts[at] - target:
            at -= 1  # or the one before, when nearer
        upper, rows = ends[at]
        if below < rows < total:  # else shares smaller than a bucket
            ranges.append((lower, upper, rows - below))
            lower, below = upper, rows
    if total:
        ranges.append((lower, LAST_ID, total - below))
    return ranges


def partition_count(rows: int, size: int) -> int:
    """How many partitions read `rows` of a Patient or Group export: about `size` rows
    each, and when that is more than one, the multiple of BULKOPS_EXPORT_WORKERS nearest
    to `rows / size`, so that no worker reads the last of them alone: at most 1.5 ×
    `size` rows each. Rounding up instead cut a Group export of 146,000 rows into four
    partitions, two turns for two workers, each turn costing a partition's fixed work
    (claiming, the id query, completing: about 30 ms)."""
    if rows <= size:
        return 1 if rows else 0
    workers = settings.BULKOPS_EXPORT_WORKERS
    return max(1, round(rows / size / workers)) * workers


def ordered_member_ids(ids: QuerySet[CompartmentMembership], lower: int, upper: int) -> list[int]:
    """Distinct resource ids in (lower, upper], ascending.

    The database sends them as it finds them, a member's after another's, and they are
    put in order and made distinct here: for the 73,000 of a partition of a
    1,000-member Group export that cost the worker 5 ms more and the database 14 ms
    less than its sort. PostgreSQL sends them as one array in the binary format
    (`array_agg`), which psycopg loads in C: a row per id took 35 ms from the query to
    the sorted list, 15 ms of it the worker's CPU, the array 23 ms and 6 ms (the best
    of five, the 73,000 ids of the bench's Group export). Elsewhere they are fetched
    whole through the cursor (through the queryset's iterator, a hundred rows a fetch,
    they cost the worker more than the query cost the database)."""
    selected = (
        ids.filter(resource_id__gt=lower, resource_id__lte=upper)
        .values_list("resource_id")
        .order_by()
    )
    sql, params = selected.query.sql_with_params()
    if connection.vendor == "postgresql":
        # `sql` is the queryset's own compiled SQL, its values still parameters.
        statement = f"SELECT array_agg(member.resource_id) FROM ({sql}) AS member"  # noqa: S608
        ((found,),) = binary_rows(statement, params)
        return sorted(set(found or ()))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return sorted({resource_id for (resource_id,) in cursor.fetchall()})


def member_rows(job: ExportJob, types: list[str] | None = None) -> QuerySet[CompartmentMembership]:
    """Compartment-index rows of `types` (None: the job's) for the job's patients.

    Patient and Group exports walk this index rather than the resource table, so their
    cost follows the chosen patients' data, not the size of the store.
    """
    rows = of_types(CompartmentMembership.objects.all(), types or job.types)
    patients = job.parameters.get("patient") or []
    if patients:
        rows = rows.filter(
            patient_id__in=[reference.removeprefix("Patient/") for reference in patients]
        )
    if job.level == ExportJob.Level.GROUP:
        rows = rows.of_active_members([job.group_id])
    return rows


def of_types(
    rows: QuerySet[CompartmentMembership], types: Collection[str]
) -> QuerySet[CompartmentMembership]:
    """Compartment rows of `types`. When those are every type the index holds (a job
    without `_type`), no filter: the database would test each row against the list of
    70-odd types, a third of the time it took to plan a Group export."""
    if set(types) >= INDEXED_TYPES:
        return rows
    return rows.filter(resource_type__in=types)


def member_types(job: ExportJob, types: Collection[str]) -> set[str]:
    """Those of `types` that a Patient or Group export's compartment partitions read
    rows of. Asked of a few types, the compartment index answers by type and patient
    rather than by every type of the job."""
    rows = member_rows(job, sorted(types))
    return set(rows.values_list("resource_type", flat=True).order_by().distinct())


def job_filters(job: ExportJob) -> TypeFilters:
    """The job's `_typeFilter` filters, parsed again from the form the kick-off stored."""
    return TypeFilters.from_texts(job.parameters.get("_typeFilter", []), now=job.transaction_time)


def partition_chunks(
    job: ExportJob,
    partition: ExportPartition,
    filters: TypeFilters,
    skipped: Collection[str] = (),
) -> Iterator[list[Block]]:
    """The partition's rows in chunks of blocks, in id order; keyset, never OFFSET.
    `filters` (the job's, parsed once for the partition) narrow the rows as far as the
    database can. An all-types partition leaves out the rows of the `skipped` types
    (those with partitions of their own) in the database: it still walks their table
    pages, but no longer joins, sends and drops their bodies, which were half the rows
    of a 200k-resource pass."""
    all_types = partition.resource_type == ALL_TYPES
    if partition.referenced:
        yield from referenced_chunks(job, partition, filters)
        return
    rows = candidate_rows(job, None if all_types else types_read(partition))
    if skipped:
        # Excluded, not listed: a list of types would lead the database off the
        # primary key onto the (resource_type, id) index and a sort.
        rows = rows.exclude(resource_type__in=sorted(skipped))
    rows = narrowed(rows, filters, job.types if all_types else types_read(partition))
    if job.level == SYSTEM:
        yield from keyset_chunks(rows, partition)
        return
    # A Patient or Group partition reads every type in one pass in id order, as a system
    # export does: the ids of its range in the chosen patients' compartments first (one
    # query on the compartment index, read to the end before the first chunk is written:
    # a cursor left open across the progress commits between chunks holds SQLite's read
    # lock, and two workers doing that lock each other out), then their rows a chunk at
    # a time. A join with the compartment index in each chunk's query instead made
    # PostgreSQL read the whole range's index rows for every chunk.
    ids = ordered_member_ids(member_rows(job), partition.lower_id, partition.upper_id)
    for start in range(0, len(ids), CHUNK_SIZE):
        if blocks := read_id_chunk(rows, ids[start : start + CHUNK_SIZE]).blocks:
            yield blocks


def referenced_chunks(
    job: ExportJob, partition: ExportPartition, filters: TypeFilters
) -> Iterator[list[Block]]:
    """A referenced partition's rows, read type by type (a query on several types'
    references would scan the table), in chunks of about CHUNK_SIZE rows whatever their
    type: a chunk per type made a progress commit for each of a few dozen
    Practitioners, Organizations, Locations... after the last compartment partition."""
    held: list[Block] = []
    for resource_type in types_read(partition):
        rows = narrowed(referenced_export_rows(job, resource_type), filters, [resource_type])
        for blocks in keyset_chunks(rows, partition):
            held += blocks
            if sum(block.count for block in held) >= CHUNK_SIZE:
                yield held
                held = []
    if held:
        yield held


def narrowed(
    rows: QuerySet[Resource], filters: TypeFilters, types: list[str]
) -> QuerySet[Resource]:
    """`rows` narrowed by the `_typeFilter` filters of `types` as far as the database can."""
    pushed = rows_filter(filters, types)
    return rows if pushed is None else rows.filter(pushed)


def keyset_chunks(rows: QuerySet[Resource], partition: ExportPartition) -> Iterator[list[Block]]:
    """The partition's range of `rows` in chunks, by keyset pagination on id. A chunk
    short of CHUNK_SIZE rows is the last: no query to find nothing after it."""
    last = partition.lower_id
    while (
        chunk := read_chunk(rows.filter(id__gt=last, id__lte=partition.upper_id), CHUNK_SIZE)
    ).last_id is not None:
        yield chunk.blocks
        if sum(block.count for block in chunk.blocks) < CHUNK_SIZE:
            return
        last = chunk.last_id


def referenced_export_rows(job: ExportJob, resource_type: str) -> QuerySet[Resource]:
    """What a referenced partition writes: the referenced rows of its type, but for those
    the job's compartment partitions wrote already (a member's own Device)."""
    rows = referenced_rows(job, resource_type)
    if resource_type in INDEXED_TYPES:
        members = member_rows(job, [resource_type]).values("resource_id")
        rows = rows.exclude(pk__in=candidate_rows(job, [resource_type]).filter(pk__in=members))
    return rows


def plan_referenced_partitions(job_id: int, worker: str) -> bool:
    """Once every compartment partition of a Patient or Group export is done, close the
    job's references and add the partitions that read them (`referenced_partitions`).
    True when partitions were added for workers to run; the job row lock makes it
    happen once.

    When they are few (one partition of at most CHUNK_SIZE rows, as in most cohorts:
    the Practitioners, Organizations and Locations of their care), `worker` runs that
    partition here, in this transaction (`run_inline`), instead of queueing it: a
    queued partition of 100 resources cost a 1,000-member Group export a task, a claim,
    a progress commit and a completion, 0.015-0.02 s after its last compartment
    partition, in which every other worker waited."""
    with transaction.atomic():
        job = (
            ExportJob.objects.select_for_update()
            .filter(
                pk=job_id,
                status=ExportJob.Status.RUNNING,
                partitions_done=F("partitions_total"),
                references_closed=False,
            )
            .exclude(level=SYSTEM)
            .first()
        )
        if job is None:
            return False
        close_references(job, job.referenced_types)
        partitions = referenced_partitions(job)
        inline = runs_inline(partitions)
        written = run_inline(job, partitions[0], worker) if inline else []
        ExportPartition.objects.bulk_create(partitions)
        added_types = {t for partition in partitions for t in types_read(partition)}
        done_types = member_types(job, added_types) if added_types else set()
        job.references_closed = True
        job.partitions_total += len(partitions)
        job.types_total += len(added_types - done_types)
        job.types_done -= len(added_types & done_types)  # reopened: a Device's
        job.rows_planned += sum(p.rows_planned for p in partitions)
        if inline:
            (done,) = partitions
            record_files(job, done, written)
            job.partitions_done += 1
            job.types_done += len(done.types)
            job.rows_done += done.rows_planned
            job.resources_exported += done.resources_exported
        job.save(
            update_fields=[
                "references_closed",
                "partitions_total",
                "partitions_done",
                "types_total",
                "types_done",
                "rows_planned",
                "rows_done",
                "resources_exported",
            ]
        )
    logger.info(
        "references planned",
        extra={"job": job.uuid, "partition": len(partitions), "inline": inline},
    )
    return bool(partitions) and not inline


def runs_inline(partitions: list[ExportPartition]) -> bool:
    """Whether the referenced partitions are one small enough to run as they are planned."""
    return (
        len(partitions) == 1
        and partitions[0].resource_type == SMALL_TYPES
        and partitions[0].rows_planned <= CHUNK_SIZE
    )


def run_inline(
    job: ExportJob, partition: ExportPartition, worker: str
) -> list[tuple[str, bool, WrittenFile]]:
    """Run a referenced partition not yet saved, as `worker`, and mark it done; its
    files. Its rows are read and written in the planning transaction (they are at most
    CHUNK_SIZE): if anything fails, nothing of it is kept, and the job's completion is
    resumed as when its worker stops after the last compartment partition (the
    reaper's finalising task plans the references again, exports.recovery)."""
    files, write_chunk, chunks = partition_work(job, partition, job_filters(job), lambda *_: None)
    with files:
        exported = sum(write_chunk(chunk) for chunk in chunks)
    partition.status = ExportPartition.Status.DONE
    partition.worker = worker
    partition.attempts = 1
    partition.resources_exported = exported
    return files.written


def referenced_partitions(job: ExportJob) -> list[ExportPartition]:
    """The partitions of the resources a job's output refers to: the types of at most
    BULKOPS_PARTITION_SIZE of them read together by SMALL_TYPES partitions, as a plain
    export's small types are, each larger type by id ranges of its own. A partition per
    type cost a 1,000-member Group export four partitions of a few dozen resources each,
    ~15 ms apiece of claiming, completing and queueing, after every other partition.

    Numbered after the compartment partitions (which may write Devices), and their files
    by that number, so file names differ."""
    size = settings.BULKOPS_PARTITION_SIZE
    counts = referenced_counts(job)
    groups = small_type_groups(counts, size)
    slots = [small_types_slot(counts, groups)]
    slots += [
        (t, id_ranges(referenced_export_rows(job, t), "id", size))
        for t, n in counts.items()
        if n > size
    ]
    return slot_partitions(job, slots, groups, first=job.partitions.count(), referenced=True)


def referenced_counts(job: ExportJob) -> dict[str, int]:
    """Type -> how many resources of it the job's output refers to, for the referenced
    types it refers to any of: from the references themselves, in one query, rather than
    by a count of stored rows per type (six queries after the last compartment partition,
    whose worker the job waits for). An upper bound, for progress (a reference may name
    a resource not stored), exact for the types whose rows the compartment partitions
    may have written already (a member's own Device), and for those big enough to be cut
    into ranges."""
    size = settings.BULKOPS_PARTITION_SIZE
    referenced = (
        ExportReference.objects.filter(job=job, resource_type__in=job.referenced_types)
        .values_list("resource_type")
        .annotate(n=Count("resource_id", distinct=True))
        .order_by()
    )
    counts = {}
    for resource_type, n in referenced:
        if resource_type in INDEXED_TYPES or n > size:
            n = referenced_export_rows(job, resource_type).count()
        if n:
            counts[resource_type] = n
    return counts


def claim_partition(partition_id: int, worker: str, now: datetime) -> ExportPartition | None:
    """Take the partition unless another live worker holds it, it is done, or it has
    been started BULKOPS_PARTITION_MAX_ATTEMPTS times already: the reaper then fails its
    job (exports.recovery), and a lost worker's task, redelivered, must not start it once
    more first.

    A conditional update is the lock: exactly one claimant sees count 1. Counters of an
    earlier, interrupted attempt are taken back so progress never double counts.
    """
    lease = now + timedelta(seconds=settings.BULKOPS_PARTITION_LEASE)
    with transaction.atomic():
        claimed = (
            ExportPartition.objects.filter(pk=partition_id)
            .filter(
                Q(status=ExportPartition.Status.PENDING)
                | Q(
                    status=ExportPartition.Status.RUNNING,
                    lease_until__lt=now,
                    attempts__lt=settings.BULKOPS_PARTITION_MAX_ATTEMPTS,
                )
            )
            .update(
                status=ExportPartition.Status.RUNNING,
                lease_until=lease,
                attempts=F("attempts") + 1,
                worker=worker,
            )
        )
        if claimed != 1:
            return None
        partition = ExportPartition.objects.select_related("job").get(pk=partition_id)
        if partition.resources_exported:
            ExportJob.objects.filter(pk=partition.job_id).update(
                resources_exported=F("resources_exported") - partition.resources_exported
            )
            partition.resources_exported = 0
            partition.save(update_fields=["resources_exported"])
    return partition


def run_partition(*, partition_id: int, worker: str) -> list[int]:
    """Run the partition; return the ids of partitions its completion added (those
    reading the resources the job's output refers to), for the caller to start."""
    partition = claim_partition(partition_id, worker, timezone.now())
    if partition is None:
        return []
    job = partition.job
    if job.status != ExportJob.Status.RUNNING:
        return []
    if partition.attempts > 1:  # files of an earlier attempt
        discard_files(job, ExportFile.objects.filter(partition=partition))
    organized = partition.resource_type in {o.partition_type for o in ORGANIZERS.values()}
    # Patient blocks hold compartments only (README, "Bulk Data 4"): nothing to follow.
    followed = [] if partition.referenced or organized else job.referenced_types
    references = ReferenceCollector(followed)
    files, write_chunk, chunks = partition_work(job, partition, job_filters(job), references)
    with files:
        for exported in written_while_reading(write_chunk, chunks):
            if not record_chunk(partition, exported):
                files.abort()
                discard_if_deleted(job.pk, [file.key for _, _, file in files.written])
                logger.info(
                    "partition stopped: its job ended or another worker took it over",
                    extra={"job": job.uuid},
                )
                return []
    return complete_partition(partition, files.written, references.keys)


def partition_work(
    job: ExportJob,
    partition: ExportPartition,
    filters: TypeFilters,
    noted: Callable[[Block, bytes], None],
) -> tuple[Any, Callable[[Any], int], Iterator[Any]]:
    """The partition's files, the writer of one chunk and the chunks it reads: per
    type, or in patient blocks for an organised export (exports/patient_blocks.py)."""
    for organizer in ORGANIZERS.values():
        if partition.resource_type == organizer.partition_type:
            return organizer.work(job, partition, filters)
    # A small type's one file series is numbered 0, whichever SMALL_TYPES partition
    # writes it; referenced ones are numbered after the compartment partitions.
    shared = partition.resource_type == SMALL_TYPES and not partition.referenced
    number = 0 if shared else partition.sequence
    files = TypedNdjsonFiles(
        job_storage(job),
        lambda resource_type: f"{job.uuid}/{resource_type}.{number:04d}",
        settings.BULKOPS_MAX_RESOURCES_PER_FILE,
    )
    own = own_partition_types(job) if partition.resource_type == ALL_TYPES else set()
    wanted = set(partition.types) if partition.resource_type == SMALL_TYPES else set(job.types)
    return (
        files,
        ChunkWriter(job, files, filters, wanted - own, noted),
        partition_chunks(job, partition, filters, own),
    )


def written_while_reading(
    write: Callable[[list[Block]], int], chunks: Iterator[list[Block]]
) -> Iterator[int]:
    """What `write` returns for each chunk, in order, each write running in a thread
    while the next chunk is read.

    A worker otherwise waits for the database while it reads and leaves the database
    idle while it writes; overlapped, a worker and its database backend work at once
    (docs/performance.md). Only the write is in the thread, and it touches storage
    alone: every query stays on the worker's own connection. At most two chunks are
    held, the one being written and the one being read.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-write") as pool:
        pending: Future[int] | None = None
        for chunk in chunks:
            if pending is not None:
                yield pending.result()
            pending = pool.submit(write, chunk)
        if pending is not None:
            yield pending.result()


class ChunkWriter:
    """Writes a chunk's blocks to the partition's files and shows the lines to `noted`;
    returns how many resources it wrote (tombstones, written as deleted[] entries, are
    not counted)."""

    def __init__(
        self,
        job: ExportJob,
        files: TypedNdjsonFiles,
        filters: TypeFilters,
        wanted: set[str],
        noted: Callable[[Block, bytes], None],
    ) -> None:
        self.files = files
        self.to_lines = LineMaker(job, filters)
        self.wanted = wanted  # an all-types partition reads rows of any type
        self.noted = noted

    def __call__(self, blocks: list[Block]) -> int:
        exported = 0
        for block in blocks:
            if block.resource_type not in self.wanted:
                continue
            if block.deleted:
                write_deletions(self.files.writer(block.resource_type, deleted=True), block)
            else:
                count, lines = self.to_lines(self.files.writer(block.resource_type), block)
                self.noted(block, lines)
                exported += count
        return exported


class LineMaker:
    """Writes a block of stored bodies as NDJSON lines and returns how many and the lines
    written: verbatim (the block's own `records`, whose references the store has
    found already), or only those its type's `_typeFilter` filters keep (still
    verbatim), or their `_elements` subsets. Only the last two parse a body."""

    def __init__(self, job: ExportJob, filters: TypeFilters) -> None:
        self.selections = [
            ElementSelection.from_text(e) for e in job.parameters.get("_elements", [])
        ]
        self.filters = filters
        self.names: dict[str, frozenset[str] | None] = {}
        self.keep: dict[str, Callable[[dict[str, Any]], bool] | None] = {}

    def __call__(self, writer: RecordSink, block: Block) -> tuple[int, bytes]:
        resource_type = block.resource_type
        if resource_type not in self.names:
            self.names[resource_type] = selected_elements(self.selections, resource_type)
            self.keep[resource_type] = self.filters.matcher(resource_type)
        names, keep = self.names[resource_type], self.keep[resource_type]
        if names is None and keep is None:
            writer.write_block(block.records, block.count)
            return block.count, block.records
        lines = []
        for body in block.records.split(b"\n"):
            resource = resource_json.loads(body)
            if keep is not None and not keep(resource):
                continue
            if names is None:
                lines.append(body)
            else:
                subset = subset_resource(resource, names)
                lines.append(resource_json.dumps(subset).encode())
        writer.write_records(lines)
        return len(lines), b"\n".join(lines)


def write_deletions(writer: RotatingNdjsonWriter, block: Block) -> None:
    """A deleted[] line for each tombstone of the block (its records are resource ids)."""
    for resource_id in block.records.split(b"\n"):
        writer.write(deletion_bundle_line(block.resource_type, resource_id.decode()))


def record_chunk(partition: ExportPartition, exported: int) -> bool:
    """Flush point: count progress, extend the lease; False when this attempt must stop:
    the job is no longer running, or this attempt's lease ran out and another took the
    partition over (a host cut off for longer than the lease, then back).

    One transaction per chunk, and on PostgreSQL one that does not wait for its WAL
    flush: losing the last progress update in a database crash costs nothing (the
    partition is redone when its lease runs out), waiting for it cost a worker ~10%.
    """
    lease = timezone.now() + timedelta(seconds=settings.BULKOPS_PARTITION_LEASE)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        owned = ExportPartition.objects.filter(pk=partition.pk, **this_attempt(partition)).update(
            lease_until=lease, resources_exported=F("resources_exported") + exported
        )
        return bool(owned) and bool(
            ExportJob.objects.filter(pk=partition.job_id, status=ExportJob.Status.RUNNING).update(
                resources_exported=F("resources_exported") + exported
            )
        )


def complete_partition(
    partition: ExportPartition,
    written: list[tuple[str, bool, WrittenFile]],
    references: set[tuple[str, str]],
) -> list[int]:
    """Record the partition's files and references; return the ids of partitions its
    completion added (`begin_finalizing`)."""
    job = partition.job
    with transaction.atomic():
        # The job row lock serialises completions, so "last of its type" is race-free.
        running = (
            ExportJob.objects.select_for_update()
            .filter(pk=job.pk, status=ExportJob.Status.RUNNING)
            .first()
        )
        marked = running is not None and ExportPartition.objects.filter(
            pk=partition.pk, **this_attempt(partition)
        ).update(status=ExportPartition.Status.DONE, lease_until=None)
        if not marked:
            keys = [file.key for _, _, file in written]
            transaction.on_commit(lambda: discard_if_deleted(job.pk, keys))
            return []
        record_references(partition, references)
        record_files(job, partition, written)
        ExportJob.objects.filter(pk=job.pk).update(
            partitions_done=F("partitions_done") + 1,
            types_done=F("types_done") + types_finished(running, partition),
            rows_done=F("rows_done") + partition.rows_planned,
        )
    return begin_finalizing(job.pk, partition.worker)


def record_files(
    job: ExportJob, partition: ExportPartition, written: list[tuple[str, bool, WrittenFile]]
) -> None:
    """The files a partition wrote, listed in the job's manifest from now on."""
    ExportFile.objects.bulk_create(
        [
            ExportFile(
                job=job,
                partition=partition,
                kind=ExportFile.Kind.DELETED if deleted else ExportFile.Kind.OUTPUT,
                resource_type="Bundle" if deleted else resource_type,
                storage_key=file.key,
                resource_count=file.resource_count,
                size_bytes=file.size_bytes,
                continues_in_key=file.continues_in,
            )
            for resource_type, deleted, file in written
        ]
    )


def this_attempt(partition: ExportPartition) -> dict[str, Any]:
    """Filters that match the partition only while this attempt holds it. The worker's
    name alone is not enough: every pool process of a Celery node shares it, and so do
    nodes on hosts with the same host name. Each claim counts one more attempt."""
    return {
        "status": ExportPartition.Status.RUNNING,
        "worker": partition.worker,
        "attempts": partition.attempts,
    }


def types_finished(job: ExportJob, partition: ExportPartition) -> int:
    """How many of the job's types are complete now that `partition` is: its type once
    its last partition is done; the types of a SMALL_TYPES partition, each read by it
    alone; the types of the all-types pass when its last partition is (every type but
    the small ones)."""
    unfinished = job.partitions.exclude(status=ExportPartition.Status.DONE)
    if partition.resource_type == SMALL_TYPES:
        return len(partition.types)
    if partition.resource_type == ALL_TYPES:
        if unfinished.filter(resource_type=ALL_TYPES).exists():
            return 0
        return job.types_total - len(own_partition_types(job))
    return int(not unfinished.filter(resource_type=partition.resource_type).exists())


def begin_finalizing(job_id: int, worker: str) -> list[int]:
    """The partition that finishes last (and only it) finalises the job, unless the job
    still has referenced resources to export: then it adds their partitions and returns
    their ids, for the caller to start (or, as `worker`, runs them itself: see
    `plan_referenced_partitions`)."""
    if plan_referenced_partitions(job_id, worker):
        return list(
            ExportPartition.objects.filter(
                job_id=job_id, status=ExportPartition.Status.PENDING
            ).values_list("pk", flat=True)
        )
    finishing = ExportJob.objects.filter(
        pk=job_id, status=ExportJob.Status.RUNNING, partitions_done=F("partitions_total")
    ).update(status=ExportJob.Status.FINALIZING)
    if finishing:
        finalize_export(job_id)
    return []


def finalize_export(job_id: int) -> None:
    """Write the warnings file, mark the job complete, start the retention clock."""
    job = ExportJob.objects.get(pk=job_id)
    if job.status != ExportJob.Status.FINALIZING:
        return
    storage = job_storage(job)
    error_files = []
    if job.warnings:
        key = f"{job.uuid}/OperationOutcome.warnings.ndjson"
        size = 0
        with storage.open_writer(key) as handle:
            for warning in job.warnings:
                line = warning_outcome_line(warning)
                handle.write(line)
                size += len(line)
        error_files.append(
            ExportFile(
                job=job,
                kind=ExportFile.Kind.ERROR,
                resource_type="OperationOutcome",
                storage_key=key,
                resource_count=len(job.warnings),
                size_bytes=size,
            )
        )
    now = timezone.now()
    with transaction.atomic():
        ExportFile.objects.filter(job=job, kind=ExportFile.Kind.ERROR).delete()
        ExportFile.objects.bulk_create(error_files)
        updated = ExportJob.objects.filter(pk=job.pk, status=ExportJob.Status.FINALIZING).update(
            status=ExportJob.Status.COMPLETED,
            completed_at=now,
            expires_at=now + retention(job),
        )
    if updated:
        export_finished(job.pk)
        sweep_orphans(job)
        job.refresh_from_db()
        record_job_event(
            job, "export.completed", resources=job.resources_exported, files=job.files.count()
        )
        logger.info("export completed", extra={"job": job.uuid})


def fail_export(job_id: int, reason: str) -> None:
    job = ExportJob.objects.get(pk=job_id)
    now = timezone.now()
    updated = ExportJob.objects.filter(pk=job_id, status__in=ExportJob.UNFINISHED).update(
        status=ExportJob.Status.FAILED,
        failure_reason=reason[:2000],
        completed_at=now,
        expires_at=now + retention(job),
    )
    if updated:
        export_finished(job_id)
        record_job_event(job, "export.failed", outcome=AuditEvent.Outcome.FAILURE, reason=reason)
        logger.warning("export failed", extra={"job": job.uuid})


def record_job_event(
    job: ExportJob,
    action: str,
    *,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    reason: str = "",
    **details: Any,
) -> None:
    """Something the system did to a job, in the audit trail under the job's client and
    in the job's timeline (events whose details name the job)."""
    record_event(
        actor_type=AuditEvent.ActorType.SYSTEM,
        actor=client_label(job),
        action=action,
        outcome=outcome,
        reason=reason,
        details={"job": str(job.uuid), **details},
    )


def retention(job: ExportJob) -> timedelta:
    """How long a finished job's files are kept: its own retention (a schedule's), or
    BULKOPS_EXPORT_RETENTION."""
    return timedelta(seconds=job.retention or settings.BULKOPS_EXPORT_RETENTION)


def client_label(job: ExportJob) -> str:
    return job.client.client_id if job.client_id else ""


def discard_files(job: ExportJob, files: QuerySet[ExportFile]) -> None:
    discard_keys(job, list(files.values_list("storage_key", flat=True)))
    files.delete()


def discard_if_deleted(job_id: int, keys: list[str]) -> None:
    """Remove the files of an attempt whose work is not kept, when its job has been
    deleted or cancelled (its folder is gone already; these came after).

    Otherwise they stay: another attempt took the partition over and writes, or has
    written and listed, files of the same names (partition outputs have deterministic
    names), and deleting them would take files from the manifest. A file only this
    attempt wrote is listed nowhere; the finaliser's orphan sweep removes it, or
    retention with the job's folder."""
    job = ExportJob.objects.filter(pk=job_id, deleted_at__isnull=False).first()
    if job is not None:
        discard_keys(job, keys)


def discard_keys(job: ExportJob, keys: list[str]) -> None:
    storage = job_storage(job)
    for key in keys:
        storage.delete(key)
