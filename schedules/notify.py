"""Notifications: a signed webhook call and/or an email when an export completes or
fails, or a schedule misses its time (a run after downtime, or one that started nothing).

Destinations are the configured ones (BULKOPS_NOTIFY_WEBHOOK_URL, BULKOPS_NOTIFY_EMAIL),
for every export, and a schedule's own, for its runs. Each delivery is a Notification
row and a Celery task; a failed one is tried again with exponential backoff, and one that
never succeeds is listed on the dashboard.

The webhook body is JSON. `X-Bulkops-Signature: sha256=<hex>` is HMAC-SHA256, keyed
with the shared secret, over `<X-Bulkops-Timestamp>.<body>`: a receiver recomputes it,
compares in constant time and refuses old timestamps, so a captured call cannot be
replayed later. `X-Bulkops-Delivery` stays the same across retries of one delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from bulkops.outbound import client as outbound
from bulkops.outbound.guard import FetchError
from bulkops.outbound.origins import origin_text
from bulkops.task_queue import enqueue_or_leave
from exports.models import ExportJob
from remotes.crypto import decrypt
from schedules.models import ExportSchedule, Notification, ScheduleRun
from schedules.task_names import NOTIFY_EXPORT, SEND_NOTIFICATION

logger = logging.getLogger(__name__)

COMPLETED = "export.completed"
FAILED = "export.failed"
MISSED = "schedule.missed"
WEBHOOK_TIMEOUT = 10  # seconds for the whole call
WEBHOOK_MAX_ANSWER = 64 * 1024


class DeliveryFailed(Exception):
    """A delivery that may succeed if tried again; the message says why, in words."""


# --- What to send, and where -----------------------------------------------------------


def destinations(schedule: ExportSchedule | None) -> list[tuple[str, ExportSchedule | None, str]]:
    """(channel, schedule whose destination it is or None, shown destination)."""
    found: list[tuple[str, ExportSchedule | None, str]] = []
    if settings.BULKOPS_NOTIFY_WEBHOOK_URL:
        found.append(("webhook", None, origin_text(settings.BULKOPS_NOTIFY_WEBHOOK_URL)))
    if settings.BULKOPS_SENDS_EMAIL:
        found += [("email", None, address.strip()) for address in settings.BULKOPS_NOTIFY_EMAIL]
    if schedule is not None and schedule.notify_webhook_url:
        found.append(("webhook", schedule, origin_text(schedule.notify_webhook_url)))
    if schedule is not None and schedule.notify_email and settings.BULKOPS_SENDS_EMAIL:
        found.append(("email", schedule, schedule.notify_email))
    return found


def job_summary(job: ExportJob, schedule: ExportSchedule | None) -> dict[str, Any]:
    base = schedule.public_base_url() if schedule else settings.BULKOPS_BASE_URL
    return {
        "id": str(job.uuid),
        "status": job.status,
        "level": job.level,
        "group": job.group_id,
        "client_id": job.client.client_id if job.client_id else None,
        "transaction_time": job.transaction_time.isoformat(),
        "since": job.parameters.get("_since"),
        "resources": job.resources_exported,
        "failure_reason": job.failure_reason,
        "console_url": f"{base}/exports/{job.uuid}/" if base else None,
    }


def schedule_summary(schedule: ExportSchedule) -> dict[str, Any]:
    return {"id": str(schedule.uuid), "name": schedule.name, "cron": schedule.cron}


def create_notifications(
    event: str, schedule: ExportSchedule | None, body: dict[str, Any]
) -> list[Notification]:
    """One row per destination, each queued for sending once the caller commits."""
    created = []
    for channel, owner, shown in destinations(schedule):
        notification = Notification.objects.create(
            event=event, channel=channel, schedule=owner, destination=shown[:255]
        )
        notification.payload = {
            "id": str(notification.uuid),
            "event": event,
            "occurred_at": timezone.now().isoformat(),
            **body,
        }
        notification.save(update_fields=["payload"])
        created.append(notification)
        transaction.on_commit(lambda pk=notification.pk: _queue_send(pk))
    return created


def _queue_send(notification_id: int) -> None:
    enqueue_or_leave(
        SEND_NOTIFICATION, left="notification not sent", notification_id=notification_id
    )


def queue_export_notifications(job_id: int) -> None:
    """exports.finish_hooks listener: the worker finishing the export only queues, and
    only when someone is to hear of it."""
    own = Q(schedule__notify_webhook_url__gt="") | Q(schedule__notify_email__gt="")
    if not destinations(None) and not ScheduleRun.objects.filter(own, job_id=job_id).exists():
        return
    enqueue_or_leave(NOTIFY_EXPORT, left="export not notified", job_id=job_id)


def notify_export(job_id: int) -> list[Notification]:
    job = ExportJob.objects.select_related("client").get(pk=job_id)
    if job.status not in (ExportJob.Status.COMPLETED, ExportJob.Status.FAILED):
        return []
    run = ScheduleRun.objects.filter(job=job).select_related("schedule").first()
    schedule = run.schedule if run else None
    event = COMPLETED if job.status == ExportJob.Status.COMPLETED else FAILED
    body = {
        "job": job_summary(job, schedule),
        "schedule": schedule_summary(schedule) if schedule else None,
    }
    with transaction.atomic():
        return create_notifications(event, schedule, body)


def queue_run_notifications(run: ScheduleRun) -> list[Notification]:
    """A beat run that comes after missed fire times, or that started nothing, missed
    its time: say so. (An operator's "run now" that starts nothing is answered there.)"""
    if run.trigger == ScheduleRun.Trigger.MANUAL or not (run.missed or run.refusal):
        return []
    body = {
        "schedule": schedule_summary(run.schedule),
        "job": job_summary(run.job, run.schedule) if run.job else None,
        "slot": run.slot.isoformat() if run.slot else None,
        "missed": run.missed,
        "reason": run.refusal
        or f"{run.missed} scheduled time(s) passed without a run; this run covers them.",
    }
    with transaction.atomic():
        return create_notifications(MISSED, run.schedule, body)


def recent_failures(now: datetime, limit: int = 10) -> QuerySet[Notification]:
    """Deliveries that gave up in the last week, for the dashboard."""
    return Notification.objects.filter(
        status=Notification.Status.FAILED, created_at__gte=now - timedelta(days=7)
    ).select_related("schedule")[:limit]


# --- Sending ----------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def _webhook(notification: Notification) -> tuple[str, str]:
    """The URL and secret, read now: neither is ever stored with the notification."""
    if notification.schedule is None:
        return settings.BULKOPS_NOTIFY_WEBHOOK_URL, settings.BULKOPS_NOTIFY_WEBHOOK_SECRET
    schedule = notification.schedule
    secret = decrypt(schedule.notify_webhook_secret) if schedule.notify_webhook_secret else ""
    return schedule.notify_webhook_url, secret


def post_webhook(notification: Notification) -> None:
    url, secret = _webhook(notification)
    if not url:
        raise DeliveryFailed("the webhook is no longer configured")
    body = json.dumps(notification.payload, separators=(",", ":")).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "bulkops",
        "X-Bulkops-Event": notification.event,
        "X-Bulkops-Delivery": str(notification.uuid),
        "X-Bulkops-Timestamp": str(timestamp),
        "X-Bulkops-Signature": sign(secret, timestamp, body),
    }
    try:
        answer = outbound.request(
            "POST",
            url,
            headers=headers,
            content=body,
            timeout=WEBHOOK_TIMEOUT,
            max_bytes=WEBHOOK_MAX_ANSWER,
            truncate=True,
        )
    except FetchError as error:
        raise DeliveryFailed(str(error)) from None
    if not 200 <= answer.status < 300:
        raise DeliveryFailed(f"the receiver answered HTTP {answer.status}")


