"""Schedule actions shared by the console and the operator API, and the run beat starts.

A run is an ordinary export: planned by `exports.kickoff.plan_export` and started by
`exports.services.start_export`, as a launch from the console is, so it has the same
engine, manifest and audit trail. An incremental schedule asks for `_since` = the
transactionTime of its last run that completed: a run that failed, was cancelled or
never started changes nothing, and the next run covers its time too.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.http import HttpRequest
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from accounts.audit import record_event
from accounts.models import AuditEvent, BackendClient
from bulkops.fhir.outcome import FhirError
from bulkops.fhir.params import STRICT
from bulkops.outbound.origins import origin_text
from exports.kickoff import ExportPlan, access_for, kickoff_path, plan_export
from exports.models import ExportJob
from exports.services import start_export
from exports.storage import storage_names
from remotes.crypto import encrypt
from remotes.models import RemoteServer
from schedules.cron import fires_between, latest_fire, next_fire
from schedules.models import ExportSchedule, ScheduleRun
from schedules.notify import queue_run_notifications
from schedules.task_names import RUN_SCHEDULE
from transfers.services import DeliveryRefused, deliver

logger = logging.getLogger(__name__)

# Beat may wake a schedule a moment before its fire time; that wake-up is for it.
EARLY_WAKE = timedelta(seconds=30)
# Missed fire times are counted up to this many (a minutely schedule after a long outage).
MISSED_COUNTED = 1000


@dataclass(frozen=True)
class ScheduleFields:
    """What an operator defines; checked by schedules.forms.ScheduleForm."""

    name: str
    client: BackendClient | None
    level: str
    group_id: str
    types: list[str]
    type_filters: list[str]
    elements: list[str]
    cron: str
    timezone: str
    retention: int | None
    storage: str
    incremental: bool
    notify_webhook_url: str
    notify_webhook_secret: str | None  # None: keep the one saved
    notify_email: str
    submit_to: RemoteServer | None = None


def kickoff_pairs(schedule: ExportSchedule, since: datetime | None) -> list[tuple[str, str]]:
    """The run as $export parameters, so planning is the FHIR kick-off's own."""
    pairs = [("_type", ",".join(schedule.types))] if schedule.types else []
    if since is not None:
        pairs.append(("_since", since.isoformat()))
    if schedule.elements:
        pairs.append(("_elements", ",".join(schedule.elements)))
    return pairs + [("_typeFilter", text) for text in schedule.type_filters]


def plan_run(schedule: ExportSchedule, *, since: datetime | None, now: datetime) -> ExportPlan:
    """What the FHIR API would do with this request from the schedule's client
    (raises FhirError): strict, so a run never quietly exports less than defined."""
    return plan_export(
        client=schedule.client,
        level=schedule.level,
        group_id=schedule.group_id,
        pairs=kickoff_pairs(schedule, since),
        handling=STRICT,
        now=now,
        method="POST",
        access=access_for(schedule.client),
        base_url=f"{schedule.public_base_url()}/fhir",
    )


def audit_details(schedule: ExportSchedule) -> dict[str, Any]:
    """The schedule as the audit trail keeps it: the webhook by its origin only (its
    path or query may hold a token), the secret never."""
    return {
        "schedule": str(schedule.uuid),
        "name": schedule.name,
        "client_id": schedule.client.client_id if schedule.client_id else "",
        "level": schedule.level,
        "group": schedule.group_id,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "storage": schedule.storage,
        "incremental": schedule.incremental,
        "webhook": origin_text(schedule.notify_webhook_url) if schedule.notify_webhook_url else "",
        "email": schedule.notify_email,
    }


def _record(
    schedule: ExportSchedule,
    action: str,
    *,
    operator: AbstractBaseUser | None,
    request: HttpRequest | None,
    **extra: Any,
) -> None:
    record_event(
        actor_type=AuditEvent.ActorType.OPERATOR if operator else AuditEvent.ActorType.SYSTEM,
        actor=operator.get_username() if operator else f"schedule {schedule.name}",
        action=action,
        request=request,
        details={**audit_details(schedule), **extra},
    )


