"""Progress per resource type for the job page.

A job's partitions are per type, except a system export of every stored type, whose
partitions each read all types (one `*` slot, exports/partitions.py) or several small
ones (`+`). For that job the page still shows one row per type that holds data: what
the store holds of it, and what finished partitions have written of it so far.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, Sum

from exports.models import ExportFile, ExportJob
from exports.partitions import ALL_TYPES, SMALL_TYPES
from fhirstore.reads import live_counts_by_type


def progress_by_type(job: ExportJob) -> list[dict[str, Any]]:
    """One row per type: `resource_type`, `partitions`, `done`, `rows` (planned, about)
    and `exported`."""
    rows = list(
        job.partitions.values("resource_type")
        .annotate(
            partitions=Count("pk"),
            done=Count("pk", filter=Q(status="done")),
            rows=Sum("rows_planned"),
            exported=Sum("resources_exported"),
        )
        .order_by("resource_type")
    )
    shared = [row for row in rows if row["resource_type"] in (ALL_TYPES, SMALL_TYPES)]
    if not shared:
        return rows
    everything = {key: sum(row[key] for row in shared) for key in ("partitions", "done")}
    written = dict(
        ExportFile.objects.filter(job=job, kind=ExportFile.Kind.OUTPUT)
        .values_list("resource_type")
        .annotate(n=Sum("resource_count"))
    )
    if everything["done"] == everything["partitions"]:  # what was written is the answer
        stored = written
    else:  # until then, what the store holds is the estimate (before _since and filters)
        wanted = set(job.types)
        stored = {
            row["resource_type"]: row["n"]
            for row in live_counts_by_type()
            if row["resource_type"] in wanted
        }
    return [
        {
            "resource_type": resource_type,
            "partitions": everything["partitions"],
            "done": everything["done"],
            "rows": stored.get(resource_type, 0),
            "exported": written.get(resource_type, 0),
        }
        for resource_type in sorted(set(stored) | set(written))
    ]
