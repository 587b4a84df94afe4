"""Console pages owned by accounts: dashboard, audit trail, operators."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.decorators import permission_required
from accounts.models import AuditEvent
from accounts.roles import MANAGE_OPERATORS, VIEW_AUDIT, VIEW_CONSOLE

AUDIT_PAGE_SIZE = 100


@require_GET
@permission_required(VIEW_CONSOLE)
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "console/dashboard.html")


@require_GET
@permission_required(VIEW_AUDIT)
def audit_trail(request: HttpRequest) -> HttpResponse:
    events = AuditEvent.objects.all()[:AUDIT_PAGE_SIZE]
    return render(request, "accounts/audit_trail.html", {"events": events})


@require_GET
@permission_required(MANAGE_OPERATORS)
def operator_list(request: HttpRequest) -> HttpResponse:
    operators = get_user_model().objects.prefetch_related("groups").order_by("username")
    return render(request, "accounts/operator_list.html", {"operators": operators})
