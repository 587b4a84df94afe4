"""Console pages of server checks: start a run, watch it, read its evidence, list past
runs. Everyone with the console may read; admins and operators start runs. "Check
this bulkops" registers a backend client here on first use, so it is for those who may
manage clients too."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRefresh

from accounts.decorators import permission_required
from accounts.roles import MANAGE_CLIENTS, RUN_EXPORTS, VIEW_CONSOLE, perm
from bulkops.fhir_http import absolute_url
from remotes.checks import CHECKS
from remotes.models import RemoteServer, ServerCheck
from remotes.self_server import self_server
from remotes.server_checks import start_check


@require_http_methods(["GET", "POST"])
@permission_required(VIEW_CONSOLE)
def check_list(request: HttpRequest, name: str) -> HttpResponse:
    """Past runs against one server; POST ("Check server") starts a new one."""
    server = get_object_or_404(RemoteServer, name=name)
    if request.method == "POST":
        if not request.user.has_perm(perm(RUN_EXPORTS)):
            raise PermissionDenied
        check = start_check(server=server, user=request.user, request=request)
        return redirect("remote-checks:detail", name=server.name, check_id=check.pk)
    checks = server.checks.select_related("requested_by")[:50]
    return render(request, "remotes/checks/list.html", {"server": server, "checks": checks})


@require_POST
@permission_required(RUN_EXPORTS, MANAGE_CLIENTS)
def check_self(request: HttpRequest) -> HttpResponse:
    """Check this bulkops itself: its RemoteServer (created with a registered client on
    first use) gets a run like any other server. Its base URL is the one discovery
    advertises (BULKOPS_BASE_URL when set), so the token endpoint is on its origin."""
    server = self_server(absolute_url(request, "/fhir"), user=request.user, request=request)
    check = start_check(server=server, user=request.user, request=request)
    return redirect("remote-checks:detail", name=server.name, check_id=check.pk)


def _check_for(name: str, check_id: int) -> ServerCheck:
    return get_object_or_404(
        ServerCheck.objects.select_related("server", "requested_by"), pk=check_id, server__name=name
    )


def _results_context(check: ServerCheck) -> dict[str, object]:
    return {"check": check, "server": check.server, "total": len(CHECKS)}


@require_GET
@permission_required(VIEW_CONSOLE)
def check_detail(request: HttpRequest, name: str, check_id: int) -> HttpResponse:
    check = _check_for(name, check_id)
    return render(request, "remotes/checks/detail.html", _results_context(check))


@require_GET
@permission_required(VIEW_CONSOLE)
def check_results(request: HttpRequest, name: str, check_id: int) -> HttpResponse:
    """The polled fragment; the poll that finds the run finished reloads the page once."""
    check = _check_for(name, check_id)
    if request.htmx and check.is_finished:
        return HttpResponseClientRefresh()
    return render(request, "remotes/checks/partials/results.html", _results_context(check))
