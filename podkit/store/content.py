"""Content-addressed blob store.

Layout under ``<root>/content``::

    blobs/sha256/<hex>      committed blobs, immutable
    ingest/<random>         blobs being written (never read by anyone else)

A blob reaches its final name only through ``Writer.commit``: the data is checked
against the expected digest and size, fsynced, then renamed into place, so a crash
at any moment leaves either no blob or a whole, verified one. Stale ingest files are
swept at start-up.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from podkit.errors import DigestMismatch, InvalidArgument, NotFound

_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


class Digest(str):
    """A validated ``sha256:<hex>`` digest."""

    def __new__(cls, value: str) -> Digest:
        if not _DIGEST_RE.fullmatch(value):
            raise InvalidArgument(f"invalid digest {value!r}: want sha256:<64 hex>")
        return super().__new__(cls, value)

    @property
    def hex(self) -> str:
        return self[7:]

    @classmethod
    def of(cls, data: bytes) -> Digest:
        return cls("sha256:" + hashlib.sha256(data).hexdigest())


# Bytes a blob write leaves free under the root (see Writer._guard_room).
KEEP_FREE = 8 << 20


class Writer:
    """Streams one blob into the ingest area; ``commit`` verifies and publishes it."""

    def __init__(self, store: ContentStore, expected: str | None, size: int | None) -> None:
        self._store = store
        self.expected = Digest(expected) if expected else None
        self.expected_size = size
        self.path = store.ingest_dir / secrets.token_hex(12)
        self._f: BinaryIO = open(self.path, "wb")  # noqa: SIM115 - closed in commit/abort
        self._hash = hashlib.sha256()
        self.offset = 0

    def write(self, data: bytes) -> None:
        if self.expected_size is not None and self.offset + len(data) > self.expected_size:
            self.abort()
            raise DigestMismatch(
                f"blob {self.expected or ''} is larger than its declared size {self.expected_size}"
            )
        self._guard_room(len(data))
        self._f.write(data)
        self._hash.update(data)
        self.offset += len(data)

    def _guard_room(self, n: int) -> None:
        """Leave the last few MiB of the disk to the metadata (an exit's record, a
        removal that frees space): content is what fills a disk, not what frees it."""
        st = os.statvfs(self._store.ingest_dir)
        if st.f_bavail * st.f_frsize < n + KEEP_FREE:
            raise OSError(errno.ENOSPC, f"no space left for blob data (keeping {KEEP_FREE >> 20} MiB free)")

    def commit(self) -> Digest:
        digest = Digest("sha256:" + self._hash.hexdigest())
        try:
            if self.expected_size is not None and self.offset != self.expected_size:
                raise DigestMismatch(
                    f"blob {self.expected or digest}: got {self.offset} bytes, expected {self.expected_size}"
                )
            if self.expected and digest != self.expected:
                raise DigestMismatch(f"blob digest mismatch: expected {self.expected}, got {digest}")
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
            final = self._store.path(digest)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(self.path, 0o444)
            os.replace(self.path, final)
            _fsync_dir(final.parent)
            return digest
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._f.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._f.closed:
            self.abort()


class ContentStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root) / "content"
        self.blobs_dir = self.root / "blobs" / "sha256"
        self.ingest_dir = self.root / "ingest"
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        self.ingest_dir.mkdir(parents=True, exist_ok=True)
        # Root only: images can be private, and nothing but the daemon reads blobs.
        os.chmod(self.root, 0o700)

    def sweep_ingest(self) -> int:
        """Remove half-written blobs left by a crash; returns how many."""
        n = 0
        for p in self.ingest_dir.iterdir():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                n += 1
        return n

    def path(self, digest: str) -> Path:
        return self.blobs_dir / Digest(digest).hex

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def writer(self, expected: str | None = None, size: int | None = None) -> Writer:
        return Writer(self, expected, size)

    def put(self, data: bytes, expected: str | None = None) -> Digest:
        digest = Digest.of(data)
        if expected and digest != expected:
            raise DigestMismatch(f"blob digest mismatch: expected {expected}, got {digest}")
        if self.has(digest):
            return digest
        with self.writer(digest, len(data)) as w:
            w.write(data)
            return w.commit()

    def read(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")  # noqa: SIM115
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(digest).unlink()

    def __iter__(self) -> Iterator[Digest]:
        for p in self.blobs_dir.iterdir():
            if len(p.name) == 64:
                yield Digest("sha256:" + p.name)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
