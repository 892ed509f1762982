"""What the content store offers the layers above it, apart from its files on disk.

As containerd's ``content.Store`` interface stands apart from its local store,
``Content`` is the face the image layer (pull, push, import, export, GC) types
against; ``ContentStore`` (podkit.store.content) is the implementation, blobs under
``<root>/content``. A wrapper (one that records what a failed import wrote, say)
implements the same protocol.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol

from podkit.store.content import Digest


class ContentWriter(Protocol):
    """One blob being written; nothing can read it until ``commit`` verifies it."""

    #: bytes written so far
    offset: int

    @property
    def path(self) -> Path:
        """The file being written: unverified until ``commit`` (a follower may read it as it grows)."""
        ...

    def write(self, data: bytes) -> None:
        """Append; DigestMismatch (and the blob aborted) past the declared size."""
        ...

    def commit(self) -> Digest:
        """Check digest and size, make the blob durable and visible; DigestMismatch if
        it is not what was declared (the blob is then aborted)."""
        ...

    def abort(self) -> None:
        """Drop what was written."""
        ...

    def __enter__(self) -> ContentWriter: ...

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Aborts if not committed."""
        ...


class Content(Protocol):
    """Blobs by ``sha256:`` digest: written once through a writer, then immutable.
    NotFound for a blob that is not there; InvalidArgument for a malformed digest."""

    def path(self, digest: str) -> Path:
        """The committed blob's file (read-only; it may not exist)."""
        ...

    def has(self, digest: str) -> bool: ...

    def size(self, digest: str) -> int: ...

    def writer(self, expected: str | None = None, size: int | None = None) -> ContentWriter:
        """A writer for a blob, checked at commit against ``expected`` and ``size``."""
        ...

    def put(self, data: bytes, expected: str | None = None) -> Digest:
        """Store a whole blob (a no-op if it is there already)."""
        ...

    def read(self, digest: str) -> bytes: ...

    def open(self, digest: str) -> BinaryIO: ...

    def delete(self, digest: str) -> None:
        """Remove a blob (no error if it is gone); the garbage collector's to call."""
        ...

    def __iter__(self) -> Iterator[Digest]:
        """Every committed blob."""
        ...
