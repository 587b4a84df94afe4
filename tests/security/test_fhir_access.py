"""What each kind of backend client may reach on every /fhir route.

The routes come from Django's URL resolver: a route added under /fhir/ without cases
here fails `test_every_fhir_route_has_cases`. Each case is one request made by every
kind of client, with the status each must get; a client bound to Group g1 must see
exactly what a Group export of g1 gives it (its members' compartments and g1 itself),
and anything else must look like an id that does not exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import BackendClient
from accounts.services import disable_client
from exports.models import ExportJob
from fhirstore.access import is_visible, visible_resources
from fhirstore.groups import upsert_group
from fhirstore.models import CohortRequest, Resource
from fhirstore.writes import delete_resource, put_resource
from tests.exports.conftest import observation, stored_file
from tests.security.test_access_matrix import routes

pytestmark = pytest.mark.django_db

KINDS = ("unbound", "bound", "scoped", "disabled", "anonymous")
# The registered (and requested) scopes and bound groups of each kind of client.
PROFILES = {
    "unbound": ("system/*.read", ()),
    "bound": ("system/*.read", ("g1",)),
    "scoped": ("system/Patient.read", ()),
    "disabled": ("system/*.read", ()),
}
PUBLIC = (200, 200, 200, 200, 200)
NO_TOKEN = (401, 401)  # the disabled client's token and no token at all
SUBMIT_REFUSED = (403, 403, 403, *NO_TOKEN)
SOME_UUID = "6f1c2a8e-3b7d-4c1e-9a2f-5d8e7b6a4c3d"


@dataclass(frozen=True)
class Case:
    """`method` on `path` ("{job}" and friends filled in per world), and the status for
    each of KINDS in order."""

    what: str
    method: str
    path: str
    statuses: tuple[int, ...]


def read(what: str, path: str, unbound: int, bound: int, scoped: int) -> Case:
    return Case(what, "get", path, (unbound, bound, scoped, *NO_TOKEN))


def post(what: str, path: str, unbound: int, bound: int, scoped: int) -> Case:
    return Case(what, "post", path, (unbound, bound, scoped, *NO_TOKEN))


# URL name in the "fhir" namespace: its cases.
CASES: dict[str, list[Case]] = {
    "metadata": [Case("CapabilityStatement", "get", "/fhir/metadata", PUBLIC)],
    "smart-configuration": [
        Case("SMART discovery", "get", "/fhir/.well-known/smart-configuration", PUBLIC)
    ],
    # bulkops' own $export definitions: protocol facts, public like metadata; the store's
    # OperationDefinitions stay behind the token (none is served here).
    "operation-definition-list": [
        Case("OperationDefinition search", "get", "/fhir/OperationDefinition", PUBLIC)
    ],
    "operation-definition": [
        Case("bulkops' definition", "get", "/fhir/OperationDefinition/bulkops-export", PUBLIC),
        Case("an unknown definition", "get", "/fhir/OperationDefinition/nope", (404,) * 5),
    ],
    "export": [read("system export", "/fhir/$export", 202, 403, 202)],
    "patient-export": [read("Patient export", "/fhir/Patient/$export", 202, 403, 202)],
    "group-export": [
        read("its own Group's export", "/fhir/Group/g1/$export", 202, 202, 202),
        read("another Group's export", "/fhir/Group/g2/$export", 202, 403, 202),
        read("an unknown Group's export", "/fhir/Group/nope/$export", 404, 403, 404),
    ],
    # $export-v4 (Bulk Data 4) is POST only, under the same rules as $export.
    "export-v4": [post("system export v4", "/fhir/$export-v4", 202, 403, 202)],
    "patient-export-v4": [post("Patient export v4", "/fhir/Patient/$export-v4", 202, 403, 202)],
    "group-export-v4": [
        post("its own Group's export v4", "/fhir/Group/g1/$export-v4", 202, 202, 202),
        post("another Group's export v4", "/fhir/Group/g2/$export-v4", 202, 403, 202),
        post("an unknown Group's export v4", "/fhir/Group/nope/$export-v4", 404, 403, 404),
    ],
    # Jobs and files belong to the unbound client: everyone else gets 404.
    "export-status": [
        read("status of a job", "{job}", 202, 404, 404),
        Case("DELETE of a job", "delete", "{doomed_job}", (202, 404, 404, *NO_TOKEN)),
    ],
    "export-file": [read("a job's file", "{file}", 200, 404, 404)],
    # Cohort Groups are created only with system/Group.c, which no kind here holds.
    "group-type": [
        read("Group search at /fhir/Group", "/fhir/Group", 200, 200, 403),
        post("cohort Group create", "/fhir/Group", 403, 403, 403),
    ],
    "cohort-status": [read("a cohort request's status", "{cohort}", 202, 404, 404)],
    "export-manifest-page": [
        read("a v4 job's manifest page", "{page}", 200, 404, 404),
        read("a page a 2.0.0 job does not have", "{job}/page/1", 404, 404, 404),
    ],
    "search": [
        read("Group search", "/fhir/Group", 200, 200, 403),
        read("Observation search", "/fhir/Observation", 200, 200, 403),
        read("Patient search", "/fhir/Patient", 200, 200, 200),
        read("Condition search (tombstones)", "/fhir/Condition", 200, 200, 403),
        read("search for a non-member's data", "/fhir/Observation?patient=p3", 200, 200, 403),
        read("search for a non-member by id", "/fhir/Patient?_id=p2,p3", 200, 200, 200),
        read("search for a non-member by name", "/fhir/Patient?family=Fam-p3", 200, 200, 200),
        read("Practitioner search", "/fhir/Practitioner", 200, 200, 403),
        read("search of an unknown type", "/fhir/Spaceship", 404, 404, 404),
    ],
    "search-post": [
        Case(
            "POST Observation search",
            "post_form",
            "/fhir/Observation/_search",
            (200, 200, 403, *NO_TOKEN),
        )
    ],
    "not-found": [Case("a path no route serves", "get", "/fhir/no/such/route", (404,) * 5)],
    # Bulk Submit needs system/bulk-submit, which no reading client holds (its own
    # submitter's view is tests/submissions/test_bulk_submit.py).
    "bulk-submit": [Case("Bulk Submit", "post_form", "/fhir/$bulk-submit", SUBMIT_REFUSED)],
    "bulk-submit-status-kickoff": [
        Case(
            "Bulk Submit status kick-off", "post_form", "/fhir/$bulk-submit-status", SUBMIT_REFUSED
        )
    ],
    "bulk-submit-status": [
        read("a submission's status", f"/fhir/bulksubmitstatus/{SOME_UUID}", 403, 403, 403)
    ],
    "bulk-submit-outcome": [
        read(
            "a submission's file outcome",
            f"/fhir/bulksubmitstatus/{SOME_UUID}/outcome/{SOME_UUID}",
            403,
            403,
            403,
        )
    ],
    # A delivery's files open only with the credential sent to its receiver
    # (transfers.credentials), never with a SMART token: tests/transfers test that one.
    "delivery-manifest": [
        Case(
            "a delivery's manifest",
            "get",
            f"/fhir/deliveries/{SOME_UUID}/manifest.json",
            (401,) * len(KINDS),
        )
    ],
    "delivery-file": [
        Case(
            "a delivery's file",
            "get",
            f"/fhir/deliveries/{SOME_UUID}/files/{SOME_UUID}.ndjson",
            (401,) * len(KINDS),
        )
    ],
    "group-read": [
        read("its own Group", "/fhir/Group/g1", 200, 200, 403),
        read("another Group", "/fhir/Group/g2", 200, 404, 403),
        read("an unknown Group", "/fhir/Group/nope", 404, 404, 403),
    ],
    "read": [
        read("a member's Patient", "/fhir/Patient/p1", 200, 200, 200),
        read("a member's Observation", "/fhir/Observation/p1-o0", 200, 200, 403),
        read("a member's deleted Condition", "/fhir/Condition/p1-c", 410, 410, 403),
        read("a non-member's Patient", "/fhir/Patient/p3", 200, 404, 200),
        read("a non-member's Observation", "/fhir/Observation/p3-o0", 200, 404, 403),
        read("a non-member's deleted Condition", "/fhir/Condition/p3-c", 410, 404, 403),
        read("data shared by a member and not", "/fhir/Observation/shared", 200, 200, 403),
        read("an ex-member's Patient", "/fhir/Patient/p2", 200, 404, 200),
        read("an ex-member's Observation", "/fhir/Observation/p2-o0", 200, 404, 403),
        read("a Practitioner", "/fhir/Practitioner/dr1", 200, 404, 403),
        read("an unknown Patient", "/fhir/Patient/nope", 404, 404, 404),
    ],
}
# The resources of the world below a client bound to g1 may read (a Group export of g1
# plus g1 itself); the consistency test checks this against a real export.
BOUND_VISIBLE = {
    ("Group", "g1"),
    ("Patient", "p1"),
    ("Observation", "p1-o0"),
    ("Observation", "p1-o1"),
    ("Observation", "shared"),
}
# What each search lists for the kinds that may run it (ids in row order).
SEARCHED: dict[str, dict[str, list[str]]] = {
    "/fhir/Group": {"unbound": ["g1", "g2"], "bound": ["g1"]},
    "/fhir/Observation": {
        "unbound": ["p1-o0", "p1-o1", "p2-o0", "p2-o1", "p3-o0", "p3-o1", "shared"],
        "bound": ["p1-o0", "p1-o1", "shared"],
    },
    "/fhir/Patient": {"unbound": ["p1", "p2", "p3"], "bound": ["p1"], "scoped": ["p1", "p2", "p3"]},
    "/fhir/Condition": {"unbound": ["p2-c"], "bound": []},
    "/fhir/Observation?patient=p3": {"unbound": ["p3-o0", "p3-o1", "shared"], "bound": ["shared"]},
    "/fhir/Patient?_id=p2,p3": {"unbound": ["p2", "p3"], "bound": [], "scoped": ["p2", "p3"]},
    "/fhir/Patient?family=Fam-p3": {"unbound": ["p3"], "bound": [], "scoped": ["p3"]},
    "/fhir/Practitioner": {"unbound": ["dr1"], "bound": []},
    "/fhir/Observation/_search": {
        "unbound": ["p1-o0", "p1-o1", "p2-o0", "p2-o1", "p3-o0", "p3-o1", "shared"],
        "bound": ["p1-o0", "p1-o1", "shared"],
    },
}


def fhir_route_names() -> set[str]:
    return {route.name for route in routes() if route.namespace == "fhir"}


def test_every_fhir_route_has_cases() -> None:
    assert fhir_route_names() == set(CASES)


def write_world(store: dict[str, Any]) -> None:
    """The export cast's store, plus: g1 = {p1 active, p2 whose membership period has
    ended}; g2 = {p3}; an Observation in both p1's and p3's compartments; deleted
    Conditions of p1 and p3."""
    now = timezone.now()
    put_resource(
        resource_type="Group",
        resource_id="g1",
        body={
            "resourceType": "Group",
            "id": "g1",
            "type": "person",
            "actual": True,
            "member": [
                {"entity": {"reference": "Patient/p1"}},
                {"entity": {"reference": "Patient/p2"}, "period": {"end": "2020-01-01"}},
            ],
        },
        now=now,
    )
    upsert_group(group_id="g2", name="Cohort 2", patient_ids=["p3"], actor="test")
    put_resource(
        resource_type="Observation",
        resource_id="shared",
        body={**observation("shared", "p3"), "performer": [{"reference": "Patient/p1"}]},
        now=store["written"],
    )
    for condition in ("p1-c", "p3-c"):
        delete_resource(resource_type="Condition", resource_id=condition, now=now)


@pytest.fixture
def world(store, make_fhir_client, jwk_a, settings) -> dict[str, Any]:
    """Every kind of client with a real token (the disabled one got its token before it
    was disabled), and a job with one file of the unbound client."""
    settings.BULKOPS_MAX_CONCURRENT_EXPORTS = 100
    write_world(store)
    clients: dict[str, Client] = {"anonymous": Client()}
    backends = {}
    for kind, (scopes, groups) in PROFILES.items():
        fhir_client = make_fhir_client(jwk_a, name=kind, scopes=scopes, groups=groups)
        token = fhir_client.token(scopes)
        clients[kind] = Client(headers={"Authorization": f"Bearer {token}"})
        backends[kind] = fhir_client.backend_client
    disable_client(client_id=backends["disabled"].client_id, actor=None)
    jobs = [
        ExportJob.objects.create(
            client=backends["unbound"],
            level="system",
            request_url="x",
            transaction_time=timezone.now(),
        )
        for _ in range(2)
    ]
    file = stored_file(jobs[0])
    cohort = CohortRequest.objects.create(client=backends["unbound"], name="c", group_id="c")
    paged = ExportJob.objects.create(
        client=backends["unbound"],
        level="system",
        request_url="x",
        transaction_time=timezone.now(),
        bulk_version="4.0.0",
        parameters={"allowPartialManifests": True},
        status="completed",
    )
    paths = {
        "{job}": f"/fhir/bulkstatus/{jobs[0].uuid}",
        "{doomed_job}": f"/fhir/bulkstatus/{jobs[1].uuid}",
        "{file}": f"/fhir/bulkfiles/{file.uuid}",
        "{page}": f"/fhir/bulkstatus/{paged.uuid}/page/1",
        "{cohort}": f"/fhir/cohortstatus/{cohort.uuid}",
    }
    return {"clients": clients, "paths": paths}


def call(client: Client, method: str, path: str) -> Any:
    headers = {"Accept": "application/fhir+json", "Prefer": "respond-async"}
    if method == "post_form":  # POST _search: the criteria in a form body (none here)
        return client.post(
            path, data="", content_type="application/x-www-form-urlencoded", headers=headers
        )
    if method == "post":  # a kick-off without parameters
        return client.post(path, data="", content_type="application/fhir+json", headers=headers)
    return getattr(client, method)(path, headers=headers)


def listed(response: Any) -> tuple[list[str], int | None]:
    """The ids a search lists and its total (when it gives one)."""
    bundle = json.loads(response.content)
    return [entry["resource"]["id"] for entry in bundle.get("entry", [])], bundle.get("total")


def shown(name: str, response: Any) -> Any:
    """What a successful answer shows: the resource read, or the Groups listed and the
    total; None for routes whose answers are not resources."""
    if name in ("read", "group-read", "operation-definition"):
        body = json.loads(response.content)
        return f"{body['resourceType']}/{body['id']}"
    if name in ("search", "search-post"):
        return listed(response)
    return None


def expected_shown(name: str, path: str, kind: str) -> Any:
    if name in ("read", "group-read", "operation-definition"):
        return path.removeprefix("/fhir/")
    if name in ("search", "search-post"):
        ids = SEARCHED[path][kind]
        exact = "?" not in path or "?_id=" in path  # the database alone counts these
        return ids, len(ids) if exact else None
    return None


def test_each_client_gets_exactly_what_it_may_on_every_fhir_route(world) -> None:
    wrong = []
    for name, cases in CASES.items():
        for case in cases:
            path = case.path
            for placeholder, filled in world["paths"].items():
                path = path.replace(placeholder, filled)
            for kind, expected in zip(KINDS, case.statuses, strict=True):
                response = call(world["clients"][kind], case.method, path)
                if response.status_code != expected:
                    wrong.append((name, case.what, kind, expected, response.status_code))
                elif expected == 200 and shown(name, response) != expected_shown(name, path, kind):
                    wrong.append((name, case.what, kind, shown(name, response)))
    assert wrong == []


def test_search_totals_count_what_a_bound_client_may_see(world) -> None:
    """The total counts the client's resources, not the page and not the store."""
    bound = world["clients"]["bound"]
    assert listed(call(bound, "get", "/fhir/Group?_count=0")) == ([], 1)
    assert listed(call(bound, "get", "/fhir/Observation?_summary=count")) == ([], 3)
    assert listed(call(bound, "get", "/fhir/Observation?patient=p3&_summary=count")) == ([], 1)


