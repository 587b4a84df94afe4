"""The whole client flow of one remote export, run by a Celery task (remotes.tasks) or
by `manage.py remote_export`: token, kick-off, polling, parallel streamed downloads
into our storage, DELETE of the remote job, then the job completed like a local one.

Failure is all or nothing: the job fails with the reason, no ExportFile is created and
what was stored is removed, so nothing claims a partial success.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.audit import record_event
from accounts.models import AuditEvent
from bulkops import untrusted_json
from bulkops.fhir.params import V4
from bulkops.outbound import FetchError
from bulkops.outbound.origins import origin_text, same_origin
from exports.bulk_client import (
    BulkClientError,
    BulkExportClient,
    Exchange,
    ExportStopped,
    redact_url,
)
from exports.finish_hooks import export_finished
from exports.models import ExportFile, ExportJob
from exports.partitions import fail_export
from exports.storage import job_storage
from remotes.blocks import BlockError, BlockReader
from remotes.crypto import DecryptionError
from remotes.discovery import DiscoveryError, offers_export_v4
from remotes.models import RemoteDownload, RemoteExchange, RemoteExport
from remotes.outcomes import ignored_type_filters, read_outcomes
from remotes.remote_manifest import (
    ListedFile,
    ManifestError,
    check_manifest,
    check_same_fields,
    merged,
    next_url,
)
from remotes.token_destination import TokenDestinationRefused

logger = logging.getLogger(__name__)

DOWNLOAD_WORKERS = 4
WAIT_TIMEOUT = 6 * 3600
MAX_MANIFEST_PAGES = 10_000  # a chain of `link` next longer than this is refused


class NdjsonError(BulkClientError):
    """A downloaded file is not NDJSON of FHIR resources (or not the layout and size
    its manifest says)."""


class ExchangeLog:
    """Collects exchanges from any thread; the runner's thread writes them to the DB."""

    def __init__(self, export: RemoteExport) -> None:
        self.export = export
        self._pending: list[tuple[Exchange, datetime]] = []
        self._lock = threading.Lock()

    def add(self, exchange: Exchange) -> None:
        with self._lock:
            self._pending.append((exchange, timezone.now()))

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        RemoteExchange.objects.bulk_create(
            RemoteExchange(
                export=self.export,
                method=e.method,
                url=e.url,
                status=e.status,
                request_headers=e.request_headers,
                response_headers=e.response_headers,
                seconds=e.seconds,
                answered_at=at,
                note=e.note,
            )
            for e, at in pending
        )


@dataclass
class Transfer:
    """Counters of one download, written by its worker thread, read by the runner's."""

    row: RemoteDownload
    bytes_done: int = 0
    lines: int = 0
    digest: Any = field(default_factory=hashlib.sha256)


def run_remote_export(job_id: int, report: Callable[[str], None] = lambda _: None) -> None:
    """Run the job if nobody has claimed it yet; `report` hears each phase and progress."""
    export = RemoteExport.objects.select_related("job", "server").get(job_id=job_id)
    job = export.job
    claimed = ExportJob.objects.filter(pk=job.pk, status=ExportJob.Status.ACCEPTED).update(
        status=ExportJob.Status.RUNNING
    )
    if not claimed:
        return
    log = ExchangeLog(export)
    runner = _Runner(export, log, report)
    try:
        runner.run()
    except ExportStopped:
        runner.abandon()
    except TokenDestinationRefused as error:  # no token was asked for: the reason says all
        runner.abandon()
        fail_export(job.pk, str(error))
    except (
        BulkClientError,
        FetchError,
        DiscoveryError,
        DecryptionError,
        OSError,
        ValueError,
    ) as error:
        runner.abandon()
        fail_export(job.pk, f"{_phase_label(export.phase)} failed: {error}")
    finally:
        log.flush()


def _phase_label(phase: str) -> str:
    return {
        RemoteExport.Phase.TOKEN: "The token request",
        RemoteExport.Phase.KICKOFF: "The kick-off",
        RemoteExport.Phase.WAITING: "Waiting for the remote export",
        RemoteExport.Phase.DOWNLOAD: "Downloading the files",
        RemoteExport.Phase.DELETE: "Deleting the remote job",
    }.get(phase, "The remote export")


