from __future__ import annotations

import uuid

from django.db import models

from bulkops.fhir.referenced import referenced_types
from bulkops.output_storages import DEFAULT_STORAGE


class ExportJobQuerySet(models.QuerySet):
    def for_client(self, client: object) -> ExportJobQuerySet:
        """Jobs this client may see: its own, not deleted."""
        return self.filter(client=client, deleted_at__isnull=True)

    def unfinished(self) -> ExportJobQuerySet:
        return self.filter(status__in=ExportJob.UNFINISHED, deleted_at__isnull=True)

    def expired(self, now: object) -> ExportJobQuerySet:
        return self.filter(expires_at__lte=now, deleted_at__isnull=True)


class ExportJob(models.Model):
    """One $export kick-off. Its status URL and files are addressed by `uuid`."""

    class Status(models.TextChoices):
        ACCEPTED = "accepted"
        RUNNING = "running"
        FINALIZING = "finalizing"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class Level(models.TextChoices):
        SYSTEM = "system"
        PATIENT = "patient"
        GROUP = "group"

    UNFINISHED = (Status.ACCEPTED, Status.RUNNING, Status.FINALIZING)

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    client = models.ForeignKey(
        "accounts.BackendClient",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="export_jobs",
    )
    level = models.CharField(max_length=16, choices=Level.choices)
    group_id = models.CharField(max_length=64, blank=True)
    request_url = models.TextField()
    # Which Bulk Data version the client kicked off ($export or $export-v4): it decides
    # how the status endpoint answers and how the manifest is rendered.
    bulk_version = models.CharField(max_length=8, default="2.0.0")
    # `Prefer: separate-export-status` at kick-off (v4 digest §1.9): status responses say
    # the job's status in X-Export-Status and use the HTTP status for the poll itself.
    separate_status = models.BooleanField(default=False)
    parameters = models.JSONField(default=dict)
    types = models.JSONField(default=list)
    warnings = models.JSONField(default=list)
    transaction_time = models.DateTimeField()
    # The highest resource row id at transaction_time: rows up to it existed then, and
    # the export includes each as it is when read (exports.partitions.candidate_rows).
    # None: no bound (jobs accepted before this was recorded).
    last_resource_id = models.PositiveBigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACCEPTED)
    failure_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    # Seconds its files are kept once finished; None: BULKOPS_EXPORT_RETENTION.
    retention = models.PositiveIntegerField(null=True, blank=True)
    # The output storage its files go to ("default", or a BULKOPS_OUTPUT_STORAGES name):
    # every read, signature and deletion of them uses this one (exports.storage).
    storage = models.CharField(max_length=32, default=DEFAULT_STORAGE)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Progress counters, written by partitions at flush points; read by one row fetch.
    partitions_total = models.PositiveIntegerField(default=0)
    partitions_done = models.PositiveIntegerField(default=0)
    types_total = models.PositiveIntegerField(default=0)
    types_done = models.PositiveIntegerField(default=0)
    rows_planned = models.PositiveBigIntegerField(default=0)
    rows_done = models.PositiveBigIntegerField(default=0)
    resources_exported = models.PositiveBigIntegerField(default=0)
    # Patient and Group exports: the resources their output refers to have been planned
    # as partitions of their own (exports/referenced.py).
    references_closed = models.BooleanField(default=False)
    # Status polling: when the client last polled and how many polls came too early.
    last_polled_at = models.DateTimeField(null=True, blank=True)
    early_polls = models.PositiveIntegerField(default=0)

    objects = ExportJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["client", "status"], name="exportjob_client_status"),
            models.Index(fields=["expires_at"], name="exportjob_expires"),
        ]

    def __str__(self) -> str:
        return f"{self.level} export {self.uuid} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status not in self.UNFINISHED

    @property
    def referenced_types(self) -> list[str]:
        """The types outside the Patient compartment a Patient or Group export adds for
        the resources its output refers to (bulkops/fhir/referenced.py)."""
        return referenced_types(self.level, self.types)

    @property
    def percent_done(self) -> int:
        if self.status == self.Status.COMPLETED:
            return 100
        if not self.rows_planned:
            return 0
        return min(99, self.rows_done * 100 // self.rows_planned)

    @property
    def progress_text(self) -> str:
        """X-Progress and the console's progress line (spec §2.1: under 100 characters)."""
        if self.status == self.Status.ACCEPTED:
            return "0% - planning"
        return (
            f"{self.percent_done}% - {self.types_done} of {self.types_total} types, "
            f"{self.resources_exported} resources"
        )


class ExportPartition(models.Model):
    """One resource type × id range of a job, run by one Celery task.

    A partition owns deterministic file names, so a retry overwrites its own files;
    `lease_until` lets another worker take over from one that died.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"

    job = models.ForeignKey(ExportJob, on_delete=models.CASCADE, related_name="partitions")
    resource_type = models.CharField(max_length=64)
    sequence = models.PositiveIntegerField()
    lower_id = models.BigIntegerField(help_text="exclusive")
    upper_id = models.BigIntegerField(help_text="inclusive")
    rows_planned = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=255, blank=True)
    resources_exported = models.PositiveIntegerField(default=0)
    # Reads resources the job's output refers to (ExportReference), not compartment rows.
    referenced = models.BooleanField(default=False)
    # The types a partition of small types reads (exports.partitions.SMALL_TYPES).
    types = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["resource_type", "sequence"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "resource_type", "sequence"], name="partition_unique_slot"
            )
        ]
        indexes = [models.Index(fields=["status", "lease_until"], name="partition_lease")]

    def __str__(self) -> str:
        return f"{self.resource_type}#{self.sequence} of {self.job_id}"


class ExportReference(models.Model):
    """A resource of a referenced type (bulkops/fhir/referenced.py) that a Patient or
    Group export's output refers to: found in the lines a partition wrote (`partition`),
    or in referenced resources when the job's references were closed (no partition)."""

    job = models.ForeignKey(ExportJob, on_delete=models.CASCADE, related_name="references")
    partition = models.ForeignKey(
        ExportPartition, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    resource_type = models.CharField(max_length=64)
    resource_id = models.CharField(max_length=64)

    class Meta:
        indexes = [
            models.Index(
                fields=["job", "resource_type", "resource_id"], name="exportreference_lookup"
            )
        ]

    def __str__(self) -> str:
        return f"{self.resource_type}/{self.resource_id} for {self.job_id}"


class ExportFile(models.Model):
    """One NDJSON file of a job, downloadable at /fhir/bulkfiles/<uuid>."""

    class Kind(models.TextChoices):
        OUTPUT = "output"
        DELETED = "deleted"
        ERROR = "error"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    job = models.ForeignKey(ExportJob, on_delete=models.CASCADE, related_name="files")
    partition = models.ForeignKey(
        ExportPartition, null=True, blank=True, on_delete=models.CASCADE, related_name="files"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    resource_type = models.CharField(max_length=64)
    storage_key = models.CharField(max_length=255)
    resource_count = models.PositiveIntegerField()
    size_bytes = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    # The frozen partial-manifest page that lists the file (v4 `allowPartialManifests`,
    # exports/manifest_pages.py); None until a page takes it.
    manifest_page = models.PositiveIntegerField(null=True, blank=True)
    # The file that continues this one's last patient block (v4 `organizeOutputBy`,
    # `continuesInFile`, exports/patient_blocks.py): its storage key, or "".
    continues_in_key = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["kind", "resource_type", "storage_key"]
        constraints = [
            models.UniqueConstraint(fields=["job", "storage_key"], name="exportfile_unique_key")
        ]

    def __str__(self) -> str:
        return self.storage_key
