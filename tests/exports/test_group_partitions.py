"""How a Patient or Group export is split: its compartment rows into equal shares, a
multiple of BULKOPS_EXPORT_WORKERS of them once there are several, so the workers finish
together, planned from a sample of the patients of a large cohort; the resources they
refer to, of every small type, by one partition."""

from __future__ import annotations

import itertools
import json

import pytest

from exports.models import ExportJob
from exports.partitions import plan_export, run_partition
from exports.row_chunks import RUNS_PER_QUERY
from exports.storage import get_storage
from fhirstore.groups import upsert_group
from fhirstore.models import Resource
from fhirstore.writes import put_resource
from tests.exports.conftest import observation
from tests.exports.test_export_lifecycle import finished_group_job
from tests.exports.test_referenced_resources import practitioner, seen_by

pytestmark = pytest.mark.django_db


def compartment_shares(job: ExportJob) -> list[int]:
    partitions = job.partitions.filter(referenced=False).order_by("sequence")
    return list(partitions.values_list("rows_planned", flat=True))


@pytest.mark.parametrize(
    ("workers", "shares"),
    [
        # 8 rows of about 3 a partition: 3 partitions would leave one worker alone with
        # the last, 4 would take two turns of both; the nearest multiple of 2 is 2.
        (2, [4, 4]),
        (3, [3, 2, 3]),
        (1, [3, 2, 3]),
    ],
)
def test_a_group_export_is_cut_in_equal_shares_for_the_workers(
    client_a, store, settings, workers, shares
):
    # g1's members have 8 compartment rows: a Patient, two Observations and a Condition each.
    settings.BULKOPS_PARTITION_SIZE = 3
    settings.BULKOPS_EXPORT_WORKERS = workers
    job = finished_group_job(client_a)
    assert job.status == ExportJob.Status.COMPLETED
    assert compartment_shares(job) == shares
    # Each member resource once, whichever partition read it.
    assert members_exported(job) == 8


def test_a_large_group_is_planned_from_a_sample_and_exported_whole(client_a, store, settings):
    # 600 more members, one Observation each (an uneven share: the first 300 have two),
    # so the plan counts a sample of about SAMPLED_PATIENTS of g1's 602 members.
    settings.BULKOPS_PARTITION_SIZE = 250
    settings.BULKOPS_EXPORT_WORKERS = 2
    members = [f"m{n:03d}" for n in range(600)]
    for n, patient_id in enumerate(members):
        put_resource(
            resource_type="Patient",
            resource_id=patient_id,
            body={"resourceType": "Patient", "id": patient_id},
            now=store["written"],
        )
        for k in range(1 if n >= 300 else 2):
            put_resource(
                resource_type="Observation",
                resource_id=f"{patient_id}-o{k}",
                body=observation(f"{patient_id}-o{k}", patient_id),
                now=store["written"],
            )
    upsert_group(group_id="g1", name="Cohort 1", patient_ids=["p1", "p2", *members], actor="test")
    job = finished_group_job(client_a)
    assert job.status == ExportJob.Status.COMPLETED
    shares = compartment_shares(job)
    # 8 + 600 Patients + 900 Observations = 1,508 rows: an estimate of about 6
    # partitions of 250, a multiple of the two workers, in equal shares.
    assert len(shares) == 6
    assert 1400 <= sum(shares) <= 1600
    assert max(shares) - min(shares) <= 50
    # Whatever the estimate, every member resource once.
    assert members_exported(job) == 1508


def members_exported(job: ExportJob) -> int:
    files = job.files.filter(kind="output", partition__referenced=False)
    return sum(files.values_list("resource_count", flat=True))


def test_a_group_export_of_one_partition_stays_one(client_a, store, settings):
    settings.BULKOPS_PARTITION_SIZE = 8
    settings.BULKOPS_EXPORT_WORKERS = 2
    job = finished_group_job(client_a)
    assert job.status == ExportJob.Status.COMPLETED
    assert compartment_shares(job) == [8]
    assert members_exported(job) == 8


