"""Paths and users inside a container's root file system (never escaping it).

Thin names over the runtime layer's ``users`` module, which resolves symlinks as if
the rootfs were ``/`` so an image cannot point podkit at the host's files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from podkit.runtime.users import resolve, resolve_in_root

if TYPE_CHECKING:
    from podkit.snapshots.mount import Mount


def secure_join(root: Path, path: str) -> Path:
    """``root/path`` with every symlink resolved inside ``root``."""
    return resolve_in_root(root, path)


def resolve_user(
    rootfs: Path, spec: str, group_add: list[str] | None = None
) -> tuple[int, int, list[int], str]:
    """``user[:group]`` (names or ids) and ``--group-add`` → (uid, gid, supplementary gids, home)."""
    u = resolve(rootfs, spec or None, group_add)
    return u.uid, u.gid, list(u.additional_gids), u.home or "/"


# The container's snapshot mounted on its bundle's rootfs (or on a cp mount point):
# the snapshots layer's mount helpers, imported when first used.
def is_mounted(target: Path) -> bool:
    from podkit.snapshots.mount import is_mountpoint

    return is_mountpoint(target)


def mount_all(mounts: list[Mount], target: Path) -> None:
    from podkit.snapshots.mount import mount_all as mount

    mount(mounts, target)


def unmount(target: Path) -> None:
    """Unmount what is mounted on ``target``; nothing when nothing is."""
    from podkit.snapshots.mount import is_mountpoint
    from podkit.snapshots.mount import unmount as umount

    if is_mountpoint(target):
        umount(target)
