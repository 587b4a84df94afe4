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
from bulkops.outbound import FetchError
from bulkops.outbound.origins import origin_text, same_origin
from exports.bulk_client import (
    BulkClientError,
    BulkExportClient,
    Exchange,
    ExportStopped,
    TokenSource,
    redact_url,
)
from exports.models import ExportFile, ExportJob
from exports.partitions import fail_export
from exports.storage import get_storage
from remotes.crypto import DecryptionError
from remotes.discovery import DiscoveryError, discover_token_url
from remotes.models import RemoteDownload, RemoteExchange, RemoteExport
from remotes.outcomes import ignored_type_filters, read_outcomes
from remotes.token_destination import TokenDestinationRefused

logger = logging.getLogger(__name__)

DOWNLOAD_WORKERS = 4
WAIT_TIMEOUT = 6 * 3600
MANIFEST_KINDS = ("output", "deleted", "error")


class ManifestError(BulkClientError):
    """The remote's manifest is not what Bulk Data 2.0 §2.3 describes."""


class NdjsonError(BulkClientError):
    """A downloaded file is not NDJSON of FHIR resources."""


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
            token_url = target.token_url or discover_token_url(
                target.base_url, verify_tls=target.verify_tls, on_exchange=self.log.add
            )
            # Decided here, in the worker, on the URL about to be used: the row may have
            # changed since the console judged it, and discovery may answer differently.
            if problem := target.token_url_problem(token_url):
                raise TokenDestinationRefused(problem)
            tokens = TokenSource(
                token_url,
                target.client_id,
                target.private_jwk,
                target.scope,
                verify_tls=target.verify_tls,
                on_exchange=self.log.add,
            )
            tokens.token()
        self.client = BulkExportClient(
            target.base_url,
            tokens,
            workers=DOWNLOAD_WORKERS,
            verify_tls=target.verify_tls,
            on_exchange=self.log.add,
        )
        with self.phase(RemoteExport.Phase.KICKOFF):
            pairs = [tuple(pair) for pair in self.export.kickoff_pairs]
            status_url = self.client.kick_off(
                self.export.kickoff_path, pairs, should_stop=self.cancelled
            )
            if not same_origin(status_url, target.base_url):
                raise BulkClientError(
                    f"the status URL {redact_url(status_url)} is not on the FHIR server's "
                    f"origin ({origin_text(target.base_url)}), and our token goes nowhere else"
                )
            self._save(status_url=status_url)
        with self.phase(RemoteExport.Phase.WAITING):
            manifest = self.client.wait(
                self.export.status_url,
                self._progress,
                timeout=WAIT_TIMEOUT,
                should_stop=self.cancelled,
            )
            self._save(manifest=manifest)
            check_manifest(manifest)
        with self.phase(RemoteExport.Phase.DOWNLOAD):
            transfers = self._download(manifest)
        if self.server.delete_remote_job:
            with self.phase(RemoteExport.Phase.DELETE):
                self._delete_remote_job()
        self._complete(manifest, transfers)

    def _progress(self, text: str) -> None:
        self._save(progress=text[:200])
        self.report(f"{self.export.phase}: {text}")
        self.log.flush()

    # --- downloads ---------------------------------------------------------------------

    def _download(self, manifest: dict[str, Any]) -> list[Transfer]:
        transfers = [
            Transfer(
                RemoteDownload.objects.create(
                    export=self.export,
                    kind=kind,
                    resource_type=item["type"],
                    url=redact_url(item["url"]),
                    storage_key=f"{self.job.uuid}/remote/{kind}-{index:04d}-{item['type']}.ndjson",
                )
            )
            for kind in MANIFEST_KINDS
            for index, item in enumerate(manifest.get(kind) or [])
        ]
        urls = [item["url"] for kind in MANIFEST_KINDS for item in manifest.get(kind) or []]
        stop = threading.Event()
        with ThreadPoolExecutor(DOWNLOAD_WORKERS) as pool:
            futures: list[Future[None]] = [
                pool.submit(self._fetch, transfer, url, manifest, stop)
                for transfer, url in zip(transfers, urls, strict=True)
            ]
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=1, return_when=FIRST_EXCEPTION)
                self._write_progress(transfers)
                self.log.flush()
                failed = [f for f in done if f.exception() is not None]
                if failed or self.cancelled():
                    stop.set()
                    for future in pending:
                        future.cancel()
                    wait(pending)
                    self._write_progress(transfers)
                    if failed:
                        raise failed[0].exception()  # type: ignore[misc]
                    raise ExportStopped
        return transfers

    def _fetch(
        self, transfer: Transfer, url: str, manifest: dict[str, Any], stop: threading.Event
    ) -> None:
        assert self.client is not None
        transfer.row.status = RemoteDownload.Status.RUNNING
        checker = NdjsonChecker(transfer)
        try:
            with (
                self.client.open_file(url, manifest) as chunks,
                get_storage().open_writer(transfer.row.storage_key) as out,
            ):
                for chunk in chunks:
                    if stop.is_set():
                        raise ExportStopped
                    checker.feed(chunk)
                    transfer.digest.update(chunk)
                    transfer.bytes_done += len(chunk)
                    out.write(chunk)
                checker.finish()
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
        storage = get_storage()
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
        get_storage().delete_prefix(str(self.job.uuid))
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


def check_manifest(manifest: Any) -> None:
    """Refuse a manifest the downloads could not trust (spec §2.3 fields)."""
    if not isinstance(manifest, dict):
        raise ManifestError("the manifest is not a JSON object")
    for name in ("transactionTime", "request", "requiresAccessToken", "output"):
        if name not in manifest:
            raise ManifestError(f"the manifest has no {name!r}")
    if not isinstance(manifest["requiresAccessToken"], bool):
        raise ManifestError("the manifest's requiresAccessToken is not true or false")
    for kind in MANIFEST_KINDS:
        items = manifest.get(kind, [])
        if not isinstance(items, list):
            raise ManifestError(f"the manifest's {kind!r} is not a list")
        for index, item in enumerate(items):
            if not (
                isinstance(item, dict)
                and isinstance(item.get("type"), str)
                and item["type"].isalnum()
                and isinstance(item.get("url"), str)
                and item["url"].startswith(("http://", "https://"))
            ):
                raise ManifestError(
                    f"{kind}[{index}] of the manifest needs a resource type and an http(s) url"
                )


class NdjsonChecker:
    """Checks streamed bytes line by line: each line one JSON FHIR resource."""

    def __init__(self, transfer: Transfer) -> None:
        self.transfer = transfer
        self._rest = b""

    def feed(self, chunk: bytes) -> None:
        *lines, self._rest = (self._rest + chunk).split(b"\n")
        for line in lines:
            self._line(line)

    def finish(self) -> None:
        self._line(self._rest)
        self._rest = b""

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
