"""Remote exports in Bulk Data 4 (`$export-v4`): our Celery worker runs the client flow
against a second bulkops whose partitions the test runs one at a time, so the partial
manifests of a running export can be seen being downloaded; organised files are checked
block by block as a streaming consumer would read them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from bulkops.signing_keys import public_jwks
from exports.models import ExportJob
from exports.storage import get_storage
from remotes.models import RemoteDownload, RemoteExport
from tests.exports.conftest import wait_for_job
from tests.processes import manage, sqlite_rows
from tests.remotes.conftest import make_server, run_in_process
from tests.remotes.remote_server import GROUP_ID, PATIENTS, RemoteBulkops, remote_bulkops
from tests.remotes.stub_server import (
    JSON,
    NDJSON,
    FaultyExportServer,
    capability_statement,
    outcome,
    serve,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

TYPES = "Patient,Condition,Observation"


@pytest.fixture(scope="module")
def stepped_remote(tmp_path_factory) -> Iterator[RemoteBulkops]:
    """A remote bulkops without a worker: its exports wait until the test runs their
    partitions. One patient a partition, at most 5 lines a file (blocks get split)."""
    var = tmp_path_factory.mktemp("stepped") / "var"
    settings = {"BULKOPS_PARTITION_SIZE": "1", "BULKOPS_MAX_RESOURCES_PER_FILE": "5"}
    with remote_bulkops(var, start_worker=False, **settings) as server:
        yield server


def remote_python(remote: RemoteBulkops, code: str) -> str:
    """Run `code` in the remote bulkops' own Django (manage.py shell); its output."""
    result = manage(remote.env, "shell", "-c", code)
    assert result.returncode == 0, result.stderr
    return result.stdout


def wait_until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout}s"
        time.sleep(0.1)


def blocks_of(files: list[bytes]) -> list[tuple[str, list[dict]]]:
    """The patient blocks of organised files read in order, a continuation joined to the
    block it continues; fails on a line outside any block or a block not led by its
    Patient."""
    blocks: list[tuple[str, list[dict]]] = []
    for body in files:
        first = True
        for line in body.splitlines():
            resource = json.loads(line)
            if resource["resourceType"] == "Parameters":
                (header,) = resource["parameter"]
                assert header["name"] == "header"
                patient = header["valueReference"]["reference"].removeprefix("Patient/")
                if not (first and blocks and blocks[-1][0] == patient):
                    blocks.append((patient, []))
            else:
                assert blocks, "a line before any header"
                blocks[-1][1].append(resource)
            first = False
    for patient, resources in blocks:
        assert (resources[0]["resourceType"], resources[0]["id"]) == ("Patient", patient)
        for resource in resources[1:]:
            assert resource["subject"]["reference"] == f"Patient/{patient}", resource
    return blocks


def test_a_v4_remote_export_downloads_partial_manifests_while_the_remote_still_runs(
    console_client, stepped_remote, remote_key
):
    client_id = stepped_remote.register(public_jwks(remote_key))
    server = make_server("v4lab", stepped_remote.base_url, client_id, remote_key)
    operator = console_client("operator")
    response = operator.post(
        f"/remotes/{server.name}/export/",
        {"level": "group", "group_id": GROUP_ID, "types": TYPES,
         "output_format": "application/fhir+ndjson", "bulk_version": "4.0.0",
         "organize_by_patient": "on", "allow_partial_manifests": "on"},
    )  # fmt: skip
    assert response.status_code == 302, response.content
    job_uuid = response["Location"].split("/")[-2]
    export = RemoteExport.objects.get(job__uuid=job_uuid)
    assert export.bulk_version == "4.0.0" and export.kickoff_path.endswith("/$export-v4")

    remote_jobs = "SELECT id FROM exports_exportjob ORDER BY id DESC LIMIT 1"
    wait_until(lambda: sqlite_rows(stepped_remote.var_dir, remote_jobs), "the remote job exists")
    (remote_job,) = sqlite_rows(stepped_remote.var_dir, remote_jobs)[0]
    output = remote_python(
        stepped_remote,
        "import json; from exports.partitions import plan_export; "
        f"print('partitions', json.dumps(plan_export({remote_job})))",
    )
    (planned,) = [line for line in output.splitlines() if line.startswith("partitions ")]
    partitions = json.loads(planned.removeprefix("partitions "))
    assert len(partitions) == PATIENTS

    remote_python(
        stepped_remote,
        "from exports.partitions import run_partition; "
        f"run_partition(partition_id={partitions[0]}, worker='test')",
    )
    downloads = RemoteDownload.objects.filter(export=export, status="done")
    wait_until(downloads.exists, "a file of the partial manifest was downloaded")
    assert ExportJob.objects.get(uuid=job_uuid).status == ExportJob.Status.RUNNING
    early = set(downloads.values_list("pk", flat=True))

    remote_python(
        stepped_remote,
        "from exports.partitions import run_partition\n"
        + "".join(f"run_partition(partition_id={p}, worker='test')\n" for p in partitions[1:]),
    )
    job = wait_for_job(job_uuid, timeout=90)
    assert job.status == ExportJob.Status.COMPLETED, job.failure_reason

    export.refresh_from_db()
    assert export.manifest["outputOrganizedBy"] == "Patient"
    assert "request" not in export.manifest and "link" not in export.manifest
    # Files listed while the remote ran were fetched before the remote said it was done.
    finished = export.exchanges.filter(url=export.status_url, status=200).first()
    file_gets = export.exchanges.filter(url__contains="/bulkfiles/", status=200)
    assert file_gets.filter(answered_at__lt=finished.answered_at).exists()
    assert early < set(RemoteDownload.objects.filter(export=export).values_list("pk", flat=True))

    storage = get_storage()
    files = [
        storage.open_reader(file.storage_key).read()
        for file in job.files.filter(kind="output").order_by("remote_download__pk")
    ]
    assert len(files) > PATIENTS  # blocks longer than a file were split
    blocks = blocks_of(files)
    remote_ids = stepped_remote.resource_ids()
    patients = [patient for patient, _ in blocks]
    assert len(patients) == len(set(patients)) and set(patients) == remote_ids["Patient"]
    exported = {(r["resourceType"], r["id"]) for _, resources in blocks for r in resources}
    assert exported == {(t, i) for t in TYPES.split(",") for i in remote_ids.get(t, ())}


