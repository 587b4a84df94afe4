"""Celery tasks of schedules: ids in; the work is in schedules.services and .notify."""

from __future__ import annotations

from celery import Task, shared_task
from django.conf import settings
from django.utils import timezone

from schedules.models import ExportSchedule
from schedules.notify import DeliveryFailed, deliver, give_up, notify_export
from schedules.services import run_schedule
from schedules.task_names import NOTIFY_EXPORT, RUN_SCHEDULE, SEND_NOTIFICATION


@shared_task(name=RUN_SCHEDULE, acks_late=True)
def run_schedule_task(schedule_id: int) -> None:
    """Beat's wake-up (django-celery-beat's crontab entry for the schedule)."""
    try:
        run_schedule(schedule_id=schedule_id, now=timezone.now())
    except ExportSchedule.DoesNotExist:
        return  # deleted since beat read its entry


@shared_task(name=NOTIFY_EXPORT, acks_late=True)
def notify_export_task(job_id: int) -> None:
    notify_export(job_id)


@shared_task(name=SEND_NOTIFICATION, bind=True, acks_late=True)
def send_notification_task(self: Task, notification_id: int) -> None:
    """Deliver; when that fails, Celery tries again after BULKOPS_NOTIFY_RETRY_DELAY
    seconds, then twice as long each time, BULKOPS_NOTIFY_RETRIES times in all."""
    try:
        deliver(notification_id)
    except DeliveryFailed:
        retries = self.request.retries
        if retries >= settings.BULKOPS_NOTIFY_RETRIES:
            give_up(notification_id)
            return
        countdown = settings.BULKOPS_NOTIFY_RETRY_DELAY * 2**retries
        raise self.retry(countdown=countdown, max_retries=settings.BULKOPS_NOTIFY_RETRIES) from None