def test_referenced_resources_of_several_types_share_one_partition(client_a, store):
    put_resource(
        resource_type="Organization",
        resource_id="org1",
        body={"resourceType": "Organization", "id": "org1"},
        now=store["written"],
    )
    performers = [{"reference": "Practitioner/dr1"}, {"reference": "Organization/org1"}]
    put_resource(
        resource_type="Observation",
        resource_id="p1-seen",
        body={**observation("p1-seen", "p1"), "performer": performers},
        now=store["written"],
    )
    job = finished_group_job(client_a)
    assert job.status == ExportJob.Status.COMPLETED
    (referenced,) = job.partitions.filter(referenced=True)
    assert referenced.types == ["Organization", "Practitioner"]
    # Still a file per type, each holding its resources once.
    files = job.files.filter(partition=referenced).order_by("resource_type")
    assert [(f.resource_type, f.resource_count) for f in files] == [
        ("Organization", 1),
        ("Practitioner", 1),
    ]


def group_job_run_by(client, *workers: str) -> tuple[ExportJob, list[int]]:
    """Kick off g1's Group export and run its planned partitions in turn by `workers`;
    the job, and the ids of the partitions their completions left to be queued."""
    response = client.kick_off("/fhir/Group/g1/$export")
    job = ExportJob.objects.get(uuid=response["Content-Location"].rsplit("/", 1)[1])
    queued = []
    for partition_id, worker in zip(plan_export(job.pk), itertools.cycle(workers)):
        queued += run_partition(partition_id=partition_id, worker=worker)
    job.refresh_from_db()
    return job, queued


def test_a_few_referenced_resources_are_written_by_the_worker_of_the_last_partition(
    client_a, store, settings
):
    settings.BULKOPS_PARTITION_SIZE = 4  # g1's 8 compartment rows: two partitions
    seen_by("p1-o0", "p1", "Practitioner/dr1")
    job, queued = group_job_run_by(client_a, "worker-a", "worker-b")
    # Nothing was left to queue: the job completed with its second partition.
    assert compartment_shares(job) == [4, 4]
    assert queued == []
    assert job.status == ExportJob.Status.COMPLETED
    (referenced,) = job.partitions.filter(referenced=True)
    assert (referenced.status, referenced.worker, referenced.attempts) == ("done", "worker-b", 1)
    assert (referenced.resources_exported, job.resources_exported) == (1, 9)
    (practitioners,) = job.files.filter(resource_type="Practitioner")
    assert practitioners.partition == referenced
    assert get_storage().open_reader(practitioners.storage_key).read().count(b'"dr1"') == 1
    assert job.progress_text == "100% - 4 of 4 types, 9 resources"


def test_referenced_resources_beyond_a_partition_are_queued_for_the_workers(
    client_a, store, settings
):
    settings.BULKOPS_PARTITION_SIZE = 1  # more Practitioners than a partition holds
    practitioner("dr2")
    seen_by("p1-o0", "p1", "Practitioner/dr1")
    seen_by("p2-o0", "p2", "Practitioner/dr2")
    job, queued = group_job_run_by(client_a, "worker")
    assert len(queued) == 2  # one per Practitioner
    assert job.status == ExportJob.Status.RUNNING
    for partition_id in queued:
        assert run_partition(partition_id=partition_id, worker="worker") == []
    job.refresh_from_db()
    assert job.status == ExportJob.Status.COMPLETED
    practitioners = job.files.filter(resource_type="Practitioner")
    assert sum(practitioners.values_list("resource_count", flat=True)) == 2


def test_members_resources_stored_between_other_patients_come_out_once_in_store_order(
    client_a, store
):
    # Stored alternately with a non-member's, a member's Observations make one run of
    # ids each: more runs than a chunk's query lists as ranges (exports/row_chunks.py).
    for n in range(RUNS_PER_QUERY + 10):
        for pid in ("p1", "p3"):
            oid = f"{pid}-seq{n}"
            put_resource(
                resource_type="Observation",
                resource_id=oid,
                body=observation(oid, pid),
                now=store["written"],
            )
    job = finished_group_job(client_a)
    assert job.status == ExportJob.Status.COMPLETED
    written = []
    for file in job.files.filter(kind="output", resource_type="Observation").order_by(
        "storage_key"
    ):
        with get_storage().open_reader(file.storage_key) as handle:
            written += [json.loads(line)["id"] for line in handle.read().splitlines()]
    members = Resource.objects.filter(
        resource_type="Observation", compartments__patient_id__in=["p1", "p2"]
    )
    assert written == list(members.order_by("pk").values_list("resource_id", flat=True))
    assert len(written) == 4 + RUNS_PER_QUERY + 10
