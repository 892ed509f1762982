"""A stage's tree as COPY/ADD and WORKDIR read it: paths in its unpacked snapshots,
``--chown`` names looked up in its /etc/passwd and /etc/group, and ``--from`` views
(read-only mounts of a stage's or an image's tree under ``<state>/build/``)."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from podkit.build.dockerfile import Instruction
from podkit.build.state import BUILD_NS, VIEW_PREFIX, BuildContext, Stage
from podkit.errors import PodkitError

if TYPE_CHECKING:
    from podkit.images.service import Image

log = logging.getLogger(__name__)


async def existing(bc: BuildContext, stage: Stage) -> Callable[[str], Path | None]:
    """How to find a path in the stage's current tree (its unpacked snapshots)."""
    if stage.image is None:
        return lambda rel: None
    await bc.images.unpack(BUILD_NS, stage.image)
    snaps = bc.images.snapshots
    lowers = [snaps.tree(c) for c in reversed(stage.image.chain)]
    from podkit.snapshots.diff import _in_lowers

    def find(rel: str) -> Path | None:
        rel = rel.strip("/")
        if not rel:
            return lowers[0] if lowers else None
        if not _in_lowers(rel, lowers):
            return None
        for low in lowers:
            if os.path.lexists(low / rel):
                return low / rel
        return None

    return find


async def owner(bc: BuildContext, stage: Stage, ins: Instruction, spec: str) -> tuple[int, int] | None:
    if not spec:
        return None
    user, _, group = spec.partition(":")
    find = await existing(bc, stage)

    def lookup(name: str, db: str, what: str) -> int:
        if name.isdigit():
            return int(name)
        p = find(db)
        if p is not None:
            for line in _read_no_follow(ins, p, db).splitlines():
                f = line.split(":")
                if len(f) > 2 and f[0] == name:
                    return int(f[2])
        raise ins.fail(f"--chown: no {what} {name!r} in the image's /{db}")

    uid = lookup(user, "etc/passwd", "user")
    gid = lookup(group, "etc/group", "group") if group else uid
    return uid, gid


async def stage_root(bc: BuildContext, ins: Instruction, ref: str) -> tuple[Path, Callable[[], None]]:
    """A mounted read-only view of a stage's (or an image's) tree."""
    st = bc.stages.get(ref.lower())
    img: Image | None = st.image if st else None
    if st is None:
        from podkit.containers.create import find_image

        try:
            img = await find_image(bc.containers.ctx, bc.ns, ref)
        except PodkitError as e:
            raise ins.fail(f"--from={ref}: {e.message}") from None
    if img is None:
        raise ins.fail(f"--from={ref}: the stage is empty")
    await bc.images.unpack(BUILD_NS if st else bc.ns, img)
    from podkit.containers.rootfs import mount_all, unmount

    snaps = bc.images.snapshots
    key = f"{VIEW_PREFIX}{secrets.token_hex(6)}"
    assert img.chain_id is not None
    mounts = snaps.view(key, img.chain_id)
    target = bc.containers.ctx.state_dir / "build" / key
    target.mkdir(parents=True)
    try:
        await asyncio.to_thread(mount_all, mounts, target)
    except BaseException:
        target.rmdir()
        snaps.remove(key)
        raise

    def release() -> None:
        unmount(target)
        try:
            target.rmdir()
        except OSError as e:
            log.warning("build: removing the view mount point %s failed: %r", target, e)
        try:
            snaps.remove(key)
        except PodkitError as e:
            log.warning("build: removing view snapshot %s failed: %s", key, e.message)

    return target, release


def _read_no_follow(ins: Instruction, p: Path, db: str) -> str:
    """The image's /etc/passwd or /etc/group, refused when it is a symlink: the layers'
    trees are read from the daemon's host, where an absolute link would lead out."""
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ins.fail(f"--chown: the image's /{db} is a symbolic link; give numeric ids") from None
        raise
    with os.fdopen(fd, "rb") as f:
        return f.read().decode(errors="replace")
