"""Reading a chunk of stored resources with their bodies as bytes, ready to write.

An export writes bodies verbatim, so decoding them to str only to encode them again is
wasted work on every row: on PostgreSQL the `text` column is loaded as raw bytes (it is
UTF-8, the database encoding Django requires), and the query runs on a plain cursor
rather than through the ORM's per-row iterator. Profiling the 1M-resource export put
those two steps at about a third of a worker's time (docs/performance.md).
"""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import QuerySet
from psycopg.adapt import Loader

Row = tuple[int, str, bool, str, bytes]  # id, resource_type, deleted, resource_id, body


def fetch_rows(rows: QuerySet[Any]) -> list[Row]:
    """All rows of `rows`, a `values_list("id", "resource_type", "deleted",
    "resource_id", "body")` of Resource, with `body` as UTF-8 bytes."""
    sql, params = rows.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.cursor.adapters.register_loader("text", _RawTextLoader)
            cursor.execute(sql, params)
            return cursor.fetchall()
        cursor.execute(sql, params)
        return [
            (pk, resource_type, bool(deleted), resource_id, body.encode())
            for pk, resource_type, deleted, resource_id, body in cursor.fetchall()
        ]


class _RawTextLoader(Loader):
    """psycopg loader: a `text` value as the bytes the server sent."""

    def load(self, data: Any) -> bytes:
        return bytes(data)
