"""Running an export: plan partitions, stream each one, finalise the manifest.

A job is split into partitions (id ranges) so every available worker shares one export
(ARCHITECTURE "Data flow", step 3). A system-level export of every type in the store
(a plain `$export`) is split into all-types partitions: the store interleaves types (a
patient's resources are loaded together), so reading type by type would visit each
table page once per type, while one pass in id order reads it once
(docs/performance.md); once that pass takes more than one partition, each type small
enough for one partition gets one of its own, so it makes one file rather than one per
range (`all_types_slots`). Other exports are split by type: a `_type` subset through the
(resource_type, id) index, Patient and Group exports through the compartment index.
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

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from accounts.audit import record_event
from accounts.models import AuditEvent
from bulkops.fhir.elements import selected_elements, subset_resource
from bulkops.fhir.manifest import deletion_bundle_line, warning_outcome_line
from bulkops.fhir.params import SYSTEM, ElementSelection
from bulkops.fhir.resource_types import R4_RESOURCE_TYPES
from bulkops.fhir.type_filters import TypeFilters
from exports.models import ExportFile, ExportJob, ExportPartition
from exports.ndjson_files import RecordSink, RotatingNdjsonWriter, TypedNdjsonFiles, WrittenFile
from exports.orphans import sweep_orphans
from exports.row_chunks import Block, read_chunk
from exports.storage import get_storage
from fhirstore.reads import CompartmentMembership, Resource, rows_filter

logger = logging.getLogger(__name__)

CHUNK_SIZE = 10_000  # rows per read and per progress/cancellation check
PAGE_SIZE = 1000  # compartment-index ids per page of a Patient or Group partition
LAST_ID = 2**62
ALL_TYPES = "*"  # resource_type of a system-level partition: every type the job exports
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
        begin_finalizing(job.pk)
    return list(
        ExportPartition.objects.filter(
            job=job, job__status=ExportJob.Status.RUNNING, status=ExportPartition.Status.PENDING
        ).values_list("pk", flat=True)
    )


def create_partitions(job: ExportJob) -> None:
    from exports import patient_blocks  # it builds on this module

    size = settings.BULKOPS_PARTITION_SIZE
    organized = bool(job.parameters.get("organizeOutputBy"))
    all_types = not organized and job.level == SYSTEM and exports_every_stored_type(job)
    if organized:
        slots = patient_blocks.partition_slots(job, size)
    elif all_types:
        slots = all_types_slots(job, size)
    else:
        slots = [(t, type_ranges(job, t, size)) for t in job.types]
    partitions = [
        ExportPartition(
            job=job,
            resource_type=resource_type,
            sequence=sequence,
            lower_id=lower,
            upper_id=upper,
            rows_planned=rows,
        )
        for resource_type, ranges in slots
        for sequence, (lower, upper, rows) in enumerate(ranges)
    ]
    ExportPartition.objects.bulk_create(partitions)
    job.status = ExportJob.Status.RUNNING
    job.partitions_total = len(partitions)
    if not partitions:
        job.types_total = 0
    elif all_types:
        job.types_total = count_exported_types(job)
    else:
        job.types_total = len({p.resource_type for p in partitions})
    job.rows_planned = sum(p.rows_planned for p in partitions)
    job.save(update_fields=["status", "partitions_total", "types_total", "rows_planned"])
    logger.info("export planned", extra={"job": job.uuid, "partition": len(partitions)})


def all_types_slots(job: ExportJob, size: int) -> list[tuple[str, Iterable[Range]]]:
    """The partitions of a plain export: id ranges of the whole table, read in one pass,
    and, once there is more than one range, a partition of its own for each small type.

    A file never spans partitions (each is written by one worker, under names a retry
    overwrites), so in the pass every type gets a file per range it has rows in: 10
    Organizations spread over 8 ranges would make 8 files. A type of at most `size` rows
    (BULKOPS_PARTITION_SIZE) is read instead by one partition of its own through the
    (resource_type, id) index, a small read, and makes one file (rotated at
    BULKOPS_MAX_RESOURCES_PER_FILE); the pass skips its rows. Larger types stay in the
    pass, whose single read of the table is what makes a plain export fast
    (docs/performance.md). When every type is small the pass is left out.
    """
    ranges = list(id_ranges(all_types_rows(job), "id", size))
    if len(ranges) < 2:
        return [(ALL_TYPES, ranges)]
    stored = exported_stored_types(job)
    small = [t for t in stored if candidate_rows(job, [t]).values("id")[: size + 1].count() <= size]
    own = [(t, type_ranges(job, t, size)) for t in small]
    return own if len(small) == len(stored) else [(ALL_TYPES, ranges), *own]


def pass_types(job: ExportJob) -> set[str]:
    """The types an all-types partition writes: those without partitions of their own."""
    own = job.partitions.exclude(resource_type=ALL_TYPES).values_list("resource_type", flat=True)
    return set(job.types) - set(own)


def exports_every_stored_type(job: ExportJob) -> bool:
    """No stored resource is of a type the job leaves out (index probes, no scan)."""
    left_out = [t for t in R4_RESOURCE_TYPES if t not in set(job.types)]
    return not Resource.objects.filter(resource_type__in=left_out).exists()


def count_exported_types(job: ExportJob) -> int:
    """How many types have rows an all-types job exports."""
    return len(exported_stored_types(job))


def exported_stored_types(job: ExportJob) -> list[str]:
    """The types that have rows an all-types job exports (every stored type is one of
    the job's). The stored types are found by stepping from type to type along the
    (resource_type, id) index, and only those are asked for rows in the job's window:
    two probes a stored type (17 in the bench store), where asking each of the 146 R4
    types took 0.10 s."""
    stored = Resource.objects.order_by("resource_type").values_list("resource_type", flat=True)
    found, last = [], ""
    while (last := stored.filter(resource_type__gt=last).first()) is not None:
        if candidate_rows(job, [last]).exists():
            found.append(last)
    return found


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
    each, found by keyset steps along an index on `field`."""
    lower = 0
    while True:
        after = ids.filter(**{f"{field}__gt": lower}).order_by(field)
        boundary = list(after.values_list(field, flat=True).distinct()[size - 1 : size])
        if not boundary:
            remaining = after.values(field).distinct().count()
            if remaining:
                yield lower, LAST_ID, remaining
            return
        yield lower, boundary[0], size
        lower = boundary[0]


def member_id_ranges(
    ids: QuerySet[CompartmentMembership], size: int
) -> Iterator[tuple[int, int, int]]:
    """The same ranges for a Patient or Group export, cut from one ordered pass over the
    members' compartment rows.

    Keyset steps (`id_ranges`) ask for "the next `size` ids in id order", and for ids
    spread over many patients PostgreSQL answers that by walking the whole compartment
    index in id order, filtering out other patients' rows: a cost that follows the
    store, not the group (docs/performance.md). Without a LIMIT it reads each member's
    rows by `(resource_type, patient_id, resource)` and sorts them."""
    lower, count = 0, 0
    # Streamed (a server-side cursor on PostgreSQL): planning never holds a large
    # group's ids of a type.
    for resource_id in ordered_member_ids(ids, lower, LAST_ID).iterator(chunk_size=PAGE_SIZE):
        count += 1
        if count == size:
            yield lower, resource_id, size
            lower, count = resource_id, 0
    if count:
        yield lower, LAST_ID, count


def ordered_member_ids(
    ids: QuerySet[CompartmentMembership], lower: int, upper: int
) -> QuerySet[CompartmentMembership, int]:
    """Distinct resource ids in (lower, upper], ascending."""
    return (
        ids.filter(resource_id__gt=lower, resource_id__lte=upper)
        .order_by("resource_id")
        .values_list("resource_id", flat=True)
        .distinct()
    )


def member_resource_ids(job: ExportJob, resource_type: str) -> QuerySet[CompartmentMembership]:
    """Compartment-index rows of one type for the job's patients.

    Patient and Group exports walk this index rather than the resource table, so their
    cost follows the chosen patients' data, not the size of the store.
    """
    rows = CompartmentMembership.objects.filter(resource_type=resource_type)
    patients = job.parameters.get("patient") or []
    if patients:
        rows = rows.filter(
            patient_id__in=[reference.removeprefix("Patient/") for reference in patients]
        )
    if job.level == ExportJob.Level.GROUP:
        rows = rows.of_active_members([job.group_id])
    return rows


def type_ranges(job: ExportJob, resource_type: str, size: int) -> Iterator[tuple[int, int, int]]:
    """The id ranges of one type's partitions."""
    if job.level == SYSTEM:
        return id_ranges(candidate_rows(job, [resource_type]), "id", size)
    return member_id_ranges(member_resource_ids(job, resource_type), size)


def job_filters(job: ExportJob) -> TypeFilters:
    """The job's `_typeFilter` filters, parsed again from the form the kick-off stored."""
    return TypeFilters.from_texts(job.parameters.get("_typeFilter", []), now=job.transaction_time)


def partition_chunks(
    job: ExportJob, partition: ExportPartition, filters: TypeFilters
) -> Iterator[list[Block]]:
    """The partition's rows in chunks of blocks, in id order; keyset, never OFFSET.
    `filters` (the job's, parsed once for the partition) narrow the rows as far as the
    database can."""
    all_types = partition.resource_type == ALL_TYPES
    rows = candidate_rows(job, None if all_types else [partition.resource_type])
    pushed = rows_filter(filters, job.types if all_types else [partition.resource_type])
    if pushed is not None:
        rows = rows.filter(pushed)
    if job.level == SYSTEM:
        last = partition.lower_id
        while (
            chunk := read_chunk(rows.filter(id__gt=last, id__lte=partition.upper_id), CHUNK_SIZE)
        ).last_id is not None:
            yield chunk.blocks
            last = chunk.last_id
        return
    # Read to the end before the first chunk is written: a cursor left open across the
    # progress commits between chunks holds SQLite's read lock, and two workers doing
    # that lock each other out. A partition holds about BULKOPS_PARTITION_SIZE ids.
    ids = list(
        ordered_member_ids(
            member_resource_ids(job, partition.resource_type),
            partition.lower_id,
            partition.upper_id,
        )
    )
    for start in range(0, len(ids), PAGE_SIZE):
        if blocks := read_chunk(rows.filter(id__in=ids[start : start + PAGE_SIZE])).blocks:
            yield blocks


def claim_partition(partition_id: int, worker: str, now: datetime) -> ExportPartition | None:
    """Take the partition unless another live worker holds it or it is done.

    A conditional update is the lock: exactly one claimant sees count 1. Counters of an
    earlier, interrupted attempt are taken back so progress never double counts.
    """
    lease = now + timedelta(seconds=settings.BULKOPS_PARTITION_LEASE)
    with transaction.atomic():
        claimed = (
            ExportPartition.objects.filter(pk=partition_id)
            .filter(
                Q(status=ExportPartition.Status.PENDING)
                | Q(status=ExportPartition.Status.RUNNING, lease_until__lt=now)
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


def run_partition(*, partition_id: int, worker: str) -> None:
    partition = claim_partition(partition_id, worker, timezone.now())
    if partition is None:
        return
    job = partition.job
    if job.status != ExportJob.Status.RUNNING:
        return
    discard_files(ExportFile.objects.filter(partition=partition))
    files, write_chunk, chunks = partition_work(job, partition, job_filters(job))
    with files:
        for exported in written_while_reading(write_chunk, chunks):
            if not record_chunk(partition, exported):
                files.abort()
                discard_keys([file.key for _, _, file in files.written])
                logger.info("partition stopped: job cancelled", extra={"job": job.uuid})
                return
    complete_partition(partition, files.written)


def partition_work(
    job: ExportJob, partition: ExportPartition, filters: TypeFilters
) -> tuple[Any, Callable[[Any], int], Iterator[Any]]:
    """The partition's files, the writer of one chunk and the chunks it reads: per
    type, or in patient blocks for an organised export (exports/patient_blocks.py)."""
    from exports import patient_blocks  # it builds on this module

    if partition.resource_type == patient_blocks.ORGANIZED:
        return patient_blocks.partition_work(job, partition, filters)
    files = TypedNdjsonFiles(
        get_storage(),
        lambda resource_type: f"{job.uuid}/{resource_type}.{partition.sequence:04d}",
        settings.BULKOPS_MAX_RESOURCES_PER_FILE,
    )
    wanted = pass_types(job) if partition.resource_type == ALL_TYPES else set(job.types)
    return (
        files,
        ChunkWriter(job, files, filters, wanted),
        partition_chunks(job, partition, filters),
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
    """Writes a chunk's blocks to the partition's files; returns how many resources it
    wrote (tombstones, written as deleted[] entries, are not counted)."""

    def __init__(
        self, job: ExportJob, files: TypedNdjsonFiles, filters: TypeFilters, wanted: set[str]
    ) -> None:
        self.files = files
        self.to_lines = LineMaker(job, filters)
        self.wanted = wanted  # an all-types partition reads rows of any type

    def __call__(self, blocks: list[Block]) -> int:
        exported = 0
        for block in blocks:
            if block.resource_type not in self.wanted:
                continue
            if block.deleted:
                write_deletions(self.files.writer(block.resource_type, deleted=True), block)
            else:
                exported += self.to_lines(self.files.writer(block.resource_type), block)
        return exported


class LineMaker:
    """Writes a block of stored bodies as NDJSON lines and says how many: verbatim, or
    only those its type's `_typeFilter` filters keep (still verbatim), or their
    `_elements` subsets. Only the last two parse a body."""

    def __init__(self, job: ExportJob, filters: TypeFilters) -> None:
        self.selections = [
            ElementSelection.from_text(e) for e in job.parameters.get("_elements", [])
        ]
        self.filters = filters
        self.names: dict[str, frozenset[str] | None] = {}
        self.keep: dict[str, Callable[[dict[str, Any]], bool] | None] = {}

    def __call__(self, writer: RecordSink, block: Block) -> int:
        resource_type = block.resource_type
        if resource_type not in self.names:
            self.names[resource_type] = selected_elements(self.selections, resource_type)
            self.keep[resource_type] = self.filters.matcher(resource_type)
        names, keep = self.names[resource_type], self.keep[resource_type]
        if names is None and keep is None:
            writer.write_block(block.records, block.count)
            return block.count
        lines = []
        for body in block.records.split(b"\n"):
            resource = json.loads(body)
            if keep is not None and not keep(resource):
                continue
            if names is None:
                lines.append(body)
            else:
                subset = subset_resource(resource, names)
                lines.append(json.dumps(subset, separators=(",", ":")).encode())
        writer.write_records(lines)
        return len(lines)


def write_deletions(writer: RotatingNdjsonWriter, block: Block) -> None:
    """A deleted[] line for each tombstone of the block (its records are resource ids)."""
    for resource_id in block.records.split(b"\n"):
        writer.write(deletion_bundle_line(block.resource_type, resource_id.decode()))


def record_chunk(partition: ExportPartition, exported: int) -> bool:
    """Flush point: count progress, extend the lease; False when the job was cancelled.

    One transaction per chunk, and on PostgreSQL one that does not wait for its WAL
    flush: losing the last progress update in a database crash costs nothing (the
    partition is redone when its lease runs out), waiting for it cost a worker ~10%.
    """
    lease = timezone.now() + timedelta(seconds=settings.BULKOPS_PARTITION_LEASE)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        ExportPartition.objects.filter(pk=partition.pk).update(
            lease_until=lease, resources_exported=F("resources_exported") + exported
        )
        return bool(
            ExportJob.objects.filter(pk=partition.job_id, status=ExportJob.Status.RUNNING).update(
                resources_exported=F("resources_exported") + exported
            )
        )


def complete_partition(
    partition: ExportPartition, written: list[tuple[str, bool, WrittenFile]]
) -> None:
    job = partition.job
    with transaction.atomic():
        # The job row lock serialises completions, so "last of its type" is race-free.
        running = (
            ExportJob.objects.select_for_update()
            .filter(pk=job.pk, status=ExportJob.Status.RUNNING)
            .first()
        )
        marked = running is not None and ExportPartition.objects.filter(
            pk=partition.pk, status=ExportPartition.Status.RUNNING, worker=partition.worker
        ).update(status=ExportPartition.Status.DONE, lease_until=None)
        if not marked:
            transaction.on_commit(lambda: discard_keys([file.key for _, _, file in written]))
            return
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
        ExportJob.objects.filter(pk=job.pk).update(
            partitions_done=F("partitions_done") + 1,
            types_done=F("types_done") + types_finished(running, partition),
            rows_done=F("rows_done") + partition.rows_planned,
        )
    begin_finalizing(job.pk)


def types_finished(job: ExportJob, partition: ExportPartition) -> int:
    """How many of the job's types are complete now that `partition` is: its type once
    its last partition is done; the types of the all-types pass when its last partition
    is (every type but those with partitions of their own)."""
    unfinished = job.partitions.exclude(status=ExportPartition.Status.DONE)
    if partition.resource_type == ALL_TYPES:
        if unfinished.filter(resource_type=ALL_TYPES).exists():
            return 0
        own = job.partitions.exclude(resource_type=ALL_TYPES).values("resource_type")
        return job.types_total - own.order_by().distinct().count()
    return int(not unfinished.filter(resource_type=partition.resource_type).exists())


def begin_finalizing(job_id: int) -> None:
    """The partition that finishes last (and only it) finalises the job."""
    finishing = ExportJob.objects.filter(
        pk=job_id, status=ExportJob.Status.RUNNING, partitions_done=F("partitions_total")
    ).update(status=ExportJob.Status.FINALIZING)
    if finishing:
        finalize_export(job_id)


def finalize_export(job_id: int) -> None:
    """Write the warnings file, mark the job complete, start the retention clock."""
    job = ExportJob.objects.get(pk=job_id)
    if job.status != ExportJob.Status.FINALIZING:
        return
    storage = get_storage()
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
            expires_at=now + timedelta(seconds=settings.BULKOPS_EXPORT_RETENTION),
        )
    if updated:
        sweep_orphans(job)
        job.refresh_from_db()
        record_event(
            actor_type=AuditEvent.ActorType.SYSTEM,
            actor=client_label(job),
            action="export.completed",
            details={
                "job": str(job.uuid),
                "resources": job.resources_exported,
                "files": job.files.count(),
            },
        )
        logger.info("export completed", extra={"job": job.uuid})


def fail_export(job_id: int, reason: str) -> None:
    updated = ExportJob.objects.filter(pk=job_id, status__in=ExportJob.UNFINISHED).update(
        status=ExportJob.Status.FAILED,
        failure_reason=reason[:2000],
        completed_at=timezone.now(),
        expires_at=timezone.now() + timedelta(seconds=settings.BULKOPS_EXPORT_RETENTION),
    )
    if updated:
        job = ExportJob.objects.get(pk=job_id)
        record_event(
            actor_type=AuditEvent.ActorType.SYSTEM,
            actor=client_label(job),
            action="export.failed",
            outcome=AuditEvent.Outcome.FAILURE,
            reason=reason,
            details={"job": str(job.uuid)},
        )
        logger.warning("export failed", extra={"job": job.uuid})


def client_label(job: ExportJob) -> str:
    return job.client.client_id if job.client_id else ""


def discard_files(files: QuerySet[ExportFile]) -> None:
    discard_keys(list(files.values_list("storage_key", flat=True)))
    files.delete()


def discard_keys(keys: list[str]) -> None:
    storage = get_storage()
    for key in keys:
        storage.delete(key)
