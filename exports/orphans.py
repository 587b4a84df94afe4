"""Files under a job's folder that its manifest does not list.

A worker killed while writing leaves a temporary file (local storage writes to a
temporary name and renames it into place); a retried partition rewrites its own files
under the same names, but nothing else would ever remove the leftovers.
"""

from __future__ import annotations

import logging

from exports.models import ExportFile, ExportJob
from exports.storage import job_storage

logger = logging.getLogger(__name__)


def sweep_orphans(job: ExportJob) -> int:
    """Delete whatever lies under the job's folder that its manifest does not list:
    temporary files of writes a killed worker left behind. Returns how many."""
    storage = job_storage(job)
    listed = set(ExportFile.objects.filter(job=job).values_list("storage_key", flat=True))
    orphans = [key for key in storage.list_keys(str(job.uuid)) if key not in listed]
    for key in orphans:
        storage.delete(key)
    if orphans:
        logger.info("orphaned files removed", extra={"job": job.uuid, "files": len(orphans)})
    return len(orphans)
