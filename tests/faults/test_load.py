"""Fifty backend clients, each running a whole export cycle at once against one server
on loopback: every cycle completes, nothing is lost, no 5xx, and the database sees a
bounded number of connections however many clients there are."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from exports.bulk_client import BulkExportClient, TokenSource, http
from tests.faults.conftest import deploy
from tests.processes import manage

CLIENTS = 50
WEB_WORKERS, WEB_THREADS, WORKER_CONCURRENCY = 2, 4, 2

REGISTER = f"""
import json
from bulkops.signing_keys import generate_private_jwk, public_jwks
from accounts.services import register_client
keys = [generate_private_jwk("ES384") for _ in range({CLIENTS})]
clients = [
    register_client(name=f"load {{n}}", jwks=public_jwks(key), scopes="system/*.read")
    for n, key in enumerate(keys)
]
print(json.dumps([[client.client_id, key] for client, key in zip(clients, keys)]))
"""


@pytest.fixture
def deployment(tmp_path, redis):
    # Polling at the default burst allowance: clients that honour Retry-After never see 429.
    yield from deploy(tmp_path, redis, patients=5, BULKOPS_POLL_BURST="10")


class ConnectionSampler:
    """Peak count of the processes' PostgreSQL connections, sampled in the background."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ConnectionSampler:
        if self.database_url.startswith("postgres"):
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as db:
            while not self._stop.wait(0.1):
                count = db.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchone()[0]
                self.peak = max(self.peak, count)


def test_fifty_clients_each_complete_an_export_cycle(deployment, tmp_path):
    registered = manage(deployment.env, "shell", "-c", REGISTER, timeout=300)
    assert registered.returncode == 0, registered.stderr
    clients = json.loads(registered.stdout.strip().splitlines()[-1])
    deployment.start(concurrency=WORKER_CONCURRENCY)
    base = deployment.base_url

    def cycle(index: int) -> tuple[int, int]:
        client_id, key = clients[index]
        tokens = TokenSource(f"{base}/auth/token", client_id, key, "system/*.read")
        client = BulkExportClient(f"{base}/fhir", tokens)
        status_url = client.kick_off("/Patient/$export", [("_type", "Patient")])
        manifest = client.wait(status_url, lambda _: None, timeout=240)
        outcome = client.download(manifest, tmp_path / "downloads" / str(index))
        deleted = http("DELETE", status_url, headers=client._auth())
        return sum(lines for _, _, lines in outcome.files), deleted.status

    started = time.monotonic()
    with ConnectionSampler(deployment.database_url) as sampler, ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(cycle, range(CLIENTS)))
    elapsed = time.monotonic() - started

    print(f"{CLIENTS} export cycles in {elapsed:.1f}s; peak database connections {sampler.peak}")
    assert results == [(5, 202)] * CLIENTS
    if deployment.database_url.startswith("postgres"):
        # Persistent connections: one per web thread and pool process, plus the worker's
        # own and beat's; never one per client or per request.
        assert 0 < sampler.peak <= WEB_WORKERS * WEB_THREADS + WORKER_CONCURRENCY + 2
