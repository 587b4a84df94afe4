"""Console pages owned by accounts: dashboard, backend clients, audit trail, operators."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.audit import record_event
from accounts.decorators import permission_required
from accounts.forms import AuditFilterForm, ClientEditForm, ClientForm, KeyForm
from accounts.jwks import JwksError, fetch_jwks, key_bits, registered_keys, validate_jwks
from accounts.models import AccessToken, AuditEvent, BackendClient
from accounts.roles import MANAGE_CLIENTS, MANAGE_OPERATORS, VIEW_AUDIT, VIEW_CONSOLE
from accounts.services import (
    add_client_key,
    disable_client,
    enable_client,
    register_client,
    retire_client_key,
    update_client,
)
from bulkops.fhir.scopes import readable_types
from exports.dashboard import BAR_WIDTH, CHART_DAYS, CHART_HEIGHT, daily_bars, inventory, window
from exports.models import ExportJob

AUDIT_PAGE_SIZE = 50
RECENT = 10


@require_GET
@permission_required(VIEW_CONSOLE)
def dashboard(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    clients = list(BackendClient.objects.all())
    context = {
        **running_context(),
        "windows": [window(now, 7), window(now, 30)],
        "bars": daily_bars(now),
        "chart_width": CHART_DAYS * (BAR_WIDTH + 4),
        "chart_height": CHART_HEIGHT,
        "failures": ExportJob.objects.filter(
            status=ExportJob.Status.FAILED, created_at__gte=now - timedelta(days=7)
        ).select_related("client")[:RECENT],
        "inventory": inventory(),
        "disabled_clients": [c for c in clients if not c.is_active],
        "idle_clients": [c for c in clients if c.is_active and not exportable(c)],
    }
    return render(request, "console/dashboard.html", context)


def running_context() -> dict[str, Any]:
    return {"running": ExportJob.objects.unfinished().select_related("client")[:RECENT]}


@require_GET
@permission_required(VIEW_CONSOLE)
def dashboard_running(request: HttpRequest) -> HttpResponse:
    """The dashboard's running-jobs panel alone; it polls itself while jobs run."""
    return render(request, "console/partials/running_jobs.html", running_context())


def filtered_events(form: AuditFilterForm) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.all()
    if not form.is_valid():
        return events
    data = form.cleaned_data
    if data["actor"]:
        events = events.filter(actor__icontains=data["actor"])
    if data["client"]:
        events = events.filter(Q(actor=data["client"]) | Q(details__client_id=data["client"]))
    if data["action"]:
        events = events.filter(action=data["action"])
    if data["outcome"]:
        events = events.filter(outcome=data["outcome"])
    if data["date_from"]:
        events = events.filter(created_at__date__gte=data["date_from"])
    if data["date_to"]:
        events = events.filter(created_at__date__lte=data["date_to"])
    return events


def event_links(events: list[AuditEvent]) -> list[dict[str, Any]]:
    """Each event with the job and the (registered) client it is about, for links.

    A refused token request names an unverified client_id: only ids that exist link.
    """
    named = {e.details.get("client_id") or e.actor for e in events}
    known = set(
        BackendClient.objects.filter(client_id__in=named).values_list("client_id", flat=True)
    )
    rows = []
    for event in events:
        client_id = event.details.get("client_id") or (
            event.actor if event.actor_type == AuditEvent.ActorType.CLIENT else ""
        )
        rows.append(
            {
                "event": event,
                "job": event.details.get("job", ""),
                "client_id": client_id if client_id in known else "",
            }
        )
    return rows


@require_GET
@permission_required(VIEW_AUDIT)
def audit_trail(request: HttpRequest) -> HttpResponse:
    """Read-only by construction: this app has no view that changes an AuditEvent."""
    form = AuditFilterForm(request.GET or None)
    page = Paginator(filtered_events(form), AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "rows": event_links(list(page.object_list)),
        "filter_query": query.urlencode(),
    }
    return render(request, "accounts/audit_trail.html", context)


CSV_COLUMNS = ("created_at", "actor_type", "actor", "action", "outcome", "reason", "ip_address")


class _Echo:
    def write(self, value: str) -> str:
        return value


