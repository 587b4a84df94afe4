"""Console pages for schedules: list, define, change, and one schedule with its runs.

Admins and operators manage schedules (the run-exports permission), every console
role reads them. Each action is a schedules.services call, as in the operator API.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import permission_required
from accounts.roles import RUN_EXPORTS, VIEW_CONSOLE
from bulkops.htmx_redirect import redirect_after_form
from bulkops.outbound.origins import origin_text
from schedules.forms import ScheduleForm
from schedules.models import ExportSchedule
from schedules.queries import runs_with_counts
from schedules.services import delete_schedule, run_schedule, set_paused

RUNS_SHOWN = 50


def get_schedule(schedule_id: str) -> ExportSchedule:
    return get_object_or_404(ExportSchedule.objects.select_related("client"), uuid=schedule_id)


@require_GET
@permission_required(VIEW_CONSOLE)
def schedule_list(request: HttpRequest) -> HttpResponse:
    schedules = ExportSchedule.objects.select_related("client")
    return render(request, "schedules/list.html", {"schedules": schedules})


@require_http_methods(["GET", "POST"])
@permission_required(RUN_EXPORTS)
def schedule_form(request: HttpRequest, schedule_id: str | None = None) -> HttpResponse:
    """Define a schedule, or change one (`schedule_id`)."""
    schedule = get_schedule(schedule_id) if schedule_id else None
    form = ScheduleForm(request.POST or None, instance=schedule)
    if request.method == "POST" and form.is_valid():
        schedule = form.save(request)
        messages.success(request, f"Schedule {schedule.name} saved.")
        return redirect("console:schedule-detail", schedule_id=schedule.uuid)
    return render(request, "schedules/form.html", {"form": form, "schedule": schedule})


@require_GET
@permission_required(VIEW_CONSOLE)
def schedule_detail(request: HttpRequest, schedule_id: str) -> HttpResponse:
    schedule = get_schedule(schedule_id)
    context = {
        "schedule": schedule,
        "runs": runs_with_counts(schedule)[:RUNS_SHOWN],
        "notifications": schedule.notifications.all()[:RUNS_SHOWN],
        "webhook_origin": origin_text(schedule.notify_webhook_url),
    }
    return render(request, "schedules/detail.html", context)


@require_POST
@permission_required(RUN_EXPORTS)
def schedule_pause(request: HttpRequest, schedule_id: str, paused: bool) -> HttpResponse:
    schedule = get_schedule(schedule_id)
    set_paused(
        schedule=schedule, paused=paused, operator=request.user, request=request, now=timezone.now()
    )
    messages.success(request, f"Schedule {'paused' if paused else 'resumed'}.")
    return redirect("console:schedule-detail", schedule_id=schedule.uuid)


@require_POST
@permission_required(RUN_EXPORTS)
def schedule_run(request: HttpRequest, schedule_id: str) -> HttpResponse:
    """Run now, besides the schedule's own times (which stay as they are)."""
    schedule = get_schedule(schedule_id)
    run = run_schedule(
        schedule_id=schedule.pk, now=timezone.now(), operator=request.user, request=request
    )
    if run is None or run.job is None:
        messages.error(request, f"No export started: {run.refusal if run else 'not due'}")
        return redirect("console:schedule-detail", schedule_id=schedule.uuid)
    messages.success(request, "Export started.")
    return redirect("console:job-detail", job_id=run.job.uuid)


@require_POST
@permission_required(RUN_EXPORTS)
def schedule_delete(request: HttpRequest, schedule_id: str) -> HttpResponse:
    schedule = get_schedule(schedule_id)
    delete_schedule(schedule=schedule, operator=request.user, request=request)
    messages.success(request, f"Schedule {schedule.name} deleted; its exports remain.")
    return redirect_after_form(request, "console:schedule-list")