def save_schedule(
    *,
    schedule: ExportSchedule | None,
    fields: ScheduleFields,
    operator: AbstractBaseUser,
    request: HttpRequest | None,
    base: str,
    now: datetime,
) -> ExportSchedule:
    """Create a schedule (`schedule` None) or change one; beat follows at once.

    `base` is this server's URL as the operator reached it. The first run is the next
    fire time after `now`: a new or changed schedule never fires for a time before it.
    """
    created = schedule is None
    values = asdict(fields)
    secret = values.pop("notify_webhook_secret")
    schedule = schedule or ExportSchedule(created_by=operator.get_username())
    for name, value in values.items():
        setattr(schedule, name, value)
    if secret is not None:
        schedule.notify_webhook_secret = encrypt(secret) if secret else ""
    schedule.base_url = base
    schedule.last_slot = latest_fire(schedule.parsed_cron, now)
    schedule.next_run_at = next_fire(schedule.parsed_cron, now)
    with transaction.atomic():
        schedule.save()
        sync_periodic_task(schedule)
        _record(
            schedule,
            "schedule.created" if created else "schedule.updated",
            operator=operator,
            request=request,
        )
    return schedule


def sync_periodic_task(schedule: ExportSchedule) -> None:
    """django-celery-beat's crontab row for the schedule, enabled unless paused."""
    minute, hour, day_of_month, month_of_year, day_of_week = schedule.cron.split()
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
        timezone=ZoneInfo(schedule.timezone),
    )
    task = schedule.periodic_task or PeriodicTask(
        name=f"bulkops schedule {schedule.uuid}", task=RUN_SCHEDULE
    )
    replaced = task.crontab_id
    task.crontab = crontab
    task.kwargs = json.dumps({"schedule_id": schedule.pk})
    task.enabled = not schedule.paused
    task.description = schedule.name
    task.save()
    if schedule.periodic_task_id != task.pk:
        schedule.periodic_task = task
        schedule.save(update_fields=["periodic_task"])
    if replaced != crontab.pk:
        _drop_if_unused(replaced)


def _drop_if_unused(crontab_id: int | None) -> None:
    """Delete a crontab row no beat entry uses any more: otherwise every change of a
    schedule's time, and every deleted schedule, leaves one behind for good."""
    CrontabSchedule.objects.filter(pk=crontab_id, periodictask__isnull=True).delete()


def set_paused(
    *,
    schedule: ExportSchedule,
    paused: bool,
    operator: AbstractBaseUser,
    request: HttpRequest | None,
    now: datetime,
) -> None:
    """Pause or resume. Fire times that pass while paused are skipped, not caught up."""
    cron = schedule.parsed_cron
    schedule.paused = paused
    schedule.last_slot = latest_fire(cron, now)
    schedule.next_run_at = None if paused else next_fire(cron, now)
    with transaction.atomic():
        schedule.save(update_fields=["paused", "last_slot", "next_run_at", "updated_at"])
        sync_periodic_task(schedule)
        _record(
            schedule,
            "schedule.paused" if paused else "schedule.resumed",
            operator=operator,
            request=request,
        )


def delete_schedule(
    *, schedule: ExportSchedule, operator: AbstractBaseUser, request: HttpRequest | None
) -> None:
    """Remove the schedule and its beat entry; its runs' exports stay, as any export."""
    with transaction.atomic():
        _record(schedule, "schedule.deleted", operator=operator, request=request)
        task = schedule.periodic_task
        schedule.delete()
        if task is not None:
            task.delete()
            _drop_if_unused(task.crontab_id)


def last_success(schedule: ExportSchedule) -> datetime | None:
    """The transactionTime of the schedule's last run that completed."""
    return (
        ExportJob.objects.filter(schedule_run__schedule=schedule, status=ExportJob.Status.COMPLETED)
        .order_by("-transaction_time")
        .values_list("transaction_time", flat=True)
        .first()
    )


@dataclass(frozen=True)
class Due:
    """What a beat wake-up is for: the fire time, and how many passed unrun before it."""

    slot: datetime
    missed: int


