"""Benchmark: a system-level export of generated data, against a raw-read baseline.

    .venv/bin/python bench/bench_export.py --patients 5000            # SQLite in a temp dir
    DATABASE_URL=postgres://... .venv/bin/python bench/bench_export.py --patients 5000

Prints resources/s for the export (plan + every partition, run in this process so its
peak RSS is the export's), the same for a baseline that only streams the stored bodies
to /dev/null by keyset pagination, their ratio, and the peak RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=5000)
    args = parser.parse_args()
    var_dir = os.environ.setdefault("BULKOPS_VAR_DIR", tempfile.mkdtemp(prefix="bulkops-bench-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bulkops.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from exports.models import ExportJob
    from exports.partitions import plan_export, run_partition
    from fhirstore.models import Resource

    print(f"database: {connection.vendor}  var dir: {var_dir}")
    call_command("migrate", verbosity=0)
    if not Resource.objects.exists():
        # Generated in a child process so this process's peak RSS is the export's alone.
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "manage.py"),
                "generate_fhir",
                "--patients",
                str(args.patients),
                "--seed",
                "1",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(
            f"generated {Resource.objects.count():,} resources in "
            f"{time.perf_counter() - started:.1f}s"
        )
    total = Resource.objects.filter(deleted=False).count()
    types = sorted(set(Resource.objects.values_list("resource_type", flat=True).distinct()))

    started = time.perf_counter()
    last, seen, size = 0, 0, 0
    with open(os.devnull, "wb") as sink:
        while rows := list(
            Resource.objects.filter(deleted=False, id__gt=last)
            .order_by("id")
            .values_list("id", "body")[:10_000]
        ):
            for _, body in rows:
                data = body.encode() + b"\n"
                sink.write(data)
                size += len(data)
            seen += len(rows)
            last = rows[-1][0]
    baseline = time.perf_counter() - started
    print(
        f"baseline raw read: {seen:,} resources, {size / 1e6:.0f} MB in {baseline:.1f}s "
        f"= {seen / baseline:,.0f} resources/s"
    )

    job = ExportJob.objects.create(
        level="system",
        request_url="bench",
        types=types,
        transaction_time=timezone.now(),
        parameters={"_since": None, "_elements": [], "patient": []},
    )
    started = time.perf_counter()
    for partition_id in plan_export(job.pk):
        run_partition(partition_id=partition_id, worker="bench")
    elapsed = time.perf_counter() - started
    job.refresh_from_db()
    print(
        f"export: status {job.status}, {job.resources_exported:,} of {total:,} resources, "
        f"{job.files.count()} files, {job.partitions_total} partitions in {elapsed:.1f}s "
        f"= {job.resources_exported / elapsed:,.0f} resources/s"
    )
    print(f"export / baseline time ratio: {elapsed / baseline:.2f}")
    print(f"peak RSS of this process: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
