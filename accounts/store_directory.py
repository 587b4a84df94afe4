"""What accounts asks of the resource store: which Groups exist (a client may be bound
only to those) and how many resources of each type it holds (the scope checklist lists
those types first).

The store sits above accounts and may not be imported from here; it registers its
answers when Django starts (fhirstore.apps), and accounts asks through this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class StoreLookups:
    existing_group_ids: Callable[[Sequence[str]], set[str]]
    type_counts: Callable[[], dict[str, int]]


_lookups: StoreLookups | None = None


def register(lookups: StoreLookups) -> None:
    global _lookups
    _lookups = lookups


def _registered() -> StoreLookups:
    if _lookups is None:
        raise RuntimeError("no store lookups registered: is fhirstore in INSTALLED_APPS?")
    return _lookups


def existing_group_ids(group_ids: Sequence[str]) -> set[str]:
    """Those of `group_ids` that name a live Group."""
    return _registered().existing_group_ids(group_ids)


def type_counts() -> dict[str, int]:
    """Live resources per type, for the types the store holds."""
    return _registered().type_counts()
