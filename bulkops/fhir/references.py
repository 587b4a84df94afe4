"""FHIR references: parse `Type/id` out of the forms real data uses, and rewrite them.

Synthea bundles point at each other with `urn:uuid:` full URLs and conditional references
(`Practitioner?identifier=system|value`); exported data must say `Type/id`, so loaders
rewrite every `reference` before storing. Absolute references
(`https://server/fhir/Patient/1`) are understood when reading but left as written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bulkops.fhir.resource_types import is_resource_type

# http://hl7.org/fhir/R4/datatypes.html#id
ID_PATTERN = r"[A-Za-z0-9\-\.]{1,64}"
_RELATIVE = re.compile(rf"(?:^|/)([A-Z][A-Za-z]+)/({ID_PATTERN})(?:/_history/[^/]+)?$")
_CONDITIONAL = re.compile(r"^([A-Z][A-Za-z]+)\?(.+)$")
_ID = re.compile(rf"^{ID_PATTERN}$")


@dataclass(frozen=True)
class ResourceKey:
    resource_type: str
    resource_id: str

    def reference(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"


def is_valid_id(value: str) -> bool:
    return bool(_ID.match(value))


def parse_reference(reference: str) -> ResourceKey | None:
    """`Patient/1`, `Patient/1/_history/2` or `http(s)://host/base/Patient/1` -> key.

    Anything else (urn:uuid, contained `#x`, conditional, unknown type) is not a direct
    reference to a stored resource and gives None.
    """
    if reference.startswith(("#", "urn:")) or "?" in reference:
        return None
    match = _RELATIVE.search(reference)
    if match is None or not is_resource_type(match.group(1)):
        return None
    if "/" in reference[: match.start(1)] and not reference.startswith(("http://", "https://")):
        return None  # a relative path with extra segments is not a FHIR reference
    return ResourceKey(match.group(1), match.group(2))


@dataclass(frozen=True)
class ConditionalReference:
    """`Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999999999`."""

    resource_type: str
    system: str
    value: str


def parse_conditional(reference: str) -> ConditionalReference | None:
    """Only `identifier=system|value` criteria are supported: that is what Synthea writes,
    and it is the one criterion a loader can resolve without a search engine."""
    match = _CONDITIONAL.match(reference)
    if match is None or not match.group(2).startswith("identifier="):
        return None
    system, bar, value = match.group(2).removeprefix("identifier=").partition("|")
    if not bar or not value:
        return None
    return ConditionalReference(match.group(1), system, value)


def rewrite_references(node: Any, rewrite: Callable[[str], str]) -> None:
    """Apply `rewrite` to every `reference` string anywhere in a resource, in place."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                node[key] = rewrite(value)
            else:
                rewrite_references(value, rewrite)
    elif isinstance(node, list):
        for item in node:
            rewrite_references(item, rewrite)


MAX_LISTED = 20  # unresolved references a refusal lists; the rest are counted


@dataclass(frozen=True)
class Unresolved:
    """A conditional reference that does not match exactly one resource, and where."""

    where: str  # "line 12", "entry[3]"
    reference: str
    matches: int

    def __str__(self) -> str:
        found = f"{self.matches:,} resources" if self.matches else "no resource"
        return f"{self.where}: {self.reference} matches {found}"


class UnresolvedReferences(ValueError):
    """Conditional references that match no resource or several: the file is refused,
    since its data would be exported pointing nowhere (or anywhere)."""

    def __init__(self, problems: list[Unresolved]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        listed = "; ".join(map(str, self.problems[:MAX_LISTED]))
        more = len(self.problems) - MAX_LISTED
        return f"{listed}; and {more:,} more" if more > 0 else listed


def resolve_conditionals(
    resource: dict[str, Any],
    matches: Callable[[ConditionalReference], Sequence[str]],
    where: str,
) -> list[Unresolved]:
    """Rewrite in place each conditional reference that matches exactly one resource
    (`matches` gives the ids it matches) to `Type/id`; return the others, left as
    written."""
    problems: list[Unresolved] = []

    def rewrite(reference: str) -> str:
        conditional = parse_conditional(reference)
        if conditional is None:
            return reference
        ids = matches(conditional)
        if len(ids) != 1:
            problems.append(Unresolved(where, reference, len(ids)))
            return reference
        return ResourceKey(conditional.resource_type, ids[0]).reference()

    rewrite_references(resource, rewrite)
    return problems
