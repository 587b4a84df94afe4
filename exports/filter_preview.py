"""The launch form's `_typeFilter` preview: how each filter parses, what is refused and
why, and how many stored resources it matches.

A type with at most EXACT_LIMIT live resources is counted exactly, by matching every
one. A larger type is estimated from SAMPLE_WINDOWS runs of WINDOW_ROWS rows spread
evenly over its ids (each run one indexed range read), scaled to the type's size, and
the page says it is an estimate. The count is of the whole store, before level, group,
`patient`, `_since` or `_until` narrow the export.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Max, Min

from bulkops.fhir import resource_json
from bulkops.fhir.outcome import FhirError
from bulkops.fhir.search import Criterion, TypeSearch
from bulkops.fhir.type_filters import parse_filters
from fhirstore.reads import Resource

EXACT_LIMIT = 2000
SAMPLE_WINDOWS = 20
WINDOW_ROWS = 100


@dataclass(frozen=True)
class MatchCount:
    matched: int  # or the estimate
    stored: int  # live resources of the type
    sampled: int  # resources matched against; `stored` when exact

    @property
    def estimated(self) -> bool:
        return self.sampled < self.stored


@dataclass(frozen=True)
class FilterPreview:
    text: str
    problem: str  # the refusal sentence; "" when the filter parses
    search: TypeSearch | None = None
    count: MatchCount | None = None
    criteria: list[dict[str, str]] = field(default_factory=list)


def preview_filters(
    lines: Iterable[str], *, types: list[str] | None, now: datetime, base_url: str
) -> list[FilterPreview]:
    """One preview per filter in `lines` (one per line, or joined as the API allows)."""
    try:
        parsed = parse_filters(lines, now=now, base_url=base_url, types=types)
    except FhirError as error:  # too many filters
        return [FilterPreview(text="", problem=error.diagnostics)]
    return [
        FilterPreview(item.text, item.problem)
        if item.search is None
        else FilterPreview(
            item.text,
            "",
            item.search,
            count_matches(item.search),
            [describe(criterion) for criterion in item.search.criteria],
        )
        for item in parsed
    ]


# How the preview reads a modifier: "whose code (token) is not 1234-5".
MODIFIER_PHRASES = {
    "not": "is not",
    "text": "has text starting",
    "exact": "is exactly",
    "contains": "contains",
    "below": "is at or below",
    "above": "is at or above",
}


def describe(criterion: Criterion) -> dict[str, str]:
    """One criterion as the preview lists it: `parameter (type) phrase`."""
    if criterion.missing is not None:
        phrase = "has no value" if criterion.missing else "has a value"
    else:
        verb = MODIFIER_PHRASES.get(criterion.modifier, "is")
        if criterion.modifier and criterion.modifier not in MODIFIER_PHRASES:
            verb = f"is a {criterion.modifier}"  # a reference's :[type]
        several = len(criterion.values) > 1
        phrase = f"{verb}{' any of' if several else ''} {criterion.value_text}"
    return {
        "parameter": criterion.parameter.code,
        "type": criterion.parameter.type,
        "phrase": phrase,
    }


def count_matches(search: TypeSearch) -> MatchCount:
    """How many live stored resources of the search's type it matches (or an estimate)."""
    rows = Resource.objects.live().filter(resource_type=search.resource_type)
    stored = rows.count()
    if stored <= EXACT_LIMIT:
        bodies = list(rows.values_list("body", flat=True))
        return MatchCount(_matched(search, bodies), stored, stored)
    bounds = rows.aggregate(low=Min("id"), high=Max("id"))
    step = max((bounds["high"] - bounds["low"]) // SAMPLE_WINDOWS, 1)
    sample: dict[int, str] = {}  # by id: windows of a sparse stretch may overlap
    for window in range(SAMPLE_WINDOWS):
        start = bounds["low"] + window * step
        sample.update(
            rows.filter(id__gte=start).order_by("id").values_list("id", "body")[:WINDOW_ROWS]
        )
    matched = _matched(search, list(sample.values()))
    return MatchCount(round(matched * stored / len(sample)), stored, len(sample))


def _matched(search: TypeSearch, bodies: list[str]) -> int:
    return sum(search.matches(resource_json.loads(body)) for body in bodies)