@require_GET
@permission_required(VIEW_AUDIT)
def audit_csv(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered trail as CSV, streamed in pk order; the export itself is audited."""
    form = AuditFilterForm(request.GET or None)
    events = filtered_events(form).order_by("created_at", "pk")
    record_event(
        actor_type=AuditEvent.ActorType.OPERATOR,
        actor=request.user.get_username(),
        action="audit.exported",
        request=request,
        details={"filters": {k: v for k, v in request.GET.items() if v}},
    )
    writer = csv.writer(_Echo())

    def rows() -> Iterator[str]:
        yield writer.writerow([*CSV_COLUMNS, "details"])
        for event in events.iterator(chunk_size=1000):
            values = [getattr(event, name) for name in CSV_COLUMNS]
            values[0] = event.created_at.isoformat()
            yield writer.writerow(
                [*(v if v is not None else "" for v in values), json.dumps(event.details)]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="bulkops-audit.csv"'
    return response


@require_GET
@permission_required(MANAGE_OPERATORS)
def operator_list(request: HttpRequest) -> HttpResponse:
    operators = get_user_model().objects.prefetch_related("groups").order_by("username")
    return render(request, "accounts/operator_list.html", {"operators": operators})


# --- Backend clients ------------------------------------------------------------------


def get_client_for_user(request: HttpRequest, client_id: str) -> BackendClient:
    """The client addressed by its public client_id; 404 when there is none. Every
    console user may read clients; changes are checked by the views' permissions."""
    return get_object_or_404(BackendClient, client_id=client_id)


def exportable(client: BackendClient) -> bool:
    """Whether the client's registered scopes let it read (so export) any type."""
    access = readable_types(client.scopes.split())
    return access.all_types or bool(access.types)


@require_GET
@permission_required(VIEW_CONSOLE)
def client_list(request: HttpRequest) -> HttpResponse:
    clients = BackendClient.objects.prefetch_related("bound_groups")
    status = request.GET.get("status", "")
    if status in BackendClient.Status.values:
        clients = clients.filter(status=status)
    if query := request.GET.get("q", "").strip():
        clients = clients.filter(Q(name__icontains=query) | Q(client_id__icontains=query))
    rows = [{"client": c, "exportable": exportable(c)} for c in clients]
    return render(
        request,
        "accounts/client_list.html",
        {"rows": rows, "status": status, "q": query, "statuses": BackendClient.Status.values},
    )


@require_http_methods(["GET", "POST"])
@permission_required(MANAGE_CLIENTS)
def client_register(request: HttpRequest) -> HttpResponse:
    form = ClientForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        jwks, jwks_uri, _ = form.key_source()
        try:
            client = register_client(
                name=form.cleaned_data["name"],
                jwks=jwks,
                jwks_uri=jwks_uri,
                scopes=form.scopes(),
                group_ids=form.group_ids(),
                created_by=request.user,
            )
        except ValidationError as error:
            for key, problems in error.message_dict.items():
                for problem in problems:
                    form.add_error(form.field_for(key), problem)
        else:
            messages.success(request, f"Registered {client.name}. Its client_id is shown below.")
            return redirect("console:client-detail", client_id=client.client_id)
    scope_preview = form.scopes() if hasattr(form, "cleaned_data") else ""
    return render(
        request, "accounts/client_register.html", {"form": form, "scope_preview": scope_preview}
    )


@require_POST
@permission_required(MANAGE_CLIENTS)
def client_scope_preview(request: HttpRequest) -> HttpResponse:
    """The scopes the checklist and syntax choice stand for, as they will be registered."""
    form = ClientForm(request.POST)
    form.is_valid()  # scopes() reads only the scope fields, which always clean
    return render(request, "accounts/partials/scope_preview.html", {"scopes": form.scopes()})


@require_POST
@permission_required(MANAGE_CLIENTS)
def client_keys_check(request: HttpRequest) -> HttpResponse:
    """ "Fetch and check": list every key of the pasted, uploaded or linked JWK Set with
    what bulkops can use it for, before anything is registered."""
    form = ClientForm(request.POST, request.FILES)
    form.is_valid()  # only the key fields matter here
    context: dict[str, Any] = {"keys": [], "problem": ""}
    jwks, jwks_uri, key_field = (
        form.key_source() if not form.has_error("jwks") else (None, None, "")
    )
    try:
        if jwks_uri:
            jwks, _ = fetch_jwks(jwks_uri)
        elif jwks is None:
            raise JwksError(
                form.errors.get("jwks", ["Paste a JWK Set, upload one, or give its URL."])[0]
            )
        infos = validate_jwks(jwks)
        context["keys"] = [
            {"info": info, "bits": key_bits(jwk)}
            for info, jwk in zip(infos, jwks["keys"], strict=True)
        ]
    except JwksError as error:
        context["problem"] = str(error)
    record_event(
        actor_type=AuditEvent.ActorType.OPERATOR,
        actor=request.user.get_username(),
        action="client.keys_checked",
        outcome=AuditEvent.Outcome.FAILURE if context["problem"] else AuditEvent.Outcome.SUCCESS,
        reason=context["problem"],
        request=request,
        details={"jwks_uri": jwks_uri or "", "kids": [k["info"].kid for k in context["keys"]]},
    )
    return render(request, "accounts/partials/jwks_check.html", context)


@require_GET
@permission_required(VIEW_CONSOLE)
def client_detail(request: HttpRequest, client_id: str) -> HttpResponse:
    client = get_client_for_user(request, client_id)
    return render_client_detail(request, client, KeyForm())


def render_client_detail(
    request: HttpRequest, client: BackendClient, key_form: KeyForm, status: int = 200
) -> HttpResponse:
    try:
        keys, key_problem = registered_keys(client), ""
    except JwksError as error:
        keys, key_problem = [], str(error)
    context = {
        "client": client,
        "keys": keys,
        "key_problem": key_problem,
        "exportable": exportable(client),
        "groups": client.bound_groups.order_by("group_id"),
        "tokens": AccessToken.objects.filter(client=client).order_by("-created_at")[:RECENT],
        "jobs": client.export_jobs.order_by("-created_at")[:RECENT],
        "events": AuditEvent.objects.filter(
            Q(actor=client.client_id) | Q(details__client_id=client.client_id)
        )[:RECENT],
        "key_form": key_form,
    }
    return render(request, "accounts/client_detail.html", context, status=status)


@require_http_methods(["GET", "POST"])
@permission_required(MANAGE_CLIENTS)
def client_edit(request: HttpRequest, client_id: str) -> HttpResponse:
    client = get_client_for_user(request, client_id)
    initial = {
        "name": client.name,
        "scopes": client.scopes,
        "groups": " ".join(client.bound_groups.values_list("group_id", flat=True)),
    }
    form = ClientEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            update_client(
                client_id=client.client_id,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                group_ids=form.group_ids(),
                actor=request.user,
            )
        except ValidationError as error:
            for key, problems in error.message_dict.items():
                for problem in problems:
                    form.add_error("groups" if key == "group_ids" else key, problem)
        else:
            messages.success(
                request, f"Saved {form.cleaned_data['name']}; its tokens were revoked."
            )
            return redirect("console:client-detail", client_id=client.client_id)
    return render(request, "accounts/client_edit.html", {"client": client, "form": form})


@require_POST
@permission_required(MANAGE_CLIENTS)
def client_key_add(request: HttpRequest, client_id: str) -> HttpResponse:
    client = get_client_for_user(request, client_id)
    form = KeyForm(request.POST)
    if form.is_valid():
        try:
            add_client_key(
                client_id=client.client_id, jwk=form.cleaned_data["jwk"], actor=request.user
            )
        except ValidationError as error:
            form.add_error("jwk", error.message_dict["jwk"])
        else:
            messages.success(request, "Key added.")
            return redirect("console:client-detail", client_id=client.client_id)
    return render_client_detail(request, client, form, status=400)


@require_POST
@permission_required(MANAGE_CLIENTS)
def client_key_retire(request: HttpRequest, client_id: str) -> HttpResponse:
    client = get_client_for_user(request, client_id)
    kid = request.POST.get("kid", "")
    try:
        retire_client_key(client_id=client.client_id, kid=kid, actor=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.message_dict["kid"]))
    else:
        messages.success(request, f"Retired key {kid}.")
    return redirect("console:client-detail", client_id=client.client_id)


@require_POST
@permission_required(MANAGE_CLIENTS)
def client_set_status(request: HttpRequest, client_id: str, action: str) -> HttpResponse:
    """Disable (tokens revoked at once) or enable a client; the service audits it."""
    client = get_client_for_user(request, client_id)
    change = disable_client if action == "disable" else enable_client
    client = change(client_id=client.client_id, actor=request.user)
    if request.htmx:
        return render(request, "accounts/partials/client_status.html", {"client": client})
    messages.success(request, f"{client.name} is now {client.status}.")
    return redirect("console:client-detail", client_id=client.client_id)
