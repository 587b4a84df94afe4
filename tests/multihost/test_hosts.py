"""bulkops on several hosts, one of them lost mid-export (docs/deployment.md).

A services host runs PostgreSQL, Redis and an S3 server; web host A runs gunicorn,
worker hosts B and C a Celery worker each, beat host D Celery beat, every one with the
command of its unit in deploy/systemd and its own empty var dir. A backend client on a
host of its own exports through A and gets what a single-host run gives, also when
B's link is cut while it holds part of the export.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from bench.cluster import Cluster
from bench.netns import Host, Network
from exports.bulk_client import http

pytestmark = pytest.mark.multihost

RUNNING_ON = (
    "SELECT count(*) FROM exports_exportpartition p JOIN exports_exportjob j "
    "ON p.job_id = j.id WHERE j.uuid = %s AND p.status = 'running' AND p.worker = %s"
)
WORKERS_OF = (
    "SELECT DISTINCT p.worker FROM exports_exportpartition p JOIN exports_exportjob j "
    "ON p.job_id = j.id WHERE j.uuid = ANY(%s)"
)
Output = dict[str, Counter[bytes]]


@dataclass
class Hosts:
    web: Host
    worker_b: Host
    worker_c: Host
    beat: Host
    base: str = ""


def exports(cluster: Cluster) -> dict[str, str]:
    return {
        "system": "/$export",
        "patient": "/Patient/$export",
        "group": f"/Group/{cluster.group_id}/$export",
    }


@pytest.fixture(scope="module")
def hosts(cluster: Cluster, network: Network) -> Hosts:
    hosts = Hosts(*(network.add_host(n) for n in ("web-a", "worker-b", "worker-c", "beat-d")))
    cluster.prepare(hosts.web, patients=20)
    return hosts


@pytest.fixture(scope="module")
def single_host(cluster: Cluster, hosts: Hosts, tmp_path_factory) -> dict[str, Output]:
    """What each export gives when web, worker and beat all run on one host (the
    services host, beside the database, broker and bucket)."""
    host = cluster.services.host
    base = cluster.start_web(host)
    cluster.start_worker(host)
    cluster.start_beat(host)
    out = tmp_path_factory.mktemp("single-host")
    try:
        return {
            name: cluster.export(base, path, out / name) for name, path in exports(cluster).items()
        }
    finally:
        cluster.stop_bulkops(host)


@pytest.fixture(scope="module")
def spread(cluster: Cluster, hosts: Hosts, single_host: dict[str, Output]) -> Hosts:
    """Web on A, workers on B and C, beat on D."""
    hosts.base = cluster.start_web(hosts.web)
    cluster.start_worker(hosts.worker_b)
    cluster.start_worker(hosts.worker_c)
    cluster.start_beat(hosts.beat)
    return hosts


def test_exports_through_web_host_match_a_single_host_run(cluster, spread, single_host, tmp_path):
    jobs = []
    for name, path in exports(cluster).items():
        status_url = cluster.kick_off(spread.base, path)
        jobs.append(status_url.rsplit("/", 1)[1])
        output = cluster.finish(spread.base, status_url, tmp_path / name)
        assert output == single_host[name], f"{name} export differs from the single-host run"
        assert sum(map(len, output.values())) > 1000

    workers = {worker for (worker,) in cluster.query(WORKERS_OF, jobs)}
    assert workers == {"celery@worker-b", "celery@worker-c"}


def test_export_completes_through_the_other_worker_when_a_host_is_lost(
    cluster, spread, single_host, tmp_path
):
    status_url = cluster.kick_off(spread.base, "/$export")
    job = status_url.rsplit("/", 1)[1]
    (worker_b,) = cluster.started["worker-b"]
    cut_while_holding_a_partition(cluster, spread.worker_b, worker_b, job)

    output = cluster.finish(spread.base, status_url, tmp_path / "after-cut")

    assert output == single_host["system"]
    assert all(count == 1 for lines in output.values() for count in lines.values())
    recovered = recovery_events(cluster, spread, job)
    assert recovered, "the job's timeline shows no recovery"
    assert all(
        event["details"]["worker"] == "celery@worker-b"
        and "its worker celery@worker-b stopped renewing its lease" in event["reason"]
        for event in recovered
    )
    assert cluster.query(RUNNING_ON, job, "celery@worker-b") == [(0,)]


def cut_while_holding_a_partition(
    cluster: Cluster, host: Host, worker: Any, job: str, timeout: float = 60
) -> None:
    """Cut `host`'s link at a moment its worker holds a claimed, unfinished partition of
    `job`. Partitions of a small store take milliseconds, so the worker is frozen while
    the database is asked; if it holds none at that instant it is thawed and asked
    again. Once cut, it runs on, unable to reach anything."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        host.signal_all(signal.SIGSTOP, worker)
        holding = cluster.query(RUNNING_ON, job, f"celery@{host.name}")[0][0]
        if holding:
            host.cut_link()
        host.signal_all(signal.SIGCONT, worker)
        if holding:
            return
        time.sleep(0.01)
    raise AssertionError(f"{host.name} never held a running partition of the export")


def recovery_events(cluster: Cluster, hosts: Hosts, job: str) -> list[dict[str, Any]]:
    """The job's export.recovered events, as an auditor reads them through the
    operator API on web host A."""
    cluster.manage(hosts.web, "create_operator", "--username", "ada", "--role", "auditor")
    created = cluster.manage(hosts.web, "create_api_token", "--username", "ada", "--name", "t")
    token = created.strip().rsplit(" ", 1)[1]
    answer = cluster.client_host.call(
        http,
        "GET",
        f"{hosts.base}/api/v1/audit-events/?action=export.recovered",
        headers={"Authorization": f"Token {token}"},
        allow_private=True,
    )
    assert answer.status == 200, answer.body[:300]
    return [event for event in answer.json()["results"] if event["details"]["job"] == job]
