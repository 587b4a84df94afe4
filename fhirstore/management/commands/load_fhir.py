from __future__ import annotations

from collections import Counter
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from fhirstore.loaders import load_files
from fhirstore.writes import WriteResult


class Command(BaseCommand):
    help = (
        "Load FHIR data: Bundles (.json: transaction/batch/collection), single resources "
        "(.json) and NDJSON (.ndjson, .ndjson.gz), from files or folders (a Bulk Data export's "
        "folder too: its manifest, log and error files are skipped and named). Each file is "
        "one transaction; conditional references resolve against every file given. A bad "
        "file is reported and not loaded, and the command then exits non-zero."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path)

    def handle(self, *args: object, paths: list[Path], **options: object) -> None:
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise CommandError(f"no such file or folder: {', '.join(missing)}")
        total = WriteResult()
        failed = 0
        for report in load_files(paths):
            if report.skipped:
                self.stdout.write(f"{report.path}: skipped, {report.skipped}")
            elif report.error:
                failed += 1
                self.stderr.write(f"{report.path}: {report.error} (file not loaded)")
            else:
                total.add(report.result)
        self.stdout.write(_table(total))
        if failed:
            raise CommandError(f"{failed} file(s) not loaded; see the messages above")


def _table(result: WriteResult) -> str:
    columns = WriteResult.COLUMNS
    counters: list[Counter[str]] = [getattr(result, name) for name in columns]
    types = sorted(set().union(*counters))
    rows = [("type", *columns)]
    rows += [(t, *(str(c[t]) for c in counters)) for t in types]
    rows.append(("total", *(str(c.total()) for c in counters)))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{r[0]:<{width}}  " + "  ".join(f"{v:>9}" for v in r[1:]) for r in rows)
