"""The submissions section of the console's Data page (fhirstore.data_sections)."""

from __future__ import annotations

from django.db.models import Count, Q, Sum

from fhirstore.data_sections import DataSection
from submissions.models import Submission, SubmittedFile

SHOWN = 20


def submissions_section() -> DataSection:
    """The latest submissions with their files' progress and resource counts."""
    files = "manifests__files"
    submissions = (
        Submission.objects.select_related("client")
        .annotate(
            files=Count(files),
            loaded=Count(files, filter=Q(**{f"{files}__status": SubmittedFile.Status.LOADED})),
            failed=Count(files, filter=Q(**{f"{files}__status": SubmittedFile.Status.FAILED})),
            resources=Sum(f"{files}__resource_count"),
        )
        .order_by("-created_at")[:SHOWN]
    )
    return DataSection("submissions/partials/data_section.html", {"submissions": submissions})
