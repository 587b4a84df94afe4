"""Sending one delivery and following it to its end, run by Celery tasks
(transfers.tasks): the manifest in-progress, then `completed` (at once, or when the
operator says so) or `stopped`, then the receiver's `$bulk-submit-status` polled to its
final manifest and each outcome file read (spec digest §3.1).

A failure fails the delivery with the reason and withdraws the receiver's access to
our files; every call sent, status reached and failure is audited.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.urls import reverse
from django.utils import timezone

from accounts.audit import record_system_event
from bulkops.fhir.outcome import FhirError
from bulkops.fhir.submit import COMPLETED, IN_PROGRESS, STOPPED
from bulkops.outbound import FetchError
from exports.bulk_client import BulkClientError, ExportStopped
from exports.models import ExportJob
from remotes.crypto import DecryptionError
from remotes.discovery import DiscoveryError
from remotes.runner import run_remote_export
from remotes.token_destination import TokenDestinationRefused
from transfers import copies, credentials
from transfers.models import Delivery
from transfers.submit_client import Submit, SubmitClient

FAILURES = (
    BulkClientError,
    FetchError,
    DiscoveryError,
    DecryptionError,
    FhirError,  # our own submissions app refusing a copy
    TokenDestinationRefused,
    ExportStopped,
    OSError,
    ValueError,
)


class DeliveryFailed(Exception):
    """A step failed; the message names the step and the reason."""


@contextmanager
def step(label: str) -> Iterator[None]:
    try:
        yield
    except FAILURES as error:
        raise DeliveryFailed(f"{label} failed: {error}") from None


def manifest_url(delivery: Delivery) -> str:
    return delivery.base_url + reverse("fhir:delivery-manifest", args=[delivery.uuid])


def fhir_base_url(delivery: Delivery) -> str:
    return f"{delivery.base_url}/fhir"


def audit(delivery: Delivery, action: str, *, failed: str = "", **details: Any) -> None:
    record_system_event(
        action,
        failed=failed,
        details={
            "delivery": str(delivery.uuid),
            "job": str(delivery.job.uuid),
            "receiver": delivery.receiver_label,
            "submission_id": delivery.submission_id,
        }
        | details,
    )


def save(delivery: Delivery, **fields: Any) -> None:
    for name, value in fields.items():
        setattr(delivery, name, value)
    Delivery.objects.filter(pk=delivery.pk).update(updated_at=timezone.now(), **fields)


def _claimed(delivery_id: int, before: str, after: str) -> Delivery | None:
    if not Delivery.objects.filter(pk=delivery_id, status=before).update(status=after):
        return None
    return Delivery.objects.select_related("job", "server").get(pk=delivery_id)


def send_delivery(delivery_id: int) -> None:
    """Send the manifest of a queued delivery; unless it is held open, complete it and
    watch the receiver to the end. A delivery someone else claimed is left alone."""
    delivery = _claimed(delivery_id, Delivery.Status.QUEUED, Delivery.Status.SENDING)
    if delivery is None:
        return
    secret, hashed = credentials.new_secret()
    save(delivery, secret_hash=hashed)
    try:
        if delivery.is_copy:
            submission = copies.submit_here(
                delivery, manifest_url(delivery), fhir_base_url(delivery), secret
            )
            save(
                delivery,
                status=Delivery.Status.WATCHING,
                submission_status=COMPLETED,
                local_submission=submission,
            )
            audit(delivery, "delivery.sent", status=COMPLETED, manifest_url=manifest_url(delivery))
            return
        client = _client(delivery)
        with step(f"Sending the manifest to {delivery.server.name}"):
            client.submit(
                Submit(
                    delivery.server.client_id,
                    delivery.submission_id,
                    IN_PROGRESS,
                    manifest_url=manifest_url(delivery),
                    fhir_base_url=fhir_base_url(delivery),
                    file_headers=credentials.file_headers(secret),
                )
            )
        save(delivery, status=Delivery.Status.OPEN, submission_status=IN_PROGRESS)
        audit(delivery, "delivery.sent", status=IN_PROGRESS, manifest_url=manifest_url(delivery))
        if not delivery.hold_open:
            save(delivery, status=Delivery.Status.WATCHING)
            _close(delivery, client, COMPLETED)
    except (DeliveryFailed, *FAILURES) as error:
        fail(delivery, str(error))


def _client(delivery: Delivery) -> SubmitClient:
    with step(f"Getting a {delivery.server.name} token"):
        client = SubmitClient(delivery.server.target())
        client.tokens.token()
    return client


def copy_delivery(delivery_id: int) -> None:
    """A copy: run its remote export in this worker (remotes.runner), then send its
    files here. A failed export fails the delivery (services.export_finished)."""
    delivery = Delivery.objects.get(pk=delivery_id)
    run_remote_export(delivery.job_id)
    completed = ExportJob.objects.filter(
        pk=delivery.job_id, status=ExportJob.Status.COMPLETED
    ).exists()
    waiting = Delivery.objects.filter(pk=delivery_id, status=Delivery.Status.WAITING)
    if completed and waiting.update(status=Delivery.Status.QUEUED):
        send_delivery(delivery_id)


def close_delivery(delivery_id: int, submission_status: str) -> None:
    """Tell the receiver of an open delivery it is `completed` or `stopped` (it then
    deletes what it loaded, spec §3.3), and watch it to the end."""
    delivery = _claimed(delivery_id, Delivery.Status.OPEN, Delivery.Status.WATCHING)
    if delivery is None:
        return
    try:
        _close(delivery, _client(delivery), submission_status)
    except (DeliveryFailed, *FAILURES) as error:
        fail(delivery, str(error))


def _close(delivery: Delivery, client: SubmitClient, submission_status: str) -> None:
    submitter = delivery.server.client_id
    with step(f"Sending {submission_status} to {delivery.server.name}"):
        client.submit(Submit(submitter, delivery.submission_id, submission_status))
    save(delivery, submission_status=submission_status)
    audit(delivery, "delivery.status_sent", status=submission_status)
    with step(f"Watching the submission's status at {delivery.server.name}"):
        status_url = client.status_url(submitter, delivery.submission_id)
        save(delivery, status_url=status_url)
        manifest = client.watch(
            status_url,
            on_progress=lambda text: save(delivery, progress=text[:200]),
            should_stop=lambda: False,
        )
        outcomes = client.outcomes(manifest)
    final = Delivery.Status.STOPPED if submission_status == STOPPED else Delivery.Status.DONE
    finish(delivery, final, outcomes=outcomes)


def finish(delivery: Delivery, status: str, **fields: Any) -> None:
    """The delivery's end: the receiver's access to our files is withdrawn."""
    save(delivery, status=status, secret_hash="", finished_at=timezone.now(), **fields)
    errors = sum(1 for o in delivery.outcomes if o.get("severity") in ("error", "fatal"))
    audit(
        delivery, "delivery.finished", status=status, outcomes=len(delivery.outcomes), errors=errors
    )


def fail(delivery: Delivery, reason: str) -> None:
    save(
        delivery,
        status=Delivery.Status.FAILED,
        error=reason,
        secret_hash="",
        finished_at=timezone.now(),
    )
    audit(delivery, "delivery.failed", failed=reason[:255])
