"""Delivery actions shared by the console, the operator API, the command and schedules:
send a finished export to a remote server's `$bulk-submit`, copy a remote server's
export into this bulkops, complete or stop an open delivery. Each is audited with who
asked; the work runs in Celery tasks (transfers.delivery_runner)."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest

from bulkops.fhir.submit import COMPLETED, STOPPED
from bulkops.task_queue import enqueue
from exports.models import ExportJob
from remotes.models import RemoteServer
from remotes.services import _audit, start_remote_export
from transfers.delivery_runner import audit, fail
from transfers.models import Delivery
from transfers.task_names import CLOSE_DELIVERY, COPY_DELIVERY, SEND_DELIVERY


class DeliveryRefused(Exception):
    """Nothing was sent; the message says why."""


def deliver(
    job: ExportJob,
    server: RemoteServer | None,
    *,
    base_url: str,
    actor: str,
    request: HttpRequest | None,
    hold_open: bool = False,
    queue: bool = True,
) -> Delivery:
    """Send `job` to `server` (None: into this bulkops) once it has finished: at once
    when it has, else when it does (exports.finish_hooks); with `queue` False the caller
    sends it itself (the command). `base_url` is this server's URL as the receiver
    reaches it. DeliveryRefused for a job that failed, was cancelled,
    deleted or expired, or a server with no client_id of ours yet."""
    if server is not None and not server.client_id:
        raise DeliveryRefused(
            f"{server.name} has not issued us a client_id yet: register our key there first."
        )
    if not base_url.startswith(("http://", "https://")):
        raise DeliveryRefused(
            "bulkops does not know the URL receivers reach it at: set BULKOPS_BASE_URL."
        )
    with transaction.atomic():
        # The job as it is now, held until the delivery is saved: the `job` given may
        # have been read before the export finished, and the finish's listener
        # (export_finished) queues only deliveries already waiting when it runs.
        job = ExportJob.objects.select_for_update().get(pk=job.pk)
        if job.deleted_at is not None or (
            job.is_finished and job.status != ExportJob.Status.COMPLETED
        ):
            raise DeliveryRefused(
                "Only an export that completed and still has its files can be sent."
            )
        finished = job.is_finished
        delivery = Delivery.objects.create(
            job=job,
            server=server,
            hold_open=hold_open and server is not None,
            status=Delivery.Status.QUEUED if finished else Delivery.Status.WAITING,
            base_url=base_url.rstrip("/"),
            requested_by=actor,
        )
        delivery.submission_id = f"bulkops-{delivery.uuid}"
        delivery.save(update_fields=["submission_id"])
        _audit(
            actor,
            "delivery.requested",
            request,
            delivery=str(delivery.uuid),
            job=str(job.uuid),
            receiver=delivery.receiver_label,
            hold_open=delivery.hold_open,
        )
        if finished and queue:
            transaction.on_commit(lambda: enqueue(SEND_DELIVERY, delivery_id=delivery.pk))
    return delivery


def copy_from(
    server: RemoteServer,
    *,
    level: str,
    group_id: str,
    pairs: list[tuple[str, str]],
    base_url: str,
    actor: str,
    request: HttpRequest | None,
) -> Delivery:
    """Run an export at `server` (remotes.services.start_remote_export) and import its
    files here as one submission once it has downloaded them, both in one task."""
    with transaction.atomic():
        job = start_remote_export(
            server,
            level=level,
            group_id=group_id,
            pairs=pairs,
            actor=actor,
            request=request,
            queue=False,
        )
        delivery = deliver(job, None, base_url=base_url, actor=actor, request=request)
        transaction.on_commit(lambda: enqueue(COPY_DELIVERY, delivery_id=delivery.pk))
    return delivery


def export_finished(job_id: int) -> None:
    """exports.finish_hooks listener: queue the deliveries that waited for this job, or
    fail them when it did not complete."""
    job = ExportJob.objects.get(pk=job_id)
    for delivery in Delivery.objects.filter(job=job, status=Delivery.Status.WAITING):
        if job.status == ExportJob.Status.COMPLETED:
            updated = Delivery.objects.filter(
                pk=delivery.pk, status=Delivery.Status.WAITING
            ).update(status=Delivery.Status.QUEUED)
            if updated:
                enqueue(SEND_DELIVERY, delivery_id=delivery.pk)
        else:
            fail(delivery, f"The export {job.status}: {job.failure_reason or 'nothing to send'}.")


def close(
    delivery: Delivery, submission_status: str, *, actor: str, request: HttpRequest | None
) -> None:
    """Complete or stop a delivery. One not sent yet is only stopped here; an open one is
    told to its receiver, which purges what it loaded on `stopped` (spec §3.3). After
    `completed`, nothing more may be sent for it (§3.2)."""
    assert submission_status in (COMPLETED, STOPPED)
    action = "delivery.stop_requested" if submission_status == STOPPED else "delivery.completed"
    with transaction.atomic():
        current = Delivery.objects.select_for_update(of=("self",)).select_related("job", "server")
        current = current.get(pk=delivery.pk)
        unsent = (Delivery.Status.WAITING, Delivery.Status.QUEUED)
        if submission_status == STOPPED and current.status in unsent:
            current.status = Delivery.Status.STOPPED
            current.save(update_fields=["status", "updated_at"])
            audit(current, "delivery.finished", status=Delivery.Status.STOPPED, sent=False)
        elif current.status == Delivery.Status.OPEN:
            transaction.on_commit(
                lambda: enqueue(
                    CLOSE_DELIVERY, delivery_id=current.pk, submission_status=submission_status
                )
            )
        else:
            raise DeliveryRefused(
                f"This delivery is {current.status}: only an open one can be completed or "
                "stopped (and one not sent yet, stopped)."
            )
        _audit(actor, action, request, delivery=str(current.uuid))
