"""Writing NDJSON lines to storage, rotating to a new file every N resources."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Protocol, Self

from exports.storage import ExportStorage, ObjectWriter


@dataclass(frozen=True)
class WrittenFile:
    key: str
    resource_count: int
    size_bytes: int
    continues_in: str = ""  # the key of the file that goes on with its last block


class RecordSink(Protocol):
    """Where a partition's lines of one resource type go: a rotating file series, or
    the block being assembled for one patient (exports/patient_blocks.py)."""

    def write_records(self, records: list[bytes]) -> None: ...

    def write_block(self, block: bytes, count: int) -> None: ...


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
        """Write one line (ending in a newline)."""
        self.write_records([line[:-1]])

    def write_records(self, records: list[bytes]) -> None:
        """Write each record as one line, joined into as few writes as file rotation
        allows: a chunk of thousands of resources costs a handful of calls, not one each."""
        start = 0
        while start < len(records):
            batch = records[start : start + self._room()]
            self._append(b"\n".join(batch), len(batch))
            start += len(batch)

    def write_block(self, block: bytes, count: int) -> None:
        """Write `count` records already joined by newlines: in place when they fit in
        the open file, which is every time but at a rotation."""
        if count > self._room():
            self.write_records(block.split(b"\n"))
        else:
            self._append(block, count)

    def _room(self) -> int:
        """How many more records the open file (or else the next one) takes."""
        return self.max_per_file - (self._count if self._handle is not None else 0)

    def _append(self, joined: bytes, count: int) -> None:
        """Write `count` records joined by newlines, which fit; close the file once full."""
        if self._handle is None:
            self._open()
        assert self._handle is not None
        self._handle.write(joined)
        self._handle.write(b"\n")
        self._count += count
        self._size += len(joined) + 1
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


class TypedNdjsonFiles:
    """A partition's files: one rotating series per resource type for output and one for
    deleted[] Bundles, each opened on its first line, all closed or aborted together.

    `stem_for(type)` names a type's series; file n of it is `{stem}.{n:03d}.ndjson`
    (or `.deleted.ndjson`), deterministic as RotatingNdjsonWriter needs.
    """

    def __init__(
        self, storage: ExportStorage, stem_for: Callable[[str], str], max_per_file: int
    ) -> None:
        self.storage = storage
        self.stem_for = stem_for
        self.max_per_file = max_per_file
        self._writers: dict[tuple[str, bool], RotatingNdjsonWriter] = {}

    def writer(self, resource_type: str, *, deleted: bool = False) -> RotatingNdjsonWriter:
        slot = (resource_type, deleted)
        if slot not in self._writers:
            name = f"{self.stem_for(resource_type)}.{{:03d}}.{'deleted.' if deleted else ''}ndjson"
            self._writers[slot] = RotatingNdjsonWriter(self.storage, name.format, self.max_per_file)
        return self._writers[slot]

    @property
    def written(self) -> list[tuple[str, bool, WrittenFile]]:
        """(resource type, deleted?, file) of every file closed so far."""
        return [
            (resource_type, deleted, file)
            for (resource_type, deleted), writer in self._writers.items()
            for file in writer.written
        ]

    def abort(self) -> None:
        for writer in self._writers.values():
            writer.abort()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        for writer in self._writers.values():
            writer.__exit__(exc_type, *rest)
