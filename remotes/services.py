"""Remote server and remote export actions shared by the console and the command."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.audit import record_event
from accounts.models import AuditEvent
from bulkops.fhir.params import GROUP, PATIENT
from exports.models import ExportJob
from remotes.discovery import DiscoveryError, discover_token_url
from remotes.models import RemoteExport, RemoteServer


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
    discover(server)
    _audit(
        actor,
        "remote.discovered",
        request,
        server=server.name,
        token_url=server.discovered_token_url,
        error=server.discovery_error,
    )


def discover(server: RemoteServer) -> None:
    """Find the token endpoint now (when none is configured) and remember the result:
    the URL, or which step failed. The server is saved either way."""
    server.discovered_token_url, server.discovery_error = "", ""
    if not server.token_url:
        try:
            server.discovered_token_url = discover_token_url(
                server.base_url, verify_tls=server.verify_tls
            )
        except DiscoveryError as error:
            server.discovery_error = str(error)
    server.save()


def save_server(
    server: RemoteServer,
    *,
    private_jwk: dict[str, Any] | None,
    actor: str,
    request: HttpRequest | None,
    created: bool,
) -> None:
    if private_jwk is not None:
        server.set_private_jwk(private_jwk)
    discover(server)
    action = "remote.created" if created else "remote.changed"
    _audit(actor, action, request, server=server.name, kid=server.kid)
    if private_jwk is not None and not created:
        _audit(actor, "remote.key_replaced", request, server=server.name, kid=server.kid)


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


def kickoff_path(level: str, group_id: str) -> str:
    if level == GROUP:
        return f"/Group/{group_id}/$export"
    return "/Patient/$export" if level == PATIENT else "/$export"


def start_remote_export(
    server: RemoteServer,
    *,
    level: str,
    group_id: str,
    pairs: list[tuple[str, str]],
    actor: str,
    request: HttpRequest | None,
    queue: bool = True,
) -> ExportJob:
    """Record the job (no client: reachable only through the console) and queue it,
    unless the caller runs it itself (`queue=False`, the command)."""
    from remotes.tasks import run_remote_export_task  # the task imports the runner

    path = kickoff_path(level, group_id)
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
            job=job, server=server, kickoff_path=path, kickoff_pairs=[list(p) for p in pairs]
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
            transaction.on_commit(lambda: run_remote_export_task.delay(job_id=job.pk))
    return job


def public_jwks_json(server: RemoteServer) -> str:
    return json.dumps(server.public_jwks, indent=2)
