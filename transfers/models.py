"""Deliveries: a finished export of ours handed to a Bulk Submit Data Consumer, either
another server's `$bulk-submit` (a RemoteServer) or this bulkops' own submissions app
(a copy from a remote server), and what the receiver made of it."""

from __future__ import annotations

import uuid

from django.db import models


class Delivery(models.Model):
    """One submission we make (spec digest §3): its export, its receiver and its state.

    The receiver fetches the export's manifest and files from us with a credential sent
    as a `fileRequestHeader`; only its SHA-256 is kept (`secret_hash`), and it is cleared
    once the receiver no longer needs it (transfers.credentials).
    """

    class Status(models.TextChoices):
        WAITING = "waiting"  # for its export to finish
        QUEUED = "queued"
        SENDING = "sending"
        OPEN = "open"  # the manifest was sent in-progress; the operator completes or stops it
        WATCHING = "watching"  # completed or stopped was sent; the receiver's status is polled
        DONE = "done"
        STOPPED = "stopped"
        FAILED = "failed"

    FINISHED = (Status.DONE, Status.STOPPED, Status.FAILED)

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    job = models.ForeignKey(
        "exports.ExportJob", on_delete=models.CASCADE, related_name="deliveries"
    )
    server = models.ForeignKey(
        "remotes.RemoteServer",
        null=True,
        blank=True,
        # Deleting a remote server deletes its deliveries' history, as it does its
        # exports'; a delivery then in flight loses its row, so its files are no longer
        # served and its worker's updates touch nothing.
        on_delete=models.CASCADE,
        related_name="deliveries",
        help_text="Empty: this bulkops (a copy of a remote server's export).",
    )
    submission_id = models.CharField(max_length=200)
    hold_open = models.BooleanField(
        default=False, help_text="Send the manifest in-progress and wait for complete or stop."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # What we last told the receiver: in-progress, completed or stopped ("" before).
    submission_status = models.CharField(max_length=16, blank=True)
    # Our FHIR base URL, where the receiver fetches the manifest and files.
    base_url = models.CharField(max_length=500)
    secret_hash = models.CharField(max_length=64, blank=True, editable=False)
    status_url = models.TextField(blank=True)
    progress = models.CharField(max_length=200, blank=True, help_text="The receiver's X-Progress.")
    outcomes = models.JSONField(
        default=list, help_text="The receiver's status manifest outcomes, in plain words."
    )
    error = models.TextField(blank=True)
    local_submission = models.ForeignKey(
        "submissions.Submission",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    requested_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"delivery {self.uuid} to {self.receiver_label}"

    @property
    def receiver_label(self) -> str:
        return self.server.name if self.server_id else "this bulkops"

    @property
    def is_copy(self) -> bool:
        return self.server_id is None

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED
