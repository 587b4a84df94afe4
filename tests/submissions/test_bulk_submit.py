"""bulkops as a Bulk Submit Data Consumer: a loopback Data Provider pushes manifests,
bulkops pulls and loads the files in Celery tasks and reports per file (spec digest
bulk-data-v4-ballot.md §3)."""

from __future__ import annotations

import json
import time

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from fhirstore.models import Resource
from fhirstore.writes import delete_resource, put_resource
from submissions.models import Submission, SubmittedFile
from tests.shared_data import SYNTHEA_NDJSON, needs_synthea
from tests.submissions.conftest import (
    final_status,
    outcomes,
    post_operation,
    submit,
    submit_parameters,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

# Types whose Synthea files hold no conditional references: each submitted file loads on
# its own, so one pointing at a Practitioner by identifier needs that Practitioner stored.
TYPES = ("Patient", "Condition", "AllergyIntolerance")


def patient(pid: str) -> dict:
    return {"resourceType": "Patient", "id": pid, "gender": "female"}


def live_ids(resource_type: str) -> set[str]:
    rows = Resource.objects.filter(resource_type=resource_type, deleted=False)
    return set(rows.values_list("resource_id", flat=True))


@needs_synthea
def test_synthea_manifest_is_imported_and_each_file_reported(provider, submitter) -> None:
    for kind in TYPES:
        provider.files[f"/{kind}.ndjson"] = (SYNTHEA_NDJSON / f"{kind}.000.ndjson").read_bytes()
    url = provider.manifest("/m1.json", [(kind, f"/{kind}.ndjson") for kind in TYPES])

    response = submit(submitter, "s1", manifest_url=url, headers=(("X-Api-Key", "k-123"),))
    assert response.status_code == 200, response.content
    assert response.json()["resourceType"] == "OperationOutcome"
    assert submit(submitter, "s1", status="completed").status_code == 200
    manifest = final_status(submitter, "s1")

    assert manifest["submissionId"] == "s1"
    assert [item["manifestUrl"] for item in manifest["outcome"]] == [url] * 3
    messages = sorted(outcomes(submitter, manifest).values())
    for kind in TYPES:
        expected = {
            json.loads(line)["id"] for line in provider.files[f"/{kind}.ndjson"].splitlines()
        }
        assert live_ids(kind) == expected
        assert any(f"Loaded {len(expected)} {kind} resources" in m for m in messages)
    # Every fetch carried the submitter's header; the audit trail names it, never its value.
    assert all(headers.get("X-Api-Key") == "k-123" for _, headers in provider.requests)
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert actions.count("submission.received") == 2
    assert actions.count("submission.file_loaded") == 3
    assert "submission.manifest_fetched" in actions
    assert "k-123" not in json.dumps(list(AuditEvent.objects.values("details", "reason")))


def test_file_with_lines_of_another_type_is_refused_alone(provider, submitter) -> None:
    provider.ndjson("/Patient.ndjson", [patient("p1"), {"resourceType": "Observation", "id": "o1"}])
    provider.ndjson("/Patient2.ndjson", [patient("p2")])
    url = provider.manifest(
        "/m.json", [("Patient", "/Patient.ndjson"), ("Patient", "/Patient2.ndjson")]
    )
    submit(submitter, "mixed", manifest_url=url, status="completed")
    manifest = final_status(submitter, "mixed")

    severities = [item["countSeverity"][0]["code"] for item in manifest["outcome"]]
    assert severities == ["error", "information"]
    refusal = outcomes(submitter, manifest)[manifest["outcome"][0]["url"]]
    assert "line 2: a Observation in a file the manifest declares as Patient" in refusal
    assert live_ids("Patient") == {"p2"}
    assert not live_ids("Observation")


def test_a_line_of_another_type_after_whole_batches_leaves_nothing_of_its_file(
    provider, submitter
) -> None:
    """The type is checked as each line is loaded (read once), so two batches of the file
    are written before line 2,300 is read: the file's one transaction takes them back."""
    lines = [patient(f"p{n}") for n in range(2500)]
    lines[2299] = {"resourceType": "Observation", "id": "o1"}
    provider.ndjson("/big.ndjson", lines)
    provider.ndjson("/small.ndjson", [patient("q1")])
    url = provider.manifest("/m.json", [("Patient", "/big.ndjson"), ("Patient", "/small.ndjson")])
    submit(submitter, "late", manifest_url=url, status="completed")
    manifest = final_status(submitter, "late")

    refusal = outcomes(submitter, manifest)[manifest["outcome"][0]["url"]]
    assert "line 2300: a Observation in a file the manifest declares as Patient" in refusal
    assert live_ids("Patient") == {"q1"}
    assert not Resource.objects.filter(resource_id="p0").exists()


def test_a_purge_deletes_what_the_file_created_or_wrote_over_a_tombstone(
    provider, submitter
) -> None:
    now = timezone.now()
    for pid in ("p0", "p5"):
        put_resource(resource_type="Patient", resource_id=pid, body=patient(pid), now=now)
    delete_resource(resource_type="Patient", resource_id="p5", now=now)
    # p0 is stored as it is submitted, p5 a tombstone, p9 new and sent twice.
    provider.ndjson("/Patient.ndjson", [patient("p0"), patient("p5"), patient("p9"), patient("p9")])
    url = provider.manifest("/m.json", [("Patient", "/Patient.ndjson")])
    submit(submitter, "revive", manifest_url=url)
    _wait_until(lambda: live_ids("Patient") == {"p0", "p5", "p9"})
    file = SubmittedFile.objects.get(manifest__submission__submission_id="revive")
    assert sorted(file.loaded_keys) == ["Patient/p5", "Patient/p9"]
    assert file.resource_count == 4

    assert submit(submitter, "revive", status="stopped").status_code == 200
    final_status(submitter, "revive")
    assert live_ids("Patient") == {"p0"}


def test_missing_file_is_reported_and_the_rest_loads(provider, submitter) -> None:
    provider.ndjson("/Patient.ndjson", [patient("p1")])
    url = provider.manifest("/m.json", [("Patient", "/Patient.ndjson"), ("Patient", "/gone")])
    submit(submitter, "404", manifest_url=url, status="completed")
    manifest = final_status(submitter, "404")

    messages = list(outcomes(submitter, manifest).values())
    assert "was not loaded: the file server answered HTTP 404" in messages[1]
    assert live_ids("Patient") == {"p1"}


def test_the_largest_files_load_first(provider, submitter) -> None:
    """A file is one load task: queued largest first (by the manifest's counts, a file
    without a usable count first of all), the workers finish together instead of one
    loading the largest file alone after the others are done. The status lists the
    files in the manifest's order all the same."""
    sizes = {"/small": 1, "/medium": 3, "/large": 6, "/uncounted": 2}  # the manifest's order
    for file, size in sizes.items():
        provider.ndjson(file, [patient(f"{file[1:]}{n}") for n in range(size)])
    outputs = [("Patient", file) for file in sizes]
    counts = {"/small": 1, "/medium": 3, "/large": 6, "/uncounted": "two"}
    url = provider.manifest("/m.json", outputs, counts)
    submit(submitter, "sized", manifest_url=url, status="completed")
    manifest = final_status(submitter, "sized")

    fetched = [path for path, _ in provider.requests if path in sizes]
    # Two loads run at once (the test worker's two threads): the two largest first.
    assert set(fetched[:2]) == {"/uncounted", "/large"}
    assert set(fetched[2:]) == {"/medium", "/small"}
    assert len(live_ids("Patient")) == sum(sizes.values())
    reported = [message.split()[-1] for message in outcomes(submitter, manifest).values()]
    assert reported == [f"{provider.url}{file}." for file in sizes]


def test_slow_provider_is_given_up_after_the_fetch_timeout(provider, submitter, settings) -> None:
    settings.BULKOPS_SUBMIT_FETCH_TIMEOUT = 1
    provider.ndjson("/slow.ndjson", [patient("p1")])
    provider.delays["/slow.ndjson"] = 3
    provider.ndjson("/fast.ndjson", [patient("p2")])
    url = provider.manifest("/m.json", [("Patient", "/slow.ndjson"), ("Patient", "/fast.ndjson")])
    submit(submitter, "slow", manifest_url=url, status="completed")
    manifest = final_status(submitter, "slow")

    messages = list(outcomes(submitter, manifest).values())
    assert "did not answer in time" in messages[0]
    assert live_ids("Patient") == {"p2"}


def test_stopped_submission_is_purged(provider, submitter) -> None:
    provider.ndjson("/Patient.ndjson", [patient("p1"), patient("p2")])
    url = provider.manifest("/m.json", [("Patient", "/Patient.ndjson")])
    submit(submitter, "stop", manifest_url=url)
    submit(submitter, "stop-probe", status="completed")  # a second submission, for the wait
    final_status(submitter, "stop-probe")
    _wait_until(lambda: live_ids("Patient") == {"p1", "p2"})

    assert submit(submitter, "stop", status="stopped").status_code == 200
    final_status(submitter, "stop")
    assert not live_ids("Patient")
    assert AuditEvent.objects.filter(action="submission.purged").exists()
    again = submit(submitter, "stop", status="completed")
    assert again.status_code == 409
    assert "is stopped" in again.json()["issue"][0]["diagnostics"]


def test_a_purge_keeps_what_existed_before_the_submission(provider, submitter) -> None:
    """Stopping removes what the submission created, never data it only updated."""
    put_resource(
        resource_type="Patient",
        resource_id="p0",
        body={"resourceType": "Patient", "id": "p0", "gender": "male"},
        now=timezone.now(),
    )
    provider.ndjson("/Patient.ndjson", [patient("p0"), patient("p9")])
    url = provider.manifest("/m.json", [("Patient", "/Patient.ndjson")])
    submit(submitter, "keep", manifest_url=url)
    _wait_until(lambda: live_ids("Patient") == {"p0", "p9"} and updated_gender("p0"))

    assert submit(submitter, "keep", status="stopped").status_code == 200
    final_status(submitter, "keep")
    assert live_ids("Patient") == {"p0"}


def updated_gender(pid: str) -> bool:
    body = Resource.objects.get(resource_type="Patient", resource_id=pid).body
    return json.loads(body)["gender"] == "female"


def test_replacement_manifest_replaces_the_data_of_the_first(provider, submitter) -> None:
    provider.ndjson("/a.ndjson", [patient("p1"), patient("p2")])
    provider.ndjson("/b.ndjson", [patient("p2"), patient("p3")])
    first = provider.manifest("/a.json", [("Patient", "/a.ndjson")])
    second = provider.manifest("/b.json", [("Patient", "/b.ndjson")])
    submit(submitter, "rep", manifest_url=first)
    _wait_until(lambda: live_ids("Patient") == {"p1", "p2"})

    response = submit(submitter, "rep", manifest_url=second, replaces=first, status="completed")
    assert response.status_code == 200, response.content
    manifest = final_status(submitter, "rep")

    assert live_ids("Patient") == {"p2", "p3"}
    assert {item["manifestUrl"] for item in manifest["outcome"]} == {first, second}


def test_submit_needs_the_bulk_submit_scope(make_fhir_client, jwk_b) -> None:
    reader = make_fhir_client(jwk_b, name="reader", scopes="system/*.read system/bulk-submit")
    response = submit(reader, "x", status="completed", scope="system/*.read")
    assert response.status_code == 403
    assert "system/bulk-submit" in response.json()["issue"][0]["diagnostics"]
    assert not Submission.objects.exists()


def test_submitter_must_be_the_clients_own_identifier(submitter, provider) -> None:
    parameters = submit_parameters(submitter, "x", status="completed")
    parameters[0]["valueIdentifier"]["value"] = "someone-else"
    response = post_operation(submitter, "/fhir/$bulk-submit", parameters)
    assert response.status_code == 403
    assert not Submission.objects.exists()


def test_manifest_url_without_fhir_base_url_is_refused(submitter) -> None:
    parameters = submit_parameters(submitter, "x", manifest_url="https://dp.example/m.json")
    parameters = [p for p in parameters if p["name"] != "fhirBaseUrl"]
    response = post_operation(submitter, "/fhir/$bulk-submit", parameters)
    assert response.status_code == 400
    assert "fhirBaseUrl is required" in response.json()["issue"][0]["diagnostics"]


def test_status_of_another_clients_submission_is_404(make_fhir_client, jwk_b, submitter) -> None:
    submit(submitter, "mine", status="completed")
    other = make_fhir_client(jwk_b, name="other", scopes="system/bulk-submit")
    parameters = submit_parameters(submitter, "mine")
    parameters[0]["valueIdentifier"]["value"] = other.backend_client.client_id
    assert post_operation(other, "/fhir/$bulk-submit-status", parameters).status_code == 404


def _wait_until(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_data_page_lists_submissions(provider, submitter, console_client) -> None:
    provider.ndjson("/Patient.ndjson", [patient("p1"), patient("p2")])
    url = provider.manifest("/m.json", [("Patient", "/Patient.ndjson")])
    submit(submitter, "nightly-<1>", manifest_url=url, status="completed")
    final_status(submitter, "nightly-<1>")

    page = console_client("auditor").get("/data/").content.decode()
    section = page[page.index('id="submissions"') :]
    assert "nightly-&lt;1&gt;" in section
    assert "1 of 1" in section
