"""A receiver for deliveries: this very bulkops on a live server (its `$bulk-submit`
fetches our manifest over real HTTP), with the provider's key registered as a backend
client holding `system/bulk-submit`, and a RemoteServer row pointing at it."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from accounts.services import register_client
from bulkops.signing_keys import generate_private_jwk, public_jwks
from exports.models import ExportJob
from fhirstore.models import Resource
from remotes.models import RemoteServer
from tests.accounts.conftest import console_client  # noqa: F401
from tests.api.conftest import api_as  # noqa: F401
from tests.console.conftest import fast_password_hashing  # noqa: F401
from tests.exports.conftest import client_a, jwk_a, load_fhir, make_fhir_client, store  # noqa: F401
from transfers.models import Delivery


@pytest.fixture(autouse=True)
def loopback_fetches(settings) -> None:
    """Receiver and provider both listen on 127.0.0.1."""
    settings.BULKOPS_ALLOW_PRIVATE_FETCH = True


@pytest.fixture
def receiver(live_server) -> RemoteServer:
    key = generate_private_jwk("ES384")
    client = register_client(name="provider", jwks=public_jwks(key), scopes="system/bulk-submit")
    server = RemoteServer(
        name="receiver",
        base_url=f"{live_server.url}/fhir",
        token_url=f"{live_server.url}/auth/token",
        client_id=client.client_id,
    )
    server.set_private_jwk(key)
    server.save()
    return server


def exported_job(client, path: str = "/fhir/$export?_type=Patient,Observation") -> ExportJob:
    """A system export of the store by `client`, run to its end by the worker."""
    kickoff = client.kick_off(path)
    assert kickoff.status_code == 202, kickoff.content
    client.finished_manifest(kickoff)
    return ExportJob.objects.get(uuid=kickoff["Content-Location"].rsplit("/", 1)[1])


def live_bodies(*types: str) -> dict[str, dict[str, Any]]:
    """The live resources of `types` by key, without `meta` (the store writes a new
    version and time when it loads one again)."""
    rows = Resource.objects.filter(resource_type__in=types, deleted=False)
    bodies = {f"{r.resource_type}/{r.resource_id}": json.loads(r.body) for r in rows}
    return {key: {k: v for k, v in body.items() if k != "meta"} for key, body in bodies.items()}


def wait_for(delivery: Delivery, *statuses: str, timeout: float = 60) -> Delivery:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delivery.refresh_from_db()
        if delivery.status in statuses:
            return delivery
        time.sleep(0.1)
    raise AssertionError(f"delivery still {delivery.status} ({delivery.error}) after {timeout}s")


def wait_until(check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