def send_email(notification: Notification) -> None:
    payload = notification.payload
    name = (payload.get("schedule") or {}).get("name")
    job = payload.get("job") or {}
    subject = {
        COMPLETED: "Export completed",
        FAILED: "Export failed",
        MISSED: "Scheduled export missed its time",
    }[notification.event] + (f": {name}" if name else "")
    lines = [f"{key}: {value}" for key, value in job.items() if value not in (None, "")]
    if payload.get("reason"):
        lines.insert(0, payload["reason"])
    try:
        send_mail(
            f"[bulkops] {subject}",
            "\n".join(lines) + "\n",
            settings.DEFAULT_FROM_EMAIL,
            [notification.destination],
        )
    except OSError as error:
        raise DeliveryFailed(f"the mail server refused or could not be reached ({error})") from None


def deliver(notification_id: int) -> None:
    """Send once; DeliveryFailed when it did not go (the attempt and why are recorded)."""
    notification = (
        Notification.objects.select_related("schedule").filter(pk=notification_id).first()
    )
    if notification is None or notification.status != Notification.Status.PENDING:
        return  # sent already, or its schedule was deleted meanwhile
    Notification.objects.filter(pk=notification_id).update(attempts=notification.attempts + 1)
    try:
        if notification.channel == Notification.Channel.WEBHOOK:
            post_webhook(notification)
        else:
            send_email(notification)
    except DeliveryFailed as error:
        Notification.objects.filter(pk=notification_id).update(error=str(error)[:2000])
        raise
    Notification.objects.filter(pk=notification_id).update(
        status=Notification.Status.SENT, sent_at=timezone.now(), error=""
    )


def give_up(notification_id: int) -> None:
    Notification.objects.filter(pk=notification_id).update(status=Notification.Status.FAILED)
    logger.warning("notification failed", extra={"notification": notification_id})
