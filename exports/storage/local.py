"""Export files on local disk under BULKOPS_LOCAL_STORAGE_DIR.

Files are served by the app after a bearer-token check (requiresAccessToken: true).
Writes go to a temporary name and are renamed into place, so a reader never sees a
half-written file and a retried partition replaces its file atomically.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from exports.storage.base import SignedUrl

_SAFE_KEY_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./")


class LocalStorage:
    requires_access_token = True

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        """Keys are made by bulkops, never by clients; still refuse anything odd."""
        if not key or set(key) - _SAFE_KEY_CHARS or ".." in key or key.startswith("/"):
            raise ValueError(f"unsafe storage key {key!r}")
        return self.root / key

    @contextmanager
    def open_writer(self, key: str) -> Iterator[BinaryIO]:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed into place below
            dir=path.parent, prefix=f".{path.name}.", delete=False
        )
        try:
            with handle:
                yield handle
            os.replace(handle.name, path)
        except BaseException:
            Path(handle.name).unlink(missing_ok=True)
            raise

    def open_reader(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def open_range(self, key: str, start: int, length: int) -> BinaryIO:
        handle = self._path(key).open("rb", buffering=0)
        handle.seek(start)
        return io.BufferedReader(_RangeReader(handle, length))

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix), ignore_errors=True)

    def list_keys(self, prefix: str) -> Iterator[str]:
        folder = self._path(prefix.rstrip("/"))
        for path in sorted(folder.rglob("*")) if folder.is_dir() else ():
            if path.is_file():
                yield path.relative_to(self.root).as_posix()

    def signed_url(self, key: str, *, now: datetime, not_after: datetime | None) -> SignedUrl:
        raise NotImplementedError("local files are served by the app to token holders")


class _RangeReader(io.RawIOBase):
    """Reads through `handle` but stops after `remaining` bytes, as a ranged GET would."""

    def __init__(self, handle: io.FileIO, remaining: int) -> None:
        self.handle = handle
        self.remaining = max(0, remaining)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        wanted = min(len(buffer), self.remaining)
        if wanted == 0:
            return 0
        got = self.handle.readinto(memoryview(buffer)[:wanted]) or 0
        self.remaining -= got
        return got

    def close(self) -> None:
        self.handle.close()
        super().close()