class _Runner:
    def __init__(
        self, export: RemoteExport, log: ExchangeLog, report: Callable[[str], None]
    ) -> None:
        self.report = report
        self.export = export
        self.job = export.job
        self.server = export.server
        self.log = log
        self.client: BulkExportClient | None = None

    def cancelled(self) -> bool:
        return ExportJob.objects.filter(pk=self.job.pk, deleted_at__isnull=False).exists()

    @contextmanager
    def phase(self, phase: str) -> Iterator[None]:
        self._save(phase=phase)
        self.report(phase)
        started = time.monotonic()
        try:
            yield
        finally:
            timings = {**self.export.timings, phase: round(time.monotonic() - started, 3)}
            self._save(timings=timings)
            self.log.flush()

    def _save(self, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(self.export, name, value)
        RemoteExport.objects.filter(pk=self.export.pk).update(**fields)

    def run(self) -> None:
        target = self.server.target()
        with self.phase(RemoteExport.Phase.TOKEN):
            tokens = target.token_source(target.scope, on_exchange=self.log.add)
            tokens.token()
        self.client = BulkExportClient(
            target.base_url,
            tokens,
            workers=DOWNLOAD_WORKERS,
            verify_tls=target.verify_tls,
            on_exchange=self.log.add,
        )
        with self.phase(RemoteExport.Phase.KICKOFF):
            if self.export.bulk_version == V4 and not offers_export_v4(
                target.base_url, verify_tls=target.verify_tls, on_exchange=self.log.add
            ):
                raise BulkClientError(
                    f"{self.server.name}'s CapabilityStatement does not offer export-v4 "
                    "(Bulk Data 4.0.0): export with 2.0.0 instead"
                )
            pairs = [tuple(pair) for pair in self.export.kickoff_pairs]
            status_url = self.client.kick_off(
                self.export.kickoff_path,
                pairs,
                should_stop=self.cancelled,
                version=self.export.bulk_version,
            )
            if not same_origin(status_url, target.base_url):
                raise BulkClientError(
                    f"the status URL {redact_url(status_url)} is not on the FHIR server's "
                    f"origin ({origin_text(target.base_url)}), and our token goes nowhere else"
                )
            self._save(status_url=status_url)
        listing = _Listing(self.client, self.export.bulk_version)
        with self._downloads() as downloads:

            def partial(page: dict[str, Any]) -> None:
                """Files of a partial manifest are ready: fetch them while the export runs."""
                downloads.add(listing.new_files(page))
                downloads.watch(timeout=0)

            with self.phase(RemoteExport.Phase.WAITING):
                manifest = self.client.wait(
                    self.export.status_url,
                    self._progress,
                    timeout=WAIT_TIMEOUT,
                    should_stop=self.cancelled,
                    on_partial=partial if self._asked_partial_manifests() else None,
                )
                self._save(manifest=manifest)
                fresh = listing.new_files(manifest)
                if len(listing.pages) > 1:
                    manifest = merged(listing.pages)
                    self._save(manifest=manifest)
            with self.phase(RemoteExport.Phase.DOWNLOAD):
                downloads.add(fresh)
                transfers = downloads.finish()
        if self.server.delete_remote_job:
            with self.phase(RemoteExport.Phase.DELETE):
                self._delete_remote_job()
        self._complete(manifest, transfers)

    def _asked_partial_manifests(self) -> bool:
        return self.export.bulk_version == V4 and (
            ["allowPartialManifests", "true"] in self.export.kickoff_pairs
        )

    def _progress(self, text: str) -> None:
        self._save(progress=text[:200])
        self.report(f"{self.export.phase}: {text}")
        self.log.flush()

    # --- downloads ---------------------------------------------------------------------

    @contextmanager
    def _downloads(self) -> Iterator[_Downloads]:
        """The export's downloads; whatever ends the export stops those still running."""
        downloads = _Downloads(self)
        try:
            yield downloads
        finally:
            downloads.halt()
            downloads.pool.shutdown()

    def _fetch(
        self, transfer: Transfer, file: ListedFile, page: dict[str, Any], stop: threading.Event
    ) -> None:
        assert self.client is not None
        transfer.row.status = RemoteDownload.Status.RUNNING
        checker = NdjsonChecker(transfer, organized_by=file.organized_by)
        try:
            with (
                self.client.open_file(file.url, page) as chunks,
                job_storage(self.job).open_writer(transfer.row.storage_key) as out,
            ):
                for chunk in chunks:
                    if stop.is_set():
                        raise ExportStopped
                    checker.feed(chunk)
                    transfer.digest.update(chunk)
                    transfer.bytes_done += len(chunk)
                    out.write(chunk)
                checker.finish()
            if file.file_size is not None and transfer.bytes_done != file.file_size:
                raise NdjsonError(
                    f"the {transfer.row.kind} file for {transfer.row.resource_type} has "
                    f"{transfer.bytes_done} bytes; the manifest's fileSize says {file.file_size}"
                )
        except BaseException:
            transfer.row.status = RemoteDownload.Status.FAILED
            raise
        transfer.row.status = RemoteDownload.Status.DONE

    def _write_progress(self, transfers: list[Transfer]) -> None:
        for transfer in transfers:
            RemoteDownload.objects.filter(pk=transfer.row.pk).update(
                status=transfer.row.status,
                bytes_done=transfer.bytes_done,
                lines=transfer.lines,
                sha256=transfer.digest.hexdigest()
                if transfer.row.status == RemoteDownload.Status.DONE
                else "",
            )

    # --- the end -------------------------------------------------------------------------

    def _delete_remote_job(self) -> None:
        assert self.client is not None
        status = self.client.delete(self.export.status_url)
        self._save(remote_job_deleted=status in (200, 202, 204))

    def _complete(self, manifest: dict[str, Any], transfers: list[Transfer]) -> None:
        storage = job_storage(self.job)
        outcomes = [
            outcome
            for transfer in transfers
            if transfer.row.kind == ExportFile.Kind.ERROR
            for outcome in read_outcomes(storage.open_reader(transfer.row.storage_key))
        ]
        outputs = [t for t in transfers if t.row.kind == ExportFile.Kind.OUTPUT]
        now = timezone.now()
        transaction_time = parse_datetime(str(manifest.get("transactionTime") or ""))
        with transaction.atomic():
            for transfer in transfers:
                file = ExportFile.objects.create(
                    job=self.job,
                    kind=transfer.row.kind,
                    resource_type=transfer.row.resource_type,
                    storage_key=transfer.row.storage_key,
                    resource_count=transfer.lines,
                    size_bytes=transfer.bytes_done,
                )
                RemoteDownload.objects.filter(pk=transfer.row.pk).update(file=file)
            self._save(phase=RemoteExport.Phase.DONE, outcomes=outcomes)
            warnings = ignored_type_filters(outcomes, self.export.kickoff_pairs)
            types = sorted({t.row.resource_type for t in outputs})
            updated = ExportJob.objects.filter(pk=self.job.pk, status__in=ExportJob.UNFINISHED)
            updated = updated.update(
                status=ExportJob.Status.COMPLETED,
                transaction_time=transaction_time or self.job.transaction_time,
                completed_at=now,
                expires_at=now + timedelta(seconds=settings.BULKOPS_EXPORT_RETENTION),
                types=types,
                types_total=len(types),
                types_done=len(types),
                resources_exported=sum(t.lines for t in outputs),
                warnings=[*self.job.warnings, *warnings],
            )
            if not updated:  # cancelled while finishing: nothing is kept
                raise ExportStopped
            export_finished(self.job.pk)
            record_event(
                actor_type=AuditEvent.ActorType.SYSTEM,
                actor=self.server.name,
                action="remote.export.completed",
                details={
                    "job": str(self.job.uuid),
                    "server": self.server.name,
                    "files": len(transfers),
                    "resources": sum(t.lines for t in outputs),
                },
            )
        logger.info("remote export completed", extra={"job": self.job.uuid})

    def abandon(self) -> None:
        """Remove whatever was stored and, when the remote job exists, DELETE it."""
        job_storage(self.job).delete_prefix(str(self.job.uuid))
        ExportFile.objects.filter(job=self.job).delete()
        RemoteDownload.objects.filter(export=self.export).exclude(
            status=RemoteDownload.Status.FAILED
        ).update(status=RemoteDownload.Status.DISCARDED)
        remote_job_left = self.export.status_url and not self.export.remote_job_deleted
        if self.client is not None and remote_job_left:
            try:
                self._delete_remote_job()
            except (BulkClientError, FetchError, OSError) as error:
                logger.warning("remote job not deleted: %s", error, extra={"job": self.job.uuid})


class _Listing:
    """The files of a remote manifest as its pages come: page 1 from the status URL
    (while a v4 export runs, its partial manifest; at the end, the complete one), later
    pages through `link` next (v4 only). A page with a `link` is frozen (v4 digest §1.8)
    and not fetched again; each file is handed out once, by its place in its page (a
    refreshed page may sign its URLs anew)."""

    def __init__(self, client: BulkExportClient, version: str) -> None:
        self.client, self.version = client, version
        self.pages: list[dict[str, Any]] = []
        self._frozen: dict[str, tuple[dict[str, Any], list[ListedFile]]] = {}
        self._handed_out: set[tuple[int, int]] = set()

    def new_files(self, first: Any) -> list[tuple[ListedFile, dict[str, Any]]]:
        listed = [check_manifest(first, self.version)]
        pages, page, visited = [first], first, set()
        while self.version == V4 and (url := next_url(page)):
            if url in visited or len(pages) >= MAX_MANIFEST_PAGES:
                raise ManifestError("the manifest's pages link in a circle or never end")
            visited.add(url)
            if url not in self._frozen:
                page = self.client.manifest_page(url)
                files = check_manifest(page, self.version)
                check_same_fields(first, page, len(pages) + 1)
                if "link" in page:
                    self._frozen[url] = (page, files)
            else:
                page, files = self._frozen[url]
            listed.append(files)
            pages.append(page)
        self.pages = pages
        fresh = []
        for number, (page, files) in enumerate(zip(pages, listed, strict=True)):
            for index, file in enumerate(files):
                if (number, index) not in self._handed_out:
                    self._handed_out.add((number, index))
                    fresh.append((file, page))
        return fresh


class _Downloads:
    """The file downloads of one export, in parallel, joined as manifests list files:
    all at once from a complete manifest, page by page while a v4 export with partial
    manifests still runs. The first failure, or a cancel, stops the rest."""

    def __init__(self, runner: _Runner) -> None:
        self.runner = runner
        self.transfers: list[Transfer] = []
        self.pending: set[Future[None]] = set()
        self.stop = threading.Event()
        self.pool = ThreadPoolExecutor(DOWNLOAD_WORKERS)
        self._numbers: Counter[str] = Counter()

    def add(self, files: list[tuple[ListedFile, dict[str, Any]]]) -> None:
        for file, page in files:
            index = self._numbers[file.kind]
            self._numbers[file.kind] += 1
            key = f"{self.runner.job.uuid}/remote/{file.kind}-{index:04d}-{file.resource_type}"
            transfer = Transfer(
                RemoteDownload.objects.create(
                    export=self.runner.export,
                    kind=file.kind,
                    resource_type=file.resource_type,
                    url=redact_url(file.url),
                    storage_key=f"{key}.ndjson",
                )
            )
            self.transfers.append(transfer)
            self.pending.add(self.pool.submit(self.runner._fetch, transfer, file, page, self.stop))

    def watch(self, timeout: float) -> None:
        """Wait up to `timeout` seconds, record progress, and raise the first failure
        (or ExportStopped when the job was cancelled)."""
        done, self.pending = wait(self.pending, timeout=timeout, return_when=FIRST_EXCEPTION)
        self.runner._write_progress(self.transfers)
        self.runner.log.flush()
        failed = [future for future in done if future.exception() is not None]
        if failed or self.runner.cancelled():
            self.halt()
            if failed:
                raise failed[0].exception()  # type: ignore[misc]
            raise ExportStopped

    def finish(self) -> list[Transfer]:
        while self.pending:
            self.watch(timeout=1)
        return self.transfers

    def halt(self) -> None:
        self.stop.set()
        for future in self.pending:
            future.cancel()
        wait(self.pending)
        self.pending = set()
        self.runner._write_progress(self.transfers)


class NdjsonChecker:
    """Checks streamed bytes line by line: each line one JSON FHIR resource, and in an
    organised file (v4 `organizeOutputBy`) each block led by its header line."""

    def __init__(self, transfer: Transfer, organized_by: str = "") -> None:
        self.transfer = transfer
        self._rest = b""
        self._blocks = BlockReader(organized_by) if organized_by else None

    def feed(self, chunk: bytes) -> None:
        *lines, self._rest = (self._rest + chunk).split(b"\n")
        for line in lines:
            self._line(line)

    def finish(self) -> None:
        self._line(self._rest)
        self._rest = b""
        if self._blocks is not None:
            self._in_blocks(lambda blocks: blocks.finish(self.transfer.lines))

    def _line(self, line: bytes) -> None:
        if not line.strip():
            return
        self.transfer.lines += 1
        try:
            resource = untrusted_json.loads(line)
        except ValueError:
            resource = None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            row = self.transfer.row
            raise NdjsonError(
                f"line {self.transfer.lines} of the {row.kind} file for {row.resource_type} "
                "is not a FHIR resource in JSON (the file is not NDJSON)"
            )
        if self._blocks is not None:
            self._in_blocks(lambda blocks: blocks.line(resource, self.transfer.lines))

    def _in_blocks(self, step: Callable[[BlockReader], None]) -> None:
        assert self._blocks is not None
        try:
            step(self._blocks)
        except BlockError as error:
            raise NdjsonError(
                f"the {self.transfer.row.kind} file {self.transfer.row.url} "
                f"breaks its block layout: {error}"
            ) from None
