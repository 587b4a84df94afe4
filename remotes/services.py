"""Remote server and remote export actions shared by the console and the command."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.audit import record_event
from accounts.models import AuditEvent
from bulkops.fhir.params import V2, export_path
from bulkops.task_queue import enqueue
from exports.models import ExportJob
from remotes.discovery import DiscoveryError, discover_token_url
from remotes.models import RemoteExport, RemoteServer
from remotes.task_names import RUN_REMOTE_EXPORT


class RemoteServerBusy(Exception):
    """The server still has unfinished exports."""


def _audit(actor: str, action: str, request: HttpRequest | None, **details: Any) -> None:
    record_event(
        actor_type=AuditEvent.ActorType.OPERATOR if request else AuditEvent.ActorType.SYSTEM,
        actor=actor,
        action=action,
        request=request,
        details=details,
    )


def discover_now(server: RemoteServer, *, actor: str, request: HttpRequest | None) -> None:
    """The "Discover" button: discover, and put the outcome in the audit trail."""
    discover(server, actor=actor, request=request)
    _audit(
        actor,
        "remote.discovered",
        request,
        server=server.name,
        token_url=server.discovered_token_url,
        error=server.discovery_error,
    )


def discover(server: RemoteServer, *, actor: str, request: HttpRequest | None) -> None:
    """Find the token endpoint now (when none is configured) and remember the result:
    the URL, or which step failed. The server is saved either way.

    An admin's confirmation of a token endpoint on another origin holds for the URLs it
    was given for only: when the base URL or the token endpoint in use is another one
    now, it is voided (and the audit trail says so)."""
    found, problem = "", ""
    if not server.token_url:
        try:
            found = discover_token_url(server.base_url, verify_tls=server.verify_tls)
        except DiscoveryError as error:
            problem = str(error)
    remember_discovery(server, token_url=found, error=problem, actor=actor, request=request)


def remember_discovery(
    server: RemoteServer, *, token_url: str, error: str, actor: str, request: HttpRequest | None
) -> None:
    """Keep what discovery found (the "Discover" button, or a server check reading the
    smart-configuration), so the server's page shows the token endpoint in use."""
    server.discovered_token_url, server.discovery_error = token_url, error
    voided = server.void_stale_confirmation()
    server.save()
    if voided:
        base_url, token_url = voided
        _audit(
            actor,
            "remote.token_url.unconfirmed",
            request,
            server=server.name,
            base_url=base_url,
            token_url=token_url,
        )


def save_server(
    server: RemoteServer,
    *,
    private_jwk: dict[str, Any] | None,
    actor: str,
    request: HttpRequest | None,
    created: bool,
) -> None:
    """Save a new or changed server: discovery runs again (so a changed base URL or
    token endpoint never keeps the old one's confirmation) and the audit trail gets
    the URLs as saved."""
    if private_jwk is not None:
        server.set_private_jwk(private_jwk)
    discover(server, actor=actor, request=request)
    action = "remote.created" if created else "remote.changed"
    _audit(
        actor,
        action,
        request,
        server=server.name,
        kid=server.kid,
        base_url=server.base_url,
        token_url=server.token_url,
    )
    if private_jwk is not None and not created:
        _audit(actor, "remote.key_replaced", request, server=server.name, kid=server.kid)


class ConfirmationRefused(Exception):
    """Nothing was confirmed; the message says why."""


def confirm_token_url(
    server: RemoteServer,
    *,
    base_url: str,
    token_url: str,
    user: AbstractBaseUser,
    request: HttpRequest | None,
) -> None:
    """Record an admin's word that `token_url`, on another origin than `base_url`,
    issues the tokens of the FHIR server at `base_url` (remotes.token_destination).

    `base_url` and `token_url` are the URLs the admin was shown: when either is no
    longer the server's, nothing is confirmed, so a change made meanwhile is never
    confirmed unseen. Audited; a later change of either URL voids it (`discover`)."""
    with transaction.atomic():
        current = RemoteServer.objects.select_for_update().get(pk=server.pk)
        if (current.base_url, current.token_url_in_use) != (base_url, token_url):
            raise ConfirmationRefused(
                "The base URL or the token endpoint changed since the page was shown: "
                "nothing was confirmed. Check them again."
            )
        if not current.token_url_problem():
            raise ConfirmationRefused(
                "This token endpoint is on the FHIR server's origin or already confirmed: "
                "nothing to confirm."
            )
        current.confirmed_base_url, current.confirmed_token_url = base_url, token_url
        current.token_url_confirmed_by, current.token_url_confirmed_at = user, timezone.now()
        current.save(
            update_fields=[
                "confirmed_base_url",
                "confirmed_token_url",
                "token_url_confirmed_by",
                "token_url_confirmed_at",
                "updated_at",
            ]
        )
        _audit(
            user.get_username(),
            "remote.token_url.confirmed",
            request,
            server=current.name,
            base_url=base_url,
            token_url=token_url,
        )


def delete_server(server: RemoteServer, *, actor: str, request: HttpRequest | None) -> None:
    """Delete a server with its finished exports' history; refused while one runs."""
    with transaction.atomic():
        if ExportJob.objects.filter(remote_export__server=server).unfinished().exists():
            raise RemoteServerBusy(
                f"{server.name} has exports still running: cancel them or let them finish."
            )
        RemoteExport.objects.filter(server=server).delete()
        name = server.name
        server.delete()
        _audit(actor, "remote.deleted", request, server=name)


def start_remote_export(
    server: RemoteServer,
    *,
    level: str,
    group_id: str,
    pairs: list[tuple[str, str]],
    actor: str,
    request: HttpRequest | None,
    queue: bool = True,
    bulk_version: str = V2,
) -> ExportJob:
    """Record the job (no client: reachable only through the console) and queue it,
    unless the caller runs it itself (`queue=False`, the command). `bulk_version` V4
    asks at `$export-v4` (the remote's CapabilityStatement offers it)."""
    path = export_path(level, group_id, bulk_version)
    query = f"?{urlencode(pairs)}" if pairs else ""
    parameters: dict[str, list[str]] = {}
    for name, value in pairs:
        parameters.setdefault(name, []).append(value)
    with transaction.atomic():
        job = ExportJob.objects.create(
            client=None,
            level=level,
            group_id=group_id,
            request_url=f"{server.base_url.rstrip('/')}{path}{query}",
            parameters={"remote": server.name, **parameters},
            types=[t for name, v in pairs if name == "_type" for t in v.split(",")],
            transaction_time=timezone.now(),
        )
        RemoteExport.objects.create(
            job=job,
            server=server,
            kickoff_path=path,
            kickoff_pairs=[list(p) for p in pairs],
            bulk_version=bulk_version,
        )
        _audit(
            actor,
            "remote.export.kickoff",
            request,
            job=str(job.uuid),
            server=server.name,
            request_url=job.request_url,
        )
        if queue:
            transaction.on_commit(lambda: enqueue(RUN_REMOTE_EXPORT, job_id=job.pk))
    return job


def set_jwks_published(
    server: RemoteServer, *, published: bool, actor: str, request: HttpRequest | None
) -> None:
    """Serve our public key set for `server` at its URL without sign-in, or stop; the
    audit trail records who switched it. The URL stays the same either way."""
    server.publish_jwks = published
    server.save(update_fields=["publish_jwks", "updated_at"])
    action = "remote.jwks.published" if published else "remote.jwks.withdrawn"
    _audit(actor, action, request, server=server.name, kid=server.kid)


def public_jwks_json(server: RemoteServer) -> str:
    return json.dumps(server.public_jwks, indent=2)
