"""A worker keeps its database connection from one task to the next, as Django keeps a
web thread's between requests, instead of starting a PostgreSQL backend for every
partition of an export (docs/performance.md)."""

from __future__ import annotations

import os

import psycopg
import pytest

from tests.faults.conftest import deploy

pytestmark = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="counts PostgreSQL sessions",
)

WEB_THREADS = 2 * 4  # the test web server's gunicorn workers × threads (gunicorn.conf.py)


def sessions_opened(database_url: str) -> int:
    """Sessions ever opened to the database, this count's own included."""
    with psycopg.connect(database_url) as db:
        return db.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()[0]


def partitions_of_last_job(database_url: str) -> int:
    with psycopg.connect(database_url) as db:
        return db.execute(
            "SELECT partitions_total FROM exports_exportjob ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]


def test_a_worker_reuses_its_connection_across_the_partitions_of_an_export(tmp_path, redis):
    for deployment in deploy(tmp_path, redis, patients=10, BULKOPS_PARTITION_SIZE="10"):
        deployment.start_web()
        deployment.start_worker()
        client = deployment.client()
        # The first export connects every process that serves it.
        client.wait(client.kick_off("/Patient/$export", []), print, 120)
        before = sessions_opened(deployment.database_url)

        manifest = client.wait(client.kick_off("/Patient/$export", []), print, 120)

        opened = sessions_opened(deployment.database_url) - before - 1
        partitions = partitions_of_last_job(deployment.database_url)
        assert manifest["output"]
        assert partitions >= 3 * WEB_THREADS
        # At most the web threads that had not served a request before; a worker that
        # reconnected for every task would have opened one session a partition.
        assert opened <= WEB_THREADS, f"{opened} sessions for {partitions} partitions"
