"""Snapshotters: layered file system trees keyed by name (chain IDs for image layers).

``Snapshotter`` (podkit.snapshots.api) is the face the layers above type against.
``new_snapshotter(db, root)`` picks overlayfs when the kernel and the root's file
system support it, the copying ``native`` snapshotter otherwise.
"""

from __future__ import annotations

import logging
import os

from podkit.errors import InvalidArgument
from podkit.snapshots.api import ACTIVE, COMMITTED, EXTRACT_PREFIX, VIEW, Info, Snapshotter, Usage
from podkit.snapshots.base import SnapshotterBase
from podkit.snapshots.mount import Mount, is_mountpoint, mount_all, unmount
from podkit.snapshots.native import NativeSnapshotter
from podkit.snapshots.overlay import OverlaySnapshotter, overlay_supported
from podkit.store import Database

log = logging.getLogger(__name__)

__all__ = [
    "ACTIVE",
    "COMMITTED",
    "EXTRACT_PREFIX",
    "VIEW",
    "Info",
    "Mount",
    "NativeSnapshotter",
    "OverlaySnapshotter",
    "Snapshotter",
    "SnapshotterBase",
    "Usage",
    "is_mountpoint",
    "mount_all",
    "new_snapshotter",
    "unmount",
]


def new_snapshotter(db: Database, root: str | os.PathLike[str], driver: str = "auto") -> Snapshotter:
    """Build the snapshotter for ``driver`` ('overlay', 'native' or 'auto')."""
    if driver == "auto":
        driver = "overlay" if overlay_supported(os.path.join(root, "snapshots")) else "native"
        if driver == "native":
            log.warning("overlayfs is not usable under %s: falling back to the copying snapshotter", root)
    if driver == "overlay":
        return OverlaySnapshotter(db, root)
    if driver == "native":
        return NativeSnapshotter(db, root)
    raise InvalidArgument(f"unknown snapshotter {driver!r}: use overlay, native or auto")
