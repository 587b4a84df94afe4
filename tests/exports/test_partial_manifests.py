"""Partial manifests of $export-v4 (`allowPartialManifests`, v4 digest §1.8, §7.A.10),
driven one partition at a time (the test plays the worker) so every poll's answer is
known: frozen pages of finished files, one `link` `next`, the chain complete at the end."""

from __future__ import annotations

from collections import Counter

import pytest

from exports.models import ExportJob
from exports.partitions import plan_export, run_partition

pytestmark = pytest.mark.django_db

PARTIAL = {"name": "allowPartialManifests", "valueBoolean": True}
NON_ARRAY = ("manifestType", "transactionTime", "requiresAccessToken", "outputFormat")


@pytest.fixture(autouse=True)
def small_partitions(settings):
    """A Patient export reads its compartment rows in one pass over id ranges: ranges of
    4 rows split the three patients' data into several partitions to finish in turn."""
    settings.BULKOPS_PARTITION_SIZE = 4


def kick_off(client, prefer: str = "respond-async"):
    types = [{"name": "_type", "valueString": t} for t in ("Patient", "Observation", "Condition")]
    response = client.post_kick_off("/fhir/Patient/$export-v4", [PARTIAL, *types], prefer=prefer)
    assert response.status_code == 202
    status_url = response["Content-Location"]
    return status_url, ExportJob.objects.get(uuid=status_url.rsplit("/", 1)[1])


def test_pages_freeze_finished_files_and_link_the_next_one(client_a, store):
    status_url, job = kick_off(client_a)
    waiting = client_a.request("get", status_url)
    assert (waiting.status_code, waiting.content) == (202, b"")
    first, second, *rest = plan_export(job.pk)
    assert rest

    run_partition(partition_id=first, worker="w")
    running = client_a.request("get", status_url)
    assert running.status_code == 202
    assert running["Content-Type"].startswith("application/json")
    page1 = running.json()
    assert "link" not in page1 and page1["output"]
    # Listed files are ready: each downloads whole while the export still runs.
    for item in page1["output"]:
        assert len(client_a.download(item["url"])) == item["count"]
    assert client_a.request("get", status_url).json() == page1, "a page is frozen"

    run_partition(partition_id=second, worker="w")
    grown = client_a.request("get", status_url).json()
    assert grown.pop("link") == [{"relation": "next", "url": f"{status_url}/page/2"}]
    assert grown == page1, "only the link is added to a page already shown"
    page2 = client_a.request("get", f"{status_url}/page/2")
    assert page2.status_code == 200
    assert "link" not in page2.json()
    assert client_a.request("get", f"{status_url}/page/3").status_code == 404

    for partition_id in rest:
        run_partition(partition_id=partition_id, worker="w")
    done = client_a.request("get", status_url)
    assert done.status_code == 200
    pages = client_a.manifest_chain(done.json())
    assert len(pages) == 3
    for page in pages:
        assert {name: page[name] for name in NON_ARRAY} == {name: page1[name] for name in NON_ARRAY}
    listed = Counter()
    for item in (i for page in pages for i in page.get("output", [])):
        listed[item["type"]] += item["count"]
    assert listed == {"Condition": 3, "Observation": 6, "Patient": 3}


def test_partial_pages_with_separate_export_status(client_a, store):
    status_url, job = kick_off(client_a, prefer="respond-async, separate-export-status")
    first, *_ = plan_export(job.pk)
    run_partition(partition_id=first, worker="w")
    running = client_a.request("get", status_url)
    assert (running.status_code, running["X-Export-Status"]) == (200, "202 Accepted")
    assert running.json()["output"]


def test_without_the_parameter_a_running_v4_export_shows_no_manifest(client_a, store):
    response = client_a.post_kick_off("/fhir/Patient/$export-v4", [])
    job = ExportJob.objects.get(uuid=response["Content-Location"].rsplit("/", 1)[1])
    first, *_ = plan_export(job.pk)
    run_partition(partition_id=first, worker="w")
    running = client_a.request("get", response["Content-Location"])
    assert (running.status_code, running.content) == (202, b"")
    assert client_a.request("get", response["Content-Location"] + "/page/1").status_code == 404
