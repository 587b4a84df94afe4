"""Which resource types an export writes, and the plain-language account of what was
left out (ARCHITECTURE "Data flow" step 2; spec §1.3, §5.5, §7.9).

effective = (requested `_type`, or every type the level allows)
            ∩ types the token's scopes allow ∩ types the level allows.
At Patient and Group level the level allows the compartment's types and the referenced
types added for what those refer to (bulkops/fhir/referenced.py), but a request for
referenced types alone is refused: there would be nothing for them to be referenced by.
A requested type that is dropped is named in a warning that the client reads in the
manifest's error[] and the operator reads in the console; nothing is dropped silently
when the client asked for it by name.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from bulkops.fhir.outcome import FORBIDDEN, FhirError
from bulkops.fhir.params import GROUP, PATIENT, SYSTEM
from bulkops.fhir.scopes import ReadAccess
from bulkops.fhir.text import plain_list

LEVEL_NAMES = {SYSTEM: "system-level", PATIENT: "Patient-level", GROUP: "Group-level"}


@dataclass(frozen=True)
class TypePlan:
    types: tuple[str, ...]
    warnings: tuple[str, ...]
    # The types among `types` added for the resources the exported ones refer to.
    referenced: tuple[str, ...] = ()


def plan_export_types(
    *,
    level: str,
    requested: Sequence[str] | None,
    level_types: Collection[str],
    access: ReadAccess,
    filtered: Sequence[str] = (),
    referenced: Collection[str] = (),
) -> TypePlan:
    """Intersect requested, level-allowed and scope-allowed types; see module docstring.

    `filtered` are the types `_typeFilter` names: without `_type` the client asked for
    them by name too, so dropping one is explained like dropping a requested type.
    `referenced` are the types the level adds for what `level_types` refer to.
    Raises FhirError 400 when every requested type lies outside the level (spec §5.5)
    and 403 when the scopes leave nothing to export.
    """
    warnings: list[str] = []
    named = list(requested) if requested is not None else list(dict.fromkeys(filtered))
    exportable = set(level_types) | set(referenced)
    outside = [name for name in named if name not in exportable]
    if requested is None:
        candidates = sorted(exportable)
    else:
        candidates = [name for name in requested if name in exportable]
        if candidates and not set(candidates) & set(level_types):
            raise FhirError(
                400,
                f"{plain_list(candidates)} can be exported by a {LEVEL_NAMES[level]} export "
                "only where resources in the Patient compartment refer to them: ask for "
                "some of those types too.",
            )
        if outside and not candidates:
            raise FhirError(
                400,
                f"{plain_list(outside)} cannot be exported by a {LEVEL_NAMES[level]} export: "
                "only resource types in the Patient compartment can.",
            )
    if outside:
        one = len(outside) == 1
        warnings.append(
            f"{plain_list(outside)} {'was' if one else 'were'} requested but "
            f"{'is' if one else 'are'} not in the Patient compartment, so this "
            f"{LEVEL_NAMES[level]} export left {'it' if one else 'them'} out."
        )
    allowed = [name for name in candidates if access.allows(name)]
    if not allowed:
        reason = (
            access.explain_withheld(requested)
            if requested is not None
            else f"This client's token grants {access.describe()}, which covers no resource "
            f"type a {LEVEL_NAMES[level]} export can include"
        )
        raise FhirError(403, f"{reason}; nothing is left to export.", code=FORBIDDEN)
    denied = [name for name in named if name in candidates and not access.allows(name)]
    if denied:
        left_out = "it was" if len(denied) == 1 else "they were"
        warnings.append(f"{access.explain_withheld(denied)}; {left_out} left out of this export.")
    return TypePlan(
        types=tuple(allowed),
        warnings=tuple(warnings),
        referenced=tuple(name for name in allowed if name in referenced),
    )
