"""The interface every storage backend implements (`ExportStorage`), in a module of its
own so the backends import it without importing the package that picks among them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol


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
