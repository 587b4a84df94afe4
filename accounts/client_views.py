"""Console pages for backend clients: list, register (with key check and scope
preview), detail, edit, key rotation, disable/enable. Changes go through
accounts.services, which validate and audit them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.db.models.functions import Lower
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import store_directory
from accounts.audit import record_event
from accounts.decorators import permission_required
from accounts.forms import ClientEditForm, ClientForm, KeyForm, checklist_initial
from accounts.jwks import (
    JwksError,
    KeyInfo,
    fetch_jwks,
    key_bits,
    registered_keys,
    validate_jwks,
)
from accounts.key_expiry import key_expiry
from accounts.key_health import key_expiries, key_state
from accounts.models import AccessToken, AuditEvent, BackendClient
from accounts.roles import MANAGE_CLIENTS, VIEW_CONSOLE
from accounts.services import (
    add_client_key,
    disable_client,
    enable_client,
    register_client,
    retire_client_key,
    update_client,
)
from accounts.tables import sorted_page
from bulkops.htmx_redirect import redirect_after_form

RECENT = 10
CLIENTS_PER_PAGE = 50
CLIENT_SORTS = {
    "name": Lower("name"),
    "-name": Lower("name").desc(),
    "status": "status",
    "created": "created_at",
    "-created": "-created_at",
}


def get_client_for_user(request: HttpRequest, client_id: str) -> BackendClient:
    """The client addressed by its public client_id; 404 when there is none. Every
    console user may read clients; changes are checked by the views' permissions."""
    return get_object_or_404(BackendClient, client_id=client_id)


@require_GET
@permission_required(VIEW_CONSOLE)
def client_list(request: HttpRequest) -> HttpResponse:
    clients = BackendClient.objects.prefetch_related("bound_groups")
    status = request.GET.get("status", "")
    if status in BackendClient.Status.values:
        clients = clients.filter(status=status)
    # NUL cannot be in a name or client_id, and PostgreSQL refuses it in a query.
    if query := request.GET.get("q", "").replace("\x00", "").strip():
        clients = clients.filter(Q(name__icontains=query) | Q(client_id__icontains=query))
    table = sorted_page(
        request, clients, sorts=CLIENT_SORTS, default="name", per_page=CLIENTS_PER_PAGE
    )
    rows = [{"client": c, "exportable": c.exports_anything} for c in table["page"].object_list]
    return render(
        request,
        "accounts/client_list.html",
        {
            "rows": rows,
            "status": status,
            "q": query,
            "statuses": BackendClient.Status.values,
            **table,
        },
    )


@require_http_methods(["GET", "POST"])
@permission_required(MANAGE_CLIENTS)
def client_register(request: HttpRequest) -> HttpResponse:
    form = ClientForm(
        request.POST or None, request.FILES or None, stored=store_directory.type_counts()
    )
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
                request=request,
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
    """List every key of the pasted, uploaded or linked JWK Set with what bulkops can
    use it for ("Fetch and check"), before anything is registered."""
    form = ClientForm(request.POST, request.FILES)
    form.is_valid()  # only the key fields matter here
    context: dict[str, Any] = {"keys": [], "problem": ""}
    jwks, jwks_uri, _ = form.key_source()
    unreadable = form.errors.get("jwks_file") or form.errors.get("jwks")
    try:
        if jwks_uri:
            jwks, _ = fetch_jwks(jwks_uri)
        elif jwks is None:
            raise JwksError(
                unreadable[0] if unreadable else "Paste a JWK Set, upload one, or give its URL."
            )
        infos, now = validate_jwks(jwks), timezone.now()
        context["keys"] = [
            key_check(info, jwk, now) for info, jwk in zip(infos, jwks["keys"], strict=True)
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


def key_check(info: KeyInfo, jwk: dict[str, Any], now: datetime) -> dict[str, Any]:
    """One row of "Fetch and check": the key's size and, were it added now, its expiry."""
    expiry = key_expiry(jwk, now) if info.algorithm else None
    return {"info": info, "bits": key_bits(jwk), "expiry": expiry, "state": key_state(expiry, now)}


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
    expiries, now = key_expiries(client), timezone.now()
    context = {
        "client": client,
        "keys": [
            (key, expiries.get(key.kid), key_state(expiries.get(key.kid), now)) for key in keys
        ],
        "key_problem": key_problem,
        "exportable": client.exports_anything,
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
        **checklist_initial(client.scopes),
        "groups": " ".join(client.bound_groups.values_list("group_id", flat=True)),
    }
    form = ClientEditForm(
        request.POST or None, initial=initial, stored=store_directory.type_counts()
    )
    if request.method == "POST" and form.is_valid():
        try:
            update_client(
                client_id=client.client_id,
                name=form.cleaned_data["name"],
                scopes=form.scopes(),
                group_ids=form.group_ids(),
                actor=request.user,
                request=request,
            )
        except ValidationError as error:
            for key, problems in error.message_dict.items():
                for problem in problems:
                    form.add_error(form.field_for(key), problem)
        else:
            messages.success(
                request, f"Saved {form.cleaned_data['name']}; its tokens were revoked."
            )
            return redirect("console:client-detail", client_id=client.client_id)
    scope_preview = form.scopes() if hasattr(form, "cleaned_data") else client.scopes
    context = {"client": client, "form": form, "scope_preview": scope_preview}
    return render(request, "accounts/client_edit.html", context)


@require_POST
@permission_required(MANAGE_CLIENTS)
def client_key_add(request: HttpRequest, client_id: str) -> HttpResponse:
    client = get_client_for_user(request, client_id)
    form = KeyForm(request.POST)
    if form.is_valid():
        try:
            add_client_key(
                client_id=client.client_id,
                jwk=form.cleaned_data["jwk"],
                actor=request.user,
                request=request,
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
        retire_client_key(client_id=client.client_id, kid=kid, actor=request.user, request=request)
    except ValidationError as error:
        messages.error(request, " ".join(error.message_dict["kid"]))
    else:
        messages.success(request, f"Retired key {kid}.")
    return redirect_after_form(request, "console:client-detail", client_id=client.client_id)


@require_POST
@permission_required(MANAGE_CLIENTS)
def client_set_status(request: HttpRequest, client_id: str, action: str) -> HttpResponse:
    """Disable (tokens revoked at once) or enable a client; the service audits it."""
    client = get_client_for_user(request, client_id)
    change = disable_client if action == "disable" else enable_client
    client = change(client_id=client.client_id, actor=request.user, request=request)
    if request.htmx:
        return render(request, "accounts/partials/client_status.html", {"client": client})
    messages.success(request, f"{client.name} is now {client.status}.")
    return redirect("console:client-detail", client_id=client.client_id)
