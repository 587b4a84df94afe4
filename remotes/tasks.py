"""Celery tasks of the remotes app: ids in; the work is in remotes.runner (remote exports)
and remotes.server_checks (conformance checks)."""

from __future__ import annotations

from celery import Task, shared_task
from django.utils import timezone

from exports.tasks import ExportTask
from remotes.models import ServerCheck
from remotes.runner import run_remote_export
from remotes.server_checks import fail_stalled_checks, run_check
from remotes.task_names import RUN_REMOTE_EXPORT, RUN_SERVER_CHECK


@shared_task(name=RUN_REMOTE_EXPORT, base=ExportTask, bind=True, acks_late=True)
def run_remote_export_task(self: Task, job_id: int) -> None:
    run_remote_export(job_id)


@shared_task(name=RUN_SERVER_CHECK)
def run_server_check_task(check_id: int) -> str:
    check = ServerCheck.objects.select_related("server").get(pk=check_id)
    return run_check(check=check).status


@shared_task
def fail_stalled_checks_task() -> int:
    return fail_stalled_checks(timezone.now())