@dataclass
class V4Stub(FaultyExportServer):
    """Offers `$export-v4` (POST only) and answers with a ballot manifest of one
    organised file (`file_body`), changed by `changes` (None values removed)."""

    changes: dict[str, Any] = field(default_factory=dict)

    def _reply(self, method, path, body, headers):
        if path == "/$export-v4":
            if method != "POST":
                return 405, b"", {}
            return 202, b"", {"Content-Location": f"{self.base_url}/status"}
        if method == "GET" and path == "/status" and self.polls:
            status, sent, *data = self.polls.pop(0)
            return status, data[0] if data else b"", sent
        if method == "GET" and path == "/status":
            manifest = {
                "manifestType": "http://hl7.org/fhir/uv/bulkdata/StructureDefinition/BulkDataManifest",
                "transactionTime": "2026-01-01T00:00:00Z",
                "requiresAccessToken": True,
                "outputOrganizedBy": "Patient",
                "output": [{"url": f"{self.base_url}/files/Patient.ndjson"}],
            }
            manifest |= self.changes
            manifest = {name: value for name, value in manifest.items() if value is not None}
            return 200, json.dumps(manifest).encode(), JSON
        if path == "/files/Patient.ndjson":
            return 200, self.file_body, NDJSON
        if path == "/metadata":
            statement = capability_statement(f"{self.base_url}/token")
            statement["rest"][0]["operation"] = [{"name": "export-v4", "definition": "x|4.0.0"}]
            return 200, json.dumps(statement).encode(), JSON
        return super()._reply(method, path, body, headers)


def header(patient: str) -> bytes:
    reference = {"reference": f"Patient/{patient}"}
    parameter = [{"name": "header", "valueReference": reference}]
    return json.dumps({"resourceType": "Parameters", "parameter": parameter}).encode()


