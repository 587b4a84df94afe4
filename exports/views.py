"""Console pages for exports: list, launch (with scope lint), job detail with live
progress, cancel/delete/re-run, the NDJSON preview and download.

Every action goes through the services the FHIR API uses (`plan_export`,
`start_export`, `delete_export`); the console adds only who acted.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRefresh

from accounts.decorators import permission_required
from accounts.models import AuditEvent
from accounts.roles import RUN_EXPORTS, VIEW_CONSOLE
from accounts.tables import sorted_page
from bulkops.fhir.outcome import FhirError
from bulkops.fhir.params import STRICT
from bulkops.fhir_http import absolute_url
from exports.console_hooks import job_labels, launch_sources, panels_for
from exports.file_audit import record_file_read
from exports.filter_preview import preview_filters
from exports.forms import JobFilterForm, LaunchForm, bulk_data_label, rerun_pairs
from exports.kickoff import ExportPlan, access_for, kickoff_path, plan_export
from exports.manifests import applied_type_filters, manifest_as_served
from exports.models import ExportJob
from exports.services import delete_export, start_export
from exports.storage import storage_names
from exports.type_progress import progress_by_type

JOBS_PER_PAGE = 25
PARTITIONS_SHOWN = 50  # the polled fragment stays small whatever the job's size
SORTS = {
    "created": "created_at",
    "-created": "-created_at",
    "status": "status",
    "client": "client__name",
}


def get_job_for_user(request: HttpRequest, job_id: str) -> ExportJob:
    """The job by its public uuid, deleted ones included (the console keeps history)."""
    return get_object_or_404(ExportJob.objects.select_related("client"), uuid=job_id)


def _operator(request: HttpRequest) -> str:
    return request.user.get_username()


# --- List ------------------------------------------------------------------------------


def filtered_jobs(form: JobFilterForm) -> QuerySet[ExportJob]:
    jobs = ExportJob.objects.select_related("client")
    if not form.is_valid():
        return jobs
    data = form.cleaned_data
    if data["client"]:
        jobs = jobs.filter(client=data["client"])
    if data["status"]:
        jobs = jobs.filter(status=data["status"])
    if data["level"]:
        jobs = jobs.filter(level=data["level"])
    if data["date_from"]:
        jobs = jobs.filter(created_at__date__gte=data["date_from"])
    if data["date_to"]:
        jobs = jobs.filter(created_at__date__lte=data["date_to"])
    if query := data["q"].strip():
        jobs = jobs.filter(
            Q(uuid__istartswith=query)
            | Q(client__name__icontains=query)
            | Q(group_id__iexact=query)
            | Q(request_url__icontains=query)
        )
    return jobs


@require_GET
@permission_required(VIEW_CONSOLE)
def job_list(request: HttpRequest) -> HttpResponse:
    form = JobFilterForm(request.GET or None)
    table = sorted_page(
        request, filtered_jobs(form), sorts=SORTS, default="-created", per_page=JOBS_PER_PAGE
    )
    jobs = list(table["page"].object_list)
    labels = job_labels(jobs)
    for job in jobs:
        job.source_label = labels.get(job.pk, "")
    context = {"form": form, "jobs": jobs, **table}
    return render(request, "exports/job_list.html", context)


# --- Launch and scope lint ----------------------------------------------------------------


def plan_for_form(request: HttpRequest, form: LaunchForm) -> ExportPlan:
    """What the API would do with this request from this client (raises FhirError)."""
    client = form.cleaned_data["client"]
    return plan_export(
        client=client,
        level=form.cleaned_data["level"],
        group_id=form.group(),
        pairs=form.pairs(),
        handling=STRICT,
        now=timezone.now(),
        method="POST",
        access=access_for(client),
        base_url=absolute_url(request, "/fhir"),
        version=form.cleaned_data["bulk_version"],
    )


def lint_context(request: HttpRequest, form: LaunchForm) -> dict[str, Any]:
    context: dict[str, Any] = {"form": form, "plan": None, "refusal": ""}
    if any(form.filter_lines()):  # previewed even while the form has errors
        context["filters"] = preview_filters(
            form.filter_lines(),
            types=form.requested_types(),
            now=timezone.now(),
            base_url=absolute_url(request, "/fhir"),
        )
    if not form.is_valid():
        return context
    try:
        plan = plan_for_form(request, form)
    except FhirError as error:
        return {**context, "refusal": error.diagnostics}
    return {**context, "plan": plan, "client": form.cleaned_data["client"]}


@require_POST
@permission_required(RUN_EXPORTS)
def job_lint(request: HttpRequest) -> HttpResponse:
    """The launch form's live preview: what would be exported, what dropped and why,
    and how each `_typeFilter` parses and how much of the store it matches."""
    return render(
        request,
        "exports/partials/scope_lint.html",
        lint_context(request, LaunchForm(request.POST)),
    )


def job_bulk_data(job: ExportJob) -> str:
    return bulk_data_label(
        job.bulk_version,
        job.parameters.get("organizeOutputBy") or "",
        bool(job.parameters.get("allowPartialManifests")),
    )


@require_http_methods(["GET", "POST"])
@permission_required(RUN_EXPORTS)
def job_launch(request: HttpRequest) -> HttpResponse:
    form = LaunchForm(request.POST or None, initial={"client": request.GET.get("client")})
    context = lint_context(request, form) if request.method == "POST" else {"form": form}
    context["sources"] = launch_sources()
    if request.method == "POST" and context.get("plan") is not None:
        data = form.cleaned_data
        level, group_id = data["level"], form.group()
        try:
            job = start_export(
                client=data["client"],
                level=level,
                group_id=group_id,
                parameters=context["plan"].parameters,
                type_plan=context["plan"].type_plan,
                request_url=absolute_url(
                    request, kickoff_path(level, group_id, data["bulk_version"])
                )
                + f"?{urlencode(form.pairs())}",
                now=timezone.now(),
                request=request,
                operator=request.user,
                storage=data["storage"],
                bulk_version=data["bulk_version"],
            )
        except FhirError as error:
            context["refusal"] = error.diagnostics
        else:
            who = data["client"].name if data["client"] else "the console"
            messages.success(request, f"Export started for {who}.")
            return redirect("console:job-detail", job_id=job.uuid)
    return render(request, "exports/job_launch.html", context)


# --- Job detail, progress, actions -----------------------------------------------------------


def progress_context(job: ExportJob) -> dict[str, Any]:
    by_type = progress_by_type(job)
    workers = sorted({w for w in job.partitions.values_list("worker", flat=True) if w})
    partitions = list(job.partitions.all()[: PARTITIONS_SHOWN + 1])
    end = job.completed_at or timezone.now()
    elapsed = end - job.created_at
    percent = job.percent_done
    eta = elapsed * (100 - percent) / percent if 0 < percent < 100 and not job.is_finished else None
    panels = panels_for(job)
    return {
        "job": job,
        "panels": panels,
        "can_rerun": all(panel.can_rerun for panel in panels),
        "by_type": by_type,
        "workers": workers,
        "partitions": partitions[:PARTITIONS_SHOWN],
        "partitions_more": len(partitions) > PARTITIONS_SHOWN,
        "partitions_total": job.partitions_total,
        "elapsed": _duration(elapsed),
        "eta": _duration(eta) if eta is not None else "",
    }


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s"


@require_GET
@permission_required(VIEW_CONSOLE)
def job_detail(request: HttpRequest, job_id: str) -> HttpResponse:
    job = get_job_for_user(request, job_id)
    files = list(job.files.order_by("kind", "resource_type", "storage_key"))
    storage_missing = job.storage not in storage_names()
    manifest = (
        manifest_as_served(job, lambda path: absolute_url(request, path)).manifest
        if job.status == ExportJob.Status.COMPLETED
        and job.deleted_at is None
        and not storage_missing
        else None
    )
    context = progress_context(job)
    for panel in context["panels"]:
        for file in panel.files_shown:
            record_file_read(request, file)
    source_label = job_labels([job]).get(job.pk, "")
    context |= {
        "files": files if job.deleted_at is None else [],
        "totals": {
            "files": len(files),
            "count": sum(f.resource_count for f in files),
            "bytes": sum(f.size_bytes for f in files),
        },
        "manifest_json": json.dumps(manifest, indent=2) if manifest else "",
        "parameters_json": json.dumps(job.parameters, indent=2),
        "type_filters": type_filter_rows(job),
        "until": job.parameters.get("_until"),
        "storage_missing": storage_missing,
        "source_label": source_label,
        # Another source (a remote server) says in its own panel what it spoke.
        "bulk_data": "" if source_label else job_bulk_data(job),
        "timeline": AuditEvent.objects.filter(details__job=str(job.uuid)).order_by(
            "created_at", "pk"
        ),
    }
    return render(request, "exports/job_detail.html", context)


def type_filter_rows(job: ExportJob) -> list[dict[str, Any]]:
    """The job's filters, each saying whether it applied (its type is exported)."""
    applied = applied_type_filters(job)
    return [
        {"text": text, "applied": text in applied} for text in job.parameters.get("_typeFilter", [])
    ]


