"""Which Groups exist, for binding clients to them.

Groups live in the resource store, which sits above accounts and may not be imported
from here; the store registers its lookup when Django starts (fhirstore.apps), and
accounts asks through this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

GroupLookup = Callable[[Sequence[str]], set[str]]

_lookup: GroupLookup | None = None


def register(lookup: GroupLookup) -> None:
    global _lookup
    _lookup = lookup


def existing_group_ids(group_ids: Sequence[str]) -> set[str]:
    """Those of `group_ids` that name a live Group."""
    if _lookup is None:
        raise RuntimeError("no Group lookup registered: is fhirstore in INSTALLED_APPS?")
    return _lookup(group_ids)
