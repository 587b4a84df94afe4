"""Reading a chunk of stored resources as blocks of NDJSON records, one per resource type.

An export writes bodies verbatim, so a chunk is read as the rows' bytes, in id order,
and grouped by (type, deleted) here: each block is written in one call instead of one
per row. On PostgreSQL the bodies come back as the bytes the server sent (the column is
UTF-8, the database encoding Django requires), never decoded to `str` and encoded again:
the rows are read in the binary result format, in which psycopg's C bytea loader takes
a body as it is. A loader of the text format did the same in a Python call per row.
Reading 40,000 rows (22 MB) of a Group export of the 1M store in four chunks, that cut
the worker's CPU from 78-82 to 57-64 ms, with the database's unchanged (it runs the
same statement); about 24 ms of what is left is libpq receiving the bytes, which a
plain `COPY ... TO STDOUT` of them costs as well, and the rest is psycopg building the
rows (10-13 ms), putting them in order and grouping them (7-9 ms, the loop itself 3),
joining the blocks (5 ms) and the query (3-4 ms). Grouping without a Python loop cost
more: sorting on (type, deleted) with `itertools.groupby` 4 times the loop's CPU,
columns from `zip(*rows)` appended to by `map` 2 to 3 times.

The database used to join each block itself (`string_agg` over the chunk grouped by
type). That cost as much CPU, worker and database together (a 200k-resource system
export: 1.03-1.33 s then, 1.03-1.26 s now; its Group export: 1.37-1.46 s, 1.34-1.38 s),
but the grouping was the planner's choice: for a Group export's chunks, whose
`id = ANY(...)` it estimated at 520 rows instead of 10,000, it sorted the chunk by
type, spilling 6 MB of bodies to disk per chunk, and that sort did not keep the id
order within a type, so Group exports wrote their files out of store order.

Stored bodies are minified JSON, one line each, so a newline separates records.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter
from typing import Any, NamedTuple

import psycopg
from django.db import connection, transaction
from django.db.models import BooleanField, Case, F, QuerySet, TextField, When
from django.db.models.expressions import RawSQL
from psycopg import pq
from psycopg.types.string import ByteaBinaryLoader

RUNS_PER_QUERY = 150  # runs of ids one chunk's query reads as ranges (`read_id_chunk`)
# A live row's record is its body; a tombstone's, its resource id (for a deleted[] line).
RECORD = Case(
    When(deleted=True, then=F("resource_id")), default=F("body"), output_field=TextField()
)


@dataclass(frozen=True)
class Block:
    resource_type: str
    deleted: bool
    count: int
    records: bytes  # `count` records joined by b"\n", in id order
    # The rows' `Resource.refers_to`, joined by b" "; None when not read or when a row's
    # is not known, and the records are searched instead (ReferenceCollector).
    refers_to: bytes | None = None


class Chunk(NamedTuple):
    blocks: list[Block]
    last_id: int | None  # the highest id read; None when the chunk is empty


def read_chunk(rows: QuerySet[Any], limit: int | None = None) -> Chunk:
    """The first `limit` (None: all) of `rows`, a filtered Resource queryset, in id order.

    All of them are put in id order here rather than by the database, which may read
    them in table order (`read_id_chunk`) and would sort their bodies."""
    selected = record_columns(rows)
    selected = selected.order_by() if limit is None else selected.order_by("id")[:limit]
    sql, params = selected.query.sql_with_params()
    if connection.vendor == "postgresql":
        found = binary_rows(sql, params)
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            found = [
                (pk, t, dead, record.encode(), None if keys is None else keys.encode())
                for pk, t, dead, record, keys in cursor
            ]
    return _grouped(found, in_order=limit is not None)


def record_columns(rows: QuerySet[Any]) -> QuerySet[Any]:
    """What a chunk reads of each row: id, type, tombstone flag, record, and the
    references the store found in its body (`Resource.refers_to`: "" for most rows,
    NULL for a row stored before the store kept them)."""
    return rows.annotate(record=RECORD).values_list(
        "id", "resource_type", "deleted", "record", "refers_to"
    )


def _grouped(found: list[tuple[int, str, bool, bytes, bytes]], *, in_order: bool) -> Chunk:
    """The rows `found` as blocks per (type, deleted), put in id order unless they are."""
    if not in_order:
        found.sort(key=itemgetter(0))
    # Live rows' records by type, then tombstones': indexed by `deleted`, no key per row.
    grouped: tuple[dict[str, list[bytes]], dict[str, list[bytes]]] = ({}, {})
    refers_to: dict[str, list[bytes]] = {}  # the rows' that refer to any
    unknown: set[str] = set()  # the types of rows whose references the store lacks
    for _, resource_type, deleted, record, keys in found:
        grouped[deleted].setdefault(resource_type, []).append(record)
        if keys:
            refers_to.setdefault(resource_type, []).append(keys)
        elif keys is None:
            unknown.add(resource_type)
    return Chunk(
        [
            Block(
                t,
                deleted,
                len(r),
                b"\n".join(r),
                None if t in unknown else b" ".join(refers_to.get(t, ())),
            )
            for deleted in (False, True)
            for t, r in grouped[deleted].items()
        ],
        found[-1][0] if found else None,
    )


def binary_rows(sql: str, params: Any) -> list[tuple[Any, ...]]:
    """The rows of `sql` read in PostgreSQL's binary result format, in which a `text`
    value is the bytes the server holds: psycopg's C bytea loader returns them as they
    are, where a loader for text results costs a Python call per row.

    Django's cursor binds parameters on the client, which cannot ask for binary results,
    so the statement is the one it would send, parameters merged in as literals: the
    database plans and runs the same query as through Django's cursor."""
    with connection.cursor() as cursor:
        statement = cursor.mogrify(sql, params)
        binary = psycopg.Cursor(cursor.connection)
    binary.format = pq.Format.BINARY
    binary.adapters.register_loader("text", ByteaBinaryLoader)
    # Wrapped as Django wraps its own: its error classes, query log and execute wrappers.
    if connection.queries_logged:
        wrapped = connection.make_debug_cursor(binary)
    else:
        wrapped = connection.make_cursor(binary)
    with wrapped:
        wrapped.execute(statement)
        return wrapped.fetchall()


