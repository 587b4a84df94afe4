"""A second PostgreSQL transaction that holds store rows while code under test writes
them: for tests of what bulkops does when two writers cross."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection
from django.db.backends.utils import CursorWrapper

from fhirstore.models import Resource

TABLE = Resource._meta.db_table


@contextmanager
def other_writer() -> Iterator[CursorWrapper]:
    """A second connection's open transaction, committed when the block ends."""
    other = connection.copy()
    other.set_autocommit(False)
    try:
        with other.cursor() as cursor:
            yield cursor
        other.commit()
    finally:
        other.close()


def lock_resource(cursor: CursorWrapper, resource_type: str, resource_id: str) -> None:
    """Write the stored resource's row in the cursor's transaction (leaving it as it
    was), which holds the row until that transaction ends."""
    cursor.execute(
        f"UPDATE {TABLE} SET last_updated = last_updated "  # noqa: S608 - our table name
        "WHERE resource_type = %s AND resource_id = %s",
        [resource_type, resource_id],
    )


def wait_until_blocked_by(cursor: CursorWrapper, timeout: float = 30) -> None:
    """Return once another backend waits for a lock the cursor's transaction holds."""
    cursor.execute("SELECT pg_backend_pid()")
    (holder,) = cursor.fetchone()
    deadline = time.monotonic() + timeout
    with connection.cursor() as watcher:
        while time.monotonic() < deadline:
            watcher.execute(
                "SELECT count(*) FROM pg_locks "
                "WHERE NOT granted AND %s = ANY(pg_blocking_pids(pid))",
                [holder],
            )
            if watcher.fetchone()[0]:
                return
            time.sleep(0.05)
    raise AssertionError("nothing waited for the other transaction")
