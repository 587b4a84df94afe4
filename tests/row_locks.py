"""A second PostgreSQL transaction that holds store rows while code under test writes
them: for tests of what bulkops does when two writers cross.

`crossing_lines` and `cross` make a deadlock: the load holds Patient b and waits for
Patient a, which the second transaction holds, and that transaction then writes b."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from django.db import connection
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from fhirstore.models import Resource
from fhirstore.writes import BATCH_SIZE, put_resource

T = TypeVar("T")

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


def patient(pid: str, gender: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "gender": gender}


def crossing_lines() -> list[dict[str, Any]]:
    """Store Patients a and b; the lines of a file that writes them again, b in its
    first batch and a in its second (BATCH_SIZE - 1 new Patients between): a load of it
    holds b when it reaches a."""
    now = timezone.now()
    for pid in ("a", "b"):
        put_resource(resource_type="Patient", resource_id=pid, body=patient(pid, "female"), now=now)
    fillers = [patient(f"p{n}", "other") for n in range(BATCH_SIZE - 1)]
    return [patient("b", "male"), *fillers, patient("a", "male")]


def cross(start: Callable[[], T]) -> T:
    """Hold Patient a in a second transaction, `start` the load of `crossing_lines`, and
    once it waits for a, write b, which it holds: a deadlock, which the load, waiting
    longer, finds first and breaks by failing. What `start` returned."""
    with other_writer() as other:
        lock_resource(other, "Patient", "a")
        started = start()
        wait_until_blocked_by(other)
        lock_resource(other, "Patient", "b")
    return started


def crossed_genders() -> dict[str, str]:
    """Patients a's and b's stored gender: "male" once the crossing load wrote them."""
    rows = Resource.objects.filter(resource_type="Patient", resource_id__in=("a", "b"))
    return {row.resource_id: json.loads(row.body)["gender"] for row in rows}
