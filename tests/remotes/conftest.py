from __future__ import annotations

from collections.abc import Iterator

import pytest

from bulkops.signing_keys import generate_private_jwk, public_jwks
from exports.models import ExportJob
from remotes.models import RemoteServer
from remotes.runner import run_remote_export
from remotes.services import start_remote_export
from tests.accounts.conftest import console_client  # noqa: F401
from tests.console.conftest import fast_password_hashing  # noqa: F401
from tests.exports.conftest import store  # noqa: F401 - for the check pages
from tests.remotes.remote_server import GROUP_ID, RemoteBulkops, remote_bulkops
from tests.remotes.stub_server import FaultyExportServer, serve


@pytest.fixture(autouse=True)
def loopback_fetches(settings) -> None:
    """Every server here (the remote bulkops, the stubs, the live server checking itself)
    listens on 127.0.0.1, which the address guard refuses unless told otherwise."""
    settings.BULKOPS_ALLOW_PRIVATE_FETCH = True


@pytest.fixture(scope="session")
def remote(tmp_path_factory) -> RemoteBulkops:
    """One remote bulkops for the session, with default settings."""
    with remote_bulkops(tmp_path_factory.mktemp("remote") / "var") as server:
        yield server


@pytest.fixture(scope="session")
def remote_key() -> dict:
    """Our generated key, registered once at the session's remote."""
    return generate_private_jwk("ES384")


@pytest.fixture(scope="session")
def remote_client_id(remote, remote_key) -> str:
    return remote.register(public_jwks(remote_key))


def make_server(
    name: str, base_url: str, client_id: str, private_jwk: dict, **fields
) -> RemoteServer:
    server = RemoteServer(
        name=name, base_url=base_url, client_id=client_id, default_group_id=GROUP_ID, **fields
    )
    server.set_private_jwk(private_jwk)
    server.save()
    return server


def form_data(base_url: str, **extra) -> dict:
    """The remote server form (create or edit), filled in."""
    return {
        "name": "hapi", "base_url": base_url, "token_url": "", "client_id": "bulkops-1",
        "scopes": "system/*.read", "default_group_id": "", "verify_tls": "on",
        "delete_remote_job": "on", **extra,
    }  # fmt: skip


def run_in_process(
    server: RemoteServer, pairs: tuple = (("_type", "Patient"),), **kwargs
) -> ExportJob:
    """A system export (of Patients, unless `pairs` say otherwise) from `server`, run in
    this process to its end."""
    job = start_remote_export(
        server, level="system", group_id="", pairs=list(pairs),
        actor="t", request=None, queue=False, **kwargs,
    )  # fmt: skip
    run_remote_export(job.pk)
    job.refresh_from_db()
    return job


@pytest.fixture
def remote_server(remote, remote_key, remote_client_id) -> RemoteServer:
    """The session's remote as a RemoteServer row (token endpoint left to discovery)."""
    return make_server("lab", remote.base_url, remote_client_id, remote_key)


@pytest.fixture
def stub() -> Iterator[FaultyExportServer]:
    with serve(FaultyExportServer()) as server:
        yield server


@pytest.fixture
def stub_server(stub, remote_key) -> RemoteServer:
    return make_server("stub", stub.base_url, "us-at-stub", remote_key)
