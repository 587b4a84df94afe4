"""load_fhir's engine: files and folders of FHIR data into the store, one transaction each.

A bad file changes nothing and is reported with the entry or line that broke it; the
caller carries on with the next file. NDJSON is streamed line by line in batches, so a
file of any size loads in bounded memory; Bundles are parsed whole (Synthea writes one
per patient, a few MB).

Conditional references (`Practitioner?identifier=system|value`) are rewritten to
`Type/id` in every format, against the whole set of files one command loads: a file
whose references do not each match one stored resource is rolled back and tried again
after the other files, for as long as waiting files keep loading (an Encounter file
sorts before the Practitioner file it points into). One still unresolved then is
refused, every such reference listed with its line or entry and how many resources it
matches. Within an NDJSON file, a line sees the lines above it.

A folder written by a Bulk Data export loads as it is: its manifest, its log and its
error files (OperationOutcomes) are not data, so they are skipped and named, as is
any other file in a folder that is not a FHIR data file; deleted[] files hold
transaction Bundles of DELETEs, applied like any Bundle.
"""

from __future__ import annotations

import gc
import gzip
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, partial
from pathlib import Path
from typing import IO, Any

from django.db import connection, transaction
from django.utils import timezone

from bulkops import untrusted_json
from bulkops.fhir.bundle import BundleError, plan_bundle
from bulkops.fhir.references import (
    Unresolved,
    UnresolvedReferences,
    resolve_conditionals,
)
from bulkops.fhir.resource_types import is_resource_type
from fhirstore.deadlocks import StillDeadlocked, run_again_after_deadlocks
from fhirstore.writes import (
    BATCH_SIZE,
    ResourceWrite,
    StoreError,
    WriteResult,
    identifier_matches,
    validate_write,
    write_resources,
)

SUFFIXES = (".json", ".ndjson", ".ndjson.gz")
# Synthea writes the Organizations/Locations and Practitioners that patient bundles refer
# to (by conditional reference) into these files: load them first.
SHARED_FIRST = ("hospitalInformation", "practitionerInformation")
# Every conditional reference bulkops resolves holds this (bulkops.fhir.references).
CONDITIONAL_MARK = "?identifier="
APPLIED_BUNDLE_TYPES = ("transaction", "batch")  # an NDJSON line of these is applied


class LoadError(ValueError):
    """What is wrong with a file, and where (`entry[3]: ...`, `line 12: ...`)."""


class NotFhirData(ValueError):
    """The file is not FHIR data (an export's manifest, log or error file): skipped."""


@dataclass
class FileReport:
    path: Path
    result: WriteResult = field(default_factory=WriteResult)
    error: str | None = None
    skipped: str | None = None  # why the file holds no FHIR data to load
    waiting: bool = False  # its conditional references may match once others are loaded
    resources: int = 0  # NDJSON lines read (each a resource)


@dataclass(frozen=True)
class Declared:
    """What a submitted NDJSON file's manifest says of it: each line must be a
    `resource_type`. Loading one also lists in `new_keys` the "Type/id" of every
    resource no live one stood for before (what a purge may delete)."""

    resource_type: str
    new_keys: list[str] = field(default_factory=list)


def load_files(paths: list[Path]) -> list[FileReport]:
    """Load files and folders as one set (see the module docstring); a report per file
    in loading order, skipped files first."""
    files, others = data_files(paths)
    reports = [FileReport(p, skipped="not a FHIR data file") for p in others]
    attempts = {path: load_file(path, now=timezone.now(), wait=True) for path in files}
    waiting = [path for path, report in attempts.items() if report.waiting]
    while waiting:
        for path in waiting:
            attempts[path] = load_file(path, now=timezone.now(), wait=True)
        still = [path for path in waiting if attempts[path].waiting]
        if len(still) == len(waiting):
            break  # nothing loaded in a whole round: they wait for each other or nothing
        waiting = still
    for path in waiting:
        attempts[path] = load_file(path, now=timezone.now())
    return reports + list(attempts.values())


