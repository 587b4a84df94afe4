"""Console pages for deliveries: the list, sending an export to a remote server's
`$bulk-submit`, copying a remote server's export into this bulkops, one delivery's
progress (per file, with the receiver's words escaped as the NDJSON preview shows
lines), and completing or stopping an open one. Operators and admins act; auditors
read."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import permission_required
from accounts.roles import RUN_EXPORTS, VIEW_CONSOLE
from bulkops.fhir.submit import COMPLETED, STOPPED
from remotes.forms import RemoteLaunchForm
from remotes.models import RemoteServer
from transfers import services
from transfers.forms import SendForm, base_url
from transfers.models import Delivery
from transfers.queries import copy_files, shown_status

SHOWN = 50


@require_GET
@permission_required(VIEW_CONSOLE)
def delivery_list(request: HttpRequest) -> HttpResponse:
    deliveries = list(Delivery.objects.select_related("job", "server")[:SHOWN])
    for delivery in deliveries:
        delivery.shown_status = shown_status(delivery)
    servers = RemoteServer.objects.exclude(client_id="")
    return render(request, "transfers/list.html", {"deliveries": deliveries, "servers": servers})


@require_http_methods(["GET", "POST"])
@permission_required(RUN_EXPORTS)
def delivery_send(request: HttpRequest) -> HttpResponse:
    form = SendForm(request.POST or None, initial={"job": request.GET.get("job")})
    if request.method == "POST" and form.is_valid():
        try:
            delivery = form.send(request)
        except services.DeliveryRefused as refused:
            form.add_error(None, str(refused))
        else:
            messages.success(request, f"Sending to {delivery.receiver_label}.")
            return redirect("transfers:delivery-detail", delivery_id=delivery.uuid)
    return render(request, "transfers/send.html", {"form": form})


@require_http_methods(["GET", "POST"])
@permission_required(RUN_EXPORTS)
def delivery_copy(request: HttpRequest, name: str) -> HttpResponse:
    server = get_object_or_404(RemoteServer, name=name)
    form = RemoteLaunchForm(request.POST or None, server=server)
    if request.method == "POST" and form.is_valid():
        delivery = services.copy_from(
            server,
            level=form.cleaned_data["level"],
            group_id=form.group(),
            pairs=form.pairs(),
            base_url=base_url(request),
            actor=request.user.get_username(),
            request=request,
        )
        messages.success(request, f"Exporting from {server.name}; the files load here next.")
        return redirect("transfers:delivery-detail", delivery_id=delivery.uuid)
    return render(request, "transfers/copy.html", {"server": server, "form": form})


@require_GET
@permission_required(VIEW_CONSOLE)
def delivery_detail(request: HttpRequest, delivery_id: str) -> HttpResponse:
    delivery = get_object_or_404(
        Delivery.objects.select_related("job", "server", "local_submission"), uuid=delivery_id
    )
    context = {
        "delivery": delivery,
        "copy_files": copy_files(delivery),
        "shown_status": shown_status(delivery),
    }
    return render(request, "transfers/detail.html", context)


def _close(request: HttpRequest, delivery_id: str, submission_status: str) -> HttpResponse:
    delivery = get_object_or_404(Delivery, uuid=delivery_id)
    try:
        services.close(
            delivery, submission_status, actor=request.user.get_username(), request=request
        )
    except services.DeliveryRefused as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, f"Sending {submission_status} to {delivery.receiver_label}.")
    return redirect("transfers:delivery-detail", delivery_id=delivery.uuid)


@require_POST
@permission_required(RUN_EXPORTS)
def delivery_complete(request: HttpRequest, delivery_id: str) -> HttpResponse:
    return _close(request, delivery_id, COMPLETED)


@require_POST
@permission_required(RUN_EXPORTS)
def delivery_stop(request: HttpRequest, delivery_id: str) -> HttpResponse:
    return _close(request, delivery_id, STOPPED)
