"""What the console and the API show of a delivery: its state in words and, for a copy,
its submission's files with their type, state, resource count and error."""

from __future__ import annotations

from typing import Any

from submissions.models import SubmittedFile
from transfers.copies import copy_finished
from transfers.models import Delivery


def shown_status(delivery: Delivery) -> str:
    """A copy is done once its submission has processed every file: the submissions
    app loads it and does not tell the delivery, whose row stays "watching"."""
    if delivery.status == Delivery.Status.WATCHING and copy_finished(delivery):
        return Delivery.Status.DONE.label
    return delivery.get_status_display()


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
