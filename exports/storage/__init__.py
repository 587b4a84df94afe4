"""Where export files live. `get_storage()` picks the backend from BULKOPS_STORAGE.

Backends share one small interface (`ExportStorage`) so partitions, downloads and
cleanup never know which one is configured; the S3 backend plugs in here.
"""

from __future__ import annotations

from functools import cache
from typing import BinaryIO, Protocol

from django.conf import settings


class ObjectWriter(Protocol):
    def write(self, data: bytes) -> None: ...


class ExportStorage(Protocol):
    requires_access_token: bool

    def open_writer(self, key: str) -> WriterContext: ...

    def open_reader(self, key: str) -> BinaryIO: ...

    def size(self, key: str) -> int: ...

    def delete(self, key: str) -> None: ...

    def delete_prefix(self, prefix: str) -> None: ...


class WriterContext(Protocol):
    def __enter__(self) -> ObjectWriter: ...

    def __exit__(self, *exc: object) -> None: ...


@cache
def get_storage() -> ExportStorage:
    from exports.storage.local import LocalStorage

    return LocalStorage(settings.BULKOPS_LOCAL_STORAGE_DIR)
