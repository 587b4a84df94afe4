"""Finding exports whose worker went away, and finishing or failing them.

bulkops does not count on the broker to redeliver a task whose worker died: Redis does
so only after its visibility timeout, and the embedded filesystem broker never does. A
running partition renews its lease at every chunk (exports.partitions.record_chunk); a
periodic reaper (Celery beat, BULKOPS_REAPER_INTERVAL) re-queues work whose lease ran
out, and fails the job with a readable reason once a partition has been started
BULKOPS_PARTITION_MAX_ATTEMPTS times without finishing. Re-queued work is idempotent:
claiming decides who runs a partition, and its files have deterministic names. Each
recovery is an `export.recovered` event in the job's timeline, so an operator reading
the job sees which worker was lost and what was handed on, not only a log line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Q

from bulkops.task_queue import enqueue
from exports.models import ExportJob, ExportPartition
from exports.partitions import ALL_TYPES, SMALL_TYPES, fail_export, record_job_event
from exports.task_names import FINALIZE_EXPORT, PLAN_EXPORT, RUN_PARTITION

logger = logging.getLogger(__name__)


@dataclass
class ReapReport:
    replanned: int = 0
    requeued: int = 0
    refinalized: int = 0
    failed: int = 0


def reap_stalled_exports(now: datetime) -> ReapReport:
    lease = timedelta(seconds=settings.BULKOPS_PARTITION_LEASE)
    report = ReapReport()
    live = ExportJob.objects.filter(deleted_at__isnull=True)

    for job in live.filter(
        status=ExportJob.Status.ACCEPTED, created_at__lt=now - lease
    ).select_related("client"):
        enqueue(PLAN_EXPORT, job_id=job.pk)
        record_recovery(job, "Its planning task was lost; planning was queued again.")
        report.replanned += 1

    running = ExportPartition.objects.filter(
        job__status=ExportJob.Status.RUNNING, job__deleted_at__isnull=True
    )
    # A pending partition gets a deadline the first time the reaper sees it; if it is
    # still pending after that, its queued message was lost.
    running.filter(status=ExportPartition.Status.PENDING, lease_until__isnull=True).update(
        lease_until=now + lease
    )
    stalled = running.filter(
        Q(status=ExportPartition.Status.PENDING) | Q(status=ExportPartition.Status.RUNNING),
        lease_until__lt=now,
    )
    for partition in stalled.select_related("job__client"):
        part = part_name(partition)
        if partition.attempts >= settings.BULKOPS_PARTITION_MAX_ATTEMPTS:
            fail_export(
                partition.job_id,
                f"{part} of this export was started {partition.attempts} times and its "
                "worker stopped responding each time, so the export was stopped. Check the "
                "workers' logs, then run it again.",
            )
            report.failed += 1
            continue
        if partition.status == ExportPartition.Status.PENDING:
            ExportPartition.objects.filter(pk=partition.pk).update(lease_until=now + lease)
            lost = "its queued task was lost"
        else:
            lost = f"its worker {partition.worker} stopped renewing its lease"
        enqueue(RUN_PARTITION, partition_id=partition.pk)
        record_recovery(
            partition.job,
            f"{part} ({partition.sequence + 1}) was queued again for any worker: {lost}.",
            partition=partition,
        )
        report.requeued += 1

    # A job whose partitions are all done but which was neither finalised nor given its
    # referenced partitions: the worker that completed the last one stopped in between.
    all_done = Q(status=ExportJob.Status.RUNNING, partitions_done=F("partitions_total"))
    for job in live.filter(
        all_done | Q(status=ExportJob.Status.FINALIZING), created_at__lt=now - lease
    ).select_related("client"):
        enqueue(FINALIZE_EXPORT, job_id=job.pk)
        record_recovery(job, "Finalising did not finish; it was queued again.")
        report.refinalized += 1

    if report != ReapReport():
        logger.warning(
            "stalled exports found: %(replanned)d re-planned, %(requeued)d re-queued, "
            "%(refinalized)d re-finalized, %(failed)d failed",
            report.__dict__,
        )
    return report


def part_name(partition: ExportPartition) -> str:
    if partition.resource_type in (ALL_TYPES, SMALL_TYPES):
        return "A part"
    return f"The {partition.resource_type} part"


def record_recovery(
    job: ExportJob, reason: str, *, partition: ExportPartition | None = None
) -> None:
    """An `export.recovered` event in the job's timeline: what the reaper handed on, and
    for a partition which worker held it and how many times it has been started."""
    details = {}
    if partition is not None:
        details = {
            "partition": partition.sequence,
            "resource_type": partition.resource_type,
            "worker": partition.worker,
            "attempts": partition.attempts,
        }
    record_job_event(job, "export.recovered", reason=reason, **details)
