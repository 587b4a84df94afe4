"""The schedule form, for the console and (as its validator) the operator API.

It extends the export launch form, so the client, level, group, `_type`, `_elements`
and `_typeFilter` fields and their checks are the launch's own; the whole definition is
then planned as a run would be (`schedules.services.plan_run`), so a schedule that
could never start is refused when it is saved, not at its first run.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from bulkops.fhir.outcome import FhirError
from bulkops.fhir_http import absolute_url
from exports.forms import LaunchForm
from remotes.models import RemoteServer
from schedules.cron import WEEKDAYS, CronError, daily, parse_cron, parse_zone, weekly
from schedules.models import ExportSchedule
from schedules.services import ScheduleFields, plan_run, save_schedule

FREQUENCIES = [("daily", "Every day"), ("weekly", "Every week"), ("cron", "Cron expression")]
WEEKDAY_CHOICES = [(i, name.capitalize()) for i, name in enumerate(WEEKDAYS)]


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


class ScheduleForm(LaunchForm):
    since = None  # chained by the schedule itself when incremental
    until = None
    output_format = None
    bulk_version = None  # schedules run 2.0.0 exports
    organize_by_patient = None
    allow_partial_manifests = None

    name = forms.CharField(max_length=100)
    frequency = forms.ChoiceField(choices=FREQUENCIES, initial="daily")
    at = forms.TimeField(
        label="Time", required=False, help_text="HH:MM in the time zone below (daily, weekly)."
    )
    weekday = forms.TypedChoiceField(choices=WEEKDAY_CHOICES, coerce=int, required=False, initial=1)
    cron = forms.CharField(
        label="Cron expression",
        required=False,
        max_length=120,
        help_text="minute hour day-of-month month day-of-week, e.g. 30 2 * * mon-fri",
    )
    timezone = forms.CharField(
        label="Time zone", max_length=64, help_text="IANA name, e.g. Europe/Berlin or UTC"
    )
    retention_hours = forms.IntegerField(
        label="Keep files (hours)",
        required=False,
        min_value=1,
        max_value=24 * 365,
        help_text="Empty: the server's default retention.",
    )
    incremental = forms.BooleanField(
        required=False,
        help_text="Each run exports only what changed since the last run that completed.",
    )
    notify_webhook_url = forms.URLField(
        label="Webhook URL", required=False, max_length=2000, assume_scheme="https"
    )
    notify_webhook_secret = forms.CharField(
        label="Webhook secret",
        required=False,
        max_length=200,
        widget=forms.PasswordInput,
        help_text="Signs each call (HMAC-SHA256). Leave empty to keep the saved one.",
    )
    notify_email = forms.EmailField(label="Email", required=False)
    submit_to = forms.ModelChoiceField(
        queryset=RemoteServer.objects.exclude(client_id=""),
        to_field_name="name",
        required=False,
        label="Send each run to",
        empty_label="Nobody",
        help_text="A remote server's $bulk-submit receives each run's export once it completes.",
    )

    field_order = [
        "name",
        "client",
        "level",
        "group_id",
        "types",
        "elements",
        "type_filters",
        "frequency",
        "at",
        "weekday",
        "cron",
        "timezone",
        "retention_hours",
        "storage",
        "incremental",
        "notify_webhook_url",
        "notify_webhook_secret",
        "notify_email",
        "submit_to",
    ]

    def __init__(self, *args: Any, instance: ExportSchedule | None = None, **kwargs: Any) -> None:
        self.instance = instance
        if instance is not None and "initial" not in kwargs:
            kwargs["initial"] = initial_for(instance)
        kwargs.setdefault("initial", {}).setdefault("timezone", settings.TIME_ZONE)
        super().__init__(*args, **kwargs)
        self.fields["client"].empty_label = "The console itself (every type, no group binding)"

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        others = ExportSchedule.objects.filter(name=name)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise forms.ValidationError("Another schedule has this name.")
        return name

    def clean_timezone(self) -> str:
        name = self.cleaned_data["timezone"].strip()
        try:
            parse_zone(name)
        except CronError as error:
            raise forms.ValidationError(str(error)) from None
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        expression, field = self.expression(data)
        if expression and "timezone" in data:
            try:
                parse_cron(expression, parse_zone(data["timezone"]))
            except CronError as error:
                self.add_error(field, str(error))
            else:
                data["cron"] = expression
        url, secret = data.get("notify_webhook_url"), data.get("notify_webhook_secret")
        saved = self.instance is not None and self.instance.notify_webhook_secret
        if url and not secret and not saved:
            self.add_error("notify_webhook_secret", "A webhook needs a secret to sign its calls.")
        if not self.errors:
            self.check_plan()
        return data

    def expression(self, data: dict[str, Any]) -> tuple[str, str]:
        """The cron expression the frequency fields give, and the field to blame."""
        frequency = data.get("frequency")
        if frequency == "cron":
            if not data.get("cron"):
                self.add_error("cron", "Give a cron expression.")
            return data.get("cron", "").strip(), "cron"
        if data.get("at") is None:
            self.add_error("at", "Give the time of day.")
            return "", "at"
        if frequency == "weekly":
            return weekly(data.get("weekday") or 0, data["at"]), "weekday"
        return daily(data["at"]), "at"

    def check_plan(self) -> None:
        """Plan a run now, as the first run will: refusals become the form's errors."""
        try:
            plan_run(ExportSchedule(**self.model_values()), since=None, now=timezone.now())
        except FhirError as error:
            self.add_error(None, error.diagnostics)

    def model_values(self) -> dict[str, Any]:
        data = self.cleaned_data
        hours = data.get("retention_hours")
        return {
            "name": data["name"],
            "client": data["client"],
            "level": data["level"],
            "group_id": self.group(),
            "types": _names(data["types"]),
            "type_filters": [line for line in self.filter_lines() if line],
            "elements": _names(data["elements"]),
            "cron": data["cron"],
            "timezone": data["timezone"],
            "retention": hours * 3600 if hours else None,
            "storage": data["storage"],
            "incremental": data["incremental"],
            "notify_webhook_url": data["notify_webhook_url"],
            "notify_email": data["notify_email"],
            "submit_to": data["submit_to"],
        }

    def save(self, request: HttpRequest) -> ExportSchedule:
        """Create or change the schedule as the operator signed in to `request`."""
        return save_schedule(
            schedule=self.instance,
            fields=self.schedule_fields(),
            operator=request.user,
            request=request,
            base=absolute_url(request, "/").rstrip("/"),
            now=timezone.now(),
        )

    def schedule_fields(self) -> ScheduleFields:
        """The definition for schedules.services.save_schedule; an empty secret field
        keeps the saved secret, and no webhook keeps none."""
        secret: str | None = self.cleaned_data["notify_webhook_secret"] or None
        if not self.cleaned_data["notify_webhook_url"]:
            secret = ""
        return ScheduleFields(**self.model_values(), notify_webhook_secret=secret)


def initial_for(schedule: ExportSchedule) -> dict[str, Any]:
    retention = schedule.retention
    return {
        "name": schedule.name,
        "client": schedule.client.client_id if schedule.client_id else None,
        "level": schedule.level,
        "group_id": schedule.group_id,
        "types": ",".join(schedule.types),
        "elements": ",".join(schedule.elements),
        "type_filters": "\n".join(schedule.type_filters),
        "frequency": "cron",
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "retention_hours": retention // 3600 if retention else None,
        "storage": schedule.storage,
        "incremental": schedule.incremental,
        "notify_webhook_url": schedule.notify_webhook_url,
        "notify_email": schedule.notify_email,
        "submit_to": schedule.submit_to.name if schedule.submit_to_id else None,
    }
