"""The measurements behind `python -m bench`, each against real processes."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import sqlite3
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.load import Request, run_load
from exports.bulk_client import (
    ASSERTION_TYPE,
    BulkExportClient,
    HttpResult,
    TokenSource,
    http,
    make_client_assertion,
)
from tests.processes import BIN, ROOT, manage, process_env

GROUP_SIZE = 1000
POLL_SECONDS = 0.1
LOAD_SECONDS = 5.0
MAX_TOKEN_REQUESTS = 6000  # signed up front; ~2.5 s of the bench's own CPU
# Members spread evenly over the store (every n-th patient), as a real cohort's are: the
# first patients' resources alone would sit together at the start of every index.
MAKE_GROUP = """
from fhirstore.groups import upsert_group
from fhirstore.models import Resource
ids = list(Resource.objects.live().filter(resource_type="Patient")
           .order_by("pk").values_list("resource_id", flat=True))
ids = ids[:: max(1, len(ids) // {size})][:{size}]
upsert_group(group_id="bench-group", name="Bench group", patient_ids=ids, actor="bench")
print(len(ids))
"""


@dataclass
class BenchStore:
    """A generated store in its own var dir (and its own PostgreSQL database)."""

    env: dict[str, str]
    var_dir: Path
    vendor: str
    resources: int
    client_id: str
    key: dict[str, Any]
    group_id: str
    group_size: int

    @classmethod
    def prepare(cls, root: Path, patients: int, broker: str = "") -> BenchStore:
        base_url = os.environ.get("DATABASE_URL", "")
        vendor = "postgresql" if base_url.startswith("postgres") else "sqlite"
        var_dir = root / f"{vendor}-{patients}-patients"
        overrides = {
            "BULKOPS_RETRY_AFTER": "1",
            "BULKOPS_POLL_BURST": "1000000",
            "BULKOPS_MAX_CONCURRENT_EXPORTS": "1000000",
        }
        if broker:
            overrides["CELERY_BROKER_URL"] = broker
        if vendor == "postgresql":
            overrides["DATABASE_URL"] = _database(base_url, f"bulkops_bench_{patients}")
        env = process_env(var_dir, **overrides)
        ready = var_dir / "bench-store.json"
        _run(env, "migrate", "--no-input")  # a reused store gets new indexes too
        _run(env, "fill_references", timeout=3600)  # and references of rows stored before
        if not ready.exists():
            _run(env, "generate_fhir", "--patients", str(patients), "--seed", "1", timeout=3600)
            seeded = _run(env, "seed_demo", "--key-file", str(var_dir / "bench-key.json"))
            client_id = re.search(r"--client-id (\S+)", seeded).group(1)
            ready.write_text(json.dumps({"client_id": client_id}))
        # Every run: a reused store gets the group as this version of the bench makes it,
        # and the count of live resources includes that Group.
        members = int(
            _run(env, "shell", "--no-imports", "-c", MAKE_GROUP.format(size=GROUP_SIZE)).split()[-1]
        )
        count = _run(
            env,
            "shell",
            "--no-imports",
            "-c",
            "from fhirstore.models import Resource; print(Resource.objects.live().count())",
        ).split()[-1]
        facts = json.loads(ready.read_text())
        key = json.loads((var_dir / "bench-key.json").read_text())["keys"][0]
        return cls(
            env,
            var_dir,
            vendor,
            int(count),
            facts["client_id"],
            key,
            "bench-group",
            members,
        )

    @property
    def database_url(self) -> str:
        return self.env.get("DATABASE_URL", "")


def _database(base_url: str, name: str) -> str:
    """A database `name` on the server of `base_url`, created if missing."""
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{name}"')
    return urllib.parse.urlsplit(base_url)._replace(path=f"/{name}").geturl()


def _run(env: dict[str, str], *args: str, timeout: float = 600) -> str:
    result = manage(env, *args, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {args[0]} failed: {result.stderr[-2000:]}")
    return result.stdout


@contextmanager
def profiled(pid: int, out: Path | None) -> Iterator[None]:
    """While the block runs, sample process `pid` and its children with py-spy (the
    `bench` extra) into a speedscope file `out`; nothing when `out` is None."""
    if out is None:
        yield
        return
    spy = subprocess.Popen(
        [str(BIN / "py-spy"), "record", "--pid", str(pid), "--subprocesses"]
        + ["--format", "speedscope", "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)  # let it attach
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)


def web_pid(base: str) -> int:
    """The gunicorn master this bench started for `base` (its workers are children)."""
    bind = base.removeprefix("http://").encode()
    for proc in Path("/proc").iterdir():
        try:
            if (
                proc.name.isdigit()
                and bind in (proc / "cmdline").read_bytes()
                and int((proc / "stat").read_text().split()[3]) == os.getpid()
            ):
                return int(proc.name)
        except OSError:
            continue
    raise RuntimeError(f"no gunicorn for {base}")


def purge_tasks(env: dict[str, str]) -> None:
    """Drop queued tasks (the kick-off bench's cancelled jobs, another store's run on a
    shared broker) so workers started with `env` start on an empty queue."""
    subprocess.run(
        [str(BIN / "celery"), "-A", "bulkops", "purge", "-f"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=True,
        timeout=60,
    )


def raw_dump(store: BenchStore) -> tuple[float, int]:
    """Seconds and bytes of the fastest plain dump of the same live bodies to a file, one
    per line: the better of two, because the first may read from disk what the exports
    after it find in the page cache (a 5M COPY took 16.71 s once and 8.02-11.76 s in
    other runs)."""
    return min(_raw_dump_once(store) for _ in range(2))


def _raw_dump_once(store: BenchStore) -> tuple[float, int]:
    out = store.var_dir / "raw-dump.ndjson"
    started = time.perf_counter()
    if store.vendor == "postgresql":
        import psycopg

        query = "COPY (SELECT body FROM exports_resource WHERE NOT deleted) TO STDOUT"
        with (
            psycopg.connect(store.database_url) as connection,
            out.open("wb") as handle,
            connection.cursor().copy(query) as copy,
        ):
            for data in copy:
                handle.write(data)
    else:
        connection = sqlite3.connect(store.var_dir / "bulkops.sqlite3")
        with out.open("w") as handle:
            for (body,) in connection.execute(
                "SELECT body FROM exports_resource WHERE deleted = 0"
            ):
                handle.write(body)
                handle.write("\n")
        connection.close()
    elapsed = time.perf_counter() - started
    size = out.stat().st_size
    out.unlink()
    return elapsed, size


def tree_peak_rss_mb(pid: int) -> float:
    """The largest peak RSS (VmHWM) among a process and its descendants."""
    peak = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        if match:
            peak = max(peak, int(match[1]) / 1024)
        pending += [int(child) for child in children]
    return peak


# The bench talks only to the servers it started on 127.0.0.1, run by an operator from a
# shell: the address guard of bulkops.outbound is lifted for its requests.
def _client(store: BenchStore, base: str) -> BulkExportClient:
    tokens = TokenSource(
        f"{base}/auth/token", store.client_id, store.key, "system/*.read", allow_private=True
    )
    return BulkExportClient(f"{base}/fhir", tokens, allow_private=True)


def _http(method: str, url: str, headers: dict[str, str]) -> HttpResult:
    return http(method, url, headers=headers, allow_private=True)


def run_export(
    store: BenchStore, base: str, path: str, params: tuple[tuple[str, str], ...] = ()
) -> dict[str, Any]:
    """Kick-off to complete manifest through the real path; the job is deleted after.

    `seconds` runs from the kick-off request to the moment the job completed (its
    `completed_at`, written by the worker on this host's clock as it commits the
    manifest): from then on the status URL answers with the manifest. The client polls
    every POLL_SECONDS, so the time it saw the manifest (`seen_seconds`) is later by
    up to one interval, a delay of the bench's own client that the raw dump, timed to
    its last byte, does not have (on average 0.05 s, a tenth of a Group export of the
    1M store)."""
    client = _client(store, base)
    client.tokens.token()
    started_at = time.time()
    started = time.perf_counter()
    status_url = client.kick_off(path, list(params))
    while True:
        result = _http("GET", status_url, client._auth())
        if result.status == 200:
            break
        if result.status != 202:
            raise RuntimeError(f"export failed: HTTP {result.status} {result.body[:300]!r}")
        time.sleep(POLL_SECONDS)
    seen = time.perf_counter() - started
    seconds = _completed_at(store, status_url.rsplit("/", 1)[1]) - started_at
    manifest = json.loads(result.body)
    resources = sum(item["count"] for item in manifest["output"])
    job_dir = store.var_dir / "exports" / status_url.rsplit("/", 1)[1]
    size = sum(f.stat().st_size for f in job_dir.iterdir())
    peaks = _process_peaks()
    _http("DELETE", status_url, client._auth())
    return {
        "db": store.vendor,
        "resources": resources,
        "seconds": seconds,
        "seen_seconds": seen,
        "resources_per_s": resources / seconds,
        "bytes": size,
        "mb_per_s": size / 1e6 / seconds,
        **peaks,
    }


def _completed_at(store: BenchStore, job_uuid: str) -> float:
    """When the export job `job_uuid` completed, in seconds since the epoch."""
    query = "SELECT completed_at FROM exports_exportjob WHERE uuid = {}"
    if store.vendor == "postgresql":
        import psycopg

        with psycopg.connect(store.database_url) as connection:
            (completed,) = connection.execute(query.format("%s"), (job_uuid,)).fetchone()
        return completed.timestamp()
    connection = sqlite3.connect(store.var_dir / "bulkops.sqlite3")
    (completed,) = connection.execute(query.format("?"), (job_uuid.replace("-", ""),)).fetchone()
    connection.close()
    return datetime.fromisoformat(completed).replace(tzinfo=UTC).timestamp()


def _process_peaks() -> dict[str, float]:
    """Peak RSS of the bench's worker and web process trees (found by command line)."""
    peaks = {"worker_peak_rss_mb": 0.0, "web_peak_rss_mb": 0.0}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            parent = int((proc / "stat").read_text().split()[3])
        except OSError:
            continue
        if parent != os.getpid():
            continue
        key = "worker_peak_rss_mb" if "celery" in command else "web_peak_rss_mb"
        peaks[key] = max(peaks[key], tree_peak_rss_mb(int(proc.name)))
    return peaks


def _form(store: BenchStore, token_url: str) -> bytes:
    return urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": make_client_assertion(store.client_id, store.key, token_url),
            "scope": "system/*.read",
        }
    ).encode()


