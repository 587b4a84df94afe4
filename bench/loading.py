"""Bulk loading rates: `generate_fhir`, `load_fhir` and a Bulk Submit import beside a raw
insert of the same rows.

The baseline inserts exactly the resource rows the commands stored (type, id, version,
time, body) as fast as the database takes them: PostgreSQL `COPY ... FROM STDIN`,
SQLite one `executemany` in one transaction. The commands do more per resource
(validation, reference checks, the compartment and identifier indexes), so the ratio
says what that costs. The import (bench/submit_import.py) loads the same bodies, one
NDJSON file per type, with Celery workers.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from bench.measure import _database, _run
from bench.submit_import import submit_import, write_submission
from tests.processes import process_env

COLUMNS = "resource_type, resource_id, version_id, last_updated, deleted, body"
STORE_TABLES = (
    "exports_compartmentmembership",
    "exports_groupmembership",
    "exports_resourceidentifier",
    "exports_resource",
)


class ScratchStore:
    """An empty store of its own (var dir, and database on PostgreSQL), made afresh."""

    def __init__(self, root: Path, base_url: str, broker: str = "") -> None:
        self.vendor = "postgresql" if base_url.startswith("postgres") else "sqlite"
        self.var_dir = root / f"{self.vendor}-loading"
        shutil.rmtree(self.var_dir, ignore_errors=True)
        # Its workers fetch submitted files from a Data Provider on 127.0.0.1.
        overrides = {"BULKOPS_ALLOW_PRIVATE_FETCH": "true"}
        if broker:
            overrides["CELERY_BROKER_URL"] = broker
        if self.vendor == "postgresql":
            import psycopg

            with psycopg.connect(base_url, autocommit=True) as connection:
                connection.execute('DROP DATABASE IF EXISTS "bulkops_bench_loading"')
            overrides["DATABASE_URL"] = _database(base_url, "bulkops_bench_loading")
        self.env = process_env(self.var_dir, **overrides)
        _run(self.env, "migrate", "--no-input")

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """A connection that commits and closes when the block ends. sqlite3's own `with`
        only commits; Python 3.13 warns about a connection left to the garbage collector."""
        if self.vendor == "postgresql":
            import psycopg

            with psycopg.connect(self.env["DATABASE_URL"]) as connection:
                yield connection
            return
        with closing(sqlite3.connect(self.var_dir / "bulkops.sqlite3")) as connection, connection:
            yield connection

    def rows(self) -> list[tuple[Any, ...]]:
        with self.connect() as connection:
            return list(
                connection.execute(f"SELECT {COLUMNS} FROM exports_resource ORDER BY id")  # noqa: S608
            )

    def empty(self) -> None:
        """Remove every stored resource. PostgreSQL truncates: after a DELETE, an analyze
        of the emptied table can record no rows on many pages, and with those statistics
        the foreign key checks at the next load's commit scanned a whole index per row
        (200 s instead of 0.6 s for 100k resources)."""
        with self.connect() as connection:
            if self.vendor == "postgresql":
                connection.execute(f"TRUNCATE {', '.join(STORE_TABLES)}")
                return
            for table in STORE_TABLES:
                connection.execute(f"DELETE FROM {table}")  # noqa: S608 - our table names

    def insert(self, rows: list[tuple[Any, ...]]) -> None:
        with self.connect() as connection:
            if self.vendor == "postgresql":
                copy_sql = f"COPY exports_resource ({COLUMNS}) FROM STDIN"
                with connection.cursor().copy(copy_sql) as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                connection.executemany(
                    f"INSERT INTO exports_resource ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",  # noqa: S608
                    rows,
                )


def _timed(label: str, count: int, seconds: float, db: str) -> dict[str, Any]:
    return {
        "bench": label,
        "db": db,
        "resources": count,
        "seconds": seconds,
        "resources_per_s": count / seconds,
    }


def _ndjson_lines(rows: list[tuple[Any, ...]]) -> Iterator[bytes]:
    for row in rows:
        body = row[-1]
        yield (body if isinstance(body, str) else body.decode()).encode() + b"\n"


def loading_rates(
    root: Path, base_url: str, patients: int, workers: list[int], broker: str = ""
) -> list[dict[str, Any]]:
    """Rows for generate_fhir, load_fhir (NDJSON), the Bulk Submit import at each worker
    count and the raw insert, with ratios."""
    store = ScratchStore(root, base_url, broker)
    started = time.perf_counter()
    _run(store.env, "generate_fhir", "--patients", str(patients), "--seed", "1", timeout=3600)
    generate = time.perf_counter() - started
    rows = store.rows()
    ndjson = store.var_dir / "all.ndjson"
    with ndjson.open("wb") as out:
        out.writelines(_ndjson_lines(rows))
    store.empty()
    started = time.perf_counter()
    _run(store.env, "load_fhir", str(ndjson), timeout=3600)
    load = time.perf_counter() - started
    submission = store.var_dir / "submission"
    write_submission(submission, rows)
    imports = []
    for count in workers:
        row = submit_import(store, submission, count)
        label = f"Bulk Submit import, {count} worker(s)"
        imports.append(_timed(label, row["resources"], row["seconds"], store.vendor))
    store.empty()
    started = time.perf_counter()
    store.insert(rows)
    baseline = time.perf_counter() - started
    ndjson.unlink()
    shutil.rmtree(submission)
    base = "COPY" if store.vendor == "postgresql" else "executemany"
    results = [
        _timed(f"raw insert baseline ({base})", len(rows), baseline, store.vendor),
        _timed(f"generate_fhir ({patients} patients)", len(rows), generate, store.vendor),
        _timed("load_fhir (one NDJSON file)", len(rows), load, store.vendor),
        *imports,
    ]
    for row in results[1:]:
        row["ratio_to_baseline"] = row["seconds"] / baseline
    return results
