"""`manage.py remote_export NAME`: the console's remote export, from a shell.

It records the same job (visible in the console) and runs the same runner in this
process instead of a worker, printing the remote's progress, then files per type.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bulkops.fhir.params import GROUP, PATIENT, SYSTEM, V2, V4
from exports.models import ExportJob
from remotes.models import RemoteServer
from remotes.runner import run_remote_export
from remotes.services import start_remote_export


class Command(BaseCommand):
    help = "Export from a remote Bulk Data server into this bulkops; non-zero exit on failure."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The remote server's name (see /remotes/).")
        level = parser.add_mutually_exclusive_group()
        level.add_argument("--group", help="Group id at the remote (default: its default group)")
        level.add_argument("--patient-level", action="store_true", help="Patient/$export")
        level.add_argument("--system", action="store_true", help="system-level $export")
        parser.add_argument("--type", action="append", default=[], help="_type (repeatable)")
        parser.add_argument("--since", help="_since, a FHIR instant")
        parser.add_argument("--elements", help="_elements")
        parser.add_argument("--type-filter", action="append", default=[], help="_typeFilter")
        parser.add_argument("--patient", action="append", default=[], help="a patient id")
        parser.add_argument(
            "--bulk-data-4",
            action="store_true",
            help="kick off at $export-v4 (the remote's CapabilityStatement must offer it)",
        )
        parser.add_argument(
            "--organize-by-patient", action="store_true", help="organizeOutputBy=Patient (v4)"
        )
        parser.add_argument(
            "--partial-manifests",
            action="store_true",
            help="allowPartialManifests: download files while the export runs (v4)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        server = RemoteServer.objects.filter(name=options["name"]).first()
        if server is None:
            raise CommandError(f"No remote server named {options['name']!r}.")
        level, group_id = self._level(server, options)
        version = V4 if options["bulk_data_4"] else V2
        options_v4 = [("organize_by_patient", ("organizeOutputBy", "Patient"))]
        options_v4 += [("partial_manifests", ("allowPartialManifests", "true"))]
        if version == V2 and any(options[name] for name, _ in options_v4):
            raise CommandError("--organize-by-patient and --partial-manifests need --bulk-data-4.")
        pairs = [("_type", ",".join(options["type"]))] if options["type"] else []
        pairs += [(p, options[o]) for o, p in (("since", "_since"), ("elements", "_elements"))]
        pairs = [(name, value) for name, value in pairs if value]
        pairs += [("_typeFilter", value) for value in options["type_filter"]]
        pairs += [("patient", f"Patient/{value}") for value in options["patient"]]
        pairs += [pair for name, pair in options_v4 if options[name]]
        job = start_remote_export(
            server,
            level=level,
            group_id=group_id,
            pairs=pairs,
            actor="command",
            request=None,
            queue=False,
            bulk_version=version,
        )
        self.stdout.write(f"Job {job.uuid}: {job.request_url}")
        run_remote_export(job.pk, report=lambda text: self.stdout.write(f"  {text}"))
        job.refresh_from_db()
        if job.status != ExportJob.Status.COMPLETED:
            raise CommandError(f"Export {job.status}: {job.failure_reason}")
        self.stdout.write(f"{'Kind':<8} {'Type':<28} {'Files':>5} {'Lines':>9} {'Bytes':>12}")
        rows: dict[tuple[str, str], list[int]] = {}
        for file in job.files.all():
            row = rows.setdefault((file.kind, file.resource_type), [0, 0, 0])
            row[0] += 1
            row[1] += file.resource_count
            row[2] += file.size_bytes
        for (kind, rtype), (files, lines, size) in sorted(rows.items()):
            self.stdout.write(f"{kind:<8} {rtype:<28} {files:>5} {lines:>9} {size:>12}")
        self.stdout.write(self.style.SUCCESS(f"Completed: {job.resources_exported} resources."))

    def _level(self, server: RemoteServer, options: dict[str, Any]) -> tuple[str, str]:
        if options["system"]:
            return SYSTEM, ""
        if options["patient_level"]:
            return PATIENT, ""
        group_id = options["group"] or server.default_group_id
        if not group_id:
            raise CommandError("Give --group, --patient-level or --system (no default group).")
        return GROUP, group_id
