"""What the export engine reads of the store: the one module `exports/` imports from it.

The engine streams rows itself (exports/partitions.py tunes those queries per database),
so the row models are part of this interface, read-only: every write goes through
fhirstore/writes.py. The rest is named questions the engine asks of the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from django.db.models import Count, Max

from fhirstore.access import check_group_binding
from fhirstore.filter_pushdown import rows_filter
from fhirstore.models import CompartmentMembership, GroupMembership, Resource

__all__ = [
    "CompartmentMembership",
    "GroupMembership",
    "Resource",
    "check_group_binding",
    "existing_group_ids",
    "group_exists",
    "group_names",
    "live_counts_by_type",
    "newest_resource_pk",
    "rows_filter",
]


def group_exists(group_id: str) -> bool:
    """A live Group with this id is stored."""
    return Resource.objects.live().filter(resource_type="Group", resource_id=group_id).exists()


def existing_group_ids(group_ids: Sequence[str]) -> set[str]:
    """Those of `group_ids` that name a live Group."""
    rows = Resource.objects.live().filter(resource_type="Group", resource_id__in=list(group_ids))
    return set(rows.values_list("resource_id", flat=True))


def group_names(group_ids: Iterable[str] | None = None) -> dict[str, str]:
    """Group id -> its `name` ("" when it has none), for the live Groups (of `group_ids`
    only, when given), in id order: the console shows Groups by name, the id second."""
    rows = Resource.objects.live().filter(resource_type="Group").order_by("resource_id")
    if group_ids is not None:
        rows = rows.filter(resource_id__in=list(group_ids))
    return {group_id: _name(body) for group_id, body in rows.values_list("resource_id", "body")}


def _name(body: str) -> str:
    try:
        name = json.loads(body).get("name") if body else None
    except (ValueError, AttributeError):
        return ""
    return name if isinstance(name, str) else ""


def live_counts_by_type() -> list[dict[str, Any]]:
    """`{"resource_type", "n"}` per type with live resources, largest first."""
    rows = Resource.objects.live().values("resource_type").annotate(n=Count("pk"))
    return list(rows.order_by("-n", "resource_type"))


def newest_resource_pk() -> int:
    """The highest row id written so far (0 for an empty store): an export reads no row
    written after its kick-off, so its output is the store as of that moment."""
    return Resource.objects.aggregate(last=Max("pk"))["last"] or 0
