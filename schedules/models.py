"""Scheduled exports, their runs, and the notifications bulkops sends about exports."""

from __future__ import annotations

import uuid

from cron_descriptor import (
    FormatException,
    MissingFieldException,
    WrongArgumentException,
    get_description,
)
from django.conf import settings
from django.db import models

from bulkops.output_storages import DEFAULT_STORAGE
from schedules.cron import Cron, parse_cron, parse_zone


class ExportSchedule(models.Model):
    """An export launched again and again at the times its cron expression names.

    Beat wakes it through `periodic_task` (django-celery-beat's row, kept in step by
    schedules.services); `last_slot` is the fire time last handled, so a second wake-up
    for one slot starts nothing, and `next_run_at` is what the console shows.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100, unique=True)
    client = models.ForeignKey(
        "accounts.BackendClient",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="export_schedules",
        help_text="Empty: the console itself.",
    )
    level = models.CharField(max_length=16)
    group_id = models.CharField(max_length=64, blank=True)
    types = models.JSONField(default=list)
    type_filters = models.JSONField(default=list)
    elements = models.JSONField(default=list)
    cron = models.CharField(max_length=120)
    timezone = models.CharField(max_length=64, default="UTC")
    # Seconds a run's files are kept; None: BULKOPS_EXPORT_RETENTION.
    retention = models.PositiveIntegerField(null=True, blank=True)
    # The output storage its runs write to (exports.storage names).
    storage = models.CharField(max_length=32, default=DEFAULT_STORAGE)
    incremental = models.BooleanField(default=False)
    paused = models.BooleanField(default=False)
    # This server's URL when the schedule was saved: runs have no request to build the
    # manifest's `request` URL from when BULKOPS_BASE_URL is not set.
    base_url = models.CharField(max_length=255, blank=True)
    last_slot = models.DateTimeField(null=True, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    notify_webhook_url = models.URLField(max_length=2000, blank=True)
    # Encrypted at rest (remotes.crypto); never shown again once saved.
    notify_webhook_secret = models.TextField(blank=True)
    notify_email = models.EmailField(blank=True)
    # Each run's export, once complete, goes to this server's $bulk-submit (transfers).
    submit_to = models.ForeignKey(
        "remotes.RemoteServer",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Each run's export is sent to this server's $bulk-submit.",
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="export_schedule",
    )
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def public_base_url(self) -> str:
        """This server's base URL for the schedule's runs: BULKOPS_BASE_URL, or the one
        recorded when the schedule was saved."""
        return settings.BULKOPS_BASE_URL or self.base_url

    @property
    def parsed_cron(self) -> Cron:
        return parse_cron(self.cron, parse_zone(self.timezone))

    @property
    def description(self) -> str:
        """The cron expression in words ("At 02:30 AM, only on Monday")."""
        try:
            return get_description(self.cron)
        except (FormatException, MissingFieldException, WrongArgumentException):
            return self.cron

    @property
    def owner_label(self) -> str:
        return self.client.name if self.client_id else "the console"


class ScheduleRun(models.Model):
    """One run of a schedule: the export it started, or why it started none."""

    class Trigger(models.TextChoices):
        BEAT = "beat"
        MANUAL = "manual"

    schedule = models.ForeignKey(ExportSchedule, on_delete=models.CASCADE, related_name="runs")
    job = models.OneToOneField(
        "exports.ExportJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="schedule_run",
    )
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    slot = models.DateTimeField(null=True, blank=True, help_text="The fire time it ran for.")
    since = models.DateTimeField(null=True, blank=True, help_text="The _since it chained to.")
    missed = models.PositiveIntegerField(default=0, help_text="Fire times passed before it.")
    refusal = models.TextField(blank=True, help_text="Why no export started.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.schedule} run {self.pk}"

    @property
    def status(self) -> str:
        return "not started" if self.job_id is None else self.job.status


class Notification(models.Model):
    """One webhook call or email about an export or a schedule, and how it went.

    The destination's URL and secret are read from the schedule or the settings when
    sending; only a shown form (the URL's origin, the address) is kept here.
    """

    class Channel(models.TextChoices):
        WEBHOOK = "webhook"
        EMAIL = "email"

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event = models.CharField(max_length=32)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    schedule = models.ForeignKey(
        ExportSchedule,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notifications",
        help_text="Sent to this schedule's destination; empty: to the configured one.",
    )
    destination = models.CharField(max_length=255)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "created_at"], name="notification_status")]

    def __str__(self) -> str:
        return f"{self.event} by {self.channel} to {self.destination}"
