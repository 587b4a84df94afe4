from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.faults.deployment import Deployment, Redis, fresh_database

# Short leases and a fast reaper so recovery happens within seconds; polling is never
# throttled because the tests poll faster than Retry-After on purpose.
FAST_RECOVERY = {
    "BULKOPS_PARTITION_LEASE": "5",
    "BULKOPS_REAPER_INTERVAL": "1",
    "BULKOPS_RETRY_AFTER": "1",
    "BULKOPS_POLL_BURST": "100000",
    "BULKOPS_PARTITION_SIZE": "40",
    "BULKOPS_MAX_RESOURCES_PER_FILE": "25",
}


@pytest.fixture(autouse=True)
def loopback_fetches(settings) -> None:
    """The suite's own client talks to deployments it started on 127.0.0.1."""
    settings.BULKOPS_ALLOW_PRIVATE_FETCH = True


@pytest.fixture
def redis() -> Iterator[Redis]:
    server = Redis()
    server.start()
    yield server
    server.kill()


def deploy(tmp_path, redis: Redis, *, patients: int = 30, **settings: str) -> Iterator[Deployment]:
    with ExitStack() as stack:
        database = stack.enter_context(fresh_database())
        deployment = Deployment(
            tmp_path / "var",
            stack,
            **{"CELERY_BROKER_URL": redis.url, **FAST_RECOVERY, **database, **settings},
        )
        deployment.prepare(patients)
        yield deployment
