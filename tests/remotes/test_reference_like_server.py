"""Remote exports and server checks against a server with the habits of the SMART
reference bulk-data-server (ReferenceLikeServer in tests/remotes/stub_server.py), each
habit on its own, end to end on a Celery worker: a 600-character client_id, header
names in lowercase, an epoch time as Retry-After, polls failing with a transient error,
export operations defined by versioned and by the server's own definitions, counts on
error[] items."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from exports.models import ExportJob
from remotes.models import RemoteDownload, RemoteExchange, RemoteExport, RemoteServer, ServerCheck
from remotes.server_checks import start_check
from remotes.services import start_remote_export
from tests.exports.conftest import wait_for_job
from tests.remotes.conftest import form_data, make_server
from tests.remotes.stub_server import LONG_CLIENT_ID, ReferenceLikeServer, serve

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

EPOCH = "1796432379"  # what the reference server sent as Retry-After: 57 years


@pytest.fixture
def peer() -> Iterator[ReferenceLikeServer]:
    with serve(ReferenceLikeServer()) as server:
        yield server


@pytest.fixture
def peer_server(peer, remote_key) -> RemoteServer:
    return make_server("peer", peer.base_url, peer.client_id, remote_key)


def export_on_worker(server: RemoteServer, timeout: float = 60) -> ExportJob:
    """A system export of Patients from `server`, run by the Celery worker to its end."""
    job = start_remote_export(
        server, level="system", group_id="", pairs=[("_type", "Patient")],
        actor="t", request=None,
    )  # fmt: skip
    return wait_for_job(job.uuid, timeout=timeout)


def check_on_worker(server: RemoteServer) -> dict[str, dict[str, Any]]:
    """The battery run against `server` by the Celery worker: each check's result by name."""
    return finished_results(start_check(server=server, user=None))


def finished_results(check: ServerCheck) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + 90
    while not check.is_finished:
        assert time.monotonic() < deadline, "the server check did not finish"
        time.sleep(0.2)
        check.refresh_from_db()
    assert check.error == ""
    return {result["name"]: result for result in check.results}


def failures(results: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: r["summary"] for name, r in results.items() if r["status"] in ("fail", "warn")}


def polls_of(job: ExportJob) -> list[RemoteExchange]:
    return list(
        RemoteExchange.objects.filter(export__job=job, method="GET", url__endswith="/status")
    )


def test_without_its_habits_the_server_passes_every_check(peer, peer_server):
    assert failures(check_on_worker(peer_server)) == {}
    job = export_on_worker(peer_server)
    assert job.status == ExportJob.Status.COMPLETED, job.failure_reason


def test_a_600_character_client_id_is_saved_from_the_form_and_used(console_client, peer):
    peer.client_id = LONG_CLIENT_ID
    operator = console_client("operator")
    created = operator.post(
        "/remotes/new/",
        form_data(peer.base_url, name="peer", client_id=LONG_CLIENT_ID, source="ES384"),
    )
    assert created.status_code == 302, created.content
    assert RemoteServer.objects.get(name="peer").client_id == LONG_CLIENT_ID
    assert LONG_CLIENT_ID in operator.get("/remotes/peer/").content.decode()

    launched = operator.post(
        "/remotes/peer/export/",
        {"level": "system", "output_format": "application/fhir+ndjson", "types": "Patient"},
    )
    job = wait_for_job(launched["Location"].split("/")[-2])
    assert job.status == ExportJob.Status.COMPLETED, job.failure_reason
    operator.post("/remotes/peer/checks/")
    results = finished_results(ServerCheck.objects.get(server__name="peer"))
    assert results["token-request"]["status"] == "pass", results["token-request"]["summary"]
    assert failures(results) == {}


def test_header_names_in_lowercase_are_read_by_exports_and_checks(peer, peer_server):
    """content-location, retry-after, x-progress, content-type, expires, cache-control
    and www-authenticate, as HTTP/2 servers and many proxies send them."""
    peer.lowercase_headers = True

    job = export_on_worker(peer_server)
    assert job.status == ExportJob.Status.COMPLETED, job.failure_reason
    assert RemoteExport.objects.get(job=job).progress == "50% complete"
    first_poll = polls_of(job)[0]
    assert first_poll.response_headers["x-progress"] == "50% complete"  # logged as sent

    results = check_on_worker(peer_server)
    assert failures(results) == {}
    assert (
        "1 in-progress answer(s) with Retry-After and X-Progress"
        in results["status-polling"]["summary"]
    )


def test_an_epoch_retry_after_is_waited_only_the_longest_wait(peer, peer_server, settings):
    settings.BULKOPS_REMOTE_MAX_WAIT = 2
    peer.retry_after = EPOCH

    started = time.monotonic()
    job = export_on_worker(peer_server, timeout=30)
    assert job.status == ExportJob.Status.COMPLETED, job.failure_reason
    assert time.monotonic() - started < 20
    first, then = polls_of(job)[:2]
    assert first.note == "Waiting 2 s instead of 1,796,432,379 s: the longest wait allowed."
    assert (then.answered_at - first.answered_at).total_seconds() >= 2

    results = check_on_worker(peer_server)
    assert failures(results) == {}
    assert (
        "A Retry-After of 1,796,432,379 s was waited 2 s." in results["status-polling"]["summary"]
    )


