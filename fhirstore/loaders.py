"""load_fhir's engine: files and folders of FHIR data into the store, one transaction each.

A bad file changes nothing and is reported with the entry or line that broke it; the
caller carries on with the next file. NDJSON is streamed line by line in batches, so a
file of any size loads in bounded memory; Bundles are parsed whole (Synthea writes one
per patient, a few MB).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from django.db import transaction

from bulkops import untrusted_json
from bulkops.fhir.bundle import BundleError, plan_bundle
from bulkops.fhir.references import ConditionalReference
from bulkops.fhir.resource_types import is_resource_type
from fhirstore.writes import (
    BATCH_SIZE,
    ResourceWrite,
    StoreError,
    WriteResult,
    find_by_identifier,
    validate_write,
    write_resources,
)

SUFFIXES = (".json", ".ndjson", ".ndjson.gz")
# Synthea writes the Organizations/Locations and Practitioners that patient bundles refer
# to (by conditional reference) into these files: load them first.
SHARED_FIRST = ("hospitalInformation", "practitionerInformation")


class LoadError(ValueError):
    """What is wrong with a file, and where (`entry[3]: ...`, `line 12: ...`)."""


@dataclass
class FileReport:
    path: Path
    result: WriteResult = field(default_factory=WriteResult)
    error: str | None = None


def data_files(paths: list[Path]) -> list[Path]:
    """Files to load, folders expanded; shared Synthea bundles first, then by name."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += [p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES)]
        else:
            files.append(path)
    return sorted(files, key=lambda p: (not p.name.startswith(SHARED_FIRST), str(p)))


def load_file(path: Path, *, now: datetime) -> FileReport:
    report = FileReport(path)
    try:
        with transaction.atomic():
            if path.name.endswith((".ndjson", ".ndjson.gz")):
                report.result = _load_ndjson(path, now)
            elif path.name.endswith(".json"):
                report.result = _load_json(path, now)
            else:
                raise LoadError(f"not a FHIR data file (expected one of {', '.join(SUFFIXES)})")
    except (LoadError, BundleError, StoreError) as error:
        report.error = str(error)
    except (OSError, EOFError, UnicodeDecodeError) as error:
        report.error = f"cannot read file: {error}"
    return report


def _resolve_conditional(reference: ConditionalReference) -> str | None:
    return find_by_identifier(reference.resource_type, reference.system, reference.value)


def _load_json(path: Path, now: datetime) -> WriteResult:
    try:
        document = untrusted_json.loads_resource(path.read_bytes())
    except json.JSONDecodeError as error:
        raise LoadError(f"line {error.lineno}: invalid JSON: {error.msg}") from None
    resource = _checked(document)
    if resource["resourceType"] == "Bundle":
        writes = plan_bundle(resource, _resolve_conditional)
        return write_resources(
            (ResourceWrite(w.key.resource_type, w.key.resource_id, w.body) for w in writes),
            now=now,
        )
    return write_resources([_resource_write(resource)], now=now)


def _load_ndjson(path: Path, now: datetime) -> WriteResult:
    result = WriteResult()
    batch: list[ResourceWrite] = []
    with _open_text(path) as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                batch.append(_resource_write(_checked(untrusted_json.loads_resource(line))))
            except json.JSONDecodeError as error:
                raise LoadError(f"line {number}: invalid JSON: {error.msg}") from None
            except (LoadError, StoreError) as error:
                raise LoadError(f"line {number}: {error}") from None
            if len(batch) >= BATCH_SIZE:
                result.add(write_resources(batch, now=now))
                batch = []
    result.add(write_resources(batch, now=now))
    return result


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
    resource_id = resource.get("id")
    if not isinstance(resource_id, str):
        raise LoadError(f"{resource['resourceType']} has no id")
    write = ResourceWrite(resource["resourceType"], resource_id, resource)
    validate_write(write)
    return write
