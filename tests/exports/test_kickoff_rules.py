"""Kick-off validation and status polling rules that need no worker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from exports.models import ExportJob
from fhirstore.writes import put_resource

pytestmark = pytest.mark.django_db


def test_missing_prefer_is_400_outcome(client_a, store):
    response = client_a.kick_off(prefer="")
    assert response.status_code == 400
    assert "respond-async" in response.json()["issue"][0]["diagnostics"]
    assert not ExportJob.objects.exists()


def test_bad_since_is_400_and_creates_no_job(client_a, store):
    response = client_a.kick_off(data={"_since": "last tuesday"})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/fhir+json")
    assert not ExportJob.objects.exists()


def test_unknown_type_is_400_and_lenient_runs_with_a_warning(client_a, store):
    assert client_a.kick_off(data={"_type": "Patient,Banana"}).status_code == 400
    lenient = client_a.kick_off(
        data={"_type": "Patient,Banana"}, prefer="respond-async, handling=lenient"
    )
    assert lenient.status_code == 202
    assert "Banana" in ExportJob.objects.get().warnings[0]


def test_wrong_accept_is_400(client_a, store):
    response = client_a.request(
        "get", "/fhir/$export", headers={"Accept": "text/html", "Prefer": "respond-async"}
    )
    assert response.status_code == 400


def test_kickoff_without_token_is_401(client_a, store):
    response = client_a.http.get("/fhir/$export", headers={"Prefer": "respond-async"})
    assert response.status_code == 401
    assert response.json()["resourceType"] == "OperationOutcome"


def test_group_bound_client_may_export_only_its_groups(make_fhir_client, jwk_a, store):
    bound = make_fhir_client(jwk_a, name="bound", groups=("g1",))
    assert bound.kick_off().status_code == 403
    assert bound.kick_off("/fhir/Patient/$export").status_code == 403
    other = bound.kick_off("/fhir/Group/g2/$export")
    assert other.status_code == 403
    assert "Group/g2" in other.json()["issue"][0]["diagnostics"]
    assert bound.kick_off("/fhir/Group/g1/$export").status_code == 202


def test_polling_far_faster_than_retry_after_gets_429(client_a, store, settings):
    settings.BULKOPS_POLL_BURST = 3
    kickoff = client_a.kick_off()  # no worker here: the job stays accepted
    statuses = [client_a.request("get", kickoff["Content-Location"]).status_code for _ in range(6)]
    assert statuses[:4] == [202, 202, 202, 202]
    assert statuses[-1] == 429


def test_status_poll_is_one_row_read_and_one_write(client_a, store, django_assert_num_queries):
    kickoff = client_a.kick_off()
    token = client_a.token()
    # One query resolves the bearer token with its client, one reads the job row, one
    # records the poll: the cost of a poll does not grow with the export.
    with django_assert_num_queries(3):
        response = client_a.http.get(
            kickoff["Content-Location"], headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 202
    assert response["X-Progress"] == "0% - planning"
    assert response["Retry-After"] == "2"


def test_too_many_exports_is_429_and_delete_frees_the_slot_at_once(client_a, store, settings):
    settings.BULKOPS_MAX_CONCURRENT_EXPORTS = 1
    first = client_a.kick_off()
    refused = client_a.kick_off()
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert refused.json()["issue"][0]["code"] == "throttled"
    assert client_a.request("delete", first["Content-Location"]).status_code == 202
    gone = client_a.request("get", first["Content-Location"])
    assert gone.status_code == 404
    assert gone.json()["resourceType"] == "OperationOutcome"
    assert client_a.kick_off().status_code == 202


def group_with_an_inactive_member(written) -> None:
    """g2: p1 active, p2 a member marked inactive (Group.member.inactive)."""
    put_resource(
        resource_type="Group",
        resource_id="g2",
        body={
            "resourceType": "Group",
            "id": "g2",
            "type": "person",
            "actual": True,
            "member": [
                {"entity": {"reference": "Patient/p1"}},
                {"entity": {"reference": "Patient/p2"}, "inactive": True},
            ],
        },
        now=written,
    )


def patients(*ids: str) -> list[dict]:
    return [{"name": "patient", "valueReference": {"reference": f"Patient/{p}"}} for p in ids]


@pytest.mark.parametrize("prefer", ["respond-async", "respond-async, handling=lenient"])
def test_patient_naming_an_inactive_member_is_refused_like_an_outsider(client_a, store, prefer):
    group_with_an_inactive_member(store["written"])
    response = client_a.post_kick_off("/fhir/Group/g2/$export", patients("p1", "p2"), prefer=prefer)
    assert response.status_code == 400
    assert response.json()["issue"][0]["diagnostics"] == (
        "Patient/p2 is not a member of Group/g2; a Group export includes only its active members."
    )
    assert not ExportJob.objects.exists()
    assert client_a.post_kick_off("/fhir/Group/g2/$export", patients("p1")).status_code == 202


def test_patients_outside_the_export_are_named_together(client_a, store):
    response = client_a.post_kick_off("/fhir/Group/g1/$export", patients("p1", "p3", "nobody"))
    assert response.json()["issue"][0]["diagnostics"] == (
        "Patient/p3, Patient/nobody are not members of Group/g1; a Group export includes only "
        "its active members."
    )
    unknown = client_a.post_kick_off("/fhir/Patient/$export", patients("nobody"))
    assert unknown.status_code == 400
    assert unknown.json()["issue"][0]["diagnostics"] == "Patient/nobody is not a known patient."


def instant(seconds_from_now: float) -> str:
    return (timezone.now() + timedelta(seconds=seconds_from_now)).isoformat()


def test_since_a_little_ahead_of_the_server_clock_is_client_skew(client_a, store, settings):
    assert client_a.kick_off(data={"_since": instant(30)}).status_code == 202
    refused = client_a.kick_off(data={"_since": instant(90)})
    assert refused.status_code == 400
    assert refused.json()["issue"][0]["diagnostics"].endswith(
        "is in the future (more than 60 seconds ahead of this server's clock)."
    )
    settings.BULKOPS_SINCE_CLOCK_SKEW = 0
    assert client_a.kick_off(data={"_since": instant(30)}).status_code == 400
    settings.BULKOPS_SINCE_CLOCK_SKEW = 120
    assert client_a.kick_off(data={"_since": instant(90)}).status_code == 202


def test_a_status_poll_in_progress_has_no_body_and_no_content_type(client_a, store):
    """As the spec's examples answer (§2.1): 202, X-Progress, Retry-After, nothing else."""
    kickoff = client_a.kick_off()
    response = client_a.request("get", kickoff["Content-Location"])
    assert response.status_code == 202
    assert response.content == b""
    assert "Content-Type" not in response
    assert response["X-Progress"] == "0% - planning"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("put", "/fhir/$export", "GET, POST"),
        ("delete", "/fhir/Patient/$export", "GET, POST"),
        ("post", "/fhir/bulkstatus/00000000-0000-0000-0000-000000000000", "GET, DELETE"),
        ("delete", "/fhir/bulkfiles/00000000-0000-0000-0000-000000000000", "GET"),
        ("post", "/fhir/Patient/p1", "GET"),
        ("put", "/fhir/metadata", "GET"),
    ],
)
def test_a_method_a_fhir_endpoint_does_not_take_is_405_outcome(
    client_a, store, method, path, allowed
):
    response = client_a.request(method, path)
    assert response.status_code == 405
    assert response["Allow"] == allowed
    assert response["Content-Type"].startswith("application/fhir+json")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["diagnostics"] == (
        f"{method.upper()} is not allowed here; use {allowed}."
    )
