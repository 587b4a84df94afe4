"""What the console and the API show of a copy: its submission's files, with their
type, state, resource count and error."""

from __future__ import annotations

from typing import Any

from submissions.models import SubmittedFile
from transfers.models import Delivery


def copy_files(delivery: Delivery) -> list[dict[str, Any]]:
    if delivery.local_submission_id is None:
        return []
    files = SubmittedFile.objects.filter(manifest__submission_id=delivery.local_submission_id)
    return [
        {
            "resource_type": file.resource_type,
            "status": file.status,
            "resources": file.resource_count,
            "error": file.error,
        }
        for file in files.order_by("pk")
    ]
