"""Writing NDJSON lines to storage, rotating to a new file every N resources."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Self

from exports.storage import ExportStorage, ObjectWriter


@dataclass(frozen=True)
class WrittenFile:
    key: str
    resource_count: int
    size_bytes: int


class RotatingNdjsonWriter:
    """Opens files lazily (no empty files) and closes each after `max_per_file` lines.

    `key_for(n)` names the n-th file (0-based); names are deterministic so a retried
    partition overwrites what an earlier attempt wrote.
    """

    def __init__(
        self, storage: ExportStorage, key_for: Callable[[int], str], max_per_file: int
    ) -> None:
        self.storage = storage
        self.key_for = key_for
        self.max_per_file = max_per_file
        self.written: list[WrittenFile] = []
        self._stack: ExitStack | None = None
        self._handle: ObjectWriter | None = None
        self._count = 0
        self._size = 0

    def write(self, line: bytes) -> None:
        if self._handle is None:
            self._open()
        assert self._handle is not None
        self._handle.write(line)
        self._count += 1
        self._size += len(line)
        if self._count >= self.max_per_file:
            self._finish()

    def _open(self) -> None:
        self._stack = ExitStack()
        self._handle = self._stack.enter_context(
            self.storage.open_writer(self.key_for(len(self.written)))
        )
        self._count = 0
        self._size = 0

    def _finish(self) -> None:
        assert self._stack is not None
        self._stack.close()
        self.written.append(WrittenFile(self.key_for(len(self.written)), self._count, self._size))
        self._stack = None
        self._handle = None

    def close(self) -> list[WrittenFile]:
        if self._handle is not None:
            self._finish()
        return self.written

    def abort(self) -> None:
        """Drop the file being written (its temporary file is removed)."""
        if self._stack is not None:
            self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)
            self._stack = None
            self._handle = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
