"""`organizeOutputBy=Patient` (v4 digest §1.7): output files made of patient blocks.

A block is a header line (a `Parameters` naming `Patient/<id>`), then that patient's
resources of the exported types: the Patient itself first, then the rest of its
compartment (the compartment index, as Patient and Group exports read it), each type in
id order. A consumer can process one patient's block without reading the rest.

The partitions of an organised export are ranges of Patient rows (the job's patients:
every live Patient, the `patient` parameter's, or a Group's active members), so any
number of workers share one export. A partition works like any other
(exports/partitions.py: claim, lease, deterministic file names a retry overwrites,
files recorded when it completes); only its chunks (patients and their resources) and
its files (`PatientBlockFiles`) differ. A file takes whole blocks until the next one
would pass BULKOPS_MAX_RESOURCES_PER_FILE lines; a block longer than that alone is split,
each continuation file led by the header again, and the file before it names it in
`continuesInFile`.

A resource in two patients' compartments is written in both blocks. Resources outside
every patient's compartment (Practitioner, Organization, Medication...) are left out:
the IG lets a server omit them (§1.7), and bulkops says so in the manifest's
`outputOrganizedByDetail` and in README. Tombstones of a `_since` export go to the
partition's deleted[] files as in any export.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Self

from django.conf import settings
from django.db.models import QuerySet

from bulkops.fhir.patient_blocks import header_line
from bulkops.fhir.type_filters import TypeFilters
from exports.models import ExportJob, ExportPartition
from exports.ndjson_files import RotatingNdjsonWriter, WrittenFile
from exports.partitions import (
    LineMaker,
    Range,
    candidate_rows,
    id_ranges,
    job_patients,
    write_deletions,
)
from exports.row_chunks import RECORD, Block
from exports.storage import ExportStorage, ObjectWriter, job_storage
from fhirstore.reads import CompartmentMembership, Resource, rows_filter

ORGANIZED = "Patient-blocks"  # resource_type of an organised export's partitions
PATIENTS_PER_CHUNK = 200


def partition_slots(job: ExportJob, size: int) -> list[tuple[str, Iterable[Range]]]:
    """Ranges of about `size` patients each."""
    return [(ORGANIZED, id_ranges(job_patients(job), "id", size))]


@dataclass
class PatientBlock:
    """One patient's rows as blocks per type (the Patient's first), and its tombstones."""

    patient_id: str
    blocks: list[Block] = field(default_factory=list)
    deleted: list[Block] = field(default_factory=list)


def patient_chunks(
    job: ExportJob, partition: ExportPartition, filters: TypeFilters
) -> Iterator[list[PatientBlock]]:
    """The partition's patients, PATIENTS_PER_CHUNK at a time, with their rows."""
    patients = list(
        job_patients(job)
        .filter(id__gt=partition.lower_id, id__lte=partition.upper_id)
        .order_by("id")
        .values_list("resource_id", flat=True)
    )
    rows = candidate_rows(job, job.types)
    if (pushed := rows_filter(filters, job.types)) is not None:
        rows = rows.filter(pushed)
    for start in range(0, len(patients), PATIENTS_PER_CHUNK):
        yield read_patients(job, rows, patients[start : start + PATIENTS_PER_CHUNK])


def read_patients(job: ExportJob, rows: QuerySet[Resource], ids: list[str]) -> list[PatientBlock]:
    index = CompartmentMembership.objects.filter(patient_id__in=ids, resource_type__in=job.types)
    owners: dict[int, list[str]] = {}
    for patient_id, resource_pk in index.values_list("patient_id", "resource_id"):
        owners.setdefault(resource_pk, []).append(patient_id)
    grouped: dict[str, dict[tuple[str, bool], list[bytes]]] = {pid: {} for pid in ids}
    selected = (
        rows.filter(id__in=index.values("resource_id"))
        .annotate(record=RECORD)
        .order_by("id")
        .values_list("id", "resource_type", "deleted", "record")
    )
    for pk, resource_type, deleted, record in selected.iterator():
        for patient_id in owners.get(pk, ()):
            slot = grouped[patient_id].setdefault((resource_type, bool(deleted)), [])
            slot.append(record.encode())
    return [patient_block(pid, grouped[pid]) for pid in ids]


