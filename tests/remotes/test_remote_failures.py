"""Remote exports against a misbehaving server (FaultyExportServer in
tests/remotes/stub_server.py): discovery through the CapabilityStatement, throttled
polling, and failures that end the job with a clear reason and nothing claimed."""

from __future__ import annotations

import html
import json
from urllib.parse import parse_qs

import pytest

from exports.models import ExportFile, ExportJob
from exports.storage import get_storage
from remotes.discovery import DiscoveryError, discover_token_url
from remotes.models import RemoteDownload, RemoteExchange, RemoteExport
from tests.remotes.conftest import make_server, run_in_process
from tests.remotes.stub_server import STUB_TOKEN

pytestmark = pytest.mark.django_db


def assert_nothing_kept(job: ExportJob) -> None:
    assert job.status == ExportJob.Status.FAILED
    assert not ExportFile.objects.filter(job=job).exists()
    assert not RemoteDownload.objects.filter(export__job=job, status="done").exists()
    for download in RemoteDownload.objects.filter(export__job=job):
        with pytest.raises(FileNotFoundError):
            get_storage().open_reader(download.storage_key)


def test_token_endpoint_found_in_the_capability_statement(stub):
    assert discover_token_url(stub.base_url) == f"{stub.base_url}/token"
    assert [path for _, path, _ in stub.requests] == [
        "/.well-known/smart-configuration",
        "/metadata",
    ]


def test_discovery_failure_names_both_steps(live_server):
    with pytest.raises(DiscoveryError) as error:
        discover_token_url(f"{live_server.url}/nowhere")
    assert str(error.value) == (
        "no smart-configuration (HTTP 404) and no CapabilityStatement at /metadata (HTTP 404)"
    )


def test_throttled_polling_waits_as_told_and_still_completes(stub, stub_server):
    stub.polls = [
        (202, {"X-Progress": "10% - queued", "Retry-After": "1"}),
        (429, {"Retry-After": "1"}),
        (429, {}),
    ]
    job = run_in_process(stub_server)

    assert job.status == ExportJob.Status.COMPLETED, job.failure_reason
    polls = list(RemoteExchange.objects.filter(export__job=job, url__endswith="/status"))
    assert [p.status for p in polls] == [202, 429, 429, 200, 202]  # the last is the DELETE
    waits = [b.answered_at - a.answered_at for a, b in zip(polls, polls[1:4], strict=False)]
    # Retry-After 1 s after the 202 and after the first 429; the 429 without one
    # backs off to twice the last wait.
    assert [
        wait.total_seconds() >= least for wait, least in zip(waits, [1, 1, 2], strict=True)
    ] == [True] * 3
    export = RemoteExport.objects.get(job=job)
    assert export.progress == "10% - queued"
    assert job.files.get().resource_count == 2


def test_discovered_export_never_stores_the_token_or_the_assertion(
    stub, stub_server, console_client
):
    job = run_in_process(stub_server)
    assert job.status == ExportJob.Status.COMPLETED, job.failure_reason
    (form,) = stub.token_forms
    assertion = parse_qs(form)["client_assertion"][0]
    file_get = next(r for r in stub.requests if r[1] == "/files/Patient.ndjson")
    assert file_get[2]["Authorization"] == f"Bearer {STUB_TOKEN}"  # same origin: token sent

    page = console_client("auditor").get(f"/exports/{job.uuid}/").content.decode()
    rows = json.dumps(list(RemoteExchange.objects.values()), default=str)
    for secret in (STUB_TOKEN, assertion, assertion.split(".")[2]):
        assert secret not in page and secret not in rows
    assert "Authorization: REDACTED" in page


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        (b"{not json", "the manifest is not valid JSON"),
        (b"[" * 5000, "the manifest is not valid JSON"),  # would recurse past the limit
        (b'{"a":' * 5000, "the manifest is not valid JSON"),
        ({"transactionTime": "2026-01-01T00:00:00Z", "request": "x", "output": []},
         "the manifest has no 'requiresAccessToken'"),
        ({"transactionTime": "t", "request": "x", "requiresAccessToken": True,
          "output": [{"type": "Patient", "url": "file:///etc/passwd"}]},
         "output[0] of the manifest needs a resource type and an http(s) url"),
    ],
)  # fmt: skip
def test_malformed_manifest_fails_the_job_and_deletes_the_remote_job(
    stub, stub_server, manifest, reason
):
    stub.manifest = manifest
    job = run_in_process(stub_server)
    assert job.failure_reason == f"Waiting for the remote export failed: {reason}"
    assert_nothing_kept(job)
    assert ("DELETE", "/status") in [(m, p) for m, p, _ in stub.requests]


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (404, b"", "HTTP 404"),
        (200, b'{"resourceType":"Patient","id":"a"}\n<html>oops</html>\n',
         "line 2 of the output file for Patient is not a FHIR resource in JSON"),
        (200, b'{"resourceType":"Patient","id":"a"}\n' + b"[" * 5000 + b"\n",
         "line 2 of the output file for Patient is not a FHIR resource in JSON"),
    ],
)  # fmt: skip
def test_failing_file_fails_the_job_with_nothing_claimed(stub, stub_server, status, body, reason):
    stub.file_status, stub.file_body = status, body
    stub.error_body = b'{"resourceType":"OperationOutcome","issue":[]}\n'
    job = run_in_process(stub_server)
    assert job.failure_reason.startswith("Downloading the files failed: ")
    assert reason in job.failure_reason
    assert_nothing_kept(job)


