"""The R4 search parameters a resource type has, from the official definitions.

`data/search-parameters.json` (FHIR R4 4.0.1, CC0; see data/README.md) is read once per
process, the first time a parameter is looked up. Many definitions are shared by several
types and carry one FHIRPath expression for all of them
(`AllergyIntolerance.code | Condition.code | Observation.code | ...`); each type keeps
only its own alternatives, so an extractor never evaluates another type's paths. The
common parameters (`_id`, `_lastUpdated`, `_tag`...) are defined on `Resource`; their
expressions are rewritten to start at the concrete type.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

DEFINITIONS_FILE = Path(__file__).parent / "data" / "search-parameters.json"
# Types whose parameters every resource type inherits.
ABSTRACT_BASES = ("Resource", "DomainResource")

TOKEN = "token"  # noqa: S105 (a search parameter type, not a secret)
STRING = "string"
DATE = "date"
REFERENCE = "reference"
QUANTITY = "quantity"
NUMBER = "number"
URI = "uri"
COMPOSITE = "composite"
SPECIAL = "special"
SUPPORTED_TYPES = frozenset({TOKEN, STRING, DATE, REFERENCE, QUANTITY, NUMBER, URI})


@dataclass(frozen=True)
class SearchParameter:
    """One search parameter as it applies to one resource type."""

    resource_type: str
    code: str
    type: str
    # The FHIRPath alternatives of the expression that start at `resource_type`; none
    # for parameters the definitions give no expression (`_text`, `_content`...).
    paths: tuple[str, ...]
    targets: tuple[str, ...]  # resource types a reference parameter may point at
    url: str


@functools.cache
def _by_type() -> dict[str, dict[str, SearchParameter]]:
    bundle = json.loads(DEFINITIONS_FILE.read_text(encoding="utf-8"))
    common: list[dict] = []
    table: dict[str, dict[str, SearchParameter]] = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        for base in resource.get("base", []):
            if base in ABSTRACT_BASES:
                common.append(resource)
            else:
                table.setdefault(base, {})[resource["code"]] = _for_type(resource, base)
    for resource_type, parameters in table.items():
        for resource in common:
            parameters.setdefault(resource["code"], _for_type(resource, resource_type))
    return table


def _for_type(resource: dict, resource_type: str) -> SearchParameter:
    return SearchParameter(
        resource_type=resource_type,
        code=resource["code"],
        type=resource["type"],
        paths=own_alternatives(resource.get("expression", ""), resource_type),
        targets=tuple(resource.get("target", ())),
        url=resource.get("url", ""),
    )


def search_parameter(resource_type: str, code: str) -> SearchParameter | None:
    """The parameter `code` of `resource_type`, or None when R4 defines no such one."""
    return _by_type().get(resource_type, {}).get(code)


def search_parameters(resource_type: str) -> dict[str, SearchParameter]:
    """Every parameter of `resource_type` by code (empty for a type R4 does not know)."""
    return dict(_by_type().get(resource_type, {}))


def split_alternatives(expression: str) -> list[str]:
    """The operands of the top-level `|` unions of `expression`, parentheses and string
    literals respected: `(A.x as B) | A.y.where(z='|')` gives two."""
    parts, depth, quoted, start = [], 0, False, 0
    for index, char in enumerate(expression):
        if char == "'" and (index == 0 or expression[index - 1] != "\\"):
            quoted = not quoted
        elif quoted:
            continue
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(expression[start:index].strip())
            start = index + 1
    parts.append(expression[start:].strip())
    return [part for part in parts if part]


def _unwrapped(alternative: str) -> str:
    """`(A.x as B)` -> `A.x as B` when the parentheses enclose the whole alternative."""
    while alternative.startswith("(") and _closing(alternative) == len(alternative) - 1:
        alternative = alternative[1:-1].strip()
    return alternative


def _closing(text: str) -> int:
    """The index of the parenthesis that closes `text[0]`, or -1."""
    depth = 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return index
    return -1


def own_alternatives(expression: str, resource_type: str) -> tuple[str, ...]:
    """The alternatives of `expression` that start at `resource_type` (or at an abstract
    base, rewritten to start at `resource_type`)."""
    kept = []
    for alternative in split_alternatives(expression):
        path = _unwrapped(alternative)
        head, dot, rest = path.partition(".")
        if head in ABSTRACT_BASES and dot:
            kept.append(f"{resource_type}.{rest}")
        elif head == resource_type:
            kept.append(path)
    return tuple(kept)