def web_floor(
    store: BenchStore, base: str, concurrency: int, seconds: float = LOAD_SECONDS
) -> dict[str, Any]:
    """The web tier's floor: SMART discovery, the cheapest answer the same gunicorn
    gives (no database, no key), through the same middleware and the same generator.
    The token, kick-off and poll rows are compared with it at the same concurrency."""
    request = Request("GET", f"{base}/.well-known/smart-configuration")
    return _timed(
        store,
        f"SMART discovery (web floor), {concurrency} concurrent",
        200,
        lambda: request,
        concurrency,
        seconds,
    )


def token_latency(
    store: BenchStore, base: str, concurrency: int, seconds: float = LOAD_SECONDS
) -> dict[str, Any]:
    """Token requests from `concurrency` clients; assertions are signed before the clock
    starts (each has its own jti), so only the server's work is timed."""
    token_url = f"{base}/auth/token"
    forms = iter([_form(store, token_url) for _ in range(MAX_TOKEN_REQUESTS)])
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return _timed(
        store,
        f"token endpoint, {concurrency} concurrent",
        200,
        lambda: Request("POST", token_url, headers, form) if (form := next(forms, None)) else None,
        concurrency,
        seconds,
    )


def kickoff_latency(
    store: BenchStore, base: str, concurrency: int, seconds: float = LOAD_SECONDS
) -> dict[str, Any]:
    """`$export` kick-offs (of the store's Organizations, a small export) from one client
    at `concurrency`; the web tier alone, so the jobs are cancelled afterwards."""
    client = _client(store, base)
    request = Request(
        "GET",
        f"{base}/fhir/$export?_type=Organization",
        {**client._auth(), "Accept": "application/fhir+json", "Prefer": "respond-async"},
    )
    answers: list[tuple[int, dict[str, str]]] = []
    row = _timed(
        store,
        f"kick-off, {concurrency} concurrent",
        202,
        lambda: request,
        concurrency,
        seconds,
        answers,
    )
    for status, headers in answers:
        if status == 202:
            _http("DELETE", headers["content-location"], client._auth())
    return row


