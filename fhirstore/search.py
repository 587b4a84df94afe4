"""Running a type-level search on the store: which rows, one page at a time.

The rows come in already narrowed to what the client may read (fhirstore/access.py).
The database then rules out what it can, as a superset of the matches:

- `patient=` / `subject=` (any reference parameter whose every path the Patient
  compartment covers) with Patient ids: a semi-join through the compartment index
  (`resource_type, patient_id, resource`), so a patient's search reads that patient's
  rows, never the type;
- `_id`, `_lastUpdated`, tokens, exact strings, references and uris: the same
  push-down an export's `_typeFilter` gets (fhirstore/filter_pushdown.py).

Every row kept is then matched by the search engine on its parsed body, so the
database never decides a match on its own. A page is read in row-id order after a
cursor (keyset), chunk by chunk, and stops at `count + 1` matches: rows written while a
client pages get higher ids and appear at the end, and updated rows keep theirs, so
pages neither repeat nor skip a resource.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from bulkops.fhir import resource_json
from bulkops.fhir.compartment import COMPARTMENT_TYPES
from bulkops.fhir.compartment_paths import PATIENT_COMPARTMENT_PATHS
from bulkops.fhir.search import Criterion, TypeSearch
from bulkops.fhir.search.criteria import NOT
from bulkops.fhir.search.definitions import REFERENCE, SearchParameter
from bulkops.fhir.search.reference_values import ReferenceValue
from bulkops.fhir.search.tokens import TokenValue
from fhirstore.filter_pushdown import search_filter
from fhirstore.models import CompartmentMembership, ResourceQuerySet

CHUNK_ROWS = 200  # rows fetched per round trip while a page fills


@dataclass(frozen=True)
class Match:
    pk: int
    resource_id: str
    body: str  # the stored JSON text, sent as it is unless _elements asks for a subset


def candidate_rows(rows: ResourceQuerySet, search: TypeSearch) -> ResourceQuerySet:
    """The live rows of `rows` that can match `search` (a superset of the matches)."""
    candidates = rows.live()
    patients = [ids for c in search.criteria if (ids := compartment_patients(c)) is not None]
    for ids in patients:
        members = CompartmentMembership.objects.filter(
            resource_type=search.resource_type, patient_id__in=ids
        )
        candidates = candidates.filter(pk__in=members.values("resource_id"))
    pushed = search_filter(search)
    return candidates.filter(pushed) if pushed is not None else candidates


def compartment_patients(criterion: Criterion) -> list[str] | None:
    """The Patient ids `criterion` names when the compartment index holds every row it
    can match (a reference parameter whose every path is a compartment path of the
    type, every value a Patient id of this server); None otherwise."""
    parameter = criterion.parameter
    if parameter.type != REFERENCE or criterion.missing is not None:
        return None
    if parameter.resource_type not in COMPARTMENT_TYPES or criterion.modifier not in (
        "",
        "Patient",
    ):
        return None
    covered = set(PATIENT_COMPARTMENT_PATHS[parameter.resource_type])
    if not parameter.paths or any(_element_path(p) not in covered for p in parameter.paths):
        return None
    ids = []
    for value in criterion.values:
        if not isinstance(value, ReferenceValue) or value.url is not None:
            return None
        if value.resource_type is None and not _reaches_only_patients(parameter):
            return None  # `subject=123` may mean Group/123, which no compartment holds
        if value.resource_type not in (None, "Patient") or value.resource_id is None:
            return None
        ids.append(value.resource_id)
    return ids


def _reaches_only_patients(parameter: SearchParameter) -> bool:
    """Whether a bare id given to `parameter` can only match Patient references: it
    targets Patient alone, or each path keeps Patients only (`patient` is
    `Observation.subject.where(resolve() is Patient)` though its targets name Group)."""
    return parameter.targets == ("Patient",) or all(
        path.endswith(".where(resolve() is Patient)") for path in parameter.paths
    )


def _element_path(expression: str) -> tuple[str, ...]:
    """`Observation.subject.where(resolve() is Patient)` -> ("subject",): the elements
    the expression walks before any function, filter or cast (which only narrow it)."""
    steps = []
    for step in expression.split(".")[1:]:
        name = step.split(" ")[0]
        if "(" in name or not name:
            break
        steps.append(name)
        if name != step:
            break
    return tuple(steps)


def is_exact(search: TypeSearch) -> bool:
    """Whether the database alone decides `search` (no criteria, or only `_id` and
    `_id:not` codes): its total is then one COUNT, cheap enough to give every page."""
    return all(_exact_id(criterion) for criterion in search.criteria)


def _exact_id(criterion: Criterion) -> bool:
    return (
        criterion.parameter.code == "_id"
        and criterion.modifier in ("", NOT)
        and criterion.missing is None
        and all(isinstance(v, TokenValue) and v.system is None for v in criterion.values)
    )


def matches(rows: ResourceQuerySet, search: TypeSearch, *, after: int) -> Iterator[Match]:
    """The rows of `rows` after row id `after` that match `search`, in row-id order,
    streamed: the caller takes what it needs and the rest is never read."""
    exact = is_exact(search)
    ordered = rows.filter(pk__gt=after).order_by("pk").values_list("pk", "resource_id", "body")
    for pk, resource_id, body in ordered.iterator(chunk_size=CHUNK_ROWS):
        if exact or search.matches(resource_json.loads(body)):
            yield Match(pk, resource_id, body)


def page(rows: ResourceQuerySet, search: TypeSearch, *, after: int, count: int) -> list[Match]:
    """Up to `count + 1` matches after `after`: the page, and whether a next one exists."""
    found: list[Match] = []
    if count == 0:
        return found
    for match in matches(rows, search, after=after):
        found.append(match)
        if len(found) > count:
            break
    return found


def total(rows: ResourceQuerySet, search: TypeSearch, *, accurate: bool) -> int | None:
    """How many rows match: one COUNT when the database decides the search; counted
    through the engine (streamed, never held) only when `accurate` is asked; else None."""
    if is_exact(search):
        return rows.count()
    if not accurate:
        return None
    return sum(1 for _ in matches(rows, search, after=0))