GOOD_BLOCKS = b"\n".join(
    [header("p1"), b'{"resourceType":"Patient","id":"p1"}',
     header("p2"), b'{"resourceType":"Patient","id":"p2"}'],
)  # fmt: skip


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (GOOD_BLOCKS, ""),
        (b'{"resourceType":"Patient","id":"p1"}\n' + GOOD_BLOCKS, "before the first block header"),
        (
            GOOD_BLOCKS.replace(b'"id":"p2"', b'"id":"p3"'),
            "line 4 is not Patient/p2, whose block its header opens",
        ),
        (GOOD_BLOCKS + b"\n" + header("p4"), "ends at line 5 without the Patient"),
    ],
)
def test_organised_files_are_checked_block_by_block(remote_key, body, reason):
    with serve(V4Stub(file_body=body)) as stub:
        server = make_server("v4stub", stub.base_url, "us-at-stub", remote_key)
        job = run_in_process(server, (("_type", "Patient"),), bulk_version="4.0.0")
    kickoff = RemoteExport.objects.get(job=job).exchanges.get(url__contains="$export-v4")
    assert kickoff.method == "POST"
    if not reason:
        assert job.status == ExportJob.Status.COMPLETED, job.failure_reason
        assert job.files.get(kind="output").resource_type == "Patient-blocks"
        return
    assert job.status == ExportJob.Status.FAILED
    assert reason in job.failure_reason
    assert not job.files.exists()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"error": []}, "the v4 manifest has 'error', which the 4.0.0 ballot renamed 'outcome'"),
        (
            {"output": [{"type": "Patient", "url": "http://127.0.0.1:1/files/Patient.ndjson"}]},
            "output[0] of the manifest has a type although the output is organised",
        ),
        ({"extension": {"x": 1}}, "extension is not an array of Extensions"),
        (
            {"link": [{"relation": "next", "url": "http://a/1"}, {"relation": "next"}]},
            "link is not one item with relation next",
        ),
        ({"requiresAccessToken": None}, "the manifest has no 'requiresAccessToken'"),
        ({"outputOrganizedBy": None, "outputOrganizedByDetail": "x"}, "without outputOrganizedBy"),
    ],
)
def test_a_manifest_outside_the_v4_model_fails_the_export_before_any_download(
    remote_key, changes, reason
):
    with serve(V4Stub(file_body=GOOD_BLOCKS, changes=changes)) as stub:
        server = make_server("v4stub", stub.base_url, "us-at-stub", remote_key)
        job = run_in_process(server, bulk_version="4.0.0")
        files_asked = [path for method, path, _ in stub.requests if path.startswith("/files/")]
    assert job.status == ExportJob.Status.FAILED
    assert reason in job.failure_reason
    assert files_asked == [] and not RemoteDownload.objects.exists()


def test_a_file_of_another_size_than_its_manifest_says_fails_the_export(remote_key):
    output = {"url": "", "fileSize": len(GOOD_BLOCKS) + 1}
    with serve(V4Stub(file_body=GOOD_BLOCKS)) as stub:
        output["url"] = f"{stub.base_url}/files/Patient.ndjson"
        stub.changes = {"output": [output]}
        server = make_server("v4stub", stub.base_url, "us-at-stub", remote_key)
        job = run_in_process(server, bulk_version="4.0.0")
    assert job.status == ExportJob.Status.FAILED
    assert f"has {len(GOOD_BLOCKS)} bytes; the manifest's fileSize says" in job.failure_reason


def test_a_v4_export_from_a_server_that_does_not_offer_it_is_not_kicked_off(remote_key):
    with serve(FaultyExportServer()) as stub:
        server = make_server("v2only", stub.base_url, "us-at-stub", remote_key)
        job = run_in_process(server, bulk_version="4.0.0")
        kickoffs = [path for _, path, _ in stub.requests if "$export" in path]
    assert job.status == ExportJob.Status.FAILED
    assert "v2only's CapabilityStatement does not offer export-v4" in job.failure_reason
    assert kickoffs == []


def test_a_next_page_on_another_origin_is_refused_without_sending_our_token(remote_key):
    with serve(FaultyExportServer()) as elsewhere, serve(V4Stub(file_body=GOOD_BLOCKS)) as stub:
        page = f"{elsewhere.base_url}/page/2"
        stub.changes = {"link": [{"relation": "next", "url": page}]}
        server = make_server("v4stub", stub.base_url, "us-at-stub", remote_key)
        job = run_in_process(server, bulk_version="4.0.0")
    assert job.status == ExportJob.Status.FAILED
    assert f"next page {page} is not on the FHIR server's origin" in job.failure_reason
    assert elsewhere.requests == []


def test_an_operation_outcome_on_a_running_poll_is_no_partial_manifest(remote_key):
    progress = json.dumps(outcome("informational", "Still exporting")).encode()
    running = (202, {"Content-Type": "application/fhir+json", "Retry-After": "1"}, progress)
    with serve(V4Stub(file_body=GOOD_BLOCKS, polls=[running])) as stub:
        server = make_server("v4stub", stub.base_url, "us-at-stub", remote_key)
        pairs = (("_type", "Patient"), ("allowPartialManifests", "true"))
        job = run_in_process(server, pairs, bulk_version="4.0.0")
    assert job.status == ExportJob.Status.COMPLETED, job.failure_reason
    assert job.files.get(kind="output").resource_count == 4


def test_remote_export_command_asks_for_bulk_data_4_options_only_with_it(remote_key):
    make_server("v4stub", "http://127.0.0.1:9/fhir", "us", remote_key)
    with pytest.raises(CommandError, match="need --bulk-data-4"):
        call_command("remote_export", "v4stub", "--system", "--organize-by-patient")
    assert not ExportJob.objects.exists()