def test_an_export_waiting_out_an_absurd_retry_after_is_cancelled_at_once(
    console_client, peer, peer_server
):
    peer.retry_after = EPOCH  # BULKOPS_REMOTE_MAX_WAIT stays at 300 s
    job = start_remote_export(
        peer_server, level="system", group_id="", pairs=[], actor="t", request=None
    )
    deadline = time.monotonic() + 30
    while not RemoteExport.objects.filter(job=job, progress="50% complete").exists():
        assert time.monotonic() < deadline, "the remote export never started waiting"
        time.sleep(0.1)

    console_client("operator").post(f"/exports/{job.uuid}/delete/")
    while ("DELETE", "/status") not in [(m, p) for m, p, _ in peer.requests]:
        assert time.monotonic() < deadline, "the remote job was never deleted"
        time.sleep(0.1)
    job = wait_for_job(job.uuid, timeout=10)
    assert job.status == ExportJob.Status.CANCELLED


def test_a_wait_never_runs_past_the_exports_deadline(peer, remote_key):
    from exports.bulk_client import BulkClientError, BulkExportClient, TokenSource

    peer.retry_after = EPOCH
    tokens = TokenSource(f"{peer.base_url}/token", peer.client_id, remote_key, "system/*.read")
    client = BulkExportClient(peer.base_url, tokens, max_wait=3600)
    status_url = client.kick_off("/$export", [])

    started = time.monotonic()
    with pytest.raises(BulkClientError, match="export did not finish within 2s"):
        client.wait(status_url, lambda _: None, timeout=2)
    assert time.monotonic() - started < 4


def test_polls_failing_with_a_transient_error_are_polled_again(peer, peer_server, console_client):
    peer.transient_polls = 2

    job = export_on_worker(peer_server)
    assert job.status == ExportJob.Status.COMPLETED, job.failure_reason
    retried = [poll for poll in polls_of(job) if poll.status == 500]
    assert [poll.note for poll in retried] == [
        f"A transient error (transient), not the end of the export: polling again, retry {n} of 5."
        for n in (1, 2)
    ]
    page = console_client("auditor").get(f"/exports/{job.uuid}/").content.decode()
    assert "polling again, retry 2 of 5." in page

    results = check_on_worker(peer_server)
    assert failures(results) == {}
    assert (
        "A poll answered 500 with a transient error (transient) and was retried."
        in results["status-polling"]["summary"]
    )


def test_transient_errors_past_the_retry_limit_fail_the_export(peer, peer_server, settings):
    settings.BULKOPS_REMOTE_TRANSIENT_RETRIES = 1
    peer.transient_polls = 2

    job = export_on_worker(peer_server)
    assert job.failure_reason == (
        "Waiting for the remote export failed: export failed: HTTP 500: database busy, "
        "try again (still, after 1 retry)"
    )
    results = check_on_worker(peer_server)
    assert results["status-polling"]["status"] == "fail"


def test_export_operations_defined_by_versioned_or_own_definitions_pass_with_a_note(
    peer, peer_server
):
    peer.own_definitions = True

    result = check_on_worker(peer_server)["capability-statement"]
    assert result["status"] == "pass", result["summary"]
    assert (
        f"The Patient export operation names the server's own {peer.base_url}"
        "/OperationDefinition/PatientExport, based on the Bulk Data definition."
    ) in result["summary"]
    assert "own OperationDefinition/GroupExport" in result["summary"]
    fetched = [e["url"] for e in result["exchanges"]]
    assert f"{peer.base_url}/OperationDefinition/GroupExport" in fetched
    job = export_on_worker(peer_server)
    assert job.status == ExportJob.Status.COMPLETED, job.failure_reason


def test_an_own_definition_based_on_something_else_is_named(peer, peer_server):
    peer.own_definitions = True
    peer.own_definition_base = "http://example.org/OperationDefinition/everything"

    result = check_on_worker(peer_server)["capability-statement"]
    assert result["status"] == "warn"
    assert (
        f"Patient: {peer.base_url}/OperationDefinition/PatientExport: its base is "
        "http://example.org/OperationDefinition/everything, not "
        "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export."
    ) in result["summary"]


def test_error_items_counts_are_compared_with_their_files(peer, peer_server):
    peer.error_count = 5

    result = check_on_worker(peer_server)["output-counts"]
    assert result["status"] == "fail"
    assert result["summary"] == (
        "The error[0] (OperationOutcome) item says count 5; the file has 1 lines."
    )
    job = export_on_worker(peer_server)
    assert job.status == ExportJob.Status.COMPLETED, job.failure_reason


def test_a_check_that_downloaded_no_file_says_so_in_plain_words(peer, peer_server):
    peer.file_status, peer.error_body = 410, b""  # the output file is gone, no error file
    results = check_on_worker(peer_server)
    assert results["ndjson-files"]["status"] == "fail"
    assert results["output-counts"]["summary"] == "Skipped: no file was downloaded."


def test_the_job_page_shows_each_files_full_sha256(peer, peer_server, console_client):
    job = export_on_worker(peer_server)
    assert job.status == ExportJob.Status.COMPLETED, job.failure_reason
    output = RemoteDownload.objects.get(export__job=job, kind="output")
    assert output.sha256 == hashlib.sha256(peer.file_body).hexdigest()

    page = console_client("auditor").get(f"/exports/{job.uuid}/").content.decode()
    assert f'<code class="copyable sha256">{output.sha256}</code>' in page
