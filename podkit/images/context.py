"""What the image service's operations share: one ``ImageContext`` per ``ImageService``.

``ImageService`` is the public face; records, resolution, unpacking, removal and
GC are modules of functions of this context. The layers below are typed by their
protocols: ``Content`` (podkit.store) and ``Snapshotter`` (podkit.snapshots).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from podkit.errors import InvalidArgument
from podkit.snapshots import Snapshotter
from podkit.store import Content, Database, Leases

if TYPE_CHECKING:
    from podkit.images.image import Image, Resolved


class ImageContent(Content, Protocol):
    """The content store as the image layer needs it: blobs, and the ingest directory
    (swept at start) where an import decompresses an archive aside."""

    @property
    def ingest_dir(self) -> Path: ...


class Publish(Protocol):
    """The daemon event bus's ``publish(namespace, type, action, id, **attributes)``."""

    def __call__(self, namespace: str, type: str, action: str, id: str, /, **attributes: str) -> object: ...


def no_publish(namespace: str, type: str, action: str, id: str, /, **attributes: str) -> None:
    """The publisher of a service built without an event bus (tests, tools)."""


# Blobs and layer snapshots made this recently and not (yet) named by any image
# survive GC even without a lease: a pull or import in flight.
GRACE_SECONDS = 600.0

# (namespace, image) -> names of the containers using it; the containers layer adds one.
UsageHook = Callable[[str, "Image"], list[str]]


@dataclass
class ImageContext:
    db: Database
    content: ImageContent
    snapshots: Snapshotter
    publish: Publish
    leases: Leases
    usage_hooks: list[UsageHook] = field(default_factory=list)
    # Resolutions by (target digest, asked platform) and parsed JSON blobs by digest.
    cache: dict[tuple[str, str], Resolved] = field(default_factory=dict)
    json_cache: dict[str, Any] = field(default_factory=dict)
    # Held by GC and by every change of the records, so that GC sees a consistent set.
    gc_lock: threading.RLock = field(default_factory=threading.RLock)
    apply_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    # Blobs and chain IDs of images removed since the last GC: freed even if recent.
    # (A plain-tar layer's blob digest is also its diff ID and chain ID: two sets.)
    released_blobs: set[str] = field(default_factory=set)
    released_snaps: set[str] = field(default_factory=set)
    grace: float = GRACE_SECONDS

    def read_json(self, digest: str) -> Any:
        """A JSON blob, parsed (and cached: blobs are immutable). Any: it is what the blob holds."""
        if digest in self.json_cache:
            return self.json_cache[digest]
        try:
            data = json.loads(self.content.read(digest))
        except (ValueError, RecursionError) as e:
            raise InvalidArgument(f"blob {digest} is not valid JSON: {e}") from None
        if len(self.json_cache) > 4096:
            self.json_cache.clear()
        self.json_cache[digest] = data
        return data
