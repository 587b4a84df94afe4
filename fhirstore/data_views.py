"""Console data page: what the store holds, Groups from patient ids, and uploads that
go through the same loader as `manage.py load_fhir` (one file, one transaction)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from django.contrib import messages
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts.audit import record_event
from accounts.decorators import permission_required
from accounts.models import AuditEvent
from accounts.roles import RUN_EXPORTS, VIEW_CONSOLE
from bulkops.fhir.cohort import CohortError, parse_member_filters
from bulkops.htmx_redirect import redirect_after_form
from fhirstore.cohorts import cohort_members, save_cohort
from fhirstore.data_sections import data_sections
from fhirstore.forms import CohortForm, GroupForm, UploadForm
from fhirstore.groups import GroupError, delete_group, find_patients, upsert_group
from fhirstore.loaders import load_files
from fhirstore.models import GroupMembership, Resource
from fhirstore.uploads import upload_refusal


def data_context(
    group_form: GroupForm, upload_form: UploadForm, cohort_form: CohortForm | None = None
) -> dict[str, Any]:
    groups = (
        Resource.objects.live()
        .filter(resource_type="Group")
        .annotate(members=Count("memberships", filter=Q(memberships__inactive=False)))
        .order_by("resource_id")
    )
    per_type = (
        Resource.objects.live()
        .values("resource_type")
        .annotate(n=Count("pk"))
        .order_by("resource_type")
    )
    return {
        "groups": groups,
        "per_type": per_type,
        "group_form": group_form,
        "upload_form": upload_form,
        "sections": data_sections(),
        "cohort_form": cohort_form or CohortForm(),
    }


def _group_initial(group_id: str) -> dict[str, str]:
    group = Resource.objects.live().filter(resource_type="Group", resource_id=group_id).first()
    if group is None:
        return {}
    members = GroupMembership.objects.filter(group=group).values_list("patient_id", flat=True)
    name = json.loads(group.body).get("name", "") if group.body else ""
    return {"group_id": group_id, "name": name, "patients": "\n".join(sorted(members))}


@require_GET
@permission_required(VIEW_CONSOLE)
def data_page(request: HttpRequest) -> HttpResponse:
    group_form = GroupForm(initial=_group_initial(request.GET.get("group", "")))
    return render(request, "fhirstore/data.html", data_context(group_form, UploadForm()))


@require_POST
@permission_required(RUN_EXPORTS)
def group_save(request: HttpRequest) -> HttpResponse:
    form = GroupForm(request.POST)
    if form.is_valid():
        try:
            group = upsert_group(
                group_id=form.cleaned_data["group_id"] or None,
                name=form.cleaned_data["name"],
                patient_ids=form.patient_ids(),
                actor=request.user.get_username(),
                request=request,
            )
        except GroupError as error:
            form.add_error("patients", str(error))
        else:
            name = form.cleaned_data["name"]
            messages.success(request, f"Saved {name} (Group/{group.resource_id}).")
            return redirect("console:data")
    return render(request, "fhirstore/data.html", data_context(form, UploadForm()), status=400)


@require_POST
@permission_required(RUN_EXPORTS)
def group_delete(request: HttpRequest, group_id: str) -> HttpResponse:
    """Delete a Group (the page asks first): Group exports of it get 404 from then on,
    clients bound to it can export nothing until they are bound to another."""
    try:
        delete_group(group_id=group_id, actor=request.user.get_username(), request=request)
    except GroupError as error:
        messages.error(request, str(error).capitalize() + ".")
    else:
        messages.success(request, f"Deleted Group/{group_id}.")
    return redirect_after_form(request, "console:data")


@require_GET
@permission_required(RUN_EXPORTS)
def patient_search(request: HttpRequest) -> HttpResponse:
    """Patients by id or name, as boxes to tick into the Group being edited."""
    query = request.GET.get("patient_q", "")
    context = {"patients": find_patients(query), "patient_q": query.strip()}
    return render(request, "fhirstore/partials/patient_results.html", context)


@require_POST
@permission_required(RUN_EXPORTS)
def cohort_count(request: HttpRequest) -> HttpResponse:
    """The cohort builder's live count: how many patients the filters select now, or
    why a filter cannot be applied (htmx fragment)."""
    lines = [line for line in request.POST.get("filters", "").splitlines() if line.strip()]
    context: dict[str, Any] = {"count": None, "problem": ""}
    if lines:
        try:
            context["count"] = len(cohort_members(parse_member_filters(lines, now=timezone.now())))
        except CohortError as error:
            context["problem"] = str(error)
    return render(request, "fhirstore/partials/cohort_count.html", context)


@require_POST
@permission_required(RUN_EXPORTS)
def cohort_save(request: HttpRequest) -> HttpResponse:
    form = CohortForm(request.POST)
    if form.is_valid():
        try:
            group = save_cohort(
                group_id=form.cleaned_data["cohort_id"] or None,
                name=form.cleaned_data["cohort_name"],
                filters=form.filter_lines(),
                actor=request.user.get_username(),
                now=timezone.now(),
            )
        except CohortError as error:
            form.add_error("filters", str(error))
        else:
            quantity = json.loads(group.body)["quantity"]
            messages.success(
                request, f"Saved cohort Group/{group.resource_id} with {quantity} members."
            )
            return redirect("console:data")
    context = data_context(GroupForm(), UploadForm(), form)
    return render(request, "fhirstore/data.html", context, status=400)


@require_POST
@permission_required(RUN_EXPORTS)
def data_upload(request: HttpRequest) -> HttpResponse:
    """Load the uploaded files as one set, as `load_fhir` loads files (`load_files`): a
    bad file changes nothing and says why, a file that is not FHIR data is skipped."""
    form = UploadForm(request.POST, request.FILES, refusal=upload_refusal(request))
    if not form.is_valid():
        return render(request, "fhirstore/data.html", data_context(GroupForm(), form), status=400)
    uploads = form.cleaned_data["files"]
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for index, upload in enumerate(uploads):  # a folder each: two may share a name
            path = Path(folder) / str(index) / Path(upload.name or "upload").name
            path.parent.mkdir()
            with path.open("wb") as out:
                for chunk in upload.chunks():
                    out.write(chunk)
            paths.append(path)
        reports = load_files(paths)
    failed = [r for r in reports if r.error]
    record_event(
        actor_type=AuditEvent.ActorType.OPERATOR,
        actor=request.user.get_username(),
        action="data.uploaded",
        outcome=AuditEvent.Outcome.FAILURE if failed else AuditEvent.Outcome.SUCCESS,
        request=request,
        details={
            "files": [
                {
                    "name": r.path.name,
                    "error": r.error or "",
                    "skipped": r.skipped or "",
                    "created": r.result.created.total(),
                }
                for r in reports
            ]
        },
    )
    context = data_context(GroupForm(), UploadForm())
    context["reports"] = reports
    return render(request, "fhirstore/data.html", context)
