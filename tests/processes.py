"""Run bulkops as real processes (web server, Celery worker) for end-to-end tests."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# Variables a developer's shell or CI may set that would leak into a process under test.
_SCRUBBED = ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "SECRET_KEY")


def process_env(var_dir: Path, **overrides: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in _SCRUBBED and not k.startswith("BULKOPS_")
    }
    env.update(BULKOPS_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="bulkops.settings")
    env.update(overrides)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return run_command(env, sys.executable, "manage.py", *args, timeout=timeout)


def run_command(
    env: dict[str, str], *argv: str, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run `argv` from the checkout's root in `env`; its exit code and output, as text."""
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def sqlite_rows(var_dir: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The rows of one query on the SQLite database of the bulkops whose state is in
    `var_dir`. The connection is closed here: sqlite3's own `with` only commits, and
    Python 3.13 warns about a connection left to the garbage collector."""
    with closing(sqlite3.connect(var_dir / "bulkops.sqlite3")) as db:
        return db.execute(sql, params).fetchall()


def http_get(
    url: str, timeout: float = 10, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@contextmanager
def web_server(env: dict[str, str], *, workers: int = 1) -> Iterator[str]:
    """Start gunicorn on a free loopback port as `make run` does; yield its base URL.

    Its output goes to a file under the var dir: an undrained pipe would block it.
    """
    port = free_port()
    log = Path(env["BULKOPS_VAR_DIR"]) / f"gunicorn-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "bulkops.wsgi",
                "-c",
                "gunicorn.conf.py",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
            ],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(port, process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early: {log.read_text()[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server did not listen on {port} within {timeout}s")


@contextmanager
def celery_worker_process(
    env: dict[str, str], *, concurrency: int = 1
) -> Iterator[subprocess.Popen]:
    """Start `celery -A bulkops worker` exactly as the Procfile does."""
    args = ("worker", "--loglevel", "INFO", "--concurrency", str(concurrency))
    with celery_process(env, *args) as process:
        yield process


@contextmanager
def celery_beat_process(env: dict[str, str], *, log: Path) -> Iterator[subprocess.Popen]:
    """Start `celery -A bulkops beat` on the database schedule, as the Procfile does."""
    scheduler = "django_celery_beat.schedulers:DatabaseScheduler"
    with celery_process(env, "beat", "--loglevel", "INFO", "-S", scheduler, log=log) as process:
        yield process


@contextmanager
def celery_process(
    env: dict[str, str], *args: str, log: Path | None = None
) -> Iterator[subprocess.Popen]:
    """`celery -A bulkops <args>`, its output in `log` (a file: a pipe left undrained
    would block it) or discarded; stopped when the block ends."""
    with open(log or os.devnull, "wb") as output:
        process = subprocess.Popen(
            [str(BIN / "celery"), "-A", "bulkops", *args],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)
