"""The console's dashboard: what every app has to say at a glance (exports running and
failed, the store's inventory, clients with a problem, keys about to expire,
notifications not delivered). It sits above the apps whose state it shows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.decorators import permission_required
from accounts.key_health import keys_near_expiry
from accounts.models import BackendClient
from accounts.roles import VIEW_CONSOLE
from exports.dashboard import BAR_WIDTH, CHART_DAYS, CHART_HEIGHT, daily_bars, inventory, window
from exports.models import ExportJob
from schedules.notify import recent_failures

RECENT = 10


@require_GET
@permission_required(VIEW_CONSOLE)
def dashboard(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    clients = list(BackendClient.objects.all())
    bars = daily_bars(now)
    context = {
        **running_context(),
        "windows": [window(now, 7), window(now, 30)],
        "bars": bars,
        "chart_width": CHART_DAYS * (BAR_WIDTH + 4),
        "chart_height": CHART_HEIGHT,
        "chart_peak": max((bar.count for bar in bars), default=0),
        "failures": ExportJob.objects.filter(
            status=ExportJob.Status.FAILED, created_at__gte=now - timedelta(days=7)
        ).select_related("client")[:RECENT],
        "inventory": inventory(),
        "disabled_clients": [c for c in clients if not c.is_active],
        "idle_clients": [c for c in clients if c.is_active and not c.exports_anything],
        "expiring_keys": keys_near_expiry(now),
        "notification_failures": recent_failures(now),
    }
    return render(request, "console/dashboard.html", context)


def running_context() -> dict[str, Any]:
    return {"running": ExportJob.objects.unfinished().select_related("client")[:RECENT]}


@require_GET
@permission_required(VIEW_CONSOLE)
def dashboard_running(request: HttpRequest) -> HttpResponse:
    """The dashboard's running-jobs panel alone; it polls itself while jobs run."""
    return render(request, "console/partials/running_jobs.html", running_context())
