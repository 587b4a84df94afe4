"""Celery tasks of a submission: one per manifest, one per file. Ids in; the work is in
submissions.services."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from django.utils import timezone

from submissions import services
from submissions.models import SubmittedFile
from submissions.task_names import FETCH_MANIFEST, LOAD_FILE, PURGE_SUBMISSION


class SubmissionTask(Task):
    """A file task that gives up marks its file failed, so the submission's status can
    still complete, instead of leaving the file "loading" forever."""

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        if "file_id" in kwargs:
            SubmittedFile.objects.filter(
                pk=kwargs["file_id"], status=SubmittedFile.Status.LOADING
            ).update(
                status=SubmittedFile.Status.FAILED,
                error=f"not loaded after an internal error ({type(exc).__name__})",
                finished_at=timezone.now(),
            )


OPTIONS = {"base": SubmissionTask, "acks_late": True, "reject_on_worker_lost": True}


@shared_task(name=FETCH_MANIFEST, **OPTIONS)
def fetch_manifest_task(manifest_id: int) -> None:
    services.fetch_manifest(manifest_id=manifest_id, now=timezone.now())


@shared_task(name=LOAD_FILE, **OPTIONS)
def load_file_task(file_id: int) -> None:
    services.load_submitted_file(file_id=file_id, now=timezone.now())


@shared_task(name=PURGE_SUBMISSION, **OPTIONS)
def purge_submission_task(submission_id: int) -> None:
    services.purge_submission(submission_id=submission_id, now=timezone.now())