def status_latency(
    store: BenchStore, base: str, concurrency: int, seconds: float = LOAD_SECONDS
) -> dict[str, Any]:
    """Status polls at `concurrency`, each client's own export in progress (no worker
    runs them), as `concurrency` clients each waiting for their export would poll."""
    client = _client(store, base)
    headers = {**client._auth(), "Accept": "application/json"}
    status_urls = [
        client.kick_off("/$export", [("_type", "Organization")]) for _ in range(concurrency)
    ]
    requests = itertools.cycle([Request("GET", url, headers) for url in status_urls])
    row = _timed(
        store,
        f"status poll, {concurrency} concurrent",
        202,
        lambda: next(requests),
        concurrency,
        seconds,
    )
    for url in status_urls:
        _http("DELETE", url, client._auth())
    return row


def search_latency(
    store: BenchStore, base: str, concurrency: int, seconds: float = LOAD_SECONDS
) -> dict[str, Any]:
    """`Observation?patient=<id>` searches (a first page of 50), the request a crawling
    client sends per patient, over 100 patients in turn: the compartment index at work."""
    client = _client(store, base)
    headers = {**client._auth(), "Accept": "application/fhir+json"}
    page = _http("GET", f"{base}/fhir/Patient?_count=100&_elements=id", headers)
    patients = [entry["resource"]["id"] for entry in page.json()["entry"]]
    requests = itertools.cycle(
        [Request("GET", f"{base}/fhir/Observation?patient={pid}", headers) for pid in patients]
    )
    label = f"patient= search, {concurrency} concurrent"
    return _timed(store, label, 200, lambda: next(requests), concurrency, seconds)


