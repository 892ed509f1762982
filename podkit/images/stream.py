"""A blob that is still downloading, read by a layer applier as it grows.

The download writes the blob into the content store's ingest file as usual
(``ContentWriter``); a ``GrowingBlob`` tells a reader (the applier's thread) how far
that file is written, so that a layer is unpacked while it arrives instead of after.
The reader reaches the end of the blob only once the download has committed it,
that is once its digest matched: until then whatever was unpacked sits in an
uncommitted snapshot, which the applier throws away if the download fails.

When following is not possible the reader raises ``StreamAbandoned`` and the
caller applies the layer from the content store once it is there: the download
restarted in another file after the reader had consumed bytes of the first one (a
mirror that failed mid-way; what was read might not be the blob), the blob came
from elsewhere (already stored, or fetched by a concurrent pull), or the download
failed (its own error then tells why).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from podkit.errors import PodkitError

_READ = 1 << 20


class StreamAbandoned(PodkitError):
    """The growing blob cannot be followed to its end: apply it from the store."""


class GrowingBlob:
    """Where a download stands; written on the event loop, read from one thread."""

    def __init__(self, digest: str) -> None:
        self.digest = digest
        self._cond = threading.Condition()
        self._path: Path | None = None
        self._size = 0  # bytes the writer holds (a few KiB may still sit in its buffer)
        self._version = 0  # bumped on every change, so a starved reader knows to look again
        self._state = "open"  # -> "done" (committed, verified) | "failed"

    # -- the download's side ---------------------------------------------------------

    def written(self, path: Path, offset: int) -> None:
        """``offset`` bytes of the blob are in ``path`` (the ingest file)."""
        with self._cond:
            self._path, self._size = path, offset
            self._version += 1
            self._cond.notify_all()

    def finish(self) -> None:
        """The download committed the blob: its digest matched."""
        self._end("done")

    def fail(self) -> None:
        """The download ended without committing the blob (error, cancellation)."""
        self._end("failed")

    def _end(self, state: str) -> None:
        with self._cond:
            if self._state == "open":
                self._state = state
            self._version += 1
            self._cond.notify_all()

    # -- the reader's side -----------------------------------------------------------

    def follow(self) -> BlobFollower:
        return BlobFollower(self)

    def wait_verified(self) -> None:
        """Block until the download ended; StreamAbandoned unless it committed the blob."""
        with self._cond:
            self._cond.wait_for(lambda: self._state != "open")
            if self._state != "done":
                raise StreamAbandoned(f"the download of {self.digest} did not complete")


class BlobFollower:
    """A read-only, forward-only file over a GrowingBlob (what apply_layer reads)."""

    def __init__(self, blob: GrowingBlob) -> None:
        self._blob = blob
        self._fd: int | None = None
        self._path: Path | None = None
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            parts = []
            while chunk := self.read(_READ):
                parts.append(chunk)
            return b"".join(parts)
        if n == 0:
            return b""
        blob = self._blob
        seen = -1
        while True:
            with blob._cond:
                while blob._version == seen:
                    blob._cond.wait()
                seen = blob._version
                if blob._state == "failed":
                    raise StreamAbandoned(f"the download of {blob.digest} failed")
                if blob._path is None:
                    if blob._state == "done":
                        raise StreamAbandoned(f"{blob.digest} was not downloaded here")
                    continue
                if blob._path != self._path:
                    if self._pos:
                        raise StreamAbandoned(f"the download of {blob.digest} started over")
                    try:
                        self._reopen(blob._path)
                    except FileNotFoundError:
                        # Aborted (a new file follows) or committed and renamed meanwhile.
                        if blob._state == "done":
                            raise StreamAbandoned(
                                f"{blob.digest} was committed before it was followed"
                            ) from None
                        continue
                avail = blob._size - self._pos
                done = blob._state == "done"
            assert self._fd is not None
            if avail > 0 or done:
                data = os.pread(self._fd, min(n, avail) if avail > 0 else n, self._pos)
                if data:
                    self._pos += len(data)
                    return data
                if done:
                    return b""  # committed and read to its end
            # Nothing new readable yet (the writer's buffer holds the rest): wait for more.

    def readinto(self, b: bytearray | memoryview) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def _reopen(self, path: Path) -> None:
        self.close()
        # An fd, not the path: the file is renamed into the store on commit.
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self._path = path

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> BlobFollower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