def due_slot(schedule: ExportSchedule, now: datetime) -> Due | None:
    """The fire time a wake-up at `now` runs, or None when it has been run already.

    After downtime (beat or workers stopped, the broker down) this is the latest fire
    time only: the schedule runs once, not once per missed time, and the others are
    counted as missed.
    """
    cron = schedule.parsed_cron
    slot = latest_fire(cron, now + EARLY_WAKE)
    if slot is None or (schedule.last_slot is not None and slot <= schedule.last_slot):
        return None
    after = schedule.last_slot or schedule.created_at
    return Due(slot, fires_between(cron, after, slot, limit=MISSED_COUNTED))


def run_schedule(
    *,
    schedule_id: int,
    now: datetime,
    operator: AbstractBaseUser | None = None,
    request: HttpRequest | None = None,
) -> ScheduleRun | None:
    """Start a run: the one due at `now` when beat wakes the schedule (operator None),
    or one more at once when an operator asks. None: beat's wake-up found nothing due
    (paused, or this fire time has been run).

    A run while the previous one is still exporting starts nothing (it is recorded, and
    reported as missed): two incremental runs would both export the same changes.
    """
    with transaction.atomic():
        schedule = (
            ExportSchedule.objects.select_for_update(of=("self",))
            .select_related("client")
            .get(pk=schedule_id)
        )
        due = None
        if operator is None:
            due = due_slot(schedule, now) if not schedule.paused else None
            if due is None:
                return None
            schedule.last_slot = due.slot
            schedule.next_run_at = next_fire(schedule.parsed_cron, max(now, due.slot))
            schedule.save(update_fields=["last_slot", "next_run_at"])
        run = ScheduleRun(
            schedule=schedule,
            trigger=ScheduleRun.Trigger.MANUAL if operator else ScheduleRun.Trigger.BEAT,
            slot=due.slot if due else None,
            missed=due.missed if due else 0,
        )
        run.refusal = _start(schedule, run, now=now, operator=operator, request=request)
        run.save()
        _record(
            schedule,
            "schedule.run",
            operator=operator,
            request=request,
            job=str(run.job.uuid) if run.job else "",
            since=run.since.isoformat() if run.since else "",
            missed=run.missed,
            refusal=run.refusal,
        )

    queue_run_notifications(run)
    return run


def _start(
    schedule: ExportSchedule,
    run: ScheduleRun,
    *,
    now: datetime,
    operator: AbstractBaseUser | None,
    request: HttpRequest | None,
) -> str:
    """Start the run's export; the reason in words when none starts."""
    if schedule.client is not None and not schedule.client.is_active:
        return "The schedule's client is disabled."
    if ExportJob.objects.filter(schedule_run__schedule=schedule).unfinished().exists():
        return "The previous run is still exporting."
    if schedule.storage not in storage_names():
        return f"The schedule's output storage {schedule.storage!r} is not configured."
    run.since = last_success(schedule) if schedule.incremental else None
    try:
        plan = plan_run(schedule, since=run.since, now=now)
        pairs = kickoff_pairs(schedule, run.since)
        path = kickoff_path(schedule.level, schedule.group_id)
        run.job = start_export(
            client=schedule.client,
            level=schedule.level,
            group_id=schedule.group_id,
            parameters=plan.parameters,
            type_plan=plan.type_plan,
            request_url=f"{schedule.public_base_url()}{path}"
            + (f"?{urlencode(pairs)}" if pairs else ""),
            now=now,
            request=request,
            operator=operator,
            schedule_actor=f"schedule {schedule.name}",
            retention=schedule.retention,
            storage=schedule.storage,
        )
    except FhirError as error:
        logger.warning("scheduled export refused", extra={"schedule": schedule.uuid})
        return error.diagnostics
    return _deliver(schedule, run.job)


def _deliver(schedule: ExportSchedule, job: ExportJob) -> str:
    """Have the run's export sent to the schedule's receiver when it completes; why it
    will not be, in words ("" when it will)."""
    if schedule.submit_to is None:
        return ""
    try:
        deliver(
            job,
            schedule.submit_to,
            base_url=schedule.public_base_url(),
            actor=f"schedule {schedule.name}",
            request=None,
        )
    except DeliveryRefused as refused:
        return f"The export runs, but will not be sent to {schedule.submit_to.name}: {refused}"
    return ""
