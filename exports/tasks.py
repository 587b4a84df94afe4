"""Celery tasks of an export. Ids in; the work is in exports.partitions."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from django.db import DatabaseError
from django.utils import timezone

from bulkops.task_queue import enqueue_or_leave
from exports.models import ExportPartition
from exports.partitions import (
    begin_finalizing,
    fail_export,
    finalize_export,
    plan_export,
    run_partition,
)
from exports.recovery import reap_stalled_exports
from exports.services import expire_exports
from exports.task_names import FINALIZE_EXPORT, PLAN_EXPORT, RUN_PARTITION

logger = logging.getLogger(__name__)


class ExportTask(Task):
    """Owns failure bookkeeping: a task that gives up marks its job failed with a reason
    a person can read, instead of leaving it "in progress" forever."""

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        job_id = kwargs.get("job_id")
        if job_id is None and "partition_id" in kwargs:
            job_id = (
                ExportPartition.objects.filter(pk=kwargs["partition_id"])
                .values_list("job_id", flat=True)
                .first()
            )
        if job_id is not None:
            fail_export(
                job_id, f"The export stopped after an internal error ({type(exc).__name__})."
            )


RETRYING = {
    "base": ExportTask,
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (DatabaseError, OSError),
    # 2, 4, 8, 16, 32 s apart without jitter: a database or storage outage of about a
    # minute is ridden out (jittered waits could all fall inside a short outage).
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": False,
    "max_retries": 5,
}


@shared_task(name=PLAN_EXPORT, **RETRYING)
def plan_export_task(self: Task, job_id: int) -> None:
    """Plan the job and queue its partitions. With the broker gone while they are
    queued the job is not failed: its partitions are recorded, and the reaper queues
    the ones still pending once the broker is back (exports.recovery)."""
    for partition_id in plan_export(job_id):
        if not enqueue_or_leave(
            RUN_PARTITION, left="partitions left to the reaper", partition_id=partition_id
        ):
            return


@shared_task(name=RUN_PARTITION, **RETRYING)
def run_partition_task(self: Task, partition_id: int) -> None:
    for added in run_partition(partition_id=partition_id, worker=self.request.hostname or "worker"):
        run_partition_task.delay(partition_id=added)


@shared_task(name=FINALIZE_EXPORT, **RETRYING)
def finalize_export_task(self: Task, job_id: int) -> None:
    """Finish a job whose partitions are all done: add its referenced partitions if it
    has none yet, else write its manifest (the reaper's way to resume either)."""
    for added in begin_finalizing(job_id, self.request.hostname or "worker"):
        run_partition_task.delay(partition_id=added)
    finalize_export(job_id)


@shared_task
def reap_stalled_exports_task() -> dict[str, int]:
    return reap_stalled_exports(timezone.now()).__dict__


@shared_task
def expire_exports_task() -> int:
    return expire_exports(now=timezone.now())
