"""Benchmark the resource store: generator, NDJSON and Bundle load rates, peak memory.

    .venv/bin/python bench/bench_store.py [--patients 2000]

Runs against a throwaway SQLite database in a temporary var dir (nothing of yours is
touched); set BENCH_DATABASE_URL to a scratch PostgreSQL database to measure that instead
(its tables are created by migrate, and emptied between steps).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(var_dir: str) -> None:
    os.environ["BULKOPS_VAR_DIR"] = var_dir
    os.environ.pop("DATABASE_URL", None)
    if os.environ.get("BENCH_DATABASE_URL"):
        os.environ["DATABASE_URL"] = os.environ["BENCH_DATABASE_URL"]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bulkops.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def empty_store() -> None:
    """Plain DELETEs: the ORM's delete() would load every row to cascade."""
    from django.db import connection

    from exports.models import CompartmentMembership, GroupMembership, Resource, ResourceIdentifier

    with connection.cursor() as cursor:
        for model in (CompartmentMembership, GroupMembership, ResourceIdentifier, Resource):
            cursor.execute(f"DELETE FROM {model._meta.db_table}")  # noqa: S608 - our table names


def rate(label: str, count: int, seconds: float) -> None:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{label:<34} {count:>9} resources in {seconds:7.1f}s = {count / seconds:>9,.0f}/s"
        f"  (peak RSS so far {peak:.0f} MB)"
    )


def bench_generator(patients: int) -> int:
    from django.core.management import call_command

    from exports.models import Resource

    started = time.monotonic()
    call_command("generate_fhir", patients=patients, seed=1, stdout=StringIO())
    count = Resource.objects.count()
    rate(f"generate_fhir ({patients} patients)", count, time.monotonic() - started)
    return count


def write_ndjson(path: Path) -> int:
    """Dump the store as one NDJSON file, as a bulk export would."""
    from exports.models import Resource

    count = 0
    with path.open("w") as out:
        for body in Resource.objects.order_by("pk").values_list("body", flat=True).iterator(5000):
            out.write(body + "\n")
            count += 1
    return count


def write_bundles(folder: Path, patients: int) -> int:
    """Synthea-style transaction Bundles (urn:uuid references) for `patients` patients."""
    from bulkops.fhir.references import rewrite_references
    from bulkops.fhir.synthetic import SyntheticData

    data = SyntheticData(seed=2, group_name="bench")
    shared = list(data.shared())
    entries = [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
        for r in shared
    ]
    (folder / "hospitalInformation.json").write_text(
        json.dumps({"resourceType": "Bundle", "type": "batch", "entry": entries})
    )
    count = len(shared)
    for n in range(patients):
        resources = list(data.patient())
        local = {f"{r['resourceType']}/{r['id']}": f"urn:uuid:{r['id']}" for r in resources}
        for r in resources:
            rewrite_references(r, lambda ref, local=local: local.get(ref, ref))
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": f"urn:uuid:{r['id']}",
                    "resource": r,
                    "request": {"method": "POST", "url": r["resourceType"]},
                }
                for r in resources
            ],
        }
        (folder / f"patient{n}.json").write_text(json.dumps(bundle))
        count += len(resources)
    return count


def bench_load(label: str, path: Path, count: int) -> None:
    from django.core.management import call_command

    started = time.monotonic()
    call_command("load_fhir", str(path), stdout=StringIO())
    rate(label, count, time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--bundle-patients", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bulkops-bench-") as var_dir:
        setup_django(var_dir)
        from django.db import connection

        print(f"database: {connection.vendor}")
        bench_generator(args.patients)
        ndjson = Path(var_dir) / "all.ndjson"
        lines = write_ndjson(ndjson)
        empty_store()
        bench_load(f"load_fhir NDJSON ({ndjson.stat().st_size >> 20} MB)", ndjson, lines)
        empty_store()
        folder = Path(var_dir) / "bundles"
        folder.mkdir()
        count = write_bundles(folder, args.bundle_patients)
        bench_load(f"load_fhir Bundles ({args.bundle_patients} patients)", folder, count)


if __name__ == "__main__":
    main()