def read_id_chunk(rows: QuerySet[Any], ids: list[int]) -> Chunk:
    """Those of `rows` (a Resource queryset) whose id is one of `ids`, ascending, as
    `read_chunk` gives them.

    On PostgreSQL the ids are sent as the runs of consecutive ids they make, when there
    are at most RUNS_PER_QUERY of them: a patient's resources are stored one after
    another when a Bundle or the generator loads them, so the 10,000 ids of a Group
    export's chunk make about 70 runs. The database reads each run as one range of the
    primary key, the runs coming from two arrays (`unnest`, a `LATERAL` subquery per
    run): for 40,000 rows of the 1M store that cost the database 37-38 ms of CPU, where
    the same runs written as 70 `BETWEEN` arms of one condition cost 54-56 ms, 2.8 ms of
    each chunk's being the planning of the arms. The planner guesses a tenth of the table
    for a run it cannot see, so it would compile the statement with JIT (43 ms for a
    4 ms read): the read turns JIT off for itself (`SET LOCAL`).

    More runs (data loaded type by type, runs of one id) cost more one by one than as
    one array of ids, written as text, that the primary key is searched for: 10,000
    single-id runs cost the database 104 ms, the array 92 ms; 10,000 ids bound one by
    one (`id__in`) took longer to adapt and plan than the read itself (60 ms against
    30 ms a chunk of a Group export); the ids' range lets the database walk the primary
    key over just that stretch."""
    if connection.vendor != "postgresql":
        return read_chunk(rows.filter(id__gte=ids[0], id__lte=ids[-1], id__in=ids))
    column = f'"{rows.model._meta.db_table}"."id"'
    runs = id_runs(ids)
    if len(runs) > RUNS_PER_QUERY:
        listed = "{" + ",".join(map(str, ids)) + "}"
        # The column is the model's own; the ids travel in the parameter.
        matches = RawSQL(f"{column} = ANY(%s::bigint[])", [listed], output_field=BooleanField())  # noqa: S611
        return read_chunk(rows.filter(matches, id__gte=ids[0], id__lte=ids[-1]))
    # The column is the model's own; `run` is the statement's own alias below.
    in_run = RawSQL(f"{column} BETWEEN run.lo AND run.hi", [], output_field=BooleanField())  # noqa: S611
    sql, params = record_columns(rows.filter(in_run)).order_by().query.sql_with_params()
    # `sql` is the queryset's own compiled SQL, its values still parameters.
    runs_from = "unnest(%s::bigint[], %s::bigint[]) AS run(lo, hi)"
    statement = f"SELECT chunk.* FROM {runs_from} CROSS JOIN LATERAL ({sql}) AS chunk"  # noqa: S608
    bounds = ["{" + ",".join(str(run[end]) for run in runs) + "}" for end in (0, 1)]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")
        return _grouped(binary_rows(statement, [*bounds, *params]), in_order=False)


def id_runs(ids: list[int]) -> list[tuple[int, int]]:
    """The (first, last) of each run of consecutive ids in `ids`, ascending."""
    runs = []
    first = previous = ids[0]
    for resource_id in ids[1:]:
        if resource_id != previous + 1:
            runs.append((first, previous))
            first = resource_id
        previous = resource_id
    runs.append((first, previous))
    return runs
