"""A submission (one submitter's submissionId), the manifests sent for it, and the files
those manifests list, each with what loading it did."""

from __future__ import annotations

import uuid

from django.db import models

from accounts.models import BackendClient
from bulkops.fhir.submit import COMPLETED, IN_PROGRESS, STOPPED


class Submission(models.Model):
    class Status(models.TextChoices):
        IN_PROGRESS = IN_PROGRESS
        COMPLETED = COMPLETED
        STOPPED = STOPPED

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    client = models.ForeignKey(BackendClient, on_delete=models.PROTECT)
    submission_id = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.IN_PROGRESS)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["client", "submission_id"], name="submission_unique_pair"
            )
        ]

    def __str__(self) -> str:
        return f"{self.client.client_id}/{self.submission_id}"


class SubmittedManifest(models.Model):
    """One manifest URL of a submission. `file_headers` are the submitter's
    fileRequestHeader pairs, which may carry credentials: only the fetches read them."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        FETCHED = "fetched"
        FAILED = "failed"
        REPLACED = "replaced"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="manifests")
    url = models.URLField(max_length=2000)
    fhir_base_url = models.URLField(max_length=2000)
    file_headers = models.JSONField(default=list)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    # The earlier manifest this one replaces: its data is purged before this one loads.
    replaces = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replaced_by"
    )

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["submission", "url"], name="manifest_unique_url")
        ]

    def __str__(self) -> str:
        return self.url


class SubmittedFile(models.Model):
    """One `output` file of a manifest. `loaded_keys` lists the "Type/id" of every
    resource it wrote, so stopping or replacing the submission can delete exactly them."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        LOADING = "loading"
        LOADED = "loaded"
        FAILED = "failed"
        PURGED = "purged"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    manifest = models.ForeignKey(SubmittedManifest, on_delete=models.CASCADE, related_name="files")
    url = models.URLField(max_length=2000)
    resource_type = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    resource_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    loaded_keys = models.JSONField(default=list)
    finished_at = models.DateTimeField(null=True, blank=True)

    FINISHED = (Status.LOADED, Status.FAILED, Status.PURGED)

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["manifest", "status"], name="submittedfile_status")]

    def __str__(self) -> str:
        return self.url
