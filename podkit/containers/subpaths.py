"""A volume mounted at a subpath (docker's ``VolumeOptions.Subpath``, API 1.45), and
an image mounted read-only (docker's mount type ``image``, API 1.48).

The subpath is inside a volume that containers write to, so naming it to runc as a
host path would let a container swap a directory of it for a symlink to ``/`` between
podkit's check and runc's mount (as CVE-2018-15664 did for cp). Instead it is opened
confined to the volume (``rootfs_fd.open_in_root``) and that descriptor is bind-mounted
onto a staging directory, ``<state>/subpaths/<container>/<n>``, which runc binds from:
the staging mount is what the lookup found, whatever the name points at later. runc's
mount in the container is a mount of its own, so the staging ones are released as soon
as runc has created the container (``release``); recovery releases what a crash left.
An image mount is a read-only snapshot view of the image (``image_key``), mounted on a
staging path the same way; the view stays until the container is removed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

from podkit.containers.rootfs_fd import open_in_root, open_root
from podkit.errors import InvalidArgument, PodkitError
from podkit.snapshots.mount import MS_BIND, MS_REC, Mount, is_mountpoint, mount_all, sys_mount, unmount

log = logging.getLogger(__name__)

OPTION = "subpath="


def of(options: list[str]) -> str | None:
    """The subpath a mount's options name, if any."""
    for o in options:
        if o.startswith(OPTION):
            return o[len(OPTION) :]
    return None


def check(sub: str) -> str:
    """A subpath as docker takes it: relative, below the volume (``filepath.IsLocal``)."""
    norm = os.path.normpath(sub) if sub else ""
    if not sub or sub.startswith("/") or norm == ".." or norm.startswith("../") or "\0" in sub:
        raise InvalidArgument(f"invalid volume subpath {sub!r}: want a relative path inside the volume")
    return norm


def _dir(state_dir: Path, cid: str) -> Path:
    return state_dir / "subpaths" / cid


def stage(state_dir: Path, cid: str, n: int, volume_dir: Path, sub: str, volume: str) -> Path:
    """``sub`` of the volume at ``volume_dir``, bind-mounted at a staging path (returned)."""
    root = open_root(volume_dir)
    try:
        try:
            fd = open_in_root(root, check(sub), os.O_PATH)
        except OSError as e:
            raise InvalidArgument(f"volume {volume}: subpath {sub!r}: {os.strerror(e.errno or 0)}") from None
        try:
            target = _dir(state_dir, cid) / str(n)
            target.parent.mkdir(parents=True, exist_ok=True)
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                target.mkdir(exist_ok=True)
            else:
                target.touch(exist_ok=True)
            sys_mount(f"/proc/self/fd/{fd}", str(target), None, MS_BIND | MS_REC, None)
            return target
        finally:
            os.close(fd)
    finally:
        os.close(root)


def image_key(cid: str, n: int) -> str:
    """The snapshot key of a container's n-th mount when it is an image (a view)."""
    return f"imagemount-{cid}-{n}"


def stage_mounts(state_dir: Path, cid: str, n: int, mounts: list[Mount]) -> Path:
    """An image mount's snapshot view mounted at a staging path (returned), for runc to
    bind from; released with the subpaths (the view itself lives until removal)."""
    target = _dir(state_dir, cid) / str(n)
    target.mkdir(parents=True, exist_ok=True)
    if not is_mountpoint(target):
        mount_all(mounts, target)
    return target


def release(state_dir: Path, cid: str) -> None:
    """Unmount and remove a container's staging mounts (never a recursive delete: a
    staging path still mounted is the volume's own data)."""
    d = _dir(state_dir, cid)
    if not d.is_dir():
        return
    for p in d.iterdir():
        try:
            unmount(p)
            if p.is_dir() and not p.is_symlink():
                p.rmdir()
            else:
                p.unlink()
        except (OSError, PodkitError) as e:
            log.warning("releasing the subpath staging mount %s failed: %r", p, e)
    with contextlib.suppress(OSError):  # not empty: a release that failed, logged above
        d.rmdir()


def release_all(state_dir: Path) -> None:
    """What a crash between staging and release left (recovery, at start-up)."""
    top = state_dir / "subpaths"
    if top.is_dir():
        for d in top.iterdir():
            release(state_dir, d.name)
