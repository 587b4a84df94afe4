"""Reading a remote server's manifest before any download trusts it: the 2.0.0 shape
(spec §2.3) or the 4.0.0 ballot's `BulkDataManifest` (v4 digest §1.10), and the files
each page lists. The remote is untrusted: anything the downloads could not rely on is
refused with a sentence saying what is wrong."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bulkops.fhir.params import V4
from exports.bulk_client import BulkClientError

V2_KINDS = ("output", "deleted", "error")
V4_KINDS = ("output", "deleted", "outcome")
# What each kind of file holds when a v4 item does not say (only output items have
# `type` in the ballot's model, B8); v4 `outcome` files are kept as our `error` files.
KIND_TYPES = {"deleted": "Bundle", "outcome": "OperationOutcome"}
STORED_KIND = {"outcome": "error"}
# The fields every page of a paged v4 manifest repeats (v4 digest §1.8).
NON_ARRAY = ("manifestType", "transactionTime", "requiresAccessToken", "outputFormat",
             "outputOrganizedBy", "outputOrganizedByDetail")  # fmt: skip


class ManifestError(BulkClientError):
    """The remote's manifest is not what Bulk Data 2.0 §2.3 (or the 4.0.0 ballot's
    BulkDataManifest) describes."""


@dataclass(frozen=True)
class ListedFile:
    """One file a manifest page lists, as the runner downloads and stores it."""

    kind: str  # output, deleted or error (a v4 `outcome` file)
    resource_type: str  # an organised file's is "<Type>-blocks"
    url: str
    organized_by: str = ""  # the type whose blocks the file holds (v4 organizeOutputBy)
    file_size: int | None = None  # v4 `fileSize`: the bytes the download must have


def _http_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def _resource_type(value: Any) -> bool:
    return isinstance(value, str) and value.isalnum()


def check_manifest(manifest: Any, version: str) -> list[ListedFile]:
    """The files of one manifest page; ManifestError when the downloads could not trust
    it. 2.0.0 needs `request` and `output`; the 4.0.0 ballot removed `request`, made the
    arrays optional, renamed `error` to `outcome` and made `extension` an array."""
    if not isinstance(manifest, dict):
        raise ManifestError("the manifest is not a JSON object")
    required = ("transactionTime", "requiresAccessToken")
    if version != V4:
        required = ("transactionTime", "request", "requiresAccessToken", "output")
    for name in required:
        if name not in manifest:
            raise ManifestError(f"the manifest has no {name!r}")
    if not isinstance(manifest["requiresAccessToken"], bool):
        raise ManifestError("the manifest's requiresAccessToken is not true or false")
    if version != V4:
        return _v2_files(manifest)
    return _v4_files(manifest)


def _items(manifest: dict[str, Any], kind: str) -> list[Any]:
    items = manifest.get(kind, [])
    if not isinstance(items, list):
        raise ManifestError(f"the manifest's {kind!r} is not a list")
    return items


def _v2_files(manifest: dict[str, Any]) -> list[ListedFile]:
    files = []
    for kind in V2_KINDS:
        for index, item in enumerate(_items(manifest, kind)):
            if not (
                isinstance(item, dict)
                and _resource_type(item.get("type"))
                and _http_url(item.get("url"))
            ):
                raise ManifestError(
                    f"{kind}[{index}] of the manifest needs a resource type and an http(s) url"
                )
            files.append(ListedFile(kind, item["type"], item["url"]))
    return files


def _v4_files(manifest: dict[str, Any]) -> list[ListedFile]:
    if "error" in manifest:
        raise ManifestError("the v4 manifest has 'error', which the 4.0.0 ballot renamed 'outcome'")
    if not isinstance(manifest.get("extension", []), list):
        raise ManifestError("the v4 manifest's extension is not an array of Extensions")
    organized = manifest.get("outputOrganizedBy")
    if organized is not None and not _resource_type(organized):
        raise ManifestError("the manifest's outputOrganizedBy is not a resource type")
    if organized is None and "outputOrganizedByDetail" in manifest:
        raise ManifestError("the manifest has outputOrganizedByDetail without outputOrganizedBy")
    next_url(manifest)  # a malformed link is refused before any file is fetched
    files = []
    for kind in V4_KINDS:
        for index, item in enumerate(_items(manifest, kind)):
            files.append(_v4_file(kind, index, item, organized if kind == "output" else None))
    return files


def _v4_file(kind: str, index: int, item: Any, organized: str | None) -> ListedFile:
    where = f"{kind}[{index}] of the manifest"
    if not isinstance(item, dict) or not _http_url(item.get("url")):
        raise ManifestError(f"{where} needs an http(s) url")
    if "continuesInFile" in item and not _http_url(item["continuesInFile"]):
        raise ManifestError(f"{where} has a continuesInFile that is not an http(s) url")
    size = item.get("fileSize")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise ManifestError(f"{where} has a fileSize that is not a number of bytes")
    if organized:
        if "type" in item:
            raise ManifestError(f"{where} has a type although the output is organised")
        resource_type = f"{organized}-blocks"
    elif kind == "output":
        if not _resource_type(item.get("type")):
            raise ManifestError(f"{where} needs a resource type")
        resource_type = item["type"]
    else:
        resource_type = KIND_TYPES[kind]
    return ListedFile(
        STORED_KIND.get(kind, kind), resource_type, item["url"], organized or "", size
    )


def next_url(manifest: dict[str, Any]) -> str:
    """The URL of the next page of a paged manifest ("" on the last page): `link` is a
    single item with relation `next` (invariant bdm-link-relation-next)."""
    if "link" not in manifest:
        return ""
    link = manifest["link"]
    if not (
        isinstance(link, list)
        and len(link) == 1
        and isinstance(link[0], dict)
        and link[0].get("relation") == "next"
        and _http_url(link[0].get("url"))
    ):
        raise ManifestError("the manifest's link is not one item with relation next and a url")
    return link[0]["url"]


def check_same_fields(first: dict[str, Any], page: dict[str, Any], number: int) -> None:
    """A linked page SHALL repeat the first page's non-array fields (v4 digest §1.8)."""
    if any(page.get(name) != first.get(name) for name in NON_ARRAY):
        raise ManifestError(f"page {number} of the manifest does not repeat page 1's fields")


def merged(pages: list[dict[str, Any]]) -> dict[str, Any]:
    """A paged manifest as one: page 1's fields, every page's files, no `link`."""
    whole = {name: value for name, value in pages[0].items() if name != "link"}
    for kind in V4_KINDS:
        items = [item for page in pages for item in page.get(kind) or []]
        if items:
            whole[kind] = items
    return whole
