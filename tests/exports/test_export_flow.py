"""$export end to end: real tokens, a real Celery worker, files read back over HTTP."""

from __future__ import annotations

import gzip
import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from exports.models import ExportJob
from fhirstore.models import Resource
from fhirstore.writes import delete_resource, put_resource
from tests.exports.conftest import observation, wait_for_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def stored_ids(**filters) -> dict[str, set[str]]:
    ids: dict[str, set[str]] = {}
    for rtype, rid in Resource.objects.filter(deleted=False, **filters).values_list(
        "resource_type", "resource_id"
    ):
        ids.setdefault(rtype, set()).add(rid)
    return ids


def exported_ids(resources: dict[str, list]) -> dict[str, set[str]]:
    return {rtype: {r["id"] for r in items} for rtype, items in resources.items()}


def test_system_export_contains_exactly_what_the_store_holds(client_a, store):
    kickoff = client_a.kick_off()
    assert kickoff.status_code == 202
    assert kickoff["Content-Location"].startswith("http://testserver/fhir/bulkstatus/")
    manifest = client_a.finished_manifest(kickoff)
    assert manifest["requiresAccessToken"] is True
    assert manifest["request"] == "http://testserver/fhir/$export"
    assert manifest["error"] == [] and manifest["deleted"] == []
    resources = client_a.resources(manifest)
    assert exported_ids(resources) == stored_ids()
    # Bytes are the stored bytes: untrusted text is passed through untouched.
    stored = Resource.objects.get(resource_type="Observation", resource_id="p1-o0").body
    exported = next(r for r in resources["Observation"] if r["id"] == "p1-o0")
    assert json.dumps(exported, separators=(",", ":"), ensure_ascii=False) == stored


def test_type_filter_in_both_forms(client_a, store):
    joined = client_a.finished_manifest(client_a.kick_off(data={"_type": "Patient,Condition"}))
    repeated = client_a.finished_manifest(
        client_a.kick_off("/fhir/$export?_type=Patient&_type=Condition")
    )
    for manifest in (joined, repeated):
        assert sorted({item["type"] for item in manifest["output"]}) == ["Condition", "Patient"]


def test_patient_export_honours_type_and_stays_in_compartments(client_a, store):
    manifest = client_a.finished_manifest(
        client_a.kick_off("/fhir/Patient/$export", data={"_type": "Patient,Observation"})
    )
    assert exported_ids(client_a.resources(manifest)) == {
        "Patient": {"p1", "p2", "p3"},
        "Observation": {f"{p}-o{n}" for p in ("p1", "p2", "p3") for n in range(2)},
    }


def test_group_export_returns_only_members_compartments(client_a, store):
    manifest = client_a.finished_manifest(client_a.kick_off("/fhir/Group/g1/$export"))
    resources = exported_ids(client_a.resources(manifest))
    assert resources == {
        "Patient": {"p1", "p2"},
        "Observation": {"p1-o0", "p1-o1", "p2-o0", "p2-o1"},
        "Condition": {"p1-c", "p2-c"},
    }


def test_unknown_group_is_404_outcome(client_a, store):
    response = client_a.kick_off("/fhir/Group/nope/$export")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_patient_parameter_limits_a_group_export(client_a, store):
    response = client_a.post_kick_off(
        "/fhir/Group/g1/$export",
        [
            {"name": "patient", "valueReference": {"reference": "Patient/p2"}},
            {"name": "_type", "valueString": "Patient,Condition"},
        ],
    )
    assert response.status_code == 202
    manifest = client_a.finished_manifest(response)
    assert manifest["request"] == "http://testserver/fhir/Group/g1/$export"
    assert exported_ids(client_a.resources(manifest)) == {"Patient": {"p2"}, "Condition": {"p2-c"}}


def test_patient_parameter_naming_a_non_member_is_refused(client_a, store):
    response = client_a.post_kick_off(
        "/fhir/Group/g1/$export",
        [{"name": "patient", "valueReference": {"reference": "Patient/p3"}}],
    )
    assert response.status_code == 400
    assert "Patient/p3" in response.json()["issue"][0]["diagnostics"]


def test_since_export_lists_changes_and_deletions(client_a, store):
    since = timezone.now() - timedelta(minutes=30)  # the store was written an hour ago
    later = since + timedelta(minutes=10)
    put_resource(
        resource_type="Observation",
        resource_id="p1-o0",
        body={**observation("p1-o0", "p1"), "status": "amended"},
        now=later,
    )
    delete_resource(resource_type="Condition", resource_id="p2-c", now=later)
    kickoff = client_a.kick_off(data={"_since": since.isoformat().replace("+00:00", "Z")})
    manifest = client_a.finished_manifest(kickoff)
    # g1 was written when the test began, after `since`: a system export includes it.
    assert exported_ids(client_a.resources(manifest)) == {"Observation": {"p1-o0"}, "Group": {"g1"}}
    deleted = client_a.resources(manifest, kind="deleted")
    assert deleted["Bundle"] == [
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"request": {"method": "DELETE", "url": "Condition/p2-c"}}],
        }
    ]


