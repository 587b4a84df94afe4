"""Where export files live. `get_storage()` picks the backend from BULKOPS_STORAGE.

Backends share one small interface (`ExportStorage`, in exports/storage/base.py) so
partitions, downloads and cleanup never know which one is configured.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

from exports.storage.base import ExportStorage, ObjectWriter, SignedUrl, WriterContext

if TYPE_CHECKING:
    from exports.storage.local import LocalStorage
    from exports.storage.s3 import S3Config, S3Storage

__all__ = ["ExportStorage", "ObjectWriter", "SignedUrl", "WriterContext", "get_storage"]


def get_storage() -> ExportStorage:
    """The configured backend, one instance per configuration: reused across requests
    (boto3 clients are costly to build) yet never stale when settings change in tests."""
    if settings.BULKOPS_STORAGE == "s3":
        from exports.storage.s3 import S3Config

        return _s3_storage(S3Config.from_settings())
    return _local_storage(Path(settings.BULKOPS_LOCAL_STORAGE_DIR))


@cache
def _local_storage(root: Path) -> LocalStorage:
    from exports.storage.local import LocalStorage

    return LocalStorage(root)


@cache
def _s3_storage(config: S3Config) -> S3Storage:
    from exports.storage.s3 import S3Storage

    return S3Storage(config)
