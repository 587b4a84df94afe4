"""FHIR search-type: `GET /fhir/{type}?...` and `POST /fhir/{type}/_search` (form body).

The request is read by bulkops/fhir/search/rest.py (the `_typeFilter` parser plus the
result parameters), the rows the client may read come from fhirstore/access.py, and
fhirstore/search.py picks the page. The searchset Bundle is assembled around the
stored bodies as text, one page at a time: nothing is re-serialised unless `_elements`
asks for a subset, and no search holds more than one page in memory.
"""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts.bearer import FhirRequest, require_bearer
from bulkops.fhir import resource_json
from bulkops.fhir.elements import subset_resource
from bulkops.fhir.outcome import NOT_FOUND, NOT_SUPPORTED, FhirError, Issue, operation_outcome
from bulkops.fhir.params import LENIENT, parse_prefer
from bulkops.fhir.resource_types import is_resource_type
from bulkops.fhir.search.rest import SearchRequest, parse_search_request
from bulkops.fhir_http import absolute_url, fhir_endpoint, fhir_json
from fhirstore import search as store_search
from fhirstore.access import readable_resources
from fhirstore.fhir_views import check_format

FORM = "application/x-www-form-urlencoded"


@fhir_endpoint
@require_GET
@require_bearer
def search(request: FhirRequest, resource_type: str) -> HttpResponse:
    return _search(request, resource_type, _pairs(request.GET))


@fhir_endpoint
@require_POST
@require_bearer
def search_post(request: FhirRequest, resource_type: str) -> HttpResponse:
    """POST _search: the parameters in a form body (and any in the URL), for queries
    too long for a URL or that should stay out of access logs. An empty body needs no
    Content-Type."""
    if request.body and request.content_type != FORM:
        raise FhirError(
            415,
            f"POST _search takes a {FORM} body, not {request.content_type!r}.",
            code=NOT_SUPPORTED,
        )
    return _search(request, resource_type, _pairs(request.GET) + _pairs(request.POST))


def _pairs(query: object) -> list[tuple[str, str]]:
    return [(name, value) for name, values in query.lists() for value in values]  # type: ignore[attr-defined]


def _search(request: FhirRequest, resource_type: str, pairs: list[tuple[str, str]]) -> HttpResponse:
    check_format(request)
    if not is_resource_type(resource_type):
        raise FhirError(404, f"unknown resource type {resource_type}", code=NOT_FOUND)
    rows = readable_resources(request, resource_type)
    base = absolute_url(request, f"/fhir/{resource_type}")
    wanted = parse_search_request(
        resource_type,
        pairs,
        handling=parse_prefer(request.headers.get("Prefer", ""), default_handling=LENIENT).handling,
        now=timezone.now(),
        base_url=absolute_url(request, "/fhir"),
    )
    candidates = store_search.candidate_rows(rows, wanted.search)
    count = 0 if wanted.summary_count else wanted.count
    found = store_search.page(candidates, wanted.search, after=wanted.cursor, count=count)
    total = None
    if wanted.total != "none" or wanted.summary_count:
        total = store_search.total(
            candidates,
            wanted.search,
            accurate=wanted.total == "accurate" or wanted.summary_count,
        )
    links = [{"relation": "self", "url": _url(base, wanted, wanted.cursor)}]
    if len(found) > count:
        links.append({"relation": "next", "url": _url(base, wanted, found[count - 1].pk)})
    entries = [_warnings_entry(wanted.warnings)] if wanted.warnings else []
    entries += [_entry(base, match, wanted) for match in found[:count]]
    head: dict[str, object] = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        head["total"] = total
    head["link"] = links
    text = json.dumps(head, separators=(",", ":"), ensure_ascii=False)
    return fhir_json(f'{text[:-1]},"entry":[{",".join(entries)}]}}')


def _url(base: str, wanted: SearchRequest, cursor: int) -> str:
    return f"{base}?{urlencode(wanted.link_pairs(cursor), quote_via=quote)}"


def _entry(base: str, match: store_search.Match, wanted: SearchRequest) -> str:
    body = match.body
    if wanted.elements is not None:
        body = resource_json.dumps(subset_resource(resource_json.loads(body), wanted.elements))
    full_url = json.dumps(f"{base}/{match.resource_id}")
    return f'{{"fullUrl":{full_url},"resource":{body},"search":{{"mode":"match"}}}}'


def _warnings_entry(warnings: tuple[str, ...]) -> str:
    """What a lenient search ignored, as the OperationOutcome entry FHIR defines for it
    (search.mode = outcome)."""
    outcome = operation_outcome(*(Issue("warning", NOT_SUPPORTED, text) for text in warnings))
    return json.dumps({"resource": outcome, "search": {"mode": "outcome"}}, ensure_ascii=False)