def test_group_since_export_lists_a_members_deletion_but_not_an_outsiders(client_a, store):
    since = timezone.now() - timedelta(minutes=30)
    later = since + timedelta(minutes=10)
    delete_resource(resource_type="Condition", resource_id="p2-c", now=later)
    delete_resource(resource_type="Condition", resource_id="p3-c", now=later)
    kickoff = client_a.kick_off(
        "/fhir/Group/g1/$export", data={"_since": since.isoformat().replace("+00:00", "Z")}
    )
    manifest = client_a.finished_manifest(kickoff)
    deleted = client_a.resources(manifest, kind="deleted")["Bundle"]
    assert [b["entry"][0]["request"]["url"] for b in deleted] == ["Condition/p2-c"]


def test_elements_subset_resources_and_tag_them(client_a, store):
    manifest = client_a.finished_manifest(
        client_a.kick_off(data={"_type": "Observation", "_elements": "subject"})
    )
    observations = client_a.resources(manifest)["Observation"]
    assert all(
        set(o) == {"resourceType", "id", "meta", "status", "code", "subject"} for o in observations
    )
    assert all(any(t["code"] == "SUBSETTED" for t in o["meta"]["tag"]) for o in observations)


def test_scopes_drop_types_with_a_plain_warning_in_the_manifest(client_a, store):
    kickoff = client_a.kick_off(
        data={"_type": "Patient,Observation,Condition"}, scope="system/Patient.read"
    )
    assert kickoff.status_code == 202
    manifest = client_a.finished_manifest(kickoff)
    assert [item["type"] for item in manifest["output"]] == ["Patient"]
    (error_file,) = manifest["error"]
    assert error_file["type"] == "OperationOutcome"
    outcome = client_a.download(error_file["url"])[0]
    assert outcome["issue"][0]["diagnostics"] == (
        "Observation and Condition were requested but this client's token only grants "
        "system/Patient.read; they were left out of this export."
    )


def test_scopes_that_leave_nothing_are_403(client_a, store):
    response = client_a.kick_off(data={"_type": "Observation"}, scope="system/Patient.read")
    assert response.status_code == 403
    assert "system/Patient.read" in response.json()["issue"][0]["diagnostics"]


def test_files_rotate_and_partitions_outnumber_workers(client_a, store, settings):
    settings.BULKOPS_MAX_RESOURCES_PER_FILE = 2
    settings.BULKOPS_PARTITION_SIZE = 3
    manifest = client_a.finished_manifest(client_a.kick_off(data={"_type": "Observation"}))
    job = ExportJob.objects.get()
    assert job.partitions_total == 2  # 6 observations / 3 per partition, 2 worker threads
    assert [item["count"] for item in manifest["output"]] == [2, 1, 2, 1]
    assert len(client_a.resources(manifest)["Observation"]) == 6


def test_another_client_sees_neither_status_nor_files(client_a, client_b, store):
    kickoff = client_a.kick_off(data={"_type": "Patient"})
    manifest = client_a.finished_manifest(kickoff)
    assert client_b.request("get", kickoff["Content-Location"]).status_code == 404
    assert client_b.request("delete", kickoff["Content-Location"]).status_code == 404
    assert client_b.request("get", manifest["output"][0]["url"]).status_code == 404
    assert client_a.http.get(manifest["output"][0]["url"]).status_code == 401


def test_download_supports_range_and_gzip(client_a, store):
    manifest = client_a.finished_manifest(client_a.kick_off(data={"_type": "Patient"}))
    url = manifest["output"][0]["url"]
    whole = b"".join(client_a.request("get", url).streaming_content)
    partial = client_a.request("get", url, headers={"Range": "bytes=0-9"})
    assert partial.status_code == 206
    assert partial["Content-Range"] == f"bytes 0-9/{len(whole)}"
    assert b"".join(partial.streaming_content) == whole[:10]
    zipped = client_a.request("get", url, headers={"Accept-Encoding": "gzip"})
    assert zipped["Content-Encoding"] == "gzip"
    assert gzip.decompress(b"".join(zipped.streaming_content)) == whole


def test_delete_mid_run_stops_partitions_and_leaves_no_files(client_a, store, settings):
    settings.BULKOPS_PARTITION_SIZE = 1
    kickoff = client_a.kick_off()
    assert client_a.request("delete", kickoff["Content-Location"]).status_code == 202
    assert client_a.request("get", kickoff["Content-Location"]).status_code == 404
    job = ExportJob.objects.get(uuid=kickoff["Content-Location"].rsplit("/", 1)[1])
    time.sleep(1.5)  # let queued partitions run into the cancellation
    job.refresh_from_db()
    assert job.status == ExportJob.Status.CANCELLED
    assert not job.files.exists()
    job_dir = settings.BULKOPS_LOCAL_STORAGE_DIR / str(job.uuid)
    assert not job_dir.exists() or not any(job_dir.iterdir())


def test_complete_status_has_expires_and_json_content_type(client_a, store):
    kickoff = client_a.kick_off(data={"_type": "Patient"})
    job = wait_for_job(kickoff["Content-Location"].rsplit("/", 1)[1])
    response = client_a.request("get", kickoff["Content-Location"])
    assert response["Content-Type"].startswith("application/json")
    assert "GMT" in response["Expires"]
    assert job.expires_at - job.completed_at == timedelta(hours=24)
