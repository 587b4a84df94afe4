"""bulkops as an operator deploys it, for fault tests: gunicorn, Celery worker and beat
processes, Redis, and the suite's database (a fresh PostgreSQL database when the suite
runs on PostgreSQL, else a SQLite file), each of which a test can kill and restart."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from exports.bulk_client import BulkExportClient, TokenSource, http
from tests.processes import BIN, ROOT, free_port, manage, process_env, sqlite_rows, web_server


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if not binary:
        pytest.skip("redis-server is not installed (CI installs it from Debian)")
    return binary


class Redis:
    """A redis-server of our own on a free port, without persistence: killing it loses
    every queued message, the worst a broker outage can do."""

    def __init__(self) -> None:
        self.binary = redis_binary()
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while (
            subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, check=False
            ).stdout.strip()
            != b"PONG"
        ):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@contextmanager
def fresh_database() -> Any:
    """Environment for the processes' database: a new PostgreSQL database beside the
    suite's when it runs on PostgreSQL (dropped afterwards), else nothing (SQLite)."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        yield {}
        return
    name = f"bulkops_faults_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {"DATABASE_URL": re.sub(r"/[^/?]+(\?|$)", rf"/{name}\1", url, count=1)}
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Deployment:
    """One bulkops installation: a var dir, a database with generated patients and one
    registered client (the demo client), and processes started on demand."""

    def __init__(self, var_dir: Path, stack: ExitStack, **settings: str) -> None:
        self.var_dir = var_dir
        self.stack = stack
        self.env = process_env(var_dir, **settings)
        self.database_url = self.env.get("DATABASE_URL", "")
        self.workers: list[subprocess.Popen] = []
        self.base_url = ""

    def prepare(self, patients: int) -> None:
        for command in (
            ["migrate", "--no-input"],
            ["generate_fhir", "--patients", str(patients), "--seed", "5"],
            ["seed_demo", "--url", "http://127.0.0.1"],
        ):
            result = manage(self.env, *command)
            assert result.returncode == 0, result.stderr
        self.client_id = re.search(r"--client-id (\S+)", result.stdout).group(1)
        key_set = json.loads((self.var_dir / "demo-client-key.jwks").read_text())
        self.private_jwk = key_set["keys"][0]

    # --- processes ----------------------------------------------------------------------

    def start(self, concurrency: int = 1) -> subprocess.Popen:
        """Web, beat and one worker, as `make run` starts them; the worker."""
        self.start_web()
        self.start_beat()
        return self.start_worker(concurrency)

    def start_web(self) -> str:
        self.base_url = self.stack.enter_context(web_server(self.env, workers=2))
        return self.base_url

    def start_worker(self, concurrency: int = 1) -> subprocess.Popen:
        """A worker in its own process group, so a test can kill it with its pool."""
        worker = self._spawn("worker", "--concurrency", str(concurrency), "--loglevel", "INFO")
        self.workers.append(worker)
        return worker

    def start_beat(self) -> subprocess.Popen:
        schedule = self.var_dir / f"beat-{uuid.uuid4().hex}"
        return self._spawn("beat", "--schedule", str(schedule), "--loglevel", "INFO")

    def kill_worker(self, worker: subprocess.Popen) -> None:
        """SIGKILL to the worker and its pool children: a machine that lost power."""
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()

    def kill_worker_mid_partition(self, worker: subprocess.Popen, status_url: str) -> None:
        """Kill the worker at a moment it holds a claimed, unfinished partition of the job.

        Partitions of a small store take milliseconds, so the worker is frozen (SIGSTOP)
        and the database asked before the kill; if no partition is running at that
        instant (not planned yet, or between two partitions), it is thawed and asked again.
        """
        job = uuid.UUID(status_url.rsplit("/", 1)[1])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            os.killpg(worker.pid, signal.SIGSTOP)
            if self.running_partitions(job):
                self.kill_worker(worker)
                return
            os.killpg(worker.pid, signal.SIGCONT)
            time.sleep(0.002)
        raise AssertionError("the worker never held a running partition of the job")

    def running_partitions(self, job: uuid.UUID) -> int:
        sql = (
            "SELECT count(*) FROM exports_exportpartition p JOIN exports_exportjob j "
            "ON p.job_id = j.id WHERE j.uuid = {} AND p.status = 'running'"
        )
        if self.database_url.startswith("postgres"):
            with psycopg.connect(self.database_url) as db:
                return db.execute(sql.format("%s"), (job,)).fetchone()[0]
        return sqlite_rows(self.var_dir, sql.format("?"), (job.hex,))[0][0]

    def _spawn(self, role: str, *args: str) -> subprocess.Popen:
        log = (self.var_dir / f"{role}-{uuid.uuid4().hex[:6]}.log").open("wb")
        process = subprocess.Popen(
            [str(BIN / "celery"), "-A", "bulkops", role, *args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.stack.callback(_stop, process, log)
        return process

    # --- a Bulk Data client ---------------------------------------------------------------

    def client(self, base_url: str | None = None) -> BulkExportClient:
        base = base_url or self.base_url
        tokens = TokenSource(
            f"{base}/auth/token", self.client_id, self.private_jwk, "system/*.read"
        )
        return BulkExportClient(f"{base}/fhir", tokens)

    def status(self, status_url: str) -> tuple[int, dict[str, str], Any]:
        client = self.client()
        result = http("GET", status_url, headers={**client._auth(), "Accept": "application/json"})
        body = result.json() if result.body else None
        return result.status, result.headers, body

    def wait_for(self, status_url: str, *, done: Any, timeout: float = 90) -> Any:
        """Poll until `done(status, headers)` is true; the last (status, headers, body)."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.status(status_url)
            if done(answer[0], answer[1]):
                return answer
            assert time.monotonic() < deadline, f"gave up waiting; last answer {answer}"
            time.sleep(0.05)

    def stored_files(self, job_uuid: str) -> set[str]:
        folder = self.var_dir / "exports" / job_uuid
        return {p.name for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


def _stop(process: subprocess.Popen, log: Any) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    log.close()


def progress_resources(headers: dict[str, str]) -> int:
    """The resource count in X-Progress ("42% - 3 of 7 types, 120000 resources")."""
    match = re.search(r"(\d+) resources", headers.get("X-Progress", ""))
    return int(match.group(1)) if match else 0


def ids_by_type(client: BulkExportClient, manifest: dict[str, Any], out: Path) -> dict[str, list]:
    """Every exported id per type, duplicates kept (so a test can find them)."""
    outcome = client.download(manifest, out)
    ids: dict[str, list] = {}
    for resource_type, path, _ in outcome.files:
        for line in path.read_text().splitlines():
            ids.setdefault(resource_type, []).append(json.loads(line)["id"])
    return ids
