"""Import of uploaded files (root file system tarballs, docker-save and OCI archives) as
image records, all or nothing: a failed import leaves no record, blob or snapshot."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from podkit.errors import InvalidArgument, PodkitError
from podkit.images import reference
from podkit.images.context import ImageContent
from podkit.images.oci import Descriptor, Platform
from podkit.images.service import Image, ImageService
from podkit.store import ContentWriter, Digest

log = logging.getLogger(__name__)


class Importer:
    """Turns an uploaded blob into image records (see podkit.images.archive)."""

    def __init__(self, service: ImageService) -> None:
        self.s = service

    async def import_blob(
        self,
        ns: str,
        digest: str,
        name: str | None = None,
        changes: list[str] | None = None,
        message: str = "",
        platform: Platform | None = None,
        unpack: bool = True,
        require_archive: bool = False,
    ) -> list[Image]:
        from podkit.images import archive

        s = self.s
        images: list[Image] = []
        kind = ""
        made: set[str] = {digest}
        content = _RecordingContent(s.content, made)
        try:
            if name:
                reference.parse(name)  # refuse a bad name before any work
            with s.leases.lease(ns) as lease:
                s.leases.add(ns, lease, "content", digest)
                kind, compression, diff_id = await asyncio.to_thread(archive.sniff, content, digest)
                if kind == "rootfs":
                    if require_archive:
                        raise InvalidArgument(
                            "the file is neither a docker-save archive (no manifest.json) nor an OCI "
                            "archive (no oci-layout + index.json); import a root file system tarball "
                            "with `podkit image import`"
                        )
                    target = await asyncio.to_thread(
                        archive.build_rootfs_image,
                        content,
                        digest,
                        compression,
                        changes or [],
                        message,
                        platform,
                        diff_id,
                    )
                    images.append(self._record(ns, name, target, "import"))
                else:
                    if changes:
                        raise InvalidArgument(
                            "--change applies to root file system tarballs, not to image archives"
                        )
                    loaded = await asyncio.to_thread(
                        archive.read_archive, content, digest, kind, compression, platform
                    )
                    for tgt, names in loaded:
                        wanted: list[str | None] = [name] if name else list(names)
                        for n in wanted or [None]:
                            images.append(self._record(ns, n, tgt, "load"))
                if unpack:
                    for img in images:
                        await s.unpack(ns, img, platform)
        except BaseException:
            # Nothing of a failed import may stay: its records go, GC takes the rest.
            for img in images:
                try:
                    s.remove(ns, img.name, force=True)
                except PodkitError as e:
                    log.warning("undoing a failed import: could not remove image %s: %s", img.name, e.message)
            s.release_blobs(made)
            await asyncio.to_thread(s.gc)
            raise
        if kind != "rootfs":
            # The archive itself is not part of any image (its blobs were copied out).
            s.content.delete(digest)
        return images

    def _record(self, ns: str, name: str | None, target: Descriptor, action: str) -> Image:
        s = self.s
        if name:
            return s.record(ns, name, target, action=action)
        return s.record_dangling(ns, target, action=action)


class _RecordingContent:
    """The content store, noting every blob written through it (to free them on failure)."""

    def __init__(self, inner: ImageContent, made: set[str]) -> None:
        self._inner = inner
        self._made = made

    @property
    def ingest_dir(self) -> Path:
        return self._inner.ingest_dir

    def path(self, digest: str) -> Path:
        return self._inner.path(digest)

    def has(self, digest: str) -> bool:
        return self._inner.has(digest)

    def size(self, digest: str) -> int:
        return self._inner.size(digest)

    def read(self, digest: str) -> bytes:
        return self._inner.read(digest)

    def open(self, digest: str) -> BinaryIO:
        return self._inner.open(digest)

    def delete(self, digest: str) -> None:
        self._inner.delete(digest)

    def __iter__(self) -> Iterator[Digest]:
        return iter(self._inner)

    def put(self, data: bytes, expected: str | None = None) -> Digest:
        d = self._inner.put(data, expected)
        self._made.add(d)
        return d

    def writer(self, expected: str | None = None, size: int | None = None) -> ContentWriter:
        return _RecordingWriter(self._inner.writer(expected, size), self._made)


class _RecordingWriter:
    """A content writer whose committed digest is noted in ``made``."""

    def __init__(self, inner: ContentWriter, made: set[str]) -> None:
        self._inner = inner
        self._made = made

    @property
    def offset(self) -> int:
        return self._inner.offset

    @offset.setter
    def offset(self, value: int) -> None:
        self._inner.offset = value

    @property
    def path(self) -> Path:
        return self._inner.path

    def write(self, data: bytes) -> None:
        self._inner.write(data)

    def commit(self) -> Digest:
        d = self._inner.commit()
        self._made.add(d)
        return d

    def abort(self) -> None:
        self._inner.abort()

    def __enter__(self) -> _RecordingWriter:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._inner.__exit__(t, e, tb)
