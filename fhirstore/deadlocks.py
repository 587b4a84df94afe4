"""Running a store transaction again when PostgreSQL fails it to break a deadlock.

Two transactions that write some of the same resources in opposite orders (two files
of one submission, a submission beside load_fhir or an upload) can each wait for a row
the other holds. PostgreSQL breaks the cycle by failing one of them (SQLSTATE 40P01).
The failed one has written nothing, so running it again from the start is safe, and
the other has by then moved on.

The whole transaction must be run again: rolling back to a savepoint is not enough.
A row written in a savepoint that was released before the failure stays locked until
the outermost transaction ends, so the other transaction would still be waiting for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db import DatabaseError, connection

ATTEMPTS = 3

T = TypeVar("T")


class StillDeadlocked(Exception):
    """PostgreSQL failed the transaction to break a deadlock on each of ATTEMPTS runs."""

    def __init__(self) -> None:
        super().__init__(
            f"it deadlocked {ATTEMPTS} times with other writes of the same resources, "
            "and nothing of it was written"
        )


def deadlocked(error: BaseException) -> bool:
    """Whether PostgreSQL failed the transaction to break a deadlock. The error is
    either Django's wrapper around psycopg's or psycopg's own: COPY's errors come
    through unwrapped."""
    return any(getattr(e, "sqlstate", None) == "40P01" for e in (error, error.__cause__))


def run_again_after_deadlocks(transaction: Callable[[], T]) -> T:
    """Run `transaction`, which opens the outermost transaction itself, up to ATTEMPTS
    times while PostgreSQL fails it to break a deadlock. Any other error is raised."""
    if connection.in_atomic_block:
        raise RuntimeError("only an outermost transaction can be run again")
    for _ in range(ATTEMPTS):
        try:
            return transaction()
        except (DatabaseError, connection.Database.Error) as error:
            if not deadlocked(error):
                raise
    raise StillDeadlocked
