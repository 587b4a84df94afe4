"""The Bulk Submit import rate: a manifest of one NDJSON file per type, pulled from a
loopback Data Provider and loaded by Celery workers, one task per file.

The clock starts when bulkops asks the provider for the manifest and stops when the
last file is loaded (polled every POLL_SECONDS), so it counts the manifest fetch, every
download, parse and write, and the commit of each file. The submission is registered
through the ORM (`$bulk-submit` itself, with its token and the request, is the web
tier's and measured apart from this). A first submission naming a missing file starts
the workers on a task and is not timed.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.measure import _run, purge_tasks
from tests.processes import celery_worker_process

POLL_SECONDS = 0.05
SUBMIT = """
from pathlib import Path
from django.utils import timezone
from accounts.demo import ensure_demo_client
from submissions import services
from submissions.models import Submission, SubmittedManifest
now = timezone.now()
client = ensure_demo_client(Path({key_path!r}))
submission = Submission.objects.create(
    client=client, submission_id={submission_id!r}, status="completed",
    created_at=now, updated_at=now,
)
manifest = SubmittedManifest.objects.create(
    submission=submission, url={url!r}, fhir_base_url={base!r}, created_at=now
)
services.fetch_manifest(manifest_id=manifest.pk, now=now)
"""
SUBMISSION_TABLES = (
    "submissions_submittedfile",
    "submissions_submittedmanifest",
    "submissions_submission",
)
FILES = "SELECT count(*), coalesce(sum(resource_count), 0) FROM submissions_submittedfile"
UNFINISHED = f"{FILES} WHERE status IN ('queued', 'loading')"
LOADED = f"{FILES} WHERE status = 'loaded'"


class _Provider(SimpleHTTPRequestHandler):
    """Serves the folder; notes when the manifest is first asked for."""

    asked: dict[str, float]

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.asked.setdefault(self.path, time.perf_counter())
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _provider(folder: Path) -> Iterator[tuple[str, dict[str, float]]]:
    asked: dict[str, float] = {}
    handler = type("Handler", (_Provider,), {"asked": asked})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def write_submission(folder: Path, rows: list[tuple[Any, ...]]) -> int:
    """One NDJSON file per type (bodies as stored: the last column of `rows`) and a
    manifest listing them with their counts, as an export's manifest does; the number of
    files."""
    folder.mkdir(parents=True, exist_ok=True)
    by_type: dict[str, list[bytes]] = defaultdict(list)
    for row in rows:
        body = row[-1]
        by_type[row[0]].append((body if isinstance(body, str) else body.decode()).encode())
    for kind, bodies in by_type.items():
        (folder / f"{kind}.ndjson").write_bytes(b"\n".join(bodies) + b"\n")
    (folder / "missing.json").write_text(_manifest([("Patient", "missing.ndjson", 1)]))
    outputs = [(kind, f"{kind}.ndjson", len(bodies)) for kind, bodies in by_type.items()]
    (folder / "manifest.json").write_text(_manifest(outputs))
    return len(by_type)


def _manifest(outputs: list[tuple[str, str, int]]) -> str:
    return json.dumps(
        {
            "transactionTime": "2025-01-01T00:00:00Z",
            "requiresAccessToken": False,
            "output": [
                {"type": kind, "url": name, "count": count} for kind, name, count in outputs
            ],
            "error": [],
        }
    )


def submit_import(store: Any, folder: Path, workers: int) -> dict[str, Any]:
    """Seconds from the manifest fetch to the last file loaded, into `store` (a
    bench.loading.ScratchStore, emptied first), with `workers` worker processes."""
    purge_tasks(store.env)
    with store.connect() as connection:  # an earlier run's submissions
        for table in SUBMISSION_TABLES:
            connection.execute(f"DELETE FROM {table}")  # noqa: S608 - our table names
    with celery_worker_process(store.env, concurrency=workers), _provider(folder) as (base, asked):
        _submit(store, base, "warm-up", "missing.json")
        _wait_for_files(store)
        store.empty()
        _submit(store, base, "bench", "manifest.json")
        ended = _wait_for_files(store)
    with store.connect() as connection:
        files, resources = connection.execute(LOADED).fetchone()
    expected = len(list(folder.glob("*.ndjson")))
    if files != expected:
        raise RuntimeError(f"{files} of {expected} submitted files loaded")
    return {
        "db": store.vendor,
        "resources": resources,
        "files": files,
        "workers": workers,
        "seconds": ended - asked["/manifest.json"],
    }


def _submit(store: Any, base: str, submission_id: str, manifest: str) -> None:
    script = SUBMIT.format(
        key_path=str(store.var_dir / "bench-key.json"),
        submission_id=submission_id,
        url=f"{base}/{manifest}",
        base=base,
    )
    _run(store.env, "shell", "--no-imports", "-c", script)


def _wait_for_files(store: Any, timeout: float = 3600) -> float:
    """When no submitted file is queued or loading any more. One connection polls, each
    query in a transaction of its own: a connection per poll started a PostgreSQL
    backend 20 times a second on the cores the workers use."""
    deadline = time.perf_counter() + timeout
    with store.connect() as connection:
        while time.perf_counter() < deadline:
            unfinished, _ = connection.execute(UNFINISHED).fetchone()
            connection.commit()
            if not unfinished:
                return time.perf_counter()
            time.sleep(POLL_SECONDS)
    raise RuntimeError(f"submitted files still loading after {timeout} s")