def data_files(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """Files to load (folders expanded; shared Synthea bundles first, then by name), and
    the other files found in the folders."""
    files: list[Path] = []
    others: list[Path] = []
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        for found in sorted(p for p in path.rglob("*") if p.is_file()):
            (files if found.name.endswith(SUFFIXES) else others).append(found)
    return sorted(files, key=lambda p: (not p.name.startswith(SHARED_FIRST), str(p))), others


def load_file(
    path: Path, *, now: datetime, wait: bool = False, declared: Declared | None = None
) -> FileReport:
    """Load one file in one transaction. With `wait`, a file stops at its first batch of
    unresolved conditional references and is marked waiting; without, every one of
    them is reported. A `declared` NDJSON file is refused at its first line of another
    type, each line parsed once for both.

    A load that PostgreSQL fails to break a deadlock is run again (fhirstore.deadlocks):
    here when the load is the outermost transaction, by the caller when it is not."""
    if connection.in_atomic_block:
        return _load_file(path, now, wait, declared)
    try:
        return run_again_after_deadlocks(partial(_load_file, path, now, wait, declared))
    except StillDeadlocked as error:
        return FileReport(path, error=f"not loaded: {error}")


def _load_file(path: Path, now: datetime, wait: bool, declared: Declared | None) -> FileReport:
    report = FileReport(path)
    if declared is not None:
        declared.new_keys.clear()  # what an earlier run of this load listed was taken back
    try:
        with _cyclic_collection_paused(), transaction.atomic():
            if path.name.endswith((".ndjson", ".ndjson.gz")):
                report.result = _load_ndjson(report, now, wait, declared)
            elif path.name.endswith(".json"):
                report.result = _load_json(path, now)
            else:
                raise LoadError(f"not a FHIR data file (expected one of {', '.join(SUFFIXES)})")
    except NotFhirData as reason:
        report.skipped = str(reason)
    except UnresolvedReferences as error:
        report.error, report.waiting = str(error), wait
    except (LoadError, BundleError, StoreError) as error:
        report.error = str(error)
    except (OSError, EOFError, UnicodeDecodeError) as error:
        report.error = f"cannot read file: {error}"
    return report


@contextmanager
def _cyclic_collection_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a file loads.

    A load makes millions of short-lived containers (parsed JSON, which holds no
    cycles: reference counting frees each as soon as its batch is written). Each 700 of
    them set off a collection that scans the young objects, and every so often all of
    them: 15 to 20% of a load's Python time. Only cycles made meanwhile wait, until the
    file ends.
    """
    if not gc.isenabled():  # paused by a load in another thread, which resumes it
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _load_json(path: Path, now: datetime) -> WriteResult:
    try:
        document = untrusted_json.loads_resource(path.read_bytes())
    except json.JSONDecodeError as error:
        raise LoadError(f"line {error.lineno}: invalid JSON: {error.msg}") from None
    if isinstance(document, dict) and "transactionTime" in document and "output" in document:
        raise NotFhirData("a Bulk Data manifest, not FHIR data")
    resource = _checked(document)
    if resource["resourceType"] == "Bundle":
        return _apply_bundle(resource, now)
    write = _resource_write(resource)
    validate_write(write)  # a bad id or body is the error to report, before any reference
    if problems := resolve_conditionals(resource, identifier_matches, "resource"):
        raise UnresolvedReferences(problems)
    return write_resources([write], now=now)


def _apply_bundle(
    bundle: dict[str, Any], now: datetime, new_keys: list[str] | None = None
) -> WriteResult:
    plan = plan_bundle(bundle, cache(identifier_matches))
    result = write_resources(
        (ResourceWrite(w.key.resource_type, w.key.resource_id, w.body) for w in plan.writes),
        now=now,
        new_keys=new_keys,
    )
    result.skipped.update(key.resource_type for key in plan.skipped)
    return result


def _load_ndjson(
    report: FileReport, now: datetime, wait: bool, declared: Declared | None
) -> WriteResult:
    result = WriteResult()
    problems: list[Unresolved] = []
    batch: list[_Line] = []
    new_keys = declared.new_keys if declared else None
    for line in _ndjson_resources(report.path, declared):
        report.resources += 1
        number, resource = line.number, line.resource
        if resource["resourceType"] == "Bundle" and resource.get("type") in APPLIED_BUNDLE_TYPES:
            try:
                result.add(_apply_bundle(resource, now, new_keys))
            except (BundleError, StoreError) as error:
                raise LoadError(f"line {number}: {error}") from None
            except UnresolvedReferences as error:
                problems += [
                    Unresolved(f"line {number} {p.where}", p.reference, p.matches)
                    for p in error.problems
                ]
            continue
        batch.append(line)
        if len(batch) >= BATCH_SIZE:
            problems += _write_ndjson_batch(batch, now, result, new_keys)
            batch = []
        if problems and wait:
            raise UnresolvedReferences(problems)
    problems += _write_ndjson_batch(batch, now, result, new_keys)
    if problems:
        raise UnresolvedReferences(problems)
    return result


@dataclass(frozen=True)
class _Line:
    number: int
    resource: dict[str, Any]
    conditional: bool  # whether it may hold a conditional reference (most lines do not)


def _ndjson_resources(path: Path, declared: Declared | None) -> Iterator[_Line]:
    """Each line's resource; NotFhirData when the first line shows an export's log or
    error file, LoadError at a line not of the declared type."""
    first = True
    with _open_text(path) as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                document = untrusted_json.loads_resource(line)
            except json.JSONDecodeError as error:
                raise LoadError(f"line {number}: invalid JSON: {error.msg}") from None
            if declared is not None:
                _check_declared(document, declared.resource_type, number)
            if first:
                _refuse_export_records(document)
                first = False
            try:
                yield _Line(number, _checked(document), CONDITIONAL_MARK in line)
            except LoadError as error:
                raise LoadError(f"line {number}: {error}") from None


def _check_declared(document: Any, resource_type: str, number: int) -> None:
    found = document.get("resourceType") if isinstance(document, dict) else None
    if found != resource_type:
        raise LoadError(
            f"line {number}: a {found or 'line without resourceType'} in a file the "
            f"manifest declares as {resource_type}; nothing from this file was loaded"
        )


def _refuse_export_records(document: Any) -> None:
    """Raise NotFhirData when an NDJSON file's first line is an export log entry (the
    SMART bulk export log: eventId, no resourceType) or an OperationOutcome (an export's
    error file: outcomes are reports, not data to keep)."""
    if not isinstance(document, dict):
        return
    if "eventId" in document and "resourceType" not in document:
        raise NotFhirData("a Bulk Data export log, not FHIR data")
    if document.get("resourceType") == "OperationOutcome":
        raise NotFhirData("OperationOutcomes (an export's error file), not data to keep")


def _write_ndjson_batch(
    batch: list[_Line], now: datetime, result: WriteResult, new_keys: list[str] | None
) -> list[Unresolved]:
    """Resolve the batch's conditional references against the store (the lines above
    included), write it and return the references that did not resolve. The store
    checks each write before it touches a row; a write it refuses is found again here
    to name its line."""
    matches = cache(identifier_matches)  # one query per distinct reference in the batch
    problems: list[Unresolved] = []
    writes = []
    for line in batch:
        try:
            writes.append(_resource_write(line.resource))
        except LoadError as error:
            raise LoadError(f"line {line.number}: {error}") from None
        if line.conditional:
            problems += resolve_conditionals(line.resource, matches, f"line {line.number}")
    try:
        result.add(write_resources(writes, now=now, new_keys=new_keys))
    except StoreError:
        for line, write in zip(batch, writes, strict=True):
            try:
                validate_write(write)
            except StoreError as error:
                raise LoadError(f"line {line.number}: {error}") from None
        raise
    return problems


def _open_text(path: Path) -> IO[str]:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _checked(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise LoadError("not a JSON object")
    resource_type = document.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        raise LoadError("missing resourceType")
    if not is_resource_type(resource_type):
        raise LoadError(f"unknown resource type {resource_type!r}")
    return document


def _resource_write(resource: dict[str, Any]) -> ResourceWrite:
    """The put of `resource`, which the store checks (validate_write) when it is written."""
    resource_id = resource.get("id")
    if not isinstance(resource_id, str):
        raise LoadError(f"{resource['resourceType']} has no id")
    return ResourceWrite(resource["resourceType"], resource_id, resource)
