"""Reads the console and the operator API share: a schedule's runs with their counts."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from schedules.models import ExportSchedule, ScheduleRun


def runs_with_counts(schedule: ExportSchedule) -> QuerySet[ScheduleRun]:
    """Newest first, each with its export and how many files it wrote (resources are
    counted on the export itself)."""
    return (
        schedule.runs.select_related("job")
        .annotate(files=Count("job__files"))
        .order_by("-created_at", "-pk")
    )
