"""`_typeFilter` (spec §1.3, §1.4): FHIR searches that narrow what an export writes.

Each filter is one type-level search, `Type?criteria`, evaluated by the search engine
(bulkops/fhir/search/). Several filters on one type are OR-ed, the criteria inside one
are AND-ed, and a type without a filter is exported whole. On the wire the parameter
may repeat and may join filters with commas; a comma inside a value (`code=a,b`) looks
the same after decoding, so values are split only on a comma followed by `Type?`
(spec §1.4, as HAPI does).

A filter bulkops cannot apply is described by `refusal`, one sentence the API's
OperationOutcome, the manifest's warning and the console's preview all use.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bulkops.fhir.outcome import FhirError
from bulkops.fhir.search import TypeSearch, UnsupportedSearch, parse_type_search

_NEXT_FILTER = re.compile(r",(?=[A-Z][A-Za-z]+\?)")
MAX_TYPE_FILTERS = 100  # per export: each one is evaluated on every resource of its type


def split_type_filters(values: Iterable[str]) -> list[str]:
    """The filters in repeated and comma-joined `_typeFilter` values, in order."""
    return [part.strip() for value in values for part in _NEXT_FILTER.split(value) if part.strip()]


def refusal(text: str, reason: str) -> str:
    """Why the filter `text` cannot be applied, as a client and an operator read it."""
    return f"The _typeFilter {text!r} cannot be applied: {reason}."


@dataclass(frozen=True)
class ParsedFilter:
    """One `_typeFilter` value: the search it stands for, or why it cannot be applied."""

    text: str
    search: TypeSearch | None
    problem: str  # the refusal sentence; "" when `search` is set


def parse_filter(
    text: str, *, now: datetime, base_url: str = "", types: Iterable[str] | None = None
) -> ParsedFilter:
    """Parse one filter; `types`, when given, are the only types it may name (`_type`)."""
    try:
        search = parse_type_search(text, now=now, base_url=base_url)
    except UnsupportedSearch as error:
        return ParsedFilter(text, None, refusal(text, str(error)))
    if types is not None and search.resource_type not in set(types):
        reason = f"_type does not ask for {search.resource_type}, so nothing would be filtered"
        return ParsedFilter(text, None, refusal(text, reason))
    return ParsedFilter(text, search, "")


def parse_filters(
    values: Iterable[str],
    *,
    now: datetime,
    base_url: str = "",
    types: Iterable[str] | None = None,
    split: bool = True,
) -> list[ParsedFilter]:
    """Every filter in `_typeFilter` values (split as the wire form is), parsed; a 400
    before any is parsed when there are more than MAX_TYPE_FILTERS. Bulk Data 4 sends one
    query per value and commas in it are literal (v4 digest §1.4): `split` False."""
    texts = split_type_filters(values) if split else [v.strip() for v in values if v.strip()]
    if len(texts) > MAX_TYPE_FILTERS:
        raise FhirError(400, f"At most {MAX_TYPE_FILTERS} _typeFilter values are accepted.")
    allowed = None if types is None else list(types)
    return [parse_filter(text, now=now, base_url=base_url, types=allowed) for text in texts]


@dataclass(frozen=True)
class TypeFilters:
    """The filters an export applies, as stored on its job (`texts`, parsed again by
    each worker): `matcher(type)` tells whether a parsed resource of that type is kept."""

    searches: tuple[TypeSearch, ...]

    @classmethod
    def from_texts(cls, texts: Iterable[str], *, now: datetime) -> TypeFilters:
        """Parse texts a kick-off accepted (raises UnsupportedSearch if one no longer parses)."""
        return cls(tuple(parse_type_search(text, now=now) for text in texts))

    @property
    def types(self) -> frozenset[str]:
        return frozenset(search.resource_type for search in self.searches)

    def for_type(self, resource_type: str) -> tuple[TypeSearch, ...]:
        return tuple(s for s in self.searches if s.resource_type == resource_type)

    def matcher(self, resource_type: str) -> Callable[[dict[str, Any]], bool] | None:
        """Whether a resource of `resource_type` is kept (any of its filters matches);
        None when the type has no filter and is exported whole."""
        searches = self.for_type(resource_type)
        if not searches:
            return None
        return lambda resource: any(search.matches(resource) for search in searches)
