from __future__ import annotations

from collections import Counter
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from fhirstore.loaders import data_files, load_file
from fhirstore.writes import WriteResult


class Command(BaseCommand):
    help = (
        "Load FHIR data: Bundles (.json: transaction/batch/collection), single resources "
        "(.json) and NDJSON (.ndjson, .ndjson.gz), from files or folders. Each file is one "
        "transaction; a bad file is reported and skipped, and the command then exits non-zero."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path)

    def handle(self, *args: object, paths: list[Path], **options: object) -> None:
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise CommandError(f"no such file or folder: {', '.join(missing)}")
        total = WriteResult()
        failed = 0
        for path in data_files(paths):
            report = load_file(path, now=timezone.now())
            if report.error:
                failed += 1
                self.stderr.write(f"{path}: {report.error} (file not loaded)")
            else:
                total.add(report.result)
        self.stdout.write(_table(total))
        if failed:
            raise CommandError(f"{failed} file(s) not loaded; see the messages above")


def _table(result: WriteResult) -> str:
    columns = ("created", "updated", "unchanged", "deleted")
    counters: list[Counter[str]] = [getattr(result, name) for name in columns]
    types = sorted(set().union(*counters))
    rows = [("type", *columns)]
    rows += [(t, *(str(c[t]) for c in counters)) for t in types]
    rows.append(("total", *(str(c.total()) for c in counters)))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{r[0]:<{width}}  " + "  ".join(f"{v:>9}" for v in r[1:]) for r in rows)
