"""What a delivery's receiver fetches from us: the export's manifest and its output
files, at `/fhir/deliveries/<uuid>/…`.

No SMART token: the receiver is another server with no client of ours. It presents the
delivery's credential (transfers.credentials), which we sent it as a `fileRequestHeader`;
anything else — no header, a wrong one, a finished, failed or stopped delivery, an
export whose files expired or were deleted — is the same 401, which says nothing about
whether the delivery exists. Every manifest and file served is audited.
"""

from __future__ import annotations

from django.http import FileResponse, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.audit import record_event
from accounts.models import AuditEvent
from bulkops.fhir.manifest import build_manifest
from bulkops.fhir.outcome import LOGIN, NOT_FOUND, FhirError
from bulkops.fhir_http import FHIR_NDJSON, fhir_endpoint, fhir_json
from exports.models import ExportFile
from exports.storage import job_storage
from transfers import credentials
from transfers.models import Delivery


def _delivery(request: HttpRequest, delivery_uuid: str) -> Delivery:
    delivery = Delivery.objects.select_related("job").filter(uuid=delivery_uuid).first()
    now = timezone.now()
    if (
        delivery is None
        or not credentials.matches(
            request.headers.get(credentials.HEADER, ""), delivery.secret_hash
        )
        or delivery.job.deleted_at is not None
        or (delivery.job.expires_at is not None and delivery.job.expires_at <= now)
    ):
        raise FhirError(
            401,
            "These files are served only to the receiver of a delivery in progress, with the "
            "credential sent in its fileRequestHeader.",
            code=LOGIN,
            headers={"WWW-Authenticate": 'Bearer realm="bulkops deliveries"'},
        )
    return delivery


def _served(request: HttpRequest, delivery: Delivery, what: str) -> None:
    record_event(
        actor_type=AuditEvent.ActorType.SYSTEM,
        actor=delivery.receiver_label,
        action="delivery.served",
        request=request,
        details={"delivery": str(delivery.uuid), "job": str(delivery.job.uuid), "served": what},
    )


@fhir_endpoint
@require_GET
def delivery_manifest(request: HttpRequest, delivery_uuid: str) -> HttpResponse:
    """The export's manifest (Bulk Data §2.3) with our own file URLs: the receiver fetches
    them with the same header, whatever storage holds the files."""
    delivery = _delivery(request, delivery_uuid)
    job = delivery.job
    files = job.files.filter(kind=ExportFile.Kind.OUTPUT).order_by("pk")
    output = [
        {
            "type": file.resource_type,
            "url": delivery.base_url
            + reverse("fhir:delivery-file", args=[delivery.uuid, file.uuid]),
            "count": file.resource_count,
        }
        for file in files
    ]
    manifest = build_manifest(
        transaction_time=job.transaction_time,
        request_url=job.request_url,
        requires_access_token=True,
        output=output,
        deleted=[],
        error=[],
    )
    _served(request, delivery, "manifest")
    return fhir_json(manifest, content_type="application/json")


@fhir_endpoint
@require_GET
def delivery_file(request: HttpRequest, delivery_uuid: str, file_uuid: str) -> HttpResponse:
    delivery = _delivery(request, delivery_uuid)
    file = delivery.job.files.filter(uuid=file_uuid, kind=ExportFile.Kind.OUTPUT).first()
    if file is None:
        raise FhirError(404, "No such file in this delivery.", code=NOT_FOUND)
    _served(request, delivery, f"{file.resource_type} file {file.uuid}")
    return FileResponse(
        job_storage(delivery.job).open_reader(file.storage_key), content_type=FHIR_NDJSON
    )
