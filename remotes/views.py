"""Console pages for remote servers: list, create (with our key), detail, edit, key
replacement, public JWKS download and publication, discovery, delete, and launching an
export there.

Operators and admins manage and launch; auditors read. A remote whose key is a
backend client here (the self-check remote) is changed by client managers only, and
only they confirm a token endpoint on another origin (remotes.token_destination) and
switch the public key set's URL without sign-in (remotes.public_jwks) on or off.
Private keys never reach a template: only the public JWKS does.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import permission_required
from accounts.roles import MANAGE_CLIENTS, RUN_EXPORTS, VIEW_CONSOLE, perm
from bulkops.fhir_http import absolute_url
from bulkops.htmx_redirect import redirect_after_form
from exports.models import ExportJob
from remotes import services
from remotes.forms import KeyForm, RemoteLaunchForm, RemoteServerForm
from remotes.models import RemoteServer

RECENT_JOBS = 20


def _actor(request: HttpRequest) -> str:
    return request.user.get_username()


def _server_to_change(request: HttpRequest, name: str) -> RemoteServer:
    """The server named `name` if the user may change it (RemoteServer.change_permission);
    404 when there is none, PermissionDenied when they may not."""
    server = get_object_or_404(RemoteServer, name=name)
    if not request.user.has_perm(perm(server.change_permission)):
        raise PermissionDenied
    return server


def _posted(request: HttpRequest, *forms: Form) -> bool:
    """A POST whose forms are all valid (checked in order; the first invalid one stops)."""
    return request.method == "POST" and all(form.is_valid() for form in forms)


def _save(
    request: HttpRequest,
    server: RemoteServer,
    message: str,
    *,
    private_jwk: dict | None,
    created: bool = False,
) -> HttpResponse:
    """Save through the service (which audits), say so, and go back to the server's page."""
    services.save_server(
        server, private_jwk=private_jwk, actor=_actor(request), request=request, created=created
    )
    messages.success(request, message)
    return redirect("remotes:remote-detail", name=server.name)


@require_GET
@permission_required(VIEW_CONSOLE)
def remote_list(request: HttpRequest) -> HttpResponse:
    return render(request, "remotes/list.html", {"servers": RemoteServer.objects.all()})


@require_http_methods(["GET", "POST"])
@permission_required(RUN_EXPORTS)
def remote_create(request: HttpRequest) -> HttpResponse:
    form = RemoteServerForm(request.POST or None)
    key_form = KeyForm(request.POST or None, request.FILES or None)
    if _posted(request, form, key_form):
        server = form.save(commit=False)
        message = f"{server.name} saved. Register the public JWKS below there."
        return _save(
            request, server, message, private_jwk=key_form.cleaned_data["private_jwk"], created=True
        )
    return render(request, "remotes/form.html", {"form": form, "key_form": key_form})


@require_GET
@permission_required(VIEW_CONSOLE)
def remote_detail(request: HttpRequest, name: str) -> HttpResponse:
    server = get_object_or_404(RemoteServer, name=name)
    jobs = ExportJob.objects.filter(remote_export__server=server)[:RECENT_JOBS]
    context = {
        "server": server,
        "may_change": request.user.has_perm(perm(server.change_permission)),
        "token_url_problem": server.token_url_problem(),
        "jobs": jobs,
        "public_jwks": services.public_jwks_json(server),
        "public_jwks_url": absolute_url(
            request, reverse("remote-public-jwks", kwargs={"jwks_id": server.jwks_id})
        ),
        "launch_form": RemoteLaunchForm(server=server),
    }
    return render(request, "remotes/detail.html", context)


@require_http_methods(["GET", "POST"])
@permission_required(RUN_EXPORTS)
def remote_edit(request: HttpRequest, name: str) -> HttpResponse:
    server = _server_to_change(request, name)
    form = RemoteServerForm(request.POST or None, instance=server)
    if _posted(request, form):
        return _save(request, form.save(commit=False), f"{server.name} saved.", private_jwk=None)
    return render(request, "remotes/form.html", {"form": form, "server": server})


