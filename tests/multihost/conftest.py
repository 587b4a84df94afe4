"""Hosts in network namespaces (bench/netns.py) running bulkops as deploy/systemd's
units start it. Needs root, `ip netns`, PostgreSQL's server binaries, redis-server and
moto's server; skipped with the reason where one is missing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.cluster import Cluster, missing_services
from bench.netns import Network, unavailable_reason

# Short leases and a fast reaper: a lost host's partition is handed on within seconds.
# Small partitions and files: an export of a few thousand resources still spreads over
# both worker hosts and many objects.
FAST_RECOVERY = {
    "BULKOPS_PARTITION_LEASE": "5",
    "BULKOPS_REAPER_INTERVAL": "1",
    "BULKOPS_RETRY_AFTER": "1",
    "BULKOPS_POLL_BURST": "100000",
    "BULKOPS_PARTITION_SIZE": "150",
    "BULKOPS_MAX_RESOURCES_PER_FILE": "100",
}


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    reason = unavailable_reason() or missing_services()
    if reason:
        pytest.skip(f"multi-host test: {reason}")
    # The namespaces, links and every process in them go when the module's tests end,
    # failed or not.
    with Network() as network:
        yield network


@pytest.fixture(scope="module")
def cluster(network: Network, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(network, tmp_path_factory.mktemp("hosts"), **FAST_RECOVERY)
    try:
        yield cluster
    finally:
        cluster.close()
