"""Celery task of a remote export. The job id in; the work is in remotes.runner."""

from __future__ import annotations

from celery import Task, shared_task

from exports.tasks import ExportTask
from remotes.runner import run_remote_export


@shared_task(base=ExportTask, bind=True, acks_late=True)
def run_remote_export_task(self: Task, job_id: int) -> None:
    run_remote_export(job_id)
