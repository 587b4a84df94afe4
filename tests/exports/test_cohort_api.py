"""The Bulk Cohort API (v4 digest §5, §7.D.27): asynchronous create of bulk-cohort-group
Groups by a client, on a real worker, then read and exported."""

from __future__ import annotations

import json
import time

import pytest

from bulkops.fhir.cohort import COHORT_PROFILE, FHIR_QUERY, MEMBER_FILTER, MEMBERS_REFRESHED
from fhirstore.models import Resource

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

WRITER = "system/*.read system/Group.c"


def cohort(*filters: str, **fields) -> dict:
    return {
        "resourceType": "Group",
        "meta": {"profile": [COHORT_PROFILE]},
        "modifierExtension": [
            {"url": MEMBER_FILTER, "valueExpression": {"language": FHIR_QUERY, "expression": f}}
            for f in filters
        ],
        "type": "person",
        "actual": False,
        "name": "Women to follow",
        **fields,
    }


def create(client, body: dict, *, scope: str = WRITER, prefer: str = "respond-async"):
    return client.request(
        "post",
        "/fhir/Group",
        scope=scope,
        data=json.dumps(body),
        content_type="application/fhir+json",
        headers={"Prefer": prefer, "Accept": "application/fhir+json"},
    )


def finished(client, status_url: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.request("get", status_url)
        if response.status_code != 202:
            assert response.status_code == 200, response.content
            return response.json()
        time.sleep(0.05)
    raise AssertionError("cohort still building")


def diagnostics(response) -> str:
    return response.json()["issue"][0]["diagnostics"]


@pytest.fixture
def writer(make_fhir_client, jwk_a):
    return make_fhir_client(jwk_a, name="writer", scopes=WRITER)


def test_a_client_creates_a_cohort_asynchronously_and_exports_it(writer, store):
    response = create(writer, cohort("Patient?gender=female", "Condition?subject=Patient/p2"))
    assert response.status_code == 202
    status_url = response["Content-Location"]
    assert status_url.startswith("http://testserver/fhir/cohortstatus/")
    bundle = finished(writer, status_url)
    assert bundle["type"] == "batch-response"
    (entry,) = bundle["entry"]
    assert entry["response"]["status"] == "201 Created"
    group = entry["resource"]
    assert entry["response"]["location"] == f"Group/{group['id']}/_history/1"
    assert [m["entity"]["reference"] for m in group["member"]] == ["Patient/p2"]
    assert group["actual"] is True and group["extension"][0]["url"] == MEMBERS_REFRESHED
    read = writer.request("get", f"/fhir/Group/{group['id']}").json()
    assert read["meta"]["profile"] == [COHORT_PROFILE]
    kickoff = writer.post_kick_off(
        f"/fhir/Group/{group['id']}/$export-v4", [{"name": "_type", "valueString": "Patient"}]
    )
    (item,) = writer.finished_manifest(kickoff)["output"]
    assert [r["id"] for r in writer.download(item["url"])] == ["p2"]


def test_named_members_limit_what_the_filters_apply_to(writer, store):
    members = [{"entity": {"reference": "Patient/p1"}}, {"entity": {"reference": "Patient/p3"}}]
    response = create(writer, cohort("Patient?gender=female", member=members))
    group = finished(writer, response["Content-Location"])["entry"][0]["resource"]
    assert [m["entity"]["reference"] for m in group["member"]] == ["Patient/p1", "Patient/p3"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (cohort("Patient?gender=female&_sort=name"), "_sort"),
        (cohort("Patient?nosuch=1"), "nosuch"),
        (cohort(), "at least one member filter"),
        (cohort("Patient?gender=female", type="device"), "Group.type must be person"),
        (cohort("Practitioner?name=x"), "not in the Patient compartment"),
        (
            {
                **cohort(),
                "modifierExtension": [
                    {
                        "url": MEMBER_FILTER,
                        "valueExpression": {"language": "text/cql", "expression": "true"},
                    }
                ],
            },
            "application/x-fhir-query",
        ),
    ],
)
def test_a_cohort_bulkops_cannot_build_is_refused_at_once(writer, store, body, reason):
    response = create(writer, body)
    assert response.status_code == 400
    assert reason in diagnostics(response)
    assert not Resource.objects.filter(resource_type="Group").exclude(resource_id="g1").exists()


def test_only_a_token_that_may_create_groups_and_read_the_filtered_types_may(
    make_fhir_client, jwk_a, jwk_b, store
):
    reader = make_fhir_client(jwk_a, name="reader")
    refused = create(reader, cohort("Patient?gender=female"), scope="system/*.read")
    assert refused.status_code == 403 and "system/Group.c" in diagnostics(refused)
    narrow = make_fhir_client(jwk_b, name="narrow", scopes="system/Patient.read system/Group.c")
    hidden = create(narrow, cohort("Condition?subject=Patient/p2"), scope=narrow_scope())
    assert hidden.status_code == 403 and "Condition" in diagnostics(hidden)
    bound = make_fhir_client(jwk_b, name="bound", scopes=WRITER, groups=("g1",))
    assert create(bound, cohort("Patient?gender=female")).status_code == 403
    assert not Resource.objects.filter(resource_type="Group").exclude(resource_id="g1").exists()


def narrow_scope() -> str:
    return "system/Patient.read system/Group.c"


def test_another_client_cannot_poll_a_cohort_request(writer, client_b, store):
    response = create(writer, cohort("Patient?gender=female"))
    assert client_b.request("get", response["Content-Location"]).status_code == 404


def test_a_cohort_create_needs_respond_async(writer, store):
    response = create(writer, cohort("Patient?gender=female"), prefer="")
    assert response.status_code == 400