def _timed(
    store: BenchStore,
    label: str,
    expected: int,
    next_request: Callable[[], Request | None],
    concurrency: int,
    seconds: float,
    answers: list[tuple[int, dict[str, str]]] | None = None,
) -> dict[str, Any]:
    """One closed-loop load step, with the CPU each side spent per request: where a
    latency comes from on a machine whose cores the server, its database and the load
    generator share."""
    before = cpu_seconds(store)
    result = run_load(next_request, concurrency, seconds)
    spent = cpu_spent(before, cpu_seconds(store))
    if answers is not None:
        answers += result.answers
    row = result.summary(label, expected=expected)
    per_request = max(row["requests"], 1)
    row["cpu_ms_per_request"] = {side: 1000 * used / per_request for side, used in spent.items()}
    return {**row, "db": store.vendor}


SIDES = ("web", "database", "load generator")


def cpu_seconds(store: BenchStore) -> dict[int, tuple[str, float]]:
    """CPU seconds used so far, by process, of the web server (the gunicorn this bench
    started, with its workers; SQLite runs inside them), the PostgreSQL backends serving
    the bench's database, and this process (the load generator). By process, because a
    backend may end and another start within a step (gunicorn threads reconnect)."""
    ticks = os.sysconf("SC_CLK_TCK")
    database = urllib.parse.urlsplit(store.database_url).path.strip("/").encode()
    processes = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            command = (proc / "cmdline").read_bytes()
        except OSError:  # gone
            continue
        # state, ppid, ..., utime, stime
        processes[int(proc.name)] = (
            int(fields[1]),
            (int(fields[11]) + int(fields[12])) / ticks,
            command,
        )
    used = {}
    for pid, (parent, seconds, command) in processes.items():
        grandparent = processes.get(parent, (0,))[0]
        if pid == os.getpid():
            used[pid] = ("load generator", seconds)
        elif b"gunicorn" in command and os.getpid() in (parent, grandparent):
            used[pid] = ("web", seconds)
        elif database and command.startswith(b"postgres") and database in command:
            used[pid] = ("database", seconds)
    return used


def cpu_spent(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds each side used between two `cpu_seconds` readings (a process that
    ended in between is not counted: the figures are a slight underestimate)."""
    spent = dict.fromkeys(SIDES, 0.0)
    for pid, (side, seconds) in after.items():
        spent[side] += seconds - before.get(pid, (side, 0.0))[1]
    return spent