def test_a_refused_read_looks_exactly_like_an_unknown_id(world) -> None:
    """A bound client cannot tell "outside your groups" from "no such resource", not
    even for tombstones (410 would say the id existed)."""
    bound = world["clients"]["bound"]
    refused = [
        case.path
        for case in CASES["read"] + CASES["group-read"]
        if case.statuses[1] == 404 and case.statuses[0] != 404
    ]
    assert refused
    for path in refused:
        resource_type, resource_id = path.split("/")[2:]
        denied = call(bound, "get", path)
        unknown = call(bound, "get", f"/fhir/{resource_type}/nope")
        assert (denied.status_code, denied["Content-Type"]) == (404, unknown["Content-Type"])
        assert denied.content == unknown.content.replace(b"nope", resource_id.encode()), path


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_a_bound_client_reads_exactly_what_its_group_export_gives_it(
    store, make_fhir_client, jwk_a
) -> None:
    """The read rule and the Group export share one membership (inactive members and
    ended periods included): every stored resource is readable by a client bound to g1
    if and only if the export of g1 wrote it, or it is g1."""
    write_world(store)
    bound = make_fhir_client(jwk_a, name="bound", groups=("g1",))
    manifest = bound.finished_manifest(bound.kick_off("/fhir/Group/g1/$export"))
    exported = {
        (resource_type, resource["id"])
        for resource_type, resources in bound.resources(manifest).items()
        for resource in resources
    }
    assert exported | {("Group", "g1")} == BOUND_VISIBLE
    token = bound.token()
    readable = {
        (resource_type, resource_id)
        for resource_type, resource_id in Resource.objects.live().values_list(
            "resource_type", "resource_id"
        )
        if bound.http.get(
            f"/fhir/{resource_type}/{resource_id}", headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 200
    }
    assert readable == BOUND_VISIBLE


def test_the_row_check_and_the_search_filter_agree(world) -> None:
    """Reads check one row (`is_visible`), searches filter a type (`visible_resources`):
    for every stored row, tombstones included, and every kind of client, they agree."""
    for backend in BackendClient.objects.all():
        for row in Resource.objects.all():
            listed = visible_resources(backend, row.resource_type).filter(pk=row.pk).exists()
            assert is_visible(backend, row) == listed, (backend.name, str(row))
