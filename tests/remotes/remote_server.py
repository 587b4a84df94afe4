"""A second bulkops, started as real processes on 127.0.0.1, playing the remote Bulk Data
server for remote exports and server checks: its own var dir and SQLite database, a
generated store, gunicorn and a Celery worker process."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bulkops.fhir.synthetic import NAMESPACE
from tests.processes import celery_worker_process, manage, process_env, sqlite_rows, web_server

PATIENTS = 4
SEED = 23
GROUP_ID = str(uuid.uuid5(NAMESPACE, f"{SEED}/group"))


@dataclass
class RemoteBulkops:
    base_url: str  # the FHIR base, e.g. http://127.0.0.1:PORT/fhir
    env: dict[str, str]
    stack: ExitStack

    def start_worker(self) -> None:
        self.stack.enter_context(celery_worker_process(self.env))

    @property
    def var_dir(self) -> Path:
        return Path(self.env["BULKOPS_VAR_DIR"])

    def register(self, public_jwks: dict[str, Any], scopes: str = "system/*.read") -> str:
        """Register a backend client (our side's public keys) there; its client_id."""
        path = self.var_dir / f"jwks-{uuid.uuid4().hex}.json"
        path.write_text(json.dumps(public_jwks))
        result = manage(
            self.env, "register_client", "--name", "bulkops under test",
            "--jwks-file", str(path), "--scopes", scopes, "--json",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["client_id"]

    def resource_ids(self) -> dict[str, set[str]]:
        """Every live resource id per type in the remote store, read from its database."""
        rows = sqlite_rows(
            self.var_dir,
            "SELECT resource_type, resource_id FROM exports_resource WHERE NOT deleted",
        )
        ids: dict[str, set[str]] = {}
        for resource_type, resource_id in rows:
            ids.setdefault(resource_type, set()).add(resource_id)
        return ids


@contextmanager
def remote_bulkops(
    var_dir: Path, *, start_worker: bool = True, **settings: str
) -> Iterator[RemoteBulkops]:
    """Start a remote bulkops with `settings` as extra environment (e.g. throttling or
    S3 mode); the store holds PATIENTS generated patients and the Group GROUP_ID. Without
    `start_worker` its exports wait in the queue until `start_worker()`."""
    env = process_env(
        var_dir,
        CELERY_BROKER_URL="filesystem://localhost/",
        BULKOPS_ALLOW_HTTP_JWKS="true",
        **settings,
    )
    for command in (
        ["migrate", "--no-input"],
        ["generate_fhir", "--patients", str(PATIENTS), "--seed", str(SEED)],
    ):
        result = manage(env, *command)
        assert result.returncode == 0, result.stderr
    with ExitStack() as stack:
        base = stack.enter_context(web_server(env))
        remote = RemoteBulkops(base_url=f"{base}/fhir", env=env, stack=stack)
        if start_worker:
            remote.start_worker()
        yield remote
