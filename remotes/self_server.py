"""Checking this bulkops itself: a RemoteServer that points at our own /fhir, with a
freshly generated key registered here as a backend client, so the same battery that
checks other servers runs against the local one over real HTTP.

Registering that client needs the right to manage clients (accounts.services checks
it), and the server row remembers the client (`local_client`), which keeps its URLs and
key out of reach of those who may not (RemoteServer.change_permission)."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.http import HttpRequest

from accounts.audit import record_event
from accounts.services import _actor, register_client
from bulkops.signing_keys import generate_private_jwk, public_jwks
from remotes.models import RemoteServer

SELF_NAME = "this-bulkops"
SELF_SCOPES = "system/*.read"


@transaction.atomic
def self_server(
    fhir_base_url: str, *, user: AbstractBaseUser | None, request: HttpRequest | None = None
) -> RemoteServer:
    """The RemoteServer for this bulkops, created (and its client registered, audited)
    on first use; later calls reuse it."""
    existing = RemoteServer.objects.filter(name=SELF_NAME).first()
    if existing is not None:
        return existing
    private = generate_private_jwk("ES384")
    client = register_client(
        name="bulkops self-check", jwks=public_jwks(private), scopes=SELF_SCOPES, created_by=user
    )
    server = RemoteServer(
        name=SELF_NAME, base_url=fhir_base_url.rstrip("/"), client_id=client.client_id,
        scopes=SELF_SCOPES, delete_remote_job=True, local_client=client,
    )  # fmt: skip
    server.set_private_jwk(private)
    server.save()
    actor_type, actor = _actor(user)
    record_event(
        actor_type=actor_type,
        actor=actor,
        action="remote.self_server.created",
        request=request,
        details={"remote": server.name, "client_id": client.client_id, "base_url": server.base_url},
    )
    return server