@require_GET
@permission_required(VIEW_CONSOLE)
def job_progress(request: HttpRequest, job_id: str) -> HttpResponse:
    """The polled fragment. The poll that finds the job finished reloads the page once,
    so the manifest and file list appear; a finished fragment never polls again."""
    job = get_job_for_user(request, job_id)
    if request.htmx and job.is_finished:
        return HttpResponseClientRefresh()
    return render(request, "exports/partials/job_progress.html", progress_context(job))


@require_POST
@permission_required(RUN_EXPORTS)
def job_delete(request: HttpRequest, job_id: str) -> HttpResponse:
    """Cancel a running job or delete a finished job's files, as DELETE on its status URL."""
    job = get_job_for_user(request, job_id)
    was_running = not job.is_finished
    if job.deleted_at is None:
        delete_export(
            job=job,
            actor_type=AuditEvent.ActorType.OPERATOR,
            actor=_operator(request),
            now=timezone.now(),
            request=request,
        )
    job.refresh_from_db()
    if request.htmx:
        if not was_running:  # the manifest and file list on the page are gone too
            return HttpResponseClientRefresh()
        return render(request, "exports/partials/job_progress.html", progress_context(job))
    messages.success(request, "Export cancelled." if was_running else "Export files deleted.")
    return redirect("console:job-detail", job_id=job.uuid)


