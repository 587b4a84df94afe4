"""$export-v4 (Bulk Data 4.0.0-ballot, v4 digest §7.A) end to end: real tokens, a real
Celery worker, manifests and files read back over HTTP."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from exports.models import ExportJob
from fhirstore.cohorts import save_cohort
from fhirstore.writes import delete_resource
from tests.exports.conftest import wait_for_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

IAD = "http://hl7.org/fhir/uv/bulkdata/CodeSystem/include-associated-data"
MANIFEST_TYPE = "http://hl7.org/fhir/uv/bulkdata/StructureDefinition/BulkDataManifest"


def text(name: str, value: str) -> dict[str, str]:
    return {"name": name, "valueString": value}


def diagnostics(response) -> str:
    return response.json()["issue"][0]["diagnostics"]


def test_v4_kickoff_is_post_only(client_a, store):
    response = client_a.kick_off("/fhir/$export-v4")
    assert response.status_code == 405
    assert response["Content-Type"].startswith("application/fhir+json")
    assert response["Allow"] == "POST"


def test_v4_manifest_has_the_ballot_shape_and_sizes_of_the_files(client_a, store):
    kickoff = client_a.post_kick_off("/fhir/$export-v4", [text("_type", "Patient")])
    assert kickoff.status_code == 202
    assert kickoff["Content-Location"].startswith("http://testserver/fhir/bulkstatus/")
    job = wait_for_job(kickoff["Content-Location"].rsplit("/", 1)[1])
    response = client_a.request("get", kickoff["Content-Location"])
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert "Expires" in response
    manifest = response.json()
    assert manifest["manifestType"] == MANIFEST_TYPE
    assert manifest["transactionTime"].endswith("Z")
    assert manifest["requiresAccessToken"] is True
    assert manifest["outputFormat"] == "application/fhir+ndjson"
    # No `request`, no `error`, and no empty arrays (v4 digest B4, B5, B7).
    assert set(manifest) == {
        "manifestType",
        "transactionTime",
        "requiresAccessToken",
        "outputFormat",
        "output",
    }
    (item,) = manifest["output"]
    body = b"".join(client_a.request("get", item["url"]).streaming_content)
    assert item["type"] == "Patient" and item["count"] == 3 == len(body.splitlines())
    assert item["fileSize"] == len(body)
    assert job.bulk_version == "4.0.0"


def test_v4_takes_one_value_per_parameter(client_a, store):
    joined = client_a.post_kick_off("/fhir/$export-v4", [text("_type", "Patient,Condition")])
    assert joined.status_code == 400
    assert "one value per _type parameter" in diagnostics(joined)
    repeated = client_a.post_kick_off(
        "/fhir/Patient/$export-v4", [text("_type", "Patient"), text("_type", "Condition")]
    )
    manifest = client_a.finished_manifest(repeated)
    assert sorted(item["type"] for item in manifest["output"]) == ["Condition", "Patient"]


def test_v4_type_filter_values_are_never_split(client_a, store):
    """A comma inside a v4 _typeFilter is literal (v4 digest §1.4): an OR of two codes."""
    kickoff = client_a.post_kick_off(
        "/fhir/$export-v4",
        [
            text("_type", "Observation"),
            text("_typeFilter", "Observation?code=http://loinc.org|8867-4,http://loinc.org|x"),
        ],
    )
    manifest = client_a.finished_manifest(kickoff)
    assert [item["count"] for item in manifest["output"]] == [6]
    (extension,) = manifest["extension"]
    assert extension["url"] == "urn:bulkops:manifest:typeFilter"
    assert extension["valueString"].startswith("Observation?code=")


def test_include_associated_data_is_a_coding(client_a, store):
    as_code = client_a.post_kick_off(
        "/fhir/$export-v4",
        [{"name": "includeAssociatedData", "valueCode": "LatestProvenanceResources"}],
    )
    assert as_code.status_code == 400
    assert "must be a valueCoding" in diagnostics(as_code)
    wrong_system = client_a.post_kick_off(
        "/fhir/$export-v4",
        [{"name": "includeAssociatedData", "valueCoding": {"system": "x", "code": "_mine"}}],
    )
    assert wrong_system.status_code == 400
    assert "urn:bulkops:include-associated-data" in diagnostics(wrong_system)
    coding = {"system": IAD, "code": "LatestProvenanceResources"}
    lenient = client_a.post_kick_off(
        "/fhir/$export-v4",
        [text("_type", "Patient"), {"name": "includeAssociatedData", "valueCoding": coding}],
        prefer="respond-async, handling=lenient",
    )
    manifest = client_a.finished_manifest(lenient)
    # The ignored parameter is reported in outcome[] (v4 digest §1.2), with its severity.
    (outcome,) = manifest["outcome"]
    assert set(outcome) == {"url", "count", "fileSize", "countSeverity"}
    assert outcome["countSeverity"] == [{"code": "warning", "count": 1}]
    (line,) = client_a.download(outcome["url"])
    assert "includeAssociatedData" in line["issue"][0]["diagnostics"]


def test_unsupported_parameters_are_refused_or_reported(client_a, store):
    strict = client_a.post_kick_off("/fhir/$export-v4", [text("_maximumFileSize", "10")])
    assert strict.status_code == 400
    assert "does not support the parameter '_maximumFileSize'" in diagnostics(strict)
    allow = client_a.post_kick_off(
        "/fhir/$export", [{"name": "allowPartialManifests", "valueBoolean": True}]
    )
    assert allow.status_code == 400, "a 2.0.0 kick-off does not know v4 parameters"


def test_separate_export_status_answers_polls_with_200_and_x_export_status(client_a, store):
    kickoff = client_a.post_kick_off(
        "/fhir/Group/g1/$export-v4",
        [text("_type", "Patient")],
        prefer="respond-async, separate-export-status",
    )
    assert kickoff.status_code == 202
    assert kickoff["Preference-Applied"] == "respond-async, separate-export-status"
    first = client_a.request("get", kickoff["Content-Location"])
    assert first.status_code == 200
    assert first["X-Export-Status"] in ("202 Accepted", "200 OK")
    wait_for_job(kickoff["Content-Location"].rsplit("/", 1)[1])
    done = client_a.request("get", kickoff["Content-Location"])
    assert (done.status_code, done["X-Export-Status"]) == (200, "200 OK")
    assert [item["count"] for item in done.json()["output"]] == [2]


def test_a_failed_v4_export_with_separate_status_says_so_in_the_header(client_a, store):
    kickoff = client_a.post_kick_off(
        "/fhir/$export-v4", [], prefer="respond-async,separate-export-status"
    )
    job = wait_for_job(kickoff["Content-Location"].rsplit("/", 1)[1])
    ExportJob.objects.filter(pk=job.pk).update(status="failed", failure_reason="Disk full.")
    response = client_a.request("get", kickoff["Content-Location"])
    assert response.status_code == 200
    assert response["X-Export-Status"] == "424 Failed Dependency"
    assert response["Content-Type"].startswith("application/fhir+json")
    assert diagnostics(response) == "Disk full."
    plain = client_a.post_kick_off("/fhir/$export-v4", [])
    job = wait_for_job(plain["Content-Location"].rsplit("/", 1)[1])
    ExportJob.objects.filter(pk=job.pk).update(status="failed", failure_reason="Disk full.")
    assert client_a.request("get", plain["Content-Location"]).status_code == 424


def test_v4_deleted_items_have_no_type_and_until_bounds_the_window(client_a, store):
    since = timezone.now() - timedelta(minutes=5)
    delete_resource(resource_type="Observation", resource_id="p1-o0", now=timezone.now())
    kickoff = client_a.post_kick_off(
        "/fhir/$export-v4",
        [
            {"name": "_since", "valueInstant": since.isoformat()},
            {"name": "_until", "valueInstant": (timezone.now() + timedelta(hours=1)).isoformat()},
        ],
    )
    manifest = client_a.finished_manifest(kickoff)
    assert [item["type"] for item in manifest["output"]] == ["Group"]  # written just now
    (deleted,) = manifest["deleted"]
    assert "type" not in deleted and deleted["count"] == 1
    (bundle,) = client_a.download(deleted["url"])
    assert bundle["entry"] == [{"request": {"method": "DELETE", "url": "Observation/p1-o0"}}]
    assert manifest["extension"][0]["url"] == "urn:bulkops:manifest:until"
    before = client_a.post_kick_off(
        "/fhir/$export-v4",
        [
            {"name": "_since", "valueInstant": since.isoformat()},
            {"name": "_until", "valueInstant": since.isoformat()},
        ],
    )
    assert before.status_code == 400
    assert diagnostics(before) == "_until must be later than _since."


def test_delete_of_a_v4_status_url_answers_202_then_404(client_a, store):
    kickoff = client_a.post_kick_off("/fhir/$export-v4", [])
    assert client_a.request("delete", kickoff["Content-Location"]).status_code == 202
    response = client_a.request("get", kickoff["Content-Location"])
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_another_client_cannot_read_a_v4_status_or_page(client_a, client_b, store):
    kickoff = client_a.post_kick_off(
        "/fhir/$export-v4", [{"name": "allowPartialManifests", "valueBoolean": True}]
    )
    wait_for_job(kickoff["Content-Location"].rsplit("/", 1)[1])
    assert client_a.request("get", kickoff["Content-Location"] + "/page/1").status_code == 200
    assert client_b.request("get", kickoff["Content-Location"]).status_code == 404
    assert client_b.request("get", kickoff["Content-Location"] + "/page/1").status_code == 404


def test_the_v2_manifest_is_unchanged_beside_v4(client_a, store):
    manifest = client_a.finished_manifest(client_a.kick_off(data={"_type": "Patient"}))
    assert set(manifest) == {
        "transactionTime",
        "request",
        "requiresAccessToken",
        "output",
        "deleted",
        "error",
    }
    assert json.dumps(manifest["output"][0]).count("fileSize") == 0


def test_a_partial_manifest_export_on_a_worker_ends_in_a_complete_chain(client_a, store, settings):
    settings.BULKOPS_PARTITION_SIZE = 2
    settings.BULKOPS_POLL_BURST = 10_000  # this client polls as fast as it can
    kickoff = client_a.post_kick_off(
        "/fhir/Patient/$export-v4", [{"name": "allowPartialManifests", "valueBoolean": True}]
    )
    status_url = kickoff["Content-Location"]
    shown: dict[str, dict] = {}
    while (response := client_a.request("get", status_url)).status_code == 202:
        if response.content:  # a page once shown never changes but for its link
            page = response.json()
            page.pop("link", None)
            assert shown.setdefault("first", page) == page
    assert response.status_code == 200
    pages = client_a.manifest_chain(response.json())
    if "first" in shown:
        assert {k: v for k, v in pages[0].items() if k != "link"} == shown["first"]
    counts: dict[str, int] = {}
    for page in pages:
        for item in page.get("output", []):
            counts[item["type"]] = counts.get(item["type"], 0) + len(client_a.download(item["url"]))
    assert counts == {"Patient": 3, "Observation": 6, "Condition": 3}


def test_until_is_inclusive_and_bounds_deleted_too(client_a, store):
    """Digest §6.3 as README settles it: _since < lastUpdated <= _until, for deletions too."""
    written = store["written"]
    late = timezone.now()
    delete_resource(resource_type="Condition", resource_id="p1-c", now=late)
    kickoff = client_a.post_kick_off(
        "/fhir/Patient/$export-v4",
        [
            {"name": "_since", "valueInstant": (written - timedelta(seconds=1)).isoformat()},
            {"name": "_until", "valueInstant": written.isoformat()},
            {"name": "_type", "valueString": "Patient"},
            {"name": "_type", "valueString": "Condition"},
        ],
    )
    manifest = client_a.finished_manifest(kickoff)
    resources = {}
    for item in manifest["output"]:
        resources[item["type"]] = sorted(r["id"] for r in client_a.download(item["url"]))
    # p1-c was deleted after _until: the store keeps latest versions only, so it is in
    # neither output nor deleted[] (README, "Bulk Data 4").
    assert resources == {"Condition": ["p2-c", "p3-c"], "Patient": ["p1", "p2", "p3"]}
    assert "deleted" not in manifest


def test_the_capability_statement_says_how_v4_open_points_are_settled(client_a):
    rest = client_a.http.get("/fhir/metadata").json()["rest"][0]
    (v4,) = [op for op in rest["operation"] if op["name"] == "export-v4"]
    for choice in (
        "_since < lastUpdated <= _until",
        "later pages answer 200",
        "urn:bulkops:include-associated-data",
        "_minimumFileSize and _maximumFileSize are not offered",
        "separate-export-status",
        "organizeOutputBy=Patient",
    ):
        assert choice in v4["documentation"], choice


def test_a_cohort_group_built_from_filters_is_exported_with_its_members(client_a, store):
    save_cohort(
        group_id="two",
        name="Two",
        filters=["Patient?_id=p2,p3", "Condition?subject=Patient/p3"],
        actor="op",
        now=timezone.now(),
    )
    kickoff = client_a.post_kick_off(
        "/fhir/Group/two/$export-v4", [{"name": "_type", "valueString": "Patient"}]
    )
    manifest = client_a.finished_manifest(kickoff)
    (item,) = manifest["output"]
    assert [r["id"] for r in client_a.download(item["url"])] == ["p3"]
