"""Starting and running server checks, shared by the console, the Celery task and
`manage.py check_server`. Each start and finish is audited."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.audit import record_event
from accounts.models import AuditEvent
from accounts.services import _actor
from bulkops.task_queue import enqueue
from remotes.checks import overall_status, run_battery
from remotes.checks.base import Facts
from remotes.models import RemoteServer, ServerCheck
from remotes.services import remember_discovery
from remotes.task_names import RUN_SERVER_CHECK

logger = logging.getLogger(__name__)


def start_check(
    *, server: RemoteServer, user: AbstractBaseUser | None, request: HttpRequest | None = None
) -> ServerCheck:
    """Queue a run; the Celery worker picks it up once this transaction commits."""
    check = ServerCheck.objects.create(server=server, requested_by=user)
    actor_type, actor = _actor(user)
    record_event(
        actor_type=actor_type,
        actor=actor,
        action="remote.check.started",
        request=request,
        details={"remote": server.name, "check": check.pk},
    )
    transaction.on_commit(lambda: enqueue(RUN_SERVER_CHECK, check_id=check.pk))
    return check


def run_check(*, check: ServerCheck) -> ServerCheck:
    """Run the battery, saving each result as it arrives so pages can show progress.
    A rerun (a redelivered task) starts its results afresh."""
    check.status, check.started_at, check.results = ServerCheck.Status.RUNNING, timezone.now(), []
    check.save(update_fields=["status", "started_at", "results"])

    def save_result(result) -> None:
        check.results.append(result.as_json())
        check.save(update_fields=["results"])

    facts = Facts()
    try:
        results = run_battery(check.server.target(), on_result=save_result, facts=facts)
    except Exception as error:  # the battery itself broke: record it, never hang "running"
        check.status, check.error = ServerCheck.Status.ERROR, f"The check could not run: {error}"
    else:
        check.status = overall_status(results)
    check.finished_at = timezone.now()
    check.save(update_fields=["status", "error", "finished_at"])
    _remember_token_url(check.server_id, facts.token_url)
    record_event(
        actor_type=AuditEvent.ActorType.SYSTEM,
        actor="system",
        action="remote.check.finished",
        outcome=(
            AuditEvent.Outcome.SUCCESS
            if check.status in (ServerCheck.Status.PASS, ServerCheck.Status.WARN)
            else AuditEvent.Outcome.FAILURE
        ),
        details={"remote": check.server.name, "check": check.pk, "status": check.status},
    )
    return check


def _remember_token_url(server_id: int, found: str) -> None:
    """A check that found the token endpoint of a server with none configured or
    discovered makes it the one shown and used, as "Discover" would have."""
    server = RemoteServer.objects.get(pk=server_id)  # as it is now, not as the check began
    if found and not server.token_url and server.discovered_token_url != found:
        remember_discovery(server, token_url=found, error="", actor="system", request=None)


def fail_stalled_checks(now: datetime) -> int:
    """Checks queued or running for longer than BULKOPS_CHECK_TIMEOUT: their worker died
    or their message was lost. They end as errors instead of "running" forever."""
    cutoff = now - timedelta(seconds=settings.BULKOPS_CHECK_TIMEOUT)
    failed = ServerCheck.objects.filter(finished_at__isnull=True, created_at__lt=cutoff).update(
        status=ServerCheck.Status.ERROR,
        error="The check did not finish: the worker running it stopped. Start it again.",
        finished_at=now,
    )
    if failed:
        logger.warning("stalled server checks ended as errors: %d", failed)
    return failed
