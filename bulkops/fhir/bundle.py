"""Turn a transaction/batch/collection Bundle into plain puts and deletes.

Synthea writes per-patient transaction Bundles whose entries refer to each other by
`urn:uuid:` full URLs, and to shared Practitioners/Organizations/Locations by conditional
references (`Organization?identifier=system|value`). Before storing, every such reference
is rewritten to `Type/id`, so the stored bytes are what an export must contain.

Method rules (FHIR R4 http.html#transaction, simplified for a loader):
- PUT `Type/id`: write with that id. POST: write with the resource's own id (or the
  urn:uuid of its fullUrl), so that loading a file twice is idempotent; a POST with
  `ifNoneExist: identifier=system|value` that matches an existing resource is skipped and
  its fullUrl points at the match (the plan lists it as skipped). DELETE `Type/id`:
  delete. Collections: PUT.
- A `urn:uuid:` reference to no entry fails the whole Bundle (`BundleError`); so do
  conditional references that match no resource or several, all listed
  (`UnresolvedReferences`), which a loader may retry once other files are loaded.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bulkops.fhir.references import (
    ConditionalReference,
    ResourceKey,
    Unresolved,
    UnresolvedReferences,
    is_valid_id,
    parse_conditional,
    parse_reference,
    resolve_conditionals,
    rewrite_references,
)
from bulkops.fhir.resource_json import JsonNumber
from bulkops.fhir.resource_types import is_resource_type

BUNDLE_TYPES = frozenset({"transaction", "batch", "collection"})

# Looks a conditional reference up in the store: the ids of every resource it matches.
ConditionalResolver = Callable[[ConditionalReference], Sequence[str]]


class BundleError(ValueError):
    """The Bundle cannot be loaded; `entry` is the 0-based entry index, when known."""

    def __init__(self, reason: str, entry: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.entry = entry

    def __str__(self) -> str:
        return self.reason if self.entry is None else f"entry[{self.entry}]: {self.reason}"


@dataclass(frozen=True)
class BundleWrite:
    entry: int
    key: ResourceKey
    body: dict[str, Any] | None  # None: delete


@dataclass(frozen=True)
class BundlePlan:
    writes: list[BundleWrite]
    skipped: list[ResourceKey]  # POST entries whose ifNoneExist matched a stored resource


@dataclass
class _Planned:
    entry: int
    key: ResourceKey
    resource: dict[str, Any] | None
    skip: bool = False


def plan_bundle(bundle: dict[str, Any], resolve: ConditionalResolver) -> BundlePlan:
    """The writes a Bundle asks for, references rewritten. Raises BundleError, or
    UnresolvedReferences listing every conditional reference not matching one resource."""
    if bundle.get("type") not in BUNDLE_TYPES:
        raise BundleError(f"Bundle.type must be one of {sorted(BUNDLE_TYPES)}")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise BundleError("Bundle.entry must be a list")
    full_urls: dict[str, ResourceKey] = {}
    identifiers: dict[ConditionalReference, ResourceKey] = {}
    planned = [
        _plan_entry(index, entry, bundle["type"], resolve, full_urls, identifiers)
        for index, entry in enumerate(entries)
    ]
    plan = BundlePlan([], [])
    problems: list[Unresolved] = []
    for item in planned:
        if item.skip:
            plan.skipped.append(item.key)
            continue
        if item.resource is not None:

            def rewrite(reference: str, entry: int = item.entry) -> str:
                return _resolve_full_url(reference, entry, full_urls)

            def matches(conditional: ConditionalReference) -> Sequence[str]:
                own = identifiers.get(conditional)
                return [own.resource_id] if own is not None else resolve(conditional)

            rewrite_references(item.resource, rewrite)
            problems += resolve_conditionals(item.resource, matches, f"entry[{item.entry}]")
        plan.writes.append(BundleWrite(item.entry, item.key, item.resource))
    if problems:
        raise UnresolvedReferences(problems)
    return plan


def _plan_entry(
    index: int,
    entry: Any,
    bundle_type: str,
    resolve: ConditionalResolver,
    full_urls: dict[str, ResourceKey],
    identifiers: dict[ConditionalReference, ResourceKey],
) -> _Planned:
    if not isinstance(entry, dict):
        raise BundleError("entry is not an object", index)
    request = entry.get("request") or {}
    method = str(request.get("method", "PUT" if bundle_type == "collection" else "")).upper()
    if method == "DELETE":
        key = parse_reference(str(request.get("url", "")))
        if key is None:
            raise BundleError("DELETE needs request.url Type/id", index)
        return _Planned(index, key, None)
    resource = entry.get("resource")
    if not isinstance(resource, dict):
        raise BundleError("entry has no resource", index)
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        raise BundleError("resource has no resourceType", index)
    if not is_resource_type(resource_type):
        raise BundleError(f"unknown resource type {resource_type!r}", index)
    full_url = str(entry.get("fullUrl", ""))
    if method == "PUT":
        key = parse_reference(str(request.get("url", ""))) or _own_key(resource, full_url, index)
    elif method == "POST":
        key = _own_key(resource, full_url, index)
    else:
        raise BundleError(f"unsupported request.method {method or '(none)'!r}", index)
    if key.resource_type != resource_type:
        raise BundleError(f"request.url does not name a {resource_type}", index)
    skip = False
    if_none_exist = parse_conditional(f"{resource_type}?{request.get('ifNoneExist', '')}")
    if method == "POST" and if_none_exist is not None:
        match = identifiers.get(if_none_exist) or _single(resolve(if_none_exist), resource_type)
        if match is not None:
            key, skip = match, True
    if full_url:
        full_urls[full_url] = key
    for identifier in resource.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("system") and identifier.get("value"):
            cond = ConditionalReference(resource_type, identifier["system"], identifier["value"])
            identifiers.setdefault(cond, key)
    resource["id"] = key.resource_id
    return _Planned(index, key, resource, skip)


def _own_key(resource: dict[str, Any], full_url: str, index: int) -> ResourceKey:
    resource_id = resource.get("id")
    if not resource_id and full_url.startswith("urn:uuid:"):
        resource_id = full_url.removeprefix("urn:uuid:")
    if not resource_id:
        # No id anywhere: derive one from the fullUrl, else from the content, so that
        # loading the same file again names the same resource.
        seed = full_url or json.dumps(resource, sort_keys=True, default=_seed_number)
        resource_id = str(uuid.uuid5(uuid.NAMESPACE_URL, seed))
    if not is_valid_id(str(resource_id)):
        raise BundleError(f"invalid resource id {resource_id!r}", index)
    return ResourceKey(resource["resourceType"], str(resource_id))


def _seed_number(number: JsonNumber) -> float:
    """Numbers enter a content seed as floats, as before bulkops kept them exact, so ids
    derived then stay the same."""
    return float(number.text)


def _single(ids: Sequence[str], resource_type: str) -> ResourceKey | None:
    return ResourceKey(resource_type, ids[0]) if len(ids) == 1 else None


def _resolve_full_url(reference: str, entry: int, full_urls: dict[str, ResourceKey]) -> str:
    if reference in full_urls:
        return full_urls[reference].reference()
    if reference.startswith("urn:uuid:"):
        raise BundleError(f"reference {reference} matches no entry's fullUrl", entry)
    return reference
