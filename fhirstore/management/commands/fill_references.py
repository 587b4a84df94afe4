"""Fill `Resource.refers_to` for the rows stored before the store kept it.

Until a row has it, Patient and Group exports search the row's body for references, as
they did before (exports.referenced.ReferenceCollector): correct, only slower. Run once
after every host runs the release that added the column (docs/deployment.md, "Upgrades"):
a row the previous release rewrote after this command filled it would keep references
of its earlier body. Rows the current release writes meanwhile are left alone (only
rows still without the column are updated).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bulkops.fhir.referenced import stored_references
from fhirstore.models import Resource


class Command(BaseCommand):
    help = "Note the references of resources stored before the store kept them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=2000, help="rows per transaction")

    def handle(self, *args: object, batch: int, **options: object) -> None:
        if batch < 1:
            raise CommandError("--batch must be at least 1")
        unknown = Resource.objects.filter(refers_to__isnull=True)
        filled, last = 0, 0
        while rows := list(unknown.filter(id__gt=last).order_by("id").only("id", "body")[:batch]):
            for row in rows:
                row.refers_to = stored_references(row.body)
            filled += unknown.bulk_update(rows, ["refers_to"])
            last = rows[-1].id
        self.stdout.write(f"Filled the references of {filled} stored resources.")
