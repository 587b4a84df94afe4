"""The complete-status manifest (spec §2.3) and the NDJSON lines bulkops writes besides
resources: deletion Bundles (deleted[]) and OperationOutcomes (error[])."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

from bulkops.fhir.outcome import INFORMATIONAL, Issue, operation_outcome


class ManifestItem(TypedDict):
    type: str
    url: str
    count: NotRequired[int]


class Manifest(TypedDict):
    transactionTime: str
    request: str
    requiresAccessToken: bool
    output: list[ManifestItem]
    deleted: list[ManifestItem]
    error: list[ManifestItem]
    extension: NotRequired[dict[str, Any]]


# Manifest `extension` members (spec §2.3: server extras), named after the parameters:
# the `_typeFilter` filters the export applied, as bulkops read them, and its `_until`.
# A POST kick-off's `request` holds no parameters, so this is where a client sees what
# narrowed its output.
TYPE_FILTER_EXTENSION = "_typeFilter"
UNTIL_EXTENSION = "_until"


def format_instant(value: datetime) -> str:
    """An instant as FHIR writes it: UTC with milliseconds and a Z."""
    utc = value.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def build_manifest(
    *,
    transaction_time: datetime,
    request_url: str,
    requires_access_token: bool,
    output: Iterable[ManifestItem],
    deleted: Iterable[ManifestItem],
    error: Iterable[ManifestItem],
    type_filters: Iterable[str] = (),
    until: datetime | None = None,
) -> Manifest:
    manifest: Manifest = {
        "transactionTime": format_instant(transaction_time),
        "request": request_url,
        "requiresAccessToken": requires_access_token,
        "output": list(output),
        "deleted": list(deleted),
        "error": list(error),
    }
    extension: dict[str, Any] = {}
    if filters := list(type_filters):
        extension[TYPE_FILTER_EXTENSION] = filters
    if until is not None:
        extension[UNTIL_EXTENSION] = format_instant(until)
    if extension:
        manifest["extension"] = extension
    return manifest


def deletion_bundle_line(resource_type: str, resource_id: str) -> bytes:
    """One deleted[] line: a transaction Bundle with one DELETE entry (spec §2.3)."""
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": f"{resource_type}/{resource_id}"}}],
    }
    return _line(bundle)


def warning_outcome_line(text: str) -> bytes:
    return _line(operation_outcome(Issue("warning", INFORMATIONAL, text)))


def _line(resource: dict[str, Any]) -> bytes:
    return json.dumps(resource, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
