"""Workers killed with SIGKILL mid-export, on Redis and the suite's database: the export
finishes with exactly the output of an undisturbed run, or fails saying why; a
cancelled export stays cancelled."""

from __future__ import annotations

import time

import pytest

from exports.bulk_client import http
from tests.faults.conftest import deploy
from tests.faults.deployment import ids_by_type, progress_resources

running_with_output = {
    "done": lambda status, headers: status == 202 and progress_resources(headers)
}


@pytest.fixture
def deployment(tmp_path, redis):
    yield from deploy(tmp_path, redis)


def _manifest_files(manifest):
    return sum(len(manifest.get(kind, [])) for kind in ("output", "deleted", "error"))


def test_export_whose_worker_was_killed_matches_an_undisturbed_run(deployment, tmp_path):
    first = deployment.start()
    client = deployment.client()
    undisturbed = client.kick_off("/Patient/$export", [])
    reference = ids_by_type(client, client.wait(undisturbed, print, 120), tmp_path / "ref")

    status_url = client.kick_off("/Patient/$export", [])
    deployment.kill_worker_mid_partition(first, status_url)
    assert deployment.status(status_url)[0] == 202, "the export ended before the kill"
    deployment.start_worker()
    manifest = client.wait(status_url, print, 120)

    exported = ids_by_type(client, manifest, tmp_path / "after-kill")
    assert {t: sorted(ids) for t, ids in exported.items()} == {
        t: sorted(ids) for t, ids in reference.items()
    }
    assert all(len(ids) == len(set(ids)) for ids in exported.values()), "duplicates"
    job = status_url.rsplit("/", 1)[1]
    assert len(deployment.stored_files(job)) == _manifest_files(manifest), "orphaned files"


def test_cancelled_export_stays_cancelled_when_its_worker_dies(deployment):
    worker = deployment.start()
    client = deployment.client()
    status_url = client.kick_off("/Patient/$export", [])
    deployment.wait_for(status_url, **running_with_output)

    cancel = http("DELETE", status_url, headers=client._auth())
    deployment.kill_worker(worker)
    deployment.start_worker()
    time.sleep(8)  # longer than the lease plus a reaper round: nothing may resurrect it

    assert cancel.status == 202
    assert deployment.status(status_url)[0] == 404
    assert deployment.stored_files(status_url.rsplit("/", 1)[1]) == set()


def test_export_fails_with_a_reason_when_its_work_keeps_losing_workers(tmp_path, redis):
    for deployment in deploy(tmp_path, redis, patients=10, BULKOPS_PARTITION_MAX_ATTEMPTS="1"):
        worker = deployment.start()
        client = deployment.client()
        status_url = client.kick_off("/Patient/$export", [])
        deployment.kill_worker_mid_partition(worker, status_url)
        deployment.start_worker()

        status, headers, outcome = deployment.wait_for(
            status_url, done=lambda status, headers: status != 202
        )

        assert status == 424  # final: clients stop polling (README, "Status")
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["code"] == "processing"
        assert "worker stopped responding" in outcome["issue"][0]["diagnostics"]
