"""Reading a chunk of stored resources as blocks of NDJSON records, one per resource type.

An export writes bodies verbatim, so the cheapest chunk is one the database has already
joined. On PostgreSQL a chunk of up to 10,000 rows comes back as one row per
(type, deleted) with its records joined by newlines (`string_agg`, loaded as raw bytes:
the column is UTF-8, the database encoding Django requires), and the worker writes each
block in one call instead of handling every row in Python. That took the CPU a 1M-resource
read costs worker and database together from about 3.5 s to 2.1 s
(docs/performance.md). SQLite runs inside the worker, where GROUP BY would copy every
body through a temporary B-tree, so there the rows are grouped in Python.

Stored bodies are minified JSON, one line each, so a newline separates records. A block
keeps the rows' id order: PostgreSQL hash-aggregates the id-ordered subquery in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import BooleanField, Case, F, QuerySet, TextField, When
from django.db.models.expressions import RawSQL
from psycopg.adapt import Loader

# A live row's record is its body; a tombstone's, its resource id (for a deleted[] line).
RECORD = Case(
    When(deleted=True, then=F("resource_id")), default=F("body"), output_field=TextField()
)


BLOCK_COLUMNS = "resource_type, deleted, count(*), max(id), string_agg(record, E'\\n')"


@dataclass(frozen=True)
class Block:
    resource_type: str
    deleted: bool
    count: int
    records: bytes  # `count` records joined by b"\n", in id order


class Chunk(NamedTuple):
    blocks: list[Block]
    last_id: int | None  # the highest id read; None when the chunk is empty


def read_chunk(rows: QuerySet[Any], limit: int | None = None) -> Chunk:
    """The first `limit` (None: all) of `rows`, a filtered Resource queryset, in id order."""
    selected = (
        rows.annotate(record=RECORD)
        .order_by("id")
        .values_list("id", "resource_type", "deleted", "record")[:limit]
    )
    sql, params = selected.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.cursor.adapters.register_loader("text", _RawTextLoader)
            # `sql` is Django's compiled query; its values travel in `params`.
            cursor.execute(
                f"SELECT {BLOCK_COLUMNS} FROM ({sql}) AS chunk GROUP BY resource_type, deleted",  # noqa: S608
                params,
            )
            found = cursor.fetchall()
            return Chunk(
                [Block(t, deleted, n, records) for t, deleted, n, _, records in found],
                max((row[3] for row in found), default=None),
            )
        cursor.execute(sql, params)
        found = cursor.fetchall()
        grouped: dict[tuple[str, bool], list[bytes]] = {}
        for _, resource_type, deleted, record in found:
            grouped.setdefault((resource_type, bool(deleted)), []).append(record.encode())
        return Chunk(
            [Block(t, deleted, len(r), b"\n".join(r)) for (t, deleted), r in grouped.items()],
            found[-1][0] if found else None,
        )


def with_ids(rows: QuerySet[Any], ids: list[int]) -> QuerySet[Any]:
    """Those of `rows` (a Resource queryset) whose id is one of `ids`, ascending.

    On PostgreSQL the ids travel as one array parameter, written as text: 10,000 ids
    bound one by one (`id__in`) took longer to adapt and plan than the read itself
    (60 ms against 30 ms a chunk of a Group export). The id range lets the database
    walk the primary key over just that stretch."""
    rows = rows.filter(id__gte=ids[0], id__lte=ids[-1])
    if connection.vendor != "postgresql":
        return rows.filter(id__in=ids)
    listed = "{" + ",".join(map(str, ids)) + "}"
    column = f'"{rows.model._meta.db_table}"."id"'
    # The column is the model's own; the ids travel in the parameter.
    matches = RawSQL(f"{column} = ANY(%s::bigint[])", [listed], output_field=BooleanField())  # noqa: S611
    return rows.filter(matches)


class _RawTextLoader(Loader):
    """psycopg loader: a `text` value as the bytes the server sent."""

    def load(self, data: Any) -> bytes:
        return bytes(data)