def test_remote_warnings_are_shown_in_plain_language_with_the_raw_text(
    stub, stub_server, console_client
):
    issue = {"severity": "warning", "code": "not-found", "diagnostics": "Group g9 missing"}
    stub.error_body = json.dumps({"resourceType": "OperationOutcome", "issue": [issue]}).encode()
    job = run_in_process(stub_server)
    assert job.status == ExportJob.Status.COMPLETED, job.failure_reason
    page = console_client("operator").get(f"/exports/{job.uuid}/").content.decode()
    assert (
        "Warning: something asked for does not exist at the remote. "
        "The remote says: Group g9 missing"
    ) in page
    assert "&quot;diagnostics&quot;: &quot;Group g9 missing&quot;" in page


def test_kickoff_refused_by_the_remote_fails_with_its_words(stub, stub_server):
    stub_server.base_url = f"{stub.base_url}/elsewhere"
    stub_server.token_url = f"{stub.base_url}/token"
    stub_server.save()
    job = run_in_process(stub_server)
    assert job.failure_reason == "The kick-off failed: kick-off refused: HTTP 404"
    assert_nothing_kept(job)


def test_token_refused_by_a_real_remote_fails_with_its_oauth_error(remote, remote_key):
    server = make_server("unknown", remote.base_url, "not-registered-there", remote_key)
    job = run_in_process(server)
    assert job.failure_reason.startswith(
        "The token request failed: token request refused: HTTP 401: invalid_client"
    ), job.failure_reason
    assert_nothing_kept(job)
    assert RemoteExport.objects.get(job=job).status_url == ""


def test_type_filters_go_to_the_remote_and_its_report_of_ignoring_them_is_a_warning(
    stub, stub_server, console_client
):
    said = "_typeFilter 'Patient?gender=female' is not supported and was ignored"
    issue = {"severity": "warning", "code": "not-supported", "diagnostics": said}
    other = {"severity": "warning", "code": "not-found", "diagnostics": "Group g9 missing"}
    stub.error_body = b"\n".join(
        json.dumps({"resourceType": "OperationOutcome", "issue": [i]}).encode()
        for i in (issue, other)
    )
    job = run_in_process(stub_server, pairs=[("_typeFilter", "Patient?gender=female")])
    assert job.status == ExportJob.Status.COMPLETED, job.failure_reason
    kickoff = next(path for method, path, _ in stub.requests if "$export" in path)
    assert parse_qs(kickoff.partition("?")[2])["_typeFilter"] == ["Patient?gender=female"]
    assert job.warnings == [
        "The remote server reports on _typeFilter, so its output may not be filtered as "
        "asked. Warning: the remote does not support part of the request. The remote says: " + said
    ]
    page = html.unescape(console_client("operator").get(f"/exports/{job.uuid}/").content.decode())
    assert job.warnings[0] in page


def test_a_remote_that_reports_nothing_about_filters_adds_no_warning(stub, stub_server):
    issue = {"severity": "warning", "code": "not-found", "diagnostics": "Group g9 missing"}
    stub.error_body = json.dumps({"resourceType": "OperationOutcome", "issue": [issue]}).encode()
    job = run_in_process(stub_server, pairs=[("_typeFilter", "Patient?gender=female")])
    assert job.status == ExportJob.Status.COMPLETED and job.warnings == []


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (410, json.dumps({"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "not-found", "diagnostics": "File expired at 09:00"}
        ]}).encode(), "HTTP 410: File expired at 09:00"),
        (503, b"<html><body>\n  Upstream   busy\n</body></html>",
         "HTTP 503: <html><body> Upstream busy </body></html>"),
    ],
)  # fmt: skip
def test_a_failed_download_quotes_the_remotes_own_words(stub, stub_server, status, body, said):
    stub.file_status, stub.file_body = status, body
    job = run_in_process(stub_server)
    assert job.failure_reason == (
        f"Downloading the files failed: download of {stub.base_url}/files/Patient.ndjson "
        f"failed: {said}"
    )
    assert_nothing_kept(job)
