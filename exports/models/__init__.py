"""The resource store (store.py) and export bookkeeping (jobs.py)."""

from exports.models.jobs import ExportFile, ExportJob, ExportPartition
from exports.models.store import (
    CompartmentMembership,
    GroupMembership,
    Resource,
    ResourceIdentifier,
)

__all__ = [
    "CompartmentMembership",
    "ExportFile",
    "ExportJob",
    "ExportPartition",
    "GroupMembership",
    "Resource",
    "ResourceIdentifier",
]
