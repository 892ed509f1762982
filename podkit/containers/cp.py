"""``podkit cp``: a container's files read as a tar stream, or a tar stream written in.

A running container's files are reached through its live root (``/proc/PID/root``, once
process_root.py has checked PID is still its process); a
stopped one's snapshot is mounted for the copy under ``<state>/cp`` and unmounted after
(recovery unmounts what a crash leaves there). The tar handling is archive.py's.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncGenerator, Callable
from typing import Any

from podkit.containers import archive
from podkit.containers.context import ContainerContext, snap_key
from podkit.containers.rootfs import mount_all, unmount
from podkit.containers.store import Record

log = logging.getLogger(__name__)


async def root_for(ctx: ContainerContext, rec: Record) -> tuple[archive.Root, Callable[[], None] | None]:
    """Where the container's file system can be read: its live root if running (its
    process, named by pid and start time: a reused pid is refused); with how to
    release it (None: nothing to release)."""
    if rec.state in ("running", "paused") and rec.pid:
        return ctx.rt.process(rec.id, rec.pid), None
    tmp = ctx.state_dir / "cp" / secrets.token_hex(6)
    tmp.mkdir(parents=True, exist_ok=True)
    mounts = ctx.snapshots.mounts(snap_key(rec.id))
    try:
        await asyncio.to_thread(mount_all, mounts, tmp)
    except BaseException:
        tmp.rmdir()
        raise

    def done() -> None:
        unmount(tmp)
        try:
            tmp.rmdir()
        except OSError as e:  # left for recovery, which empties <state>/cp at start
            log.warning("cp from %s: removing mount point %s failed: %r", rec.id[:12], tmp, e)

    return tmp, done


async def archive_get(
    ctx: ContainerContext, ns: str, ref: str, path: str, follow_link: bool = False
) -> tuple[dict[str, Any], AsyncGenerator[bytes, None]]:
    rec = ctx.resolve(ns, ref)
    archive.check_path(path)
    root, done = await root_for(ctx, rec)
    try:
        stat, chunks = await archive.tar_path(root, path, follow_link)
    except BaseException:
        if done:
            await asyncio.to_thread(done)
        raise

    async def gen() -> AsyncGenerator[bytes, None]:
        try:
            async for c in chunks:
                yield c
        finally:
            await chunks.aclose()  # its descriptors closed before the unmount
            if done:
                await asyncio.to_thread(done)

    return stat, gen()


async def archive_stat(
    ctx: ContainerContext, ns: str, ref: str, path: str, follow_link: bool = False
) -> dict[str, Any]:
    """What ``archive_get`` reports about ``path`` (name, size, mode...), without the tar."""
    rec = ctx.resolve(ns, ref)
    archive.check_path(path)
    root, done = await root_for(ctx, rec)
    try:
        return await archive.stat_path(root, path, follow_link)
    finally:
        if done:
            await asyncio.to_thread(done)


async def archive_put(
    ctx: ContainerContext,
    ns: str,
    ref: str,
    path: str,
    stream: archive.BlockingReader | archive.AsyncReader,
    copy_uid_gid: bool = True,
) -> None:
    """``copy_uid_gid``: the tar's owners (``cp -a``); else everything is the container's
    root's (docker's ``cp`` without -a)."""
    rec = ctx.resolve(ns, ref)
    archive.check_path(path)
    root, done = await root_for(ctx, rec)
    try:
        await archive.untar_into(root, path, stream, None if copy_uid_gid else (0, 0))
    finally:
        if done:
            await asyncio.to_thread(done)
