"""The image service: image records (name -> target descriptor), resolution of their
manifests and configs, unpacking into snapshots, removal and garbage collection.

An image record maps a normalised name (``docker.io/library/busybox:latest``) in a
namespace to a target descriptor (an index or a manifest) in the content store,
as containerd does. Everything else (manifest, config, layers, chain ID) is read
from immutable blobs and cached by digest.

Images whose name moved to another target stay as *dangling* records
(``<none>``), as docker shows them, until pruned.

``ImageService`` is the layer's public face and only delegates: records
(records.py), resolution (resolve.py), unpacking (layers.py), usage and removal
(removal.py) and garbage collection (gc.py) are functions of one shared
``ImageContext`` (context.py).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import sqlite3
from typing import Any

from podkit.images import gc as _gc
from podkit.images import layers as _layers
from podkit.images import records as _records
from podkit.images import removal as _removal
from podkit.images.context import GRACE_SECONDS, ImageContent, ImageContext, Publish, UsageHook, no_publish
from podkit.images.image import (
    DANGLING_PREFIX,
    LABEL_IMAGE,
    LABEL_NAMESPACE,
    Image,
    Resolved,
    chain_id_of,
    chain_ids,
)
from podkit.images.oci import Descriptor, Platform
from podkit.images.resolve import resolve as _resolve
from podkit.images.stream import GrowingBlob
from podkit.prune import PruneFilters
from podkit.snapshots import Snapshotter
from podkit.store import Database, Leases

__all__ = [
    "DANGLING_PREFIX",
    "GRACE_SECONDS",
    "LABEL_IMAGE",
    "LABEL_NAMESPACE",
    "Image",
    "ImageService",
    "Publish",
    "UsageHook",
    "chain_id_of",
    "chain_ids",
]

log = logging.getLogger(__name__)

_Resolved = Resolved  # the name before the split


class ImageService:
    """Image records of every namespace, their content's resolution, unpacking, removal, GC."""

    def __init__(
        self, db: Database, content: ImageContent, snapshots: Snapshotter, publish: Publish | None = None
    ) -> None:
        db.schema("images", _records.DDL)
        self._ctx = ImageContext(
            db=db, content=content, snapshots=snapshots, publish=publish or no_publish, leases=Leases(db)
        )
        # The daemon's start-up GC, awaited at shutdown (set by daemon/services.py).
        self.gc_task: asyncio.Task[dict[str, int]] | None = None

    # The layers and state the service was built with.

    @property
    def db(self) -> Database:
        return self._ctx.db

    @property
    def content(self) -> ImageContent:
        return self._ctx.content

    @property
    def snapshots(self) -> Snapshotter:
        return self._ctx.snapshots

    @property
    def publish(self) -> Publish:
        return self._ctx.publish

    @property
    def leases(self) -> Leases:
        return self._ctx.leases

    @property
    def usage_hooks(self) -> builtins.list[UsageHook]:
        """(namespace, image) -> names of its users; the containers layer appends one."""
        return self._ctx.usage_hooks

    @property
    def GRACE_SECONDS(self) -> float:  # noqa: N802 - the class constant it was
        """Blobs and snapshots younger than this, and named by no image, survive GC."""
        return self._ctx.grace

    @GRACE_SECONDS.setter
    def GRACE_SECONDS(self, seconds: float) -> None:  # noqa: N802
        self._ctx.grace = seconds

    # -- blobs (context.py, resolve.py) -----------------------------------------------

    def read_json(self, digest: str) -> Any:
        """A JSON blob, parsed and cached (Any: whatever the blob holds)."""
        return self._ctx.read_json(digest)

    def resolve(self, target: Descriptor, platform: Platform | None = None) -> Resolved:
        """Manifest, config and layers behind a target (an index is narrowed to a platform)."""
        return _resolve(self._ctx, target, platform)

    # -- records (records.py) ---------------------------------------------------------

    def record(
        self,
        ns: str,
        name: str,
        target: Descriptor,
        labels: dict[str, str] | None = None,
        action: str = "tag",
    ) -> Image:
        """Point ``name`` at ``target`` (creating or moving the name)."""
        return _records.record(self._ctx, ns, name, target, labels, action)

    def record_dangling(self, ns: str, target: Descriptor, action: str = "import") -> Image:
        """An image without a name (``<none>:<none>``), unless a name already points at it."""
        return _records.record_dangling(self._ctx, ns, target, action)

    def list(self, ns: str, dangling: bool | None = None) -> builtins.list[Image]:
        return _records.list_images(self._ctx, ns, dangling)

    def get(self, ns: str, ref: str, platform: Platform | None = None) -> Image:
        """By name (normalised), by ``name@sha256:...``, by full or short id, or by digest."""
        return _records.get(self._ctx, ns, ref, platform)

    def has_name(self, ns: str, ref: str) -> bool:
        """Whether ``ref`` is a name (not an id) that a record of ``ns`` carries."""
        return _records.find_by_name_safe(self._ctx, ns, ref) is not None

    def _find_by_name_safe(self, ns: str, ref: str) -> sqlite3.Row | None:
        return _records.find_by_name_safe(self._ctx, ns, ref)

    def names_of(self, ns: str, image_id: str) -> builtins.list[str]:
        return _records.names_of(self._ctx, ns, image_id)

    # -- unpacking (layers.py) --------------------------------------------------------

    async def unpack(self, ns: str, image: Image, platform: Platform | None = None) -> str:
        """Apply all layers of ``image`` into snapshots; returns the top chain ID."""
        if platform is not None:
            image = self.get(ns, image.name, platform)
        return await _layers.unpack(self._ctx, image)

    def unpacked_size(self, image: Image) -> int:
        """Bytes the image's layers take on disk once unpacked (0 when not unpacked)."""
        return _layers.unpacked_size(self._ctx, image)

    def is_unpacked(self, image: Image) -> bool:
        return _layers.is_unpacked(self._ctx, image)

    def adopt(self, key: str, diff_id: str, layer_digest: str) -> str | None:
        """Commit active snapshot ``key`` as layer ``diff_id`` on its parent (under the
        chain ID); None when that snapshot exists already (layers.adopt)."""
        return _layers.adopt(self._ctx, key, diff_id, layer_digest)

    async def apply(
        self, layer: Descriptor, parent_chain_id: str | None, diff_id: str, stream: GrowingBlob | None = None
    ) -> str:
        """Apply one layer blob on top of ``parent_chain_id``; returns the new chain ID.

        ``stream``: the blob is still downloading and is applied as it arrives
        (layers.apply)."""
        return await _layers.apply(self._ctx, layer, parent_chain_id, diff_id, stream)

    # -- usage, removal, GC (removal.py, gc.py) ---------------------------------------

    def users(self, ns: str, image: Image) -> builtins.list[str]:
        """Who uses an image: container names from hooks, else snapshot keys built on it."""
        return _removal.users(self._ctx, ns, image)

    def chain_in_use(self, chain_id: str) -> builtins.list[str]:
        """What keeps a layer snapshot: image names (``ns/name``) and snapshots built on it."""
        return _removal.chain_in_use(self._ctx, chain_id)

    def remove(self, ns: str, ref: str, force: bool = False) -> builtins.list[dict[str, str]]:
        """docker rmi: untag a name, delete the image when its last name goes."""
        return _removal.remove(self._ctx, ns, ref, force)

    def release(self, target: Descriptor) -> None:
        """Let the next GC free what ``target`` references at once, however recent."""
        _removal.release(self._ctx, target)

    def release_blobs(self, digests: set[str]) -> None:
        """Let the next GC free these blobs at once (what a failed import wrote)."""
        self._ctx.released_blobs |= digests

    def prune(self, ns: str, all: bool = False, filters: PruneFilters | None = None) -> dict[str, Any]:
        """Remove dangling images (``all``: every image no container uses; ``filters``:
        dangling, until, labels), then collect garbage."""
        return _removal.prune(self._ctx, ns, all, filters)

    def gc(self) -> dict[str, int]:
        """Delete blobs and committed snapshots that nothing references (see gc.py)."""
        return _gc.gc(self._ctx)

    async def gc_async(self) -> dict[str, int]:
        """gc() in a worker thread; failures are logged (used for the start-up sweep)."""
        return await _gc.gc_async(self._ctx)

    # -- info -------------------------------------------------------------------------

    def info(self, ns: str) -> dict[str, Any]:
        n = self._ctx.db.one("SELECT COUNT(*) AS n FROM images WHERE namespace=?", (ns,))
        return {"count": n["n"] if n else 0, "snapshotter": self._ctx.snapshots.driver}

    def cleanup(self) -> None:
        """Start-up: drop half-applied layers left by a crash."""
        removed = self._ctx.snapshots.cleanup()
        if removed:
            log.info("removed %d snapshot(s) left by an earlier crash", removed)
