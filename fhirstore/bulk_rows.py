"""Writing many store rows at once: PostgreSQL `COPY`, one `executemany` elsewhere.

Django's bulk_create sends PostgreSQL each column as an array parameter, and psycopg
escapes every quote of every JSON body in Python to build those arrays: on a bulk load
that cost more than all the rest of the write. bulk_update builds a CASE expression per
row and field, which cost five times the rest of a reload. COPY takes the rows as they
are. Rows are plain tuples of column values, in the order of `columns` (model field
names).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.db import OperationalError, connection, models, transaction
from django.db.backends.utils import CursorWrapper

logger = logging.getLogger(__name__)

# Fewer inserted rows than this never make a commit's foreign-key checks slow enough to
# be worth an analyze (see count_own_rows).
STATISTICS_AFTER_ROWS = 10_000


def _columns(model: type[models.Model], fields: Sequence[str]) -> list[str]:
    return [connection.ops.quote_name(model._meta.get_field(f).column) for f in fields]


def _copy(cursor: CursorWrapper, table: str, names: list[str], rows: Sequence[tuple]) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _staged(
    cursor: CursorWrapper, model: type[models.Model], names: list[str], rows: Sequence[tuple]
) -> str:
    """A temporary table of `names`' columns (types as in `model`'s table) holding only
    `rows`; its name. Dropped at commit, made again after a rolled-back savepoint took it
    away, emptied before each use in the transaction."""
    table = connection.ops.quote_name(model._meta.db_table)
    purpose = "_".join(name.strip('"') for name in names)
    staging = connection.ops.quote_name(f"bulkops_staging_{model._meta.db_table}_{purpose}"[:63])
    listed = ", ".join(names)
    cursor.execute(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} ON COMMIT DROP "  # noqa: S608 - our own names
        f"AS SELECT {listed} FROM {table} WITH NO DATA"
    )
    cursor.execute(f"TRUNCATE {staging}")
    _copy(cursor, staging, names, rows)
    return staging


def insert_rows(
    model: type[models.Model], columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert `rows` into `model`'s table, in the current transaction."""
    if not rows:
        return
    names = _columns(model, columns)
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            _copy(cursor, table, names, rows)
            return
        placeholders = ", ".join(["%s"] * len(names))
        cursor.executemany(
            f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders})",  # noqa: S608 - our own names
            rows,
        )


def update_rows(
    model: type[models.Model], columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Set `columns` of each row whose primary key is the first value of a tuple of `rows`
    to the values that follow it."""
    if not rows:
        return
    names = _columns(model, columns)
    pk = connection.ops.quote_name(model._meta.pk.column)
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            staging = _staged(cursor, model, [pk, *names], rows)
            settings = ", ".join(f"{name} = s.{name}" for name in names)
            cursor.execute(
                f"UPDATE {table} AS t SET {settings} FROM {staging} AS s WHERE t.{pk} = s.{pk}"  # noqa: S608 - our own names
            )
            return
        settings = ", ".join(f"{name} = %s" for name in names)
        cursor.executemany(
            f"UPDATE {table} SET {settings} WHERE {pk} = %s",  # noqa: S608 - our own names
            [(*values, key) for key, *values in rows],
        )


def insertable_absent() -> bool:
    """Whether `insert_absent` works on this database (PostgreSQL)."""
    return connection.vendor == "postgresql"


def insert_absent(
    model: type[models.Model],
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    unique: Sequence[str],
) -> list[tuple[Any, ...]]:
    """Insert those of `rows` whose `unique` columns no stored row holds (PostgreSQL only);
    (primary key, *unique values) of each row inserted.

    The rows are copied into a temporary table, then moved with INSERT ... ON CONFLICT DO
    NOTHING: the unique index decides, so a row another transaction is inserting at the
    same moment waits for it and counts as taken, rather than failing the load.
    """
    names = _columns(model, columns)
    keys = ", ".join(_columns(model, unique))
    pk = connection.ops.quote_name(model._meta.pk.column)
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        staging = _staged(cursor, model, names, rows)
        listed = ", ".join(names)
        cursor.execute(
            f"INSERT INTO {table} ({listed}) SELECT {listed} FROM {staging} "  # noqa: S608 - our own names
            f"ON CONFLICT ({keys}) DO NOTHING RETURNING {pk}, {keys}"
        )
        return cursor.fetchall()


def copy_new(
    model: type[models.Model], columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> list[int] | None:
    """Insert `rows` straight into `model`'s table with primary keys taken from its
    sequence, in `rows`' order (PostgreSQL only); the keys, or None, with nothing
    inserted, when a unique index holds one of the rows already.

    One COPY into the table: half the work of insert_absent's pass through a temporary
    table, for rows that are all new (a load into an empty store, or of new resources).
    A row another transaction is inserting at the same moment waits for it, then counts
    as held.
    """
    pk = model._meta.pk.column
    table = model._meta.db_table
    with connection.cursor() as cursor:
        # The sequence looked up once (MATERIALIZED), not once per row: 6 x faster.
        cursor.execute(
            "WITH named AS MATERIALIZED (SELECT pg_get_serial_sequence(%s, %s)::regclass AS s) "
            "SELECT nextval(s) FROM named, generate_series(1, %s)",
            [connection.ops.quote_name(table), pk, len(rows)],
        )
        pks = sorted(key for (key,) in cursor.fetchall())
        try:
            with transaction.atomic():
                _copy(
                    cursor,
                    connection.ops.quote_name(table),
                    [connection.ops.quote_name(pk), *_columns(model, columns)],
                    [(key, *row) for key, row in zip(pks, rows, strict=True)],
                )
        except connection.Database.IntegrityError:  # COPY's errors come from psycopg unwrapped
            return None
    return pks


def count_own_rows(model: type[models.Model], inserted: int) -> None:
    """Have PostgreSQL count the rows this transaction inserted into `model`'s table, when
    they are many and the table's statistics know of fewer.

    The index rows' foreign keys to the resource table are deferred: checked at commit,
    row by row, by a query planned from the table's statistics. An analyze that ran while
    the table was filling (autovacuum's, during a load into an empty store) cannot see a
    load's uncommitted rows and records none on many pages; planned from that, every
    check scans a whole index, and 100,000 resources took 200 s to commit instead of
    0.6 s. An analyze inside the transaction counts the transaction's own rows. A short
    lock timeout lets a second load go on without it while another load's analyze runs.
    """
    if connection.vendor != "postgresql" or inserted < STATISTICS_AFTER_ROWS:
        return
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
        (known,) = cursor.fetchone()
        if known >= inserted:
            return
        cursor.execute("SELECT current_setting('lock_timeout')")
        (lock_timeout,) = cursor.fetchone()
        try:
            with transaction.atomic():
                cursor.execute("SET LOCAL lock_timeout = '100ms'")
                # The row count is what the checks need; an analyze of the key column
                # alone updates it without sampling every body (less than half the time).
                pk = connection.ops.quote_name(model._meta.pk.column)
                cursor.execute(f"ANALYZE {connection.ops.quote_name(table)} ({pk})")
        except OperationalError:
            logger.info("statistics left to the analyze under way", extra={"table": table})
        finally:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [lock_timeout])
