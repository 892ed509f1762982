"""What a snapshotter offers the layers above it, apart from how it lays out trees.

As containerd's ``snapshots.Snapshotter`` interface stands apart from its overlay and
native implementations, ``Snapshotter`` here is the face the image and container
layers type against; ``SnapshotterBase`` (podkit.snapshots.base) is the shared
implementation that the overlay and copying snapshotters build on.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from podkit.snapshots.mount import Mount

ACTIVE = "active"
VIEW = "view"
COMMITTED = "committed"

# Keys of active snapshots that receive a layer being applied. Left behind only by a
# crash: removed at start-up.
EXTRACT_PREFIX = "extract-"


@dataclass
class Info:
    key: str
    kind: str
    parent: str | None
    id: int
    created: float
    updated: float
    labels: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "parent": self.parent,
            "id": self.id,
            "created": self.created,
            "updated": self.updated,
            "labels": self.labels,
        }


@dataclass
class Usage:
    size: int  # bytes on disk of this snapshot's own tree (not its parents)
    inodes: int

    def to_dict(self) -> dict[str, int]:
        return {"size": self.size, "inodes": self.inodes}


class Snapshotter(Protocol):
    """Snapshots are trees named by key: *active* (writable, from ``prepare``), *view*
    (read-only, from ``view``) and *committed* (immutable, from ``commit``; image layers
    under their chain ID). Errors are podkit.errors: NotFound, AlreadyExists,
    InvalidArgument, Conflict (a snapshot others are built on)."""

    #: "overlay" or "native"
    driver: str
    #: how a layer's deletions are written: "overlay" (whiteout devices and opaque
    #: xattrs in the upper dir) or "remove" (deleted from a full copy)
    whiteouts: str

    def stat(self, key: str) -> Info: ...

    def exists(self, key: str) -> bool: ...

    def list(self) -> builtins.list[Info]: ...

    def children(self, key: str) -> builtins.list[str]:
        """Keys of the snapshots whose parent is ``key``."""
        ...

    def chain(self, key: str) -> builtins.list[Info]:
        """The snapshot and its ancestors, nearest first."""
        ...

    def update_labels(self, key: str, labels: dict[str, str]) -> Info:
        """Merge labels in; a label set to "" is removed."""
        ...

    def prepare(
        self, key: str, parent: str | None = None, labels: dict[str, str] | None = None
    ) -> builtins.list[Mount]:
        """A writable snapshot on top of a committed parent; returns its mounts."""
        ...

    def view(
        self, key: str, parent: str | None = None, labels: dict[str, str] | None = None
    ) -> builtins.list[Mount]:
        """A read-only snapshot of a committed parent; returns its mounts."""
        ...

    def mounts(self, key: str) -> builtins.list[Mount]:
        """The mounts of an active snapshot or view."""
        ...

    def commit(self, name: str, key: str, labels: dict[str, str] | None = None) -> Info:
        """Freeze active snapshot ``key`` under ``name``; labels merge in, "" drops one."""
        ...

    def remove(self, key: str) -> None:
        """Remove a snapshot; Conflict while others are built on it."""
        ...

    def usage(self, key: str) -> Usage:
        """Disk use of the snapshot's own tree (not its parents')."""
        ...

    def tree(self, key: str) -> Path:
        """The directory holding snapshot ``key``'s own tree (an overlay's upper or layer
        dir; the copying snapshotter's full tree)."""
        ...

    def apply_dir(self, key: str) -> Path:
        """Where a layer being applied to active snapshot ``key`` is written."""
        ...

    def lower_dirs(self, key: str) -> builtins.list[Path]:
        """The committed trees below ``key`` that a layer applier must read, nearest first."""
        ...

    def cleanup(self) -> int:
        """Drop what a crash left behind; returns how many snapshots/trees went."""
        ...

    def info(self, ns: str | None = None) -> dict[str, Any]:
        """For `podkit info`: driver, root, counts by kind."""
        ...
