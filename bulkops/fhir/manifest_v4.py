"""The Bulk Data 4.0.0-ballot manifest (v4 digest §1.10): what `$export-v4` jobs answer.

The model `BulkDataManifest` differs from 2.0.0's in shape only: `outcome` instead of
`error`, no `request`, `extension` an array of FHIR Extensions, `manifestType`,
`outputFormat`, `fileSize` and `countSeverity`, `type` only on `output` items (and not
even there when the files are organised by a resource type, §1.7), and no empty
arrays, which FHIR JSON does not have. One page of a paged manifest (§1.8) is built the
same way with a `link` to the next one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bulkops.fhir.manifest import format_instant
from bulkops.fhir.params import NDJSON

MANIFEST_TYPE = "http://hl7.org/fhir/uv/bulkdata/StructureDefinition/BulkDataManifest"
# bulkops' own manifest extensions, the same facts the 2.0.0 manifest's `extension`
# object carries under the parameters' names.
TYPE_FILTER_EXTENSION = "urn:bulkops:manifest:typeFilter"
UNTIL_EXTENSION = "urn:bulkops:manifest:until"


@dataclass(frozen=True)
class ManifestFile:
    """One file as the manifest lists it; `severity` is set on OperationOutcome files
    (all of bulkops' are warnings about what the export left out)."""

    url: str
    count: int
    size: int
    resource_type: str = ""
    severity: str = ""
    continues_in: str = ""

    def as_json(self, *, typed: bool) -> dict[str, Any]:
        item: dict[str, Any] = {"url": self.url}
        if typed and self.resource_type:
            item["type"] = self.resource_type
        if self.continues_in:
            item["continuesInFile"] = self.continues_in
        item["count"] = self.count
        item["fileSize"] = self.size
        if self.severity:
            item["countSeverity"] = [{"code": self.severity, "count": self.count}]
        return item


@dataclass(frozen=True)
class Organization:
    """`organizeOutputBy` as the manifest reports it (v4 digest §1.7)."""

    resource_type: str
    detail: str


def build_manifest_v4(
    *,
    transaction_time: datetime,
    requires_access_token: bool,
    output: Iterable[ManifestFile],
    deleted: Iterable[ManifestFile],
    outcome: Iterable[ManifestFile],
    organized_by: Organization | None = None,
    type_filters: Iterable[str] = (),
    until: datetime | None = None,
    next_url: str = "",
) -> dict[str, Any]:
    """A v4 manifest, or one page of it when `next_url` links the next page. Every
    page repeats the non-array fields (§1.8)."""
    manifest: dict[str, Any] = {
        "manifestType": MANIFEST_TYPE,
        "transactionTime": format_instant(transaction_time),
        "requiresAccessToken": requires_access_token,
        "outputFormat": NDJSON,
    }
    if organized_by is not None:
        manifest["outputOrganizedBy"] = organized_by.resource_type
        manifest["outputOrganizedByDetail"] = organized_by.detail
    arrays = {
        "output": [f.as_json(typed=organized_by is None) for f in output],
        "deleted": [f.as_json(typed=False) for f in deleted],
        "outcome": [f.as_json(typed=False) for f in outcome],
    }
    manifest |= {name: items for name, items in arrays.items() if items}
    if next_url:
        manifest["link"] = [{"relation": "next", "url": next_url}]
    extensions = [{"url": TYPE_FILTER_EXTENSION, "valueString": text} for text in type_filters]
    if until is not None:
        extensions.append({"url": UNTIL_EXTENSION, "valueInstant": format_instant(until)})
    if extensions:
        manifest["extension"] = extensions
    return manifest