@require_http_methods(["GET", "POST"])
@permission_required(RUN_EXPORTS)
def remote_key(request: HttpRequest, name: str) -> HttpResponse:
    """Replace our key: the old one stops working at the remote once replaced there."""
    server = _server_to_change(request, name)
    key_form = KeyForm(request.POST or None, request.FILES or None)
    if _posted(request, key_form):
        message = "Key replaced. Register the new public JWKS at the remote."
        return _save(request, server, message, private_jwk=key_form.cleaned_data["private_jwk"])
    return render(request, "remotes/key.html", {"server": server, "key_form": key_form})


@require_GET
@permission_required(VIEW_CONSOLE)
def remote_jwks(request: HttpRequest, name: str) -> HttpResponse:
    server = get_object_or_404(RemoteServer, name=name)
    response = HttpResponse(services.public_jwks_json(server), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{server.name}-jwks.json"'
    return response


@require_POST
@permission_required(MANAGE_CLIENTS)
def remote_publish_jwks(request: HttpRequest, name: str) -> HttpResponse:
    """An admin publishes our public key set for this server at its URL, or withdraws it
    (the remote can then no longer fetch it from there)."""
    server = get_object_or_404(RemoteServer, name=name)
    published = {"on": True, "off": False}.get(request.POST.get("publish", ""))
    if published is None:
        messages.error(request, "Nothing changed: say whether to publish (on) or withdraw (off).")
    else:
        services.set_jwks_published(
            server, published=published, actor=_actor(request), request=request
        )
        messages.success(
            request, "Public key set published." if published else "Public key set withdrawn."
        )
    return redirect("remotes:remote-detail", name=server.name)


@require_POST
@permission_required(RUN_EXPORTS)
def remote_discover(request: HttpRequest, name: str) -> HttpResponse:
    server = get_object_or_404(RemoteServer, name=name)
    services.discover_now(server, actor=_actor(request), request=request)
    if server.discovery_error:
        messages.error(request, f"Token endpoint not found: {server.discovery_error}.")
    elif server.token_url:
        messages.info(request, "A token endpoint is configured; nothing to discover.")
    else:
        messages.success(request, f"Token endpoint: {server.discovered_token_url}")
    return redirect("remotes:remote-detail", name=server.name)


@require_POST
@permission_required(RUN_EXPORTS)
def remote_delete(request: HttpRequest, name: str) -> HttpResponse:
    server = _server_to_change(request, name)
    try:
        services.delete_server(server, actor=_actor(request), request=request)
    except services.RemoteServerBusy as error:
        messages.error(request, str(error))
        return redirect_after_form(request, "remotes:remote-detail", name=server.name)
    messages.success(request, f"{name} deleted.")
    return redirect_after_form(request, "remotes:remote-list")


@require_POST
@permission_required(MANAGE_CLIENTS)
def remote_confirm_token_url(request: HttpRequest, name: str) -> HttpResponse:
    """An admin confirms that the token endpoint shown, on another origin, issues the
    tokens of the base URL shown; the service refuses if either changed meanwhile."""
    server = get_object_or_404(RemoteServer, name=name)
    try:
        services.confirm_token_url(
            server,
            base_url=request.POST.get("base_url", ""),
            token_url=request.POST.get("token_url", ""),
            user=request.user,
            request=request,
        )
    except services.ConfirmationRefused as error:
        messages.error(request, str(error))
    else:
        messages.success(request, "Token endpoint confirmed for this base URL.")
    return redirect("remotes:remote-detail", name=server.name)


@require_http_methods(["GET", "POST"])
@permission_required(RUN_EXPORTS)
def remote_launch(request: HttpRequest, name: str) -> HttpResponse:
    server = get_object_or_404(RemoteServer, name=name)
    form = RemoteLaunchForm(request.POST or None, server=server)
    if _posted(request, form):
        job = services.start_remote_export(
            server,
            level=form.cleaned_data["level"],
            group_id=form.group(),
            pairs=form.pairs(),
            actor=_actor(request),
            request=request,
            bulk_version=form.cleaned_data["bulk_version"],
        )
        messages.success(request, f"Export from {server.name} started.")
        return redirect("console:job-detail", job_id=job.uuid)
    return render(request, "remotes/launch.html", {"server": server, "form": form})
