"""A REST search request (`GET /fhir/Observation?patient=123&_count=10`) read into a plan.

A REST search is a `_typeFilter` with result parameters around it: the criteria go
through the same parser (`parse_type_search`), so a search selects exactly what the
same filter would select in an export. What is left shapes the page:

- `_count` (default SEARCH_PAGE_DEFAULT, at most SEARCH_PAGE_MAX; `_count=0` gives the
  total alone), `_cursor` (bulkops' keyset position, from a `next` link),
- `_elements` (a subset of each resource, tagged SUBSETTED), `_summary=count|false`,
- `_total=none|estimate|accurate` (accurate counts even when that means reading every
  candidate row),
- `_format` (JSON only, checked by the view) and `_pretty` (accepted, not applied).

Handling follows FHIR's search rules, lenient by default: a parameter bulkops does not
know or does not evaluate (`_include`, `_revinclude`, `_sort`, a chain, an unknown
name or modifier) is ignored and reported in a warning issue of the Bundle;
`Prefer: handling=strict` makes it a 400. A malformed value of a parameter bulkops does
evaluate is a 400 either way: ignoring it would widen the search.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from bulkops.fhir.outcome import NOT_SUPPORTED, FhirError
from bulkops.fhir.params import LENIENT, STRICT
from bulkops.fhir.search.criteria import (
    MAX_CRITERIA,
    TypeSearch,
    UnsupportedSearch,
    check_parameter,
    parse_type_search,
    query_text,
)

SEARCH_PAGE_DEFAULT = 50
SEARCH_PAGE_MAX = 500
CURSOR = "_cursor"
# Result parameters bulkops applies; the rest of FHIR's are ignored or refused by handling.
APPLIED = frozenset({"_count", CURSOR, "_elements", "_summary", "_total", "_format", "_pretty"})
SUMMARY_VALUES = ("count", "false")
TOTAL_VALUES = ("none", "estimate", "accurate")
_ELEMENT = re.compile(r"^[a-z][A-Za-z0-9]*(\[x\])?$")


@dataclass(frozen=True)
class SearchRequest:
    """What one search request asks for. `criteria` are the accepted `(name, value)`
    pairs as decoded, kept so the `self` and `next` links repeat the search."""

    search: TypeSearch
    criteria: tuple[tuple[str, str], ...]
    count: int
    cursor: int
    elements: frozenset[str] | None
    summary_count: bool
    total: str  # none | estimate | accurate
    warnings: tuple[str, ...]

    def link_pairs(self, cursor: int) -> list[tuple[str, str]]:
        """The query of this search's page that starts after row `cursor`."""
        pairs = [*self.criteria, ("_count", str(self.count))]
        if self.elements is not None:
            pairs.append(("_elements", ",".join(sorted(self.elements))))
        if self.summary_count:
            pairs.append(("_summary", "count"))
        return [*pairs, (CURSOR, str(cursor))]


def parse_search_request(
    resource_type: str,
    pairs: list[tuple[str, str]],
    *,
    handling: str,
    now: datetime,
    base_url: str = "",
) -> SearchRequest:
    """Read a search's decoded `(name, value)` pairs; raise FhirError(400) for what
    `handling` refuses or a value that cannot be read."""
    warnings: list[str] = []
    criteria: list[tuple[str, str]] = []
    results: dict[str, str] = {}
    for name, value in pairs:
        if name in APPLIED:
            if name in results:
                raise FhirError(400, f"{name} may be given only once.")
            results[name] = value
            continue
        problem = _unsupported(resource_type, name)
        if problem is None:
            criteria.append((name, value))
        elif handling == STRICT:
            raise FhirError(
                400,
                f"{problem}. Without 'Prefer: handling=strict' it would be ignored.",
                code=NOT_SUPPORTED,
            )
        else:
            warnings.append(f"{problem}; it was ignored (Prefer: handling={LENIENT}).")
    summary = _one_of(results, "_summary", SUMMARY_VALUES, "false")
    return SearchRequest(
        search=_parsed(resource_type, criteria, now=now, base_url=base_url),
        criteria=tuple(criteria),
        count=min(_number(results, "_count", SEARCH_PAGE_DEFAULT), SEARCH_PAGE_MAX),
        cursor=_number(results, CURSOR, 0),
        elements=_elements(results.get("_elements")),
        summary_count=summary == "count",
        total=_one_of(results, "_total", TOTAL_VALUES, "estimate"),
        warnings=tuple(warnings),
    )


def _unsupported(resource_type: str, name: str) -> str | None:
    """Why the parameter `name` cannot be applied, or None when it can."""
    try:
        check_parameter(resource_type, name)
    except UnsupportedSearch as error:
        return f"The search parameter {name!r} cannot be applied: {error}"
    return None


def _parsed(
    resource_type: str, criteria: list[tuple[str, str]], *, now: datetime, base_url: str
) -> TypeSearch:
    if not criteria:
        return TypeSearch(resource_type, ())
    if len(criteria) > MAX_CRITERIA:
        raise FhirError(400, f"A search takes at most {MAX_CRITERIA} criteria.")
    try:
        return parse_type_search(query_text(resource_type, criteria), now=now, base_url=base_url)
    except UnsupportedSearch as error:
        raise FhirError(400, f"The search cannot be run: {error}.") from None


def _number(results: dict[str, str], name: str, default: int) -> int:
    raw = results.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > 12:
        raise FhirError(400, f"{name} must be a non-negative integer, got {raw!r}.")
    return int(raw)


def _one_of(results: dict[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = results.get(name, default)
    if value not in allowed:
        raise FhirError(
            400,
            f"{name}={value} is not supported; bulkops takes {name}={'|'.join(allowed)}.",
            code=NOT_SUPPORTED,
        )
    return value


def _elements(raw: str | None) -> frozenset[str] | None:
    if raw is None:
        return None
    names = frozenset(name.strip() for name in raw.split(",") if name.strip())
    bad = sorted(name for name in names if not _ELEMENT.match(name))
    if bad or not names:
        raise FhirError(
            400,
            f"_elements takes top-level element names like status,code; got {raw!r}.",
        )
    return names
