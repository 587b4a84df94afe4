"""Console pages owned by accounts: the audit trail (clients: client_views; operators:
operator_views). The dashboard, which shows every app's state, is console/."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts import audit_links
from accounts.audit import record_event
from accounts.audit_words import describe_event
from accounts.decorators import permission_required
from accounts.forms import AuditFilterForm
from accounts.models import AuditEvent, BackendClient
from accounts.roles import VIEW_AUDIT

AUDIT_PAGE_SIZE = 50
NAMES_A_CLIENT = (AuditEvent.ActorType.CLIENT, AuditEvent.ActorType.UNVERIFIED)


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
    """Each event with the job, the file and the (registered) client it is about, for
    links, what part of the file was read, and what an operator event did, in words.

    A refused token request may name an unverified client_id: only ids that exist link.
    """
    named = {e.details.get("client_id") or e.actor for e in events}
    known = dict(BackendClient.objects.filter(client_id__in=named).values_list("client_id", "name"))
    rows = []
    for event in events:
        client_id = event.details.get("client_id") or (
            event.actor if event.actor_type in NAMES_A_CLIENT else ""
        )
        rows.append(
            {
                "event": event,
                "job": event.details.get("job", ""),
                "client_id": client_id if client_id in known else "",
                "client_name": known.get(client_id, ""),
                "actor_name": known.get(event.actor, "")
                if event.actor_type in NAMES_A_CLIENT
                else "",
                "about": describe_event(event, known),
                **audit_links.extras(event.details),
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


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> str:
    """A CSV cell that a spreadsheet shows as text: actor names can come from an
    unverified `iss`, and a leading = would run as a formula (OWASP CSV injection)."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


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
            values = [getattr(event, name) for name in CSV_COLUMNS[1:]]
            cells = [event.created_at.isoformat(), *values, json.dumps(event.details)]
            yield writer.writerow([spreadsheet_safe(cell) for cell in cells])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="bulkops-audit.csv"'
    return response
