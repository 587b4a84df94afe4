"""Figures for the console dashboard: a few aggregate queries, no per-row loops."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from exports.models import ExportFile, ExportJob
from fhirstore.reads import live_counts_by_type

CHART_DAYS = 14
CHART_HEIGHT = 80
BAR_WIDTH = 18


@dataclass(frozen=True)
class Window:
    days: int
    exports: int
    resources: int
    bytes: int


@dataclass(frozen=True)
class Bar:
    day: date
    count: int
    x: int
    y: int
    height: int


def window(now: datetime, days: int) -> Window:
    since = now - timedelta(days=days)
    jobs = ExportJob.objects.filter(created_at__gte=since)
    totals = jobs.aggregate(n=Count("pk"), resources=Sum("resources_exported"))
    size = ExportFile.objects.filter(job__in=jobs).aggregate(b=Sum("size_bytes"))["b"]
    return Window(days, totals["n"], totals["resources"] or 0, size or 0)


def daily_bars(now: datetime) -> list[Bar]:
    """Exports started per day over the last CHART_DAYS days, as SVG bar geometry."""
    # Days as the operator counts them: the database truncates in the active time zone.
    first = timezone.localdate(now) - timedelta(days=CHART_DAYS - 1)
    counts = dict(
        ExportJob.objects.filter(created_at__date__gte=first)
        .annotate(day=TruncDate("created_at"))
        .values_list("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
    )
    peak = max(counts.values(), default=0) or 1
    bars = []
    for i in range(CHART_DAYS):
        day = first + timedelta(days=i)
        count = counts.get(day, 0)
        height = round(count * CHART_HEIGHT / peak)
        bars.append(Bar(day, count, i * (BAR_WIDTH + 4), CHART_HEIGHT - height, height))
    return bars


def inventory() -> dict[str, Any]:
    per_type = live_counts_by_type()
    return {
        "types": per_type[:10],
        "other_types": len(per_type) - 10 if len(per_type) > 10 else 0,
        "total": sum(row["n"] for row in per_type),
        "groups": next((row["n"] for row in per_type if row["resource_type"] == "Group"), 0),
    }
