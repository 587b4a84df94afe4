"""Where export files live: the default storage (BULKOPS_STORAGE) and the named ones of
BULKOPS_OUTPUT_STORAGES. Every job records the name of the storage its files went to,
and everything that touches those files looks the storage up by that name
(`job_storage`), so a later change of the default never strands a job's files.

Backends share one small interface (`ExportStorage`, in exports/storage/base.py) so
partitions, downloads and cleanup never know which one a job uses.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from bulkops.output_storages import DEFAULT_STORAGE, OutputStorage
from exports.storage.base import ExportStorage, ObjectWriter, SignedUrl, WriterContext

if TYPE_CHECKING:
    from exports.models import ExportJob
    from exports.storage.local import LocalStorage
    from exports.storage.s3 import S3Config, S3Storage

__all__ = [
    "DEFAULT_STORAGE",
    "ExportStorage",
    "ObjectWriter",
    "SignedUrl",
    "UnknownStorage",
    "WriterContext",
    "get_storage",
    "job_storage",
    "storage_config",
    "storage_names",
]


class UnknownStorage(LookupError):
    """A storage name the settings do not configure (any more): a job whose storage was
    removed from BULKOPS_OUTPUT_STORAGES keeps its files there, out of reach."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the output storage {name!r} is not configured")
        self.name = name


def storage_names() -> list[str]:
    """Every storage an export may be written to, the default first."""
    return [DEFAULT_STORAGE, *settings.BULKOPS_OUTPUT_STORAGES]


def storage_config(name: str) -> OutputStorage:
    """The configuration of the storage called `name`: the default one from
    BULKOPS_STORAGE and BULKOPS_S3_* / BULKOPS_LOCAL_STORAGE_DIR, the others from
    BULKOPS_OUTPUT_STORAGES. Raises UnknownStorage for a name not configured."""
    if name == DEFAULT_STORAGE:
        return OutputStorage(
            name=DEFAULT_STORAGE,
            kind=settings.BULKOPS_STORAGE,
            dir=str(settings.BULKOPS_LOCAL_STORAGE_DIR),
            bucket=settings.BULKOPS_S3_BUCKET,
            prefix=settings.BULKOPS_S3_PREFIX,
            endpoint=settings.BULKOPS_S3_ENDPOINT_URL,
            region=settings.BULKOPS_S3_REGION,
            addressing_style=settings.BULKOPS_S3_ADDRESSING_STYLE,
            sse=settings.BULKOPS_S3_SSE,
        )
    try:
        return settings.BULKOPS_OUTPUT_STORAGES[name]
    except KeyError:
        raise UnknownStorage(name) from None


def get_storage(name: str = DEFAULT_STORAGE) -> ExportStorage:
    """The storage called `name`, one instance per configuration: reused across requests
    (boto3 clients are costly to build) yet never stale when settings change in tests.
    Raises UnknownStorage for a name that is not configured."""
    config = storage_config(name)
    if config.kind == "local":
        return _local_storage(Path(config.dir))
    from exports.storage.s3 import S3Config

    return _s3_storage(S3Config.from_output_storage(config))


def job_storage(job: ExportJob) -> ExportStorage:
    """The storage the job's files went to."""
    return get_storage(job.storage)


@cache
def _local_storage(root: Path) -> LocalStorage:
    from exports.storage.local import LocalStorage

    return LocalStorage(root)


@cache
def _s3_storage(config: S3Config) -> S3Storage:
    from exports.storage.s3 import S3Storage

    return S3Storage(config)
