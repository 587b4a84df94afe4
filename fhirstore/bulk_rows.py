"""Inserting many store rows at once: PostgreSQL `COPY`, one `executemany` elsewhere.

Django's bulk_create sends PostgreSQL each column as an array parameter, and psycopg
escapes every quote of every JSON body in Python to build those arrays: on a bulk load
that cost more than all the rest of the write. COPY takes the rows as they are. Rows
are plain tuples of column values, in the order of `columns` (model field names).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection, models


def insert_rows(
    model: type[models.Model], columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert `rows` into `model`'s table, in the current transaction."""
    if not rows:
        return
    meta = model._meta
    names = ", ".join(connection.ops.quote_name(meta.get_field(c).column) for c in columns)
    table = connection.ops.quote_name(meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        placeholders = ", ".join(["%s"] * len(columns))
        cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({placeholders})", rows)  # noqa: S608 - our own table and column names


def new_primary_keys(model: type[models.Model], count: int) -> list[int] | None:
    """`count` primary keys taken from the table's sequence, in ascending order, so rows
    can be copied with their keys and the rows pointing at them copied next; None where
    the database has no sequence to take them from (the caller inserts and reads the
    keys back instead)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [model._meta.db_table, model._meta.pk.column, count],
        )
        return sorted(key for (key,) in cursor.fetchall())
