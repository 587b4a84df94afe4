"""The part of a search (an export's `_typeFilter`, a REST search) the database can
check, as ORM filters.

Searches are matched by the search engine, which parses every body it is given (in
the export workers, in fhirstore/search.py); what the database can rule out first, it
never sends. The push-down is an optimisation only: it keeps every row that could
match (a superset), and the engine still checks each row it keeps, so a condition here
never decides a match on its own. Deletions (tombstones) always pass: a deleted body
cannot be matched, so a `_since` export lists every deletion of a filtered type.

What is pushed down, per criterion without `:missing`, `:text` or `:contains`:

- `_id` (and `_id:not`): the `resource_id` column.
- `_lastUpdated` with eq, gt, ge, lt, le, sa, eb: the `last_updated` column, which
  holds the same instant as `meta.lastUpdated` to the microsecond (the body shows it to
  the millisecond, hence a millisecond's slack at each bound).
- token, `:exact` string, reference and uri values: the value must occur in the stored
  body as the JSON text it would be there (bodies are written by one serialiser,
  `fhirstore.writes.minified`), found with STRPOS/INSTR. A code that reads as a JSON
  number or boolean is looked for without quotes, so it is found either way.

A filter with no such criterion, or an OR of values one of which cannot be pushed,
pushes nothing for its type. Dates other than `_lastUpdated`, numbers, quantities and
negations are left to the engine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import reduce
from operator import and_, or_

from django.db.models import Q, Value
from django.db.models.functions import StrIndex
from django.db.models.lookups import GreaterThan

from bulkops.fhir.search import Criterion, TypeSearch, strings, uris
from bulkops.fhir.search.criteria import NOT
from bulkops.fhir.search.dates import DateValue, shifted
from bulkops.fhir.search.prefixes import EB, EQ, GE, GT, LE, LT, SA
from bulkops.fhir.search.reference_values import ReferenceValue
from bulkops.fhir.search.tokens import TokenValue
from bulkops.fhir.type_filters import TypeFilters

MILLISECOND = timedelta(milliseconds=1)
MAX_TERMS = 200
_JSON_LITERAL = re.compile(r"^(true|false|null|-?\d+(\.\d+)?([eE][+-]?\d+)?)$")


def rows_filter(filters: TypeFilters, resource_types: Iterable[str]) -> Q | None:
    """The condition rows of `resource_types` read for the export must meet: rows of a
    type without a pushable filter all pass. None when nothing can be pushed down."""
    pushed = {t: q for t in resource_types if (q := type_filter(filters.for_type(t))) is not None}
    if not pushed:
        return None
    return reduce(
        or_,
        (Q(resource_type=t) & q for t, q in pushed.items()),
        ~Q(resource_type__in=list(pushed)) | Q(deleted=True),
    )


def type_filter(searches: tuple[TypeSearch, ...]) -> Q | None:
    """The OR of the searches' pushable parts; None if any search pushes nothing, or if
    they add up to more than MAX_TERMS conditions (a statement that large costs more to
    plan than it saves, and SQLite refuses expressions deeper than 1000)."""
    parts = [search_filter(search) for search in searches]
    if not parts or any(part is None for part in parts):
        return None
    pushed = reduce(or_, parts)  # type: ignore[arg-type]
    return pushed if _terms(pushed) <= MAX_TERMS else None


def _terms(q: Q) -> int:
    return sum(_terms(child) if isinstance(child, Q) else 1 for child in q.children)


def search_filter(search: TypeSearch) -> Q | None:
    """The AND of the criteria that can be pushed down."""
    parts = [q for criterion in search.criteria if (q := criterion_filter(criterion)) is not None]
    return reduce(and_, parts) if parts else None


def criterion_filter(criterion: Criterion) -> Q | None:
    if criterion.missing is not None:
        return None
    code = criterion.parameter.code
    if code == "_id" and criterion.modifier in ("", NOT):
        ids = [v.code for v in criterion.values if isinstance(v, TokenValue)]
        if None in ids or len(ids) != len(criterion.values):
            return None
        return ~Q(resource_id__in=ids) if criterion.modifier == NOT else Q(resource_id__in=ids)
    if criterion.modifier == NOT:
        return None
    if code == "_lastUpdated":
        return _any([_last_updated(v) for v in criterion.values if isinstance(v, DateValue)])
    return _any([_in_body(value) for value in criterion.values])


def _any(parts: list[Q | None]) -> Q | None:
    if not parts or any(part is None for part in parts):
        return None
    return reduce(or_, parts)  # type: ignore[arg-type]


def _last_updated(value: DateValue) -> Q | None:
    """Rows whose `meta.lastUpdated` (the column's instant cut to the millisecond, a
    range [t, t + 1 ms)) can meet the prefix against the search range [start, end)."""
    start, end = value.interval.start, value.interval.end
    bounds: dict[str, dict[str, datetime]] = {
        EQ: {"gte": start, "lt": shifted(end, MILLISECOND)},
        GT: {"gt": shifted(end, -MILLISECOND)},
        GE: {"gt": shifted(start, -MILLISECOND)},
        LT: {"lt": shifted(start, MILLISECOND)},
        LE: {"lt": shifted(end, MILLISECOND)},
        SA: {"gte": end},
        EB: {"lt": start},
    }
    if value.prefix not in bounds:
        return None  # ne, ap
    return Q(**{f"last_updated__{op}": moment for op, moment in bounds[value.prefix].items()})


def _in_body(value: object) -> Q | None:
    needles = _needles(value)
    if not needles:
        return None
    return reduce(and_, (Q(GreaterThan(StrIndex("body", Value(n)), 0)) for n in needles))


def _needles(value: object) -> list[str]:
    """Texts the stored body must contain if `value` matches anything in it."""
    if isinstance(value, TokenValue):
        # Only the code: a primitive (`status`) matches whatever system the value names.
        return [_json_text(value.code)] if value.code else []
    if isinstance(value, strings.StringValue) and value.mode == strings.EXACT:
        return [_json_text(value.text)]
    if isinstance(value, ReferenceValue):
        if value.url is not None:
            return [_json_text(value.url)]
        return [value.text if value.resource_type else f"/{value.resource_id}"]
    if isinstance(value, uris.UriValue) and value.mode in (uris.EXACT, uris.BELOW):
        return [_json_text(value.uri)[:-1]]  # open-ended: `uri|version` and longer URIs
    return []


def _json_text(text: str) -> str:
    """How `text` appears in a stored body: as a JSON string, or bare when it could be
    a JSON number or boolean there (`5`, `true`)."""
    if _JSON_LITERAL.match(text):
        return text
    return json.dumps(text, ensure_ascii=False)
