"""A Patient or Group export's compartment rows are cut into equal shares, a multiple of
BULKOPS_EXPORT_WORKERS of them once there are several, so the workers finish together."""

from __future__ import annotations

import pytest

from exports.models import ExportJob
from exports.partitions import run_partition
from tests.exports.test_export_lifecycle import run_all

pytestmark = pytest.mark.django_db


def exported_group(client) -> ExportJob:
    response = client.kick_off("/fhir/Group/g1/$export")
    assert response.status_code == 202
    job = ExportJob.objects.get(uuid=response["Content-Location"].rsplit("/", 1)[1])
    run_all(job)
    while pending := list(job.partitions.filter(status="pending").values_list("pk", flat=True)):
        for partition_id in pending:
            run_partition(partition_id=partition_id, worker="test-worker")
    job.refresh_from_db()
    assert job.status == ExportJob.Status.COMPLETED
    return job


def compartment_shares(job: ExportJob) -> list[int]:
    partitions = job.partitions.filter(referenced=False).order_by("sequence")
    return list(partitions.values_list("rows_planned", flat=True))


@pytest.mark.parametrize(
    ("workers", "shares"),
    [
        (2, [2, 2, 2, 2]),  # 3 partitions of at most 3 rows would leave one worker alone
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
    job = exported_group(client_a)
    assert compartment_shares(job) == shares
    # Each member resource once, whichever partition read it.
    assert members_exported(job) == 8


def members_exported(job: ExportJob) -> int:
    files = job.files.filter(kind="output", partition__referenced=False)
    return sum(files.values_list("resource_count", flat=True))


def test_a_group_export_of_one_partition_stays_one(client_a, store, settings):
    settings.BULKOPS_PARTITION_SIZE = 8
    settings.BULKOPS_EXPORT_WORKERS = 2
    job = exported_group(client_a)
    assert compartment_shares(job) == [8]
    assert members_exported(job) == 8
