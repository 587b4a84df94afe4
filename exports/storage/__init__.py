"""Where export files live. `get_storage()` picks the backend from BULKOPS_STORAGE.

Backends share one small interface (`ExportStorage`) so partitions, downloads and
cleanup never know which one is configured.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from django.conf import settings

if TYPE_CHECKING:
    from exports.storage.local import LocalStorage
    from exports.storage.s3 import S3Config, S3Storage


class ObjectWriter(Protocol):
    def write(self, data: bytes) -> None: ...


@dataclass(frozen=True)
class SignedUrl:
    """A URL that needs no bearer token, and the moment it stops working."""

    url: str
    expires_at: datetime


class ExportStorage(Protocol):
    requires_access_token: bool

    def open_writer(self, key: str) -> WriterContext: ...

    def open_reader(self, key: str) -> BinaryIO: ...

    def open_range(self, key: str, start: int, length: int) -> BinaryIO:
        """A reader of at most `length` bytes from byte `start`, fetching no others (a
        preview of a 5 GB file reads one page); empty past the end of the object."""
        ...

    def size(self, key: str) -> int: ...

    def delete(self, key: str) -> None: ...

    def delete_prefix(self, prefix: str) -> None: ...

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key under `prefix/`, including leftovers of interrupted writes."""
        ...

    def signed_url(self, key: str, *, now: datetime, not_after: datetime | None) -> SignedUrl:
        """Only for backends with requires_access_token False."""
        ...


class WriterContext(Protocol):
    def __enter__(self) -> ObjectWriter: ...

    def __exit__(self, *exc: object) -> None: ...


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
