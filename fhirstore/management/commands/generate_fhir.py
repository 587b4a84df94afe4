from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import chain

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from bulkops.fhir.synthetic import SyntheticData
from fhirstore.models import Resource
from fhirstore.writes import ResourceWrite, WriteResult, write_resources

# Patients per transaction: big enough for bulk inserts, small enough that an
# interrupted run keeps what it finished.
PATIENTS_PER_COMMIT = 100


class Command(BaseCommand):
    help = (
        "Generate deterministic synthetic patients (100-300 linked resources each), shared "
        "Practitioners/Organizations/Locations/Medications, and a Group of all of them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--patients", type=int, required=True)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--group-name", default=None)
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="do nothing when the resource store already has data (used by make run)",
        )

    def handle(
        self,
        *args: object,
        patients: int,
        seed: int,
        group_name: str | None,
        if_empty: bool,
        **options: object,
    ) -> None:
        if patients < 1:
            raise CommandError("--patients must be at least 1")
        if if_empty and Resource.objects.exists():
            self.stdout.write("Resource store already has data: not generating.")
            return
        data = SyntheticData(seed=seed, group_name=group_name or f"Synthetic cohort (seed {seed})")
        started = time.monotonic()
        total = WriteResult()
        total.add(_write(data.shared()))
        for first in range(0, patients, PATIENTS_PER_COMMIT):
            count = min(PATIENTS_PER_COMMIT, patients - first)
            total.add(_write(chain.from_iterable(data.patient() for _ in range(count))))
        total.add(_write(iter([data.group()])))
        written = sum(c.total() for c in (total.created, total.updated, total.unchanged))
        seconds = time.monotonic() - started
        self.stdout.write(
            f"{written} resources for {patients} patients (seed {seed}) in {seconds:.1f}s "
            f"({written / max(seconds, 1e-9):,.0f}/s): {total.created.total()} created, "
            f"{total.updated.total()} updated, {total.unchanged.total()} unchanged; "
            f"Group/{data.group()['id']}"
        )


def _write(resources: Iterator[dict]) -> WriteResult:
    writes = (ResourceWrite(r["resourceType"], r["id"], r) for r in resources)
    return write_resources(writes, now=timezone.now())
