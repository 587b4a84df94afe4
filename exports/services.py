"""Export job actions shared by the FHIR API, the console and the operator API."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.http import HttpRequest

from accounts.audit import record_event
from accounts.models import AuditEvent, BackendClient
from bulkops.fhir.export_types import TypePlan
from bulkops.fhir.outcome import THROTTLED, FhirError
from bulkops.fhir.params import V2, ExportParameters
from bulkops.task_queue import enqueue_or_leave
from exports.models import ExportJob
from exports.partitions import discard_files
from exports.storage import DEFAULT_STORAGE, UnknownStorage, job_storage
from exports.task_names import PLAN_EXPORT
from fhirstore.reads import newest_resource_pk

logger = logging.getLogger(__name__)


def start_export(
    *,
    client: BackendClient | None,
    level: str,
    group_id: str,
    parameters: ExportParameters,
    type_plan: TypePlan,
    request_url: str,
    now: datetime,
    request: HttpRequest | None = None,
    operator: AbstractBaseUser | None = None,
    schedule_actor: str = "",
    retention: int | None = None,
    bulk_version: str = V2,
    separate_status: bool = False,
    storage: str = DEFAULT_STORAGE,
) -> ExportJob:
    """Record a new job (transactionTime = now) and queue its planning.

    `operator` is the console user launching it on the client's behalf, or on the
    console's own behalf when `client` is None (such jobs are reachable only through the
    console): the audit event names them, so the trail tells the two apart. A scheduled
    run names its schedule in `schedule_actor` (a system actor) and may keep its files
    for `retention` seconds instead of BULKOPS_EXPORT_RETENTION.
    `bulk_version` and `separate_status` say how the status endpoint answers
    ($export-v4 with `Prefer: separate-export-status`, v4 digest §1.9).
    `storage` names the output storage its files go to (checked by the caller's form).

    A client may have BULKOPS_MAX_CONCURRENT_EXPORTS unfinished jobs; one more is
    refused with 429 (spec §1.5). The client row is locked so two simultaneous
    kick-offs cannot both take the last slot.
    """
    client_id = client.client_id if client is not None else ""
    if client is None and operator is None and not schedule_actor:
        raise ValueError("An export is started by a client, an operator or a schedule.")
    with transaction.atomic():
        if client is not None:
            BackendClient.objects.select_for_update().get(pk=client.pk)
        running = ExportJob.objects.filter(client=client).unfinished().count()
        if running >= settings.BULKOPS_MAX_CONCURRENT_EXPORTS:
            raise FhirError(
                429,
                f"This client already has {running} exports running, the most allowed at "
                "once. Wait for one to finish or DELETE its status URL, then try again.",
                code=THROTTLED,
                headers={"Retry-After": str(settings.BULKOPS_RETRY_AFTER * 5)},
            )
        job = ExportJob.objects.create(
            client=client,
            level=level,
            group_id=group_id,
            request_url=request_url,
            bulk_version=bulk_version,
            separate_status=separate_status,
            parameters=parameters.as_json(),
            types=list(type_plan.types),
            warnings=[*type_plan.warnings, *parameters.warnings],
            transaction_time=now,
            last_resource_id=newest_resource_pk(),
            retention=retention,
            storage=storage,
        )
        actor_type, actor = kickoff_actor(client_id, operator, schedule_actor)
        record_event(
            actor_type=actor_type,
            actor=actor,
            action="export.kickoff",
            request=request,
            details={
                "job": str(job.uuid),
                "client_id": client_id,
                "level": level,
                "group": group_id,
                "parameters": job.parameters,
                "types": job.types,
                "warnings": job.warnings,
                "storage": storage,
            },
        )
        transaction.on_commit(lambda: queue_planning(job.pk))
    logger.info("export accepted", extra={"job": job.uuid, "client_id": client_id})
    return job


def kickoff_actor(
    client_id: str, operator: AbstractBaseUser | None, schedule_actor: str
) -> tuple[str, str]:
    """Who the kick-off's audit event names: the operator, the schedule or the client."""
    if operator is not None:
        return AuditEvent.ActorType.OPERATOR, operator.get_username()
    if schedule_actor:
        return AuditEvent.ActorType.SYSTEM, schedule_actor
    return AuditEvent.ActorType.CLIENT, client_id


def queue_planning(job_id: int) -> None:
    """Queue the job's planning. With the broker down the job is still accepted: it is
    recorded, and the reaper (exports.recovery) queues it once the broker is back."""
    enqueue_or_leave(PLAN_EXPORT, left="planning left to the reaper", job_id=job_id)


@dataclass(frozen=True)
class PollDecision:
    throttled: bool
    retry_after: int


def register_poll(job: ExportJob, now: datetime) -> PollDecision:
    """Count a status poll; answer 429 only to a client that keeps polling far faster
    than Retry-After (spec §2.1, interop notes: never on the first polls)."""
    retry_after = settings.BULKOPS_RETRY_AFTER
    too_soon = job.last_polled_at is not None and now - job.last_polled_at < timedelta(
        seconds=retry_after / 2
    )
    early = job.early_polls + 1 if too_soon else 0
    ExportJob.objects.filter(pk=job.pk).update(last_polled_at=now, early_polls=early)
    return PollDecision(throttled=early > settings.BULKOPS_POLL_BURST, retry_after=retry_after)


def delete_export(
    *, job: ExportJob, actor_type: str, actor: str, now: datetime, request: HttpRequest | None
) -> None:
    """Cancel a running job or remove a finished one's files (spec §3).

    The job row stays for the audit trail, marked deleted: its status URL and files
    answer 404 from now on, and its concurrency slot is free at once.
    """
    with transaction.atomic():
        was_running = not job.is_finished
        ExportJob.objects.filter(pk=job.pk).update(
            deleted_at=now,
            status=ExportJob.Status.CANCELLED if was_running else job.status,
        )
        record_event(
            actor_type=actor_type,
            actor=actor,
            action="export.cancelled" if was_running else "export.deleted",
            request=request,
            details={"job": str(job.uuid)},
        )
    try:
        storage = job_storage(job)
    except UnknownStorage as missing:
        # The row is deleted all the same; the files stay where nothing here reaches.
        logger.error(
            "export files left in an unconfigured storage",
            extra={"job": job.uuid, "storage": missing.name},
        )
        return
    discard_files(job, job.files.all())
    storage.delete_prefix(str(job.uuid))


def expire_exports(*, now: datetime) -> int:
    """Delete the files of jobs past their retention; return how many jobs."""
    count = 0
    for job in ExportJob.objects.expired(now).select_related("client"):
        delete_export(job=job, actor_type="system", actor="retention", now=now, request=None)
        count += 1
    if count:
        logger.info("expired exports deleted: %d", count)
    return count
