"""`python -m bench --hosts 1 2 4`: the speed-up of a system export from more worker
hosts, each host a network namespace (bench/netns.py) running the systemd units'
commands (bench/cluster.py), with the CPU every host used during the export.

One web host, one beat host and up to max(--hosts) worker hosts (one worker process
each) share a services host (PostgreSQL, Redis, an S3 server). On one machine the hosts
share its cores, so the curve is bounded by them: the CPU columns show where the time
went (the services host's is mostly PostgreSQL).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.cluster import Cluster, missing_services
from bench.netns import Host, Network, unavailable_reason

RESOURCES_PER_PATIENT = 146  # what generate_fhir averages
PARTITIONS_PER_WORKER = 4  # of the largest worker count: the last ones leave few idle


def host_scaling(counts: list[int], resources: int, work_dir: Path) -> list[dict[str, Any]]:
    """One row per worker-host count: export seconds, speed-up against the first count,
    CPU seconds per host."""
    reason = unavailable_reason() or missing_services()
    if reason:
        raise SystemExit(f"--hosts: {reason}")
    patients = max(2, round(resources / RESOURCES_PER_PATIENT))
    partition_size = max(100, resources // (PARTITIONS_PER_WORKER * max(counts)))
    with Network() as network:
        cluster = Cluster(
            network,
            work_dir,
            BULKOPS_PARTITION_SIZE=str(partition_size),
            BULKOPS_POLL_BURST="1000000",
            BULKOPS_MAX_CONCURRENT_EXPORTS="1000000",
        )
        try:
            return _measure(cluster, network, counts, patients)
        finally:
            cluster.close()


def _measure(
    cluster: Cluster, network: Network, counts: list[int], patients: int
) -> list[dict[str, Any]]:
    web, beat = network.add_host("web"), network.add_host("beat")
    workers = [network.add_host(f"worker-{n}") for n in range(1, max(counts) + 1)]
    cluster.prepare(web, patients)
    base = cluster.start_web(web)
    cluster.start_beat(beat)
    measured = [cluster.services.host, web, beat, *workers]
    rows: list[dict[str, Any]] = []
    for count in counts:
        for host in workers[:count]:
            if host.name not in cluster.started:
                cluster.start_worker(host)
        for host in workers[count:]:
            cluster.stop_bulkops(host)
        # A small export first: every worker has booted and consumes, and its first
        # task's imports are not timed.
        for _ in range(count):
            cluster.wait(base, cluster.kick_off(base, "/$export?_type=Organization"))
        rows.append(_timed_export(cluster, base, measured, count))
        rows[-1]["speed_up"] = rows[0]["seconds"] / rows[-1]["seconds"]
    return rows


def _timed_export(cluster: Cluster, base: str, hosts: list[Host], count: int) -> dict[str, Any]:
    before = {host.name: host.cpu_seconds() for host in hosts}
    started = time.perf_counter()
    manifest = cluster.wait(base, cluster.kick_off(base, "/$export"))
    seconds = time.perf_counter() - started
    resources = sum(item["count"] for item in manifest["output"])
    return {
        "bench": f"system export, {count} worker host(s)",
        "resources": resources,
        "seconds": seconds,
        "resources_per_s": resources / seconds,
        "cpu_seconds": {host.name: host.cpu_seconds() - before[host.name] for host in hosts},
    }


def print_hosts_table(rows: list[dict[str, Any]]) -> None:
    names = list(rows[0]["cpu_seconds"])
    print(
        f"\n{'bench':<34}{'resources':>10}{'seconds':>9}{'res/s':>10}{'speedup':>8}"
        "  CPU seconds per host: " + " ".join(f"{name:>9}" for name in names)
    )
    for row in rows:
        cpu = " ".join(f"{row['cpu_seconds'][name]:>9.2f}" for name in names)
        print(
            f"{row['bench']:<34}{row['resources']:>10,}{row['seconds']:>9.2f}"
            f"{row['resources_per_s']:>10,.0f}{row['speed_up']:>8.2f}"
            f"  {'':22}{cpu}"
        )
