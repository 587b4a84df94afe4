"""Which resource types an export writes, and the plain-language account of what was
left out (ARCHITECTURE "Data flow" step 2; spec §1.3, §5.5, §7.9).

effective = (requested `_type`, or every type the level allows)
            ∩ types the token's scopes allow ∩ types the level allows.
A requested type that is dropped is named in a warning that the client reads in the
manifest's error[] and the operator reads in the console; nothing is dropped silently
when the client asked for it by name.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from bulkops.fhir.outcome import FORBIDDEN, FhirError
from bulkops.fhir.params import GROUP, PATIENT, SYSTEM

LEVEL_NAMES = {SYSTEM: "system-level", PATIENT: "Patient-level", GROUP: "Group-level"}


@dataclass(frozen=True)
class TypePlan:
    types: tuple[str, ...]
    warnings: tuple[str, ...]


def plain_list(names: Sequence[str]) -> str:
    """'A', 'A and B', 'A, B and C'."""
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


def _verb(names: Sequence[str]) -> str:
    return "was" if len(names) == 1 else "were"


def plan_export_types(
    *,
    level: str,
    requested: Sequence[str] | None,
    level_types: Collection[str],
    can_read: Callable[[str], bool],
    granted_scopes: Sequence[str],
) -> TypePlan:
    """Intersect requested, level-allowed and scope-allowed types; see module docstring.

    Raises FhirError 400 when every requested type lies outside the level (spec §5.5)
    and 403 when the scopes leave nothing to export.
    """
    warnings: list[str] = []
    if requested is None:
        candidates = sorted(level_types)
    else:
        outside = [name for name in requested if name not in level_types]
        candidates = [name for name in requested if name in level_types]
        if outside and not candidates:
            raise FhirError(
                400,
                f"{plain_list(outside)} cannot be exported by a {LEVEL_NAMES[level]} export: "
                "only resource types in the Patient compartment can.",
            )
        if outside:
            warnings.append(
                f"{plain_list(outside)} {_verb(outside)} requested but "
                f"{'is' if len(outside) == 1 else 'are'} not in the Patient compartment, so "
                f"this {LEVEL_NAMES[level]} export left {'it' if len(outside) == 1 else 'them'} "
                "out."
            )
    allowed = [name for name in candidates if can_read(name)]
    denied = [name for name in candidates if not can_read(name)]
    grants = ", ".join(granted_scopes) or "no read scope"
    if not allowed:
        asked = plain_list(list(requested)) if requested is not None else "Every resource type"
        raise FhirError(
            403,
            f"{asked} {_verb(list(requested or [1, 2]))} requested but this client's token "
            f"only grants {grants}; nothing is left to export.",
            code=FORBIDDEN,
        )
    if denied and requested is not None:
        warnings.append(
            f"{plain_list(denied)} {_verb(denied)} requested but this client's token only "
            f"grants {grants}; {'it was' if len(denied) == 1 else 'they were'} left out of "
            "this export."
        )
    return TypePlan(types=tuple(allowed), warnings=tuple(warnings))