def patient_block(patient_id: str, rows: dict[tuple[str, bool], list[bytes]]) -> PatientBlock:
    """The Patient's own block first, then the other types in name order."""
    result = PatientBlock(patient_id)
    for (resource_type, deleted), records in sorted(
        rows.items(), key=lambda item: (item[0][0] != "Patient", item[0])
    ):
        block = Block(resource_type, deleted, len(records), b"\n".join(records))
        (result.deleted if deleted else result.blocks).append(block)
    return result


class LinesOfOneBlock:
    """Collects what LineMaker writes for one patient (a RecordSink)."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def write_records(self, records: list[bytes]) -> None:
        self.lines.extend(records)

    def write_block(self, block: bytes, count: int) -> None:
        self.lines.extend(block.split(b"\n"))


class PatientBlockFiles:
    """A partition's organised files `{stem}.{n:03d}.ndjson`, holding whole blocks, and
    its deleted[] series. Deterministic names, as RotatingNdjsonWriter's."""

    def __init__(self, storage: ExportStorage, stem: str, max_per_file: int) -> None:
        self.storage, self.stem, self.max_per_file = storage, stem, max_per_file
        self.files: list[WrittenFile] = []
        self.deleted = RotatingNdjsonWriter(
            storage, f"{stem}.{{:03d}}.deleted.ndjson".format, max_per_file
        )
        self._stack: ExitStack | None = None
        self._handle: ObjectWriter | None = None
        self._count = self._size = 0

    def key_for(self, number: int) -> str:
        return f"{self.stem}.{number:03d}.ndjson"

    def write_block(self, patient_id: str, lines: list[bytes]) -> None:
        """One patient's block: in the open file if it fits, else in the next; split
        only when the block alone is longer than a file."""
        header = header_line(patient_id)
        if self._count and self._count + 1 + len(lines) > self.max_per_file:
            self._finish()
        room = max(1, self.max_per_file - 1)
        for start in range(0, len(lines), room):
            if start:
                self._finish(continued=True)
            self._append([header, *lines[start : start + room]])

    def _append(self, lines: list[bytes]) -> None:
        if self._handle is None:
            self._stack = ExitStack()
            self._handle = self._stack.enter_context(
                self.storage.open_writer(self.key_for(len(self.files)))
            )
            self._count = self._size = 0
        data = b"\n".join(lines) + b"\n"
        self._handle.write(data)
        self._count += len(lines)
        self._size += len(data)

    def _finish(self, *, continued: bool = False) -> None:
        if self._stack is None:
            return
        self._stack.close()
        number = len(self.files)
        next_key = self.key_for(number + 1) if continued else ""
        self.files.append(WrittenFile(self.key_for(number), self._count, self._size, next_key))
        self._stack = self._handle = None

    @property
    def written(self) -> list[tuple[str, bool, WrittenFile]]:
        """(type, deleted?, file) of every closed file, as TypedNdjsonFiles gives them."""
        return [("Patient", False, f) for f in self.files] + [
            ("Bundle", True, f) for f in self.deleted.written
        ]

    def abort(self) -> None:
        if self._stack is not None:
            self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)
            self._stack = self._handle = None
        self.deleted.abort()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self._finish()
            self.deleted.close()
        else:
            self.abort()


class BlockChunkWriter:
    """Writes a chunk of patients' blocks; returns how many resources it wrote
    (headers and tombstones are not counted)."""

    def __init__(self, job: ExportJob, files: PatientBlockFiles, filters: TypeFilters) -> None:
        self.files = files
        self.to_lines = LineMaker(job, filters)

    def __call__(self, patients: list[PatientBlock]) -> int:
        exported = 0
        for patient in patients:
            collected = LinesOfOneBlock()
            for block in patient.blocks:
                exported += self.to_lines(collected, block)[0]
            if collected.lines:
                self.files.write_block(patient.patient_id, collected.lines)
            for block in patient.deleted:
                write_deletions(self.files.deleted, block)
        return exported


def partition_work(
    job: ExportJob, partition: ExportPartition, filters: TypeFilters
) -> tuple[PatientBlockFiles, Callable[[list[PatientBlock]], int], Iterator[list[PatientBlock]]]:
    """What exports.partitions.run_partition runs for an organised partition."""
    files = PatientBlockFiles(
        job_storage(job),
        f"{job.uuid}/{ORGANIZED}.{partition.sequence:04d}",
        settings.BULKOPS_MAX_RESOURCES_PER_FILE,
    )
    return files, BlockChunkWriter(job, files, filters), patient_chunks(job, partition, filters)
