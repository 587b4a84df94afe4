"""Partitions, retries, failure, expiry and the audit trail of an export, driven through
our services one step at a time (no worker: the test plays the worker)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from exports.bulk_client import TRANSIENT_CODES
from exports.models import ExportJob, ExportPartition
from exports.ndjson_files import WrittenFile
from exports.partitions import (
    claim_partition,
    complete_partition,
    fail_export,
    plan_export,
    run_partition,
)
from exports.recovery import reap_stalled_exports
from exports.services import expire_exports
from exports.storage import get_storage
from fhirstore.models import Resource
from fhirstore.writes import put_resource
from tests.exports.conftest import observation

pytestmark = pytest.mark.django_db


def accepted_job(client, **data) -> ExportJob:
    response = client.kick_off(data=data)
    assert response.status_code == 202
    return ExportJob.objects.get(uuid=response["Content-Location"].rsplit("/", 1)[1])


def run_all(job: ExportJob) -> None:
    for partition_id in plan_export(job.pk):
        run_partition(partition_id=partition_id, worker="test-worker")
    job.refresh_from_db()


def finished_group_job(client) -> ExportJob:
    """Kick off g1's Group export and play the worker until it is done, its referenced
    partitions included."""
    response = client.kick_off("/fhir/Group/g1/$export")
    assert response.status_code == 202
    job = ExportJob.objects.get(uuid=response["Content-Location"].rsplit("/", 1)[1])
    run_all(job)
    while pending := list(job.partitions.filter(status="pending").values_list("pk", flat=True)):
        for partition_id in pending:
            run_partition(partition_id=partition_id, worker="test-worker")
    job.refresh_from_db()
    return job


def test_a_partition_whose_worker_died_is_redone_once_its_lease_expires(client_a, store):
    job = accepted_job(client_a, _type="Observation")
    (partition_id,) = plan_export(job.pk)
    # A first worker claims the partition, writes half a file and dies.
    claimed = claim_partition(partition_id, "worker-1", timezone.now())
    key = f"{job.uuid}/Observation.0000.000.ndjson"
    with get_storage().open_writer(key) as handle:
        handle.write(b'{"resourceType":"Observation","id":"half')
    # While its lease lasts, nobody else may take the partition.
    run_partition(partition_id=partition_id, worker="worker-2")
    assert ExportPartition.objects.get(pk=partition_id).worker == "worker-1"
    ExportPartition.objects.filter(pk=claimed.pk).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    run_partition(partition_id=partition_id, worker="worker-2")
    partition = ExportPartition.objects.get(pk=partition_id)
    assert (partition.status, partition.attempts, partition.worker) == ("done", 2, "worker-2")
    job.refresh_from_db()
    assert job.status == ExportJob.Status.COMPLETED
    assert job.resources_exported == 6
    (file,) = job.files.all()
    lines = get_storage().open_reader(file.storage_key).read().splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == sorted(
        f"{p}-o{n}" for p in ("p1", "p2", "p3") for n in range(2)
    )


def expire_lease(partition_id: int) -> None:
    ExportPartition.objects.filter(pk=partition_id).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )


def downloaded_lines(client, file) -> list[bytes]:
    response = client.http.get(
        f"/fhir/bulkfiles/{file.uuid}", headers={"Authorization": f"Bearer {client.token()}"}
    )
    assert response.status_code == 200
    return b"".join(response.streaming_content).splitlines()


def test_a_late_attempt_keeps_the_files_of_the_worker_that_took_its_partition_over(
    client_a, store, django_capture_on_commit_callbacks
):
    """A host cut off for longer than its lease comes back and completes the partition
    another worker completed meanwhile, under the same file names."""
    job = accepted_job(client_a, _type="Observation")
    (partition_id,) = plan_export(job.pk)
    late = claim_partition(partition_id, "celery@host-b", timezone.now())
    expire_lease(partition_id)
    run_partition(partition_id=partition_id, worker="celery@host-c")
    job.refresh_from_db()
    assert job.status == ExportJob.Status.COMPLETED
    (file,) = job.files.all()

    with django_capture_on_commit_callbacks(execute=True):
        complete_partition(
            late, [("Observation", False, WrittenFile(file.storage_key, 6, file.size_bytes))], set()
        )

    assert len(downloaded_lines(client_a, file)) == 6
    assert ExportPartition.objects.get(pk=partition_id).worker == "celery@host-c"


def test_of_two_attempts_on_one_celery_node_the_one_holding_the_partition_completes_it(
    client_a, store, django_capture_on_commit_callbacks
):
    """Pool processes of one Celery node share its name: the attempt whose lease ran out
    must not complete the partition the next attempt holds, nor delete its files."""
    job = accepted_job(client_a, _type="Observation")
    (partition_id,) = plan_export(job.pk)
    late = claim_partition(partition_id, "celery@node", timezone.now())
    expire_lease(partition_id)
    current = claim_partition(partition_id, "celery@node", timezone.now())
    key = f"{job.uuid}/Observation.0000.000.ndjson"
    bodies = Resource.objects.filter(resource_type="Observation").values_list("body", flat=True)
    content = "".join(f"{body}\n" for body in bodies).encode()
    with get_storage().open_writer(key) as handle:
        handle.write(content)
    written = [("Observation", False, WrittenFile(key, 6, len(content)))]

    with django_capture_on_commit_callbacks(execute=True):
        complete_partition(late, written, set())
    job.refresh_from_db()
    assert job.status == ExportJob.Status.RUNNING
    with django_capture_on_commit_callbacks(execute=True):
        complete_partition(current, written, set())

    job.refresh_from_db()
    assert job.status == ExportJob.Status.COMPLETED
    (file,) = job.files.all()
    assert len(downloaded_lines(client_a, file)) == 6


@pytest.mark.parametrize(
    "parameters", [{}, {"_type": "Observation"}, {"_since": "2000-01-01T00:00:00Z"}]
)
def test_resources_written_while_an_export_runs(client_a, store, parameters):
    """Every resource that existed at transactionTime is exported (spec: SHALL), as it
    is when its partition reads it; one created later is not (SHOULD NOT)."""
    job = accepted_job(client_a, **parameters)
    later = timezone.now() + timedelta(seconds=1)
    changed = put_resource(
        resource_type="Observation",
        resource_id="p1-o0",
        body={**observation("p1-o0", "p1"), "status": "amended"},
        now=later,
    )
    put_resource(
        resource_type="Observation",
        resource_id="p1-new",
        body=observation("p1-new", "p1"),
        now=later,
    )
    run_all(job)
    assert job.status == ExportJob.Status.COMPLETED
    observations = {}
    for file in job.files.filter(resource_type="Observation"):
        for line in get_storage().open_reader(file.storage_key).read().splitlines():
            resource = json.loads(line)
            observations[resource["id"]] = resource
    assert sorted(observations) == sorted(f"{p}-o{n}" for p in ("p1", "p2", "p3") for n in range(2))
    assert observations["p1-o0"]["status"] == "amended"
    assert observations["p1-o0"]["meta"]["versionId"] == str(changed.version_id)


def test_a_partition_whose_files_cannot_be_written_fails_and_is_redone(client_a, store):
    job = accepted_job(client_a, _type="Observation")
    (partition_id,) = plan_export(job.pk)
    # Something already lies where the job's folder goes: the storage cannot write there.
    blocker = get_storage().root / str(job.uuid)
    blocker.write_text("not a folder")
    with pytest.raises(OSError):
        run_partition(partition_id=partition_id, worker="worker-1")
    partition = ExportPartition.objects.get(pk=partition_id)
    assert partition.status == "running"
    assert not job.files.exists()

    # Celery retries the task; once the storage is writable the partition completes.
    blocker.unlink()
    ExportPartition.objects.filter(pk=partition_id).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    run_partition(partition_id=partition_id, worker="worker-1")
    job.refresh_from_db()
    assert job.status == ExportJob.Status.COMPLETED
    assert job.resources_exported == 6
    (file,) = job.files.all()
    assert len(get_storage().open_reader(file.storage_key).read().splitlines()) == 6


def test_the_reaper_says_in_the_log_when_it_fails_a_stalled_export(
    client_a, store, settings, caplog
):
    settings.BULKOPS_PARTITION_MAX_ATTEMPTS = 1
    job = accepted_job(client_a, _type="Patient")
    (partition_id,) = plan_export(job.pk)
    claim_partition(partition_id, "worker-1", timezone.now())
    ExportPartition.objects.filter(pk=partition_id).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    with caplog.at_level(logging.INFO, logger="exports.recovery"):
        reap_stalled_exports(timezone.now())
    assert [
        (r.levelname, r.getMessage()) for r in caplog.records if r.name == "exports.recovery"
    ] == [("WARNING", "stalled exports found: 0 re-planned, 0 re-queued, 0 re-finalized, 1 failed")]
    job.refresh_from_db()
    assert job.status == ExportJob.Status.FAILED


def test_a_partition_out_of_attempts_is_not_started_again_and_its_export_fails(
    client_a, store, settings
):
    settings.BULKOPS_PARTITION_MAX_ATTEMPTS = 1
    job = accepted_job(client_a, _type="Patient")
    (partition_id,) = plan_export(job.pk)
    claim_partition(partition_id, "worker-1", timezone.now())  # and worker-1 is lost
    ExportPartition.objects.filter(pk=partition_id).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )

    # Its task, redelivered to another worker, does not start the partition a second time.
    assert run_partition(partition_id=partition_id, worker="worker-2") == []
    partition = ExportPartition.objects.get(pk=partition_id)
    assert (partition.status, partition.attempts, partition.worker) == ("running", 1, "worker-1")
    reap_stalled_exports(timezone.now())
    job.refresh_from_db()
    assert job.status == ExportJob.Status.FAILED
    assert "started 1 times" in job.failure_reason
    assert not job.files.exists()


def test_a_redelivered_finished_partition_changes_nothing(client_a, store):
    job = accepted_job(client_a, _type="Patient")
    run_all(job)
    files_before = list(job.files.values_list("uuid", "size_bytes"))
    for partition in job.partitions.all():
        run_partition(partition_id=partition.pk, worker="late-redelivery")
    job.refresh_from_db()
    assert list(job.files.values_list("uuid", "size_bytes")) == files_before
    assert (job.partitions_done, job.resources_exported) == (1, 3)


def test_progress_counts_types_and_resources(client_a, store, settings):
    settings.BULKOPS_PARTITION_SIZE = 2
    job = accepted_job(client_a, _type="Patient,Observation")
    partition_ids = plan_export(job.pk)
    job.refresh_from_db()
    assert (job.partitions_total, job.types_total) == (5, 2)  # 3 patients + 6 observations
    run_partition(partition_id=partition_ids[0], worker="w")
    job.refresh_from_db()
    assert job.progress_text == f"{job.percent_done}% - 0 of 2 types, 2 resources"
    for partition_id in partition_ids[1:]:
        run_partition(partition_id=partition_id, worker="w")
    job.refresh_from_db()
    assert job.progress_text == "100% - 2 of 2 types, 9 resources"


def test_a_plain_export_reads_every_type_in_one_pass_of_id_ranges(client_a, store, settings):
    settings.BULKOPS_PARTITION_SIZE = 4
    settings.BULKOPS_MAX_RESOURCES_PER_FILE = 2
    job = accepted_job(client_a)
    run_all(job)
    live = Resource.objects.filter(deleted=False)
    assert job.status == ExportJob.Status.COMPLETED
    # Observation (6 rows) is read in ranges of the table; the types of at most 4 rows
    # share partitions of at most 4 rows (Condition 3, Patient 3, Group 1, Practitioner 1).
    ranges = -(-Resource.objects.count() // 4)
    assert sorted(job.partitions.values_list("resource_type", flat=True)) == sorted(
        ["*"] * ranges + ["+", "+"]
    )
    assert sorted(job.partitions.filter(resource_type="+").values_list("types", flat=True)) == [
        ["Condition", "Group"],
        ["Patient", "Practitioner"],
    ]
    assert (job.types_done, job.types_total) == (len(stored_types()), len(stored_types()))
    store_order = {
        (t, i): pk for pk, t, i in live.values_list("pk", "resource_type", "resource_id")
    }
    exported = []
    storage = get_storage()
    for file in job.files.all():
        with storage.open_reader(file.storage_key) as handle:
            lines = [json.loads(line) for line in handle.read().splitlines()]
        assert 0 < len(lines) == file.resource_count <= 2
        assert {line["resourceType"] for line in lines} == {file.resource_type}
        in_file = [store_order[line["resourceType"], line["id"]] for line in lines]
        assert in_file == sorted(in_file)  # a file lists its resources in store order
        exported += [(line["resourceType"], line["id"]) for line in lines]
    assert sorted(exported) == sorted(live.values_list("resource_type", "resource_id"))


def test_a_type_subset_is_split_by_type(client_a, store, settings):
    settings.BULKOPS_PARTITION_SIZE = 4
    job = accepted_job(client_a, _type="Patient,Observation")
    plan_export(job.pk)
    assert sorted(job.partitions.values_list("resource_type", "rows_planned")) == [
        ("Observation", 2),
        ("Observation", 4),
        ("Patient", 3),
    ]


def stored_types() -> set[str]:
    return set(Resource.objects.filter(deleted=False).values_list("resource_type", flat=True))


def test_a_failed_job_answers_a_final_status_with_the_reason(client_a, store):
    """Not 500, which bulk clients retry for minutes whatever the OperationOutcome says,
    and an issue code outside the transient branch (spec §2.2)."""
    job = accepted_job(client_a)
    fail_export(job.pk, "The export stopped after an internal error (OSError).")
    response = client_a.request("get", f"/fhir/bulkstatus/{job.uuid}")
    assert response.status_code == 424
    assert response["Content-Type"].startswith("application/fhir+json")
    issue = response.json()["issue"][0]
    assert issue["code"] == "processing"
    assert issue["code"] not in TRANSIENT_CODES
    assert issue["diagnostics"] == "The export stopped after an internal error (OSError)."
    assert AuditEvent.objects.filter(action="export.failed", outcome="failure").exists()


def test_expired_jobs_lose_their_files_and_their_status_url(client_a, store):
    job = accepted_job(client_a, _type="Patient")
    run_all(job)
    file_url = f"/fhir/bulkfiles/{job.files.get().uuid}"
    assert client_a.request("get", file_url).status_code == 200
    assert expire_exports(now=job.expires_at - timedelta(seconds=1)) == 0
    assert expire_exports(now=job.expires_at) == 1
    assert client_a.request("get", f"/fhir/bulkstatus/{job.uuid}").status_code == 404
    assert client_a.request("get", file_url).status_code == 404
    assert not (get_storage().root / str(job.uuid)).exists()
    assert AuditEvent.objects.filter(action="export.deleted", actor="retention").exists()


def test_the_audit_trail_tells_the_story_without_secrets(client_a, store):
    job = accepted_job(client_a, _type="Patient,Observation")
    run_all(job)
    token = client_a.token()
    for file in job.files.all():
        client_a.http.get(
            f"/fhir/bulkfiles/{file.uuid}", headers={"Authorization": f"Bearer {token}"}
        )
    client_a.request("delete", f"/fhir/bulkstatus/{job.uuid}")
    events = list(AuditEvent.objects.filter(details__job=str(job.uuid)).order_by("pk"))
    assert [e.action for e in events] == [
        "export.kickoff",
        "export.completed",
        "export.download",
        "export.download",
        "export.deleted",
    ]
    kickoff = events[0]
    assert kickoff.actor == client_a.backend_client.client_id
    assert kickoff.details["types"] == ["Patient", "Observation"]
    assert kickoff.details["level"] == "system"
    assert events[1].details["resources"] == 9
    assert all(token not in json.dumps(e.details) for e in events)


def files_per_type(job: ExportJob) -> dict[str, list[int]]:
    counts: dict[str, list[int]] = {}
    for resource_type, count in job.files.order_by("storage_key").values_list(
        "resource_type", "resource_count"
    ):
        counts.setdefault(resource_type, []).append(count)
    return counts


def test_a_plain_export_of_a_small_store_writes_one_file_a_type(client_a, store, settings):
    """However many partitions read the table, a type of at most BULKOPS_PARTITION_SIZE
    rows is one file; a larger type is split only by its ranges and the rotation size."""
    settings.BULKOPS_PARTITION_SIZE = 4
    job = accepted_job(client_a)
    run_all(job)
    assert job.status == ExportJob.Status.COMPLETED
    files = files_per_type(job)
    observations = files.pop("Observation")
    assert files == {"Condition": [3], "Group": [1], "Patient": [3], "Practitioner": [1]}
    assert sum(observations) == 6 and all(count <= 4 for count in observations)
    assert (job.types_done, job.types_total) == (5, 5)
    assert job.resources_exported == 14


def test_a_type_above_the_rotation_size_fills_files_up_to_it(client_a, store, settings):
    settings.BULKOPS_MAX_RESOURCES_PER_FILE = 4
    job = accepted_job(client_a)
    run_all(job)
    files = files_per_type(job)
    assert files.pop("Observation") == [4, 2]  # ceil(6 / 4) files, each within the size
    assert all(len(counts) == 1 for counts in files.values())


def test_an_organised_partition_whose_worker_died_is_redone_whole(client_a, store):
    """Patient blocks keep the partitions' crash-resume guarantee (v4 digest §1.7)."""
    response = client_a.post_kick_off(
        "/fhir/$export-v4", [{"name": "organizeOutputBy", "valueString": "Patient"}]
    )
    job = ExportJob.objects.get(uuid=response["Content-Location"].rsplit("/", 1)[1])
    (partition_id,) = plan_export(job.pk)
    claimed = claim_partition(partition_id, "worker-1", timezone.now())
    key = f"{job.uuid}/Patient-blocks.0000.000.ndjson"
    with get_storage().open_writer(key) as handle:
        handle.write(b'{"resourceType":"Parameters","parameter":[{"name":"hea')
    ExportPartition.objects.filter(pk=claimed.pk).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    run_partition(partition_id=partition_id, worker="worker-2")
    job.refresh_from_db()
    assert job.status == ExportJob.Status.COMPLETED
    assert job.resources_exported == 12
    (file,) = job.files.all()
    lines = [json.loads(line) for line in get_storage().open_reader(key).read().splitlines()]
    assert file.storage_key == key and file.resource_count == len(lines) == 15
    headers = [line for line in lines if line["resourceType"] == "Parameters"]
    assert [h["parameter"][0]["valueReference"]["reference"] for h in headers] == [
        "Patient/p1",
        "Patient/p2",
        "Patient/p3",
    ]