@require_POST
@permission_required(RUN_EXPORTS)
def job_rerun(request: HttpRequest, job_id: str) -> HttpResponse:
    """Launch the same request again for the same client, planned afresh (scopes may
    have changed since)."""
    job = get_job_for_user(request, job_id)
    client = job.client
    if client is not None and not client.is_active:
        messages.error(request, "This job's client is disabled; it cannot run again.")
        return redirect("console:job-detail", job_id=job.uuid)
    if job.storage not in storage_names():
        messages.error(request, f"This job's output storage {job.storage!r} is not configured.")
        return redirect("console:job-detail", job_id=job.uuid)
    now = timezone.now()
    try:
        plan = plan_export(
            client=client,
            level=job.level,
            group_id=job.group_id,
            pairs=rerun_pairs(job),
            handling=STRICT,
            now=now,
            method="POST",
            access=access_for(client),
            base_url=absolute_url(request, "/fhir"),
            version=job.bulk_version,
        )
        new_job = start_export(
            client=client,
            level=job.level,
            group_id=job.group_id,
            parameters=plan.parameters,
            type_plan=plan.type_plan,
            request_url=job.request_url,
            now=now,
            request=request,
            operator=request.user,
            storage=job.storage,
            bulk_version=job.bulk_version,
        )
    except FhirError as error:
        messages.error(request, f"The export could not start again: {error.diagnostics}")
        return redirect("console:job-detail", job_id=job.uuid)
    messages.success(request, "Export started again.")
    return redirect("console:job-detail", job_id=new_job.uuid)
