"""Remove a container (``rm``, ``rm -f``, ``--rm``) and prune the stopped ones.

The record goes to ``removing`` before anything is released, so a crash in the middle
is completed by recovery; the snapshot and the logs go side by side, then the bundle,
then the record. ``volumes=True`` also removes the anonymous volumes it mounted.

``background=True`` (the CRI's RemoveContainer) returns once the removal is durable:
the container is ended (killed and its exit recorded if need be), then one write
makes it ``removing`` and gives its name up (``removing_name``), and the rest — the
release, snapshot, directories, record, volumes, events — runs as a teardown of the
daemon's, exactly as ``run --rm``'s does: awaited by a graceful shutdown, resumed by
recovery after a crash.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from podkit.containers import subpaths
from podkit.containers.context import ACTIVE, ContainerContext, original_name, removing_name, snap_key
from podkit.containers.exit import finish, release, wait_state
from podkit.containers.stop import resume_quietly, send_signal
from podkit.containers.store import Record
from podkit.containers.trace import mark
from podkit.errors import Conflict, NotFound, PodkitError
from podkit.prune import PruneFilters

log = logging.getLogger(__name__)


async def remove(
    ctx: ContainerContext,
    ns: str,
    ref: str,
    force: bool = False,
    volumes: bool = False,
    background: bool = False,
) -> None:
    rec = ctx.resolve(ns, ref)
    await ctx.hooks.before_remove(ns, rec)  # may refuse (a pod's infra container)
    if rec.state in ACTIVE:
        if not force:
            raise Conflict(f"container {rec.name} is {rec.state}: stop it first or use force (rm -f)")
        await _kill_for_removal(ctx, rec)
    if background:
        await _schedule(ctx, rec, volumes)
        return
    async with ctx.lock(rec.id):
        cur = ctx.store.get(rec.id)
        if cur is None:
            return
        rec = cur
        if rec.state in ACTIVE:  # the exit was not seen (no watcher): finish here
            await finish(ctx, rec)
        mark(rec.id, "remove")
        if rec.state != "removing":  # run --rm's exit wrote it with the exit code
            ctx.store.update(rec.id, state="removing")
        if ctx.restarts is not None:
            ctx.restarts.cancel(rec.id)
        await release(ctx, rec.id)
        await _remove_files(ctx, rec)
        ctx.store.delete(rec.id)
        mark(rec.id, "removed")
        if rec.exit_code is not None:
            ctx.last_exit[rec.id] = rec.exit_code
    if volumes:
        await _remove_anonymous_volumes(ctx, ns, rec)
    ctx.forget_lock(rec.id)
    rec.name = original_name(rec.name)
    ctx.publish(ns, "container", "destroy", rec.id, name=rec.name)
    ctx.changed(rec.id)
    await ctx.hooks.after_remove(ns, rec)


async def _schedule(ctx: ContainerContext, rec: Record, volumes: bool) -> None:
    """The removal made durable now, done in the background (see the module's note)."""
    cur = ctx.store.get(rec.id)
    if (
        cur is not None
        and cur.state not in ACTIVE
        and cur.state != "restarting"
        and (cur.config.get("restart") or {}).get("name", "no") in ("", "no")
        and ctx.lock(rec.id).locked()
    ):
        # Ended, and its lock held by the exit's release (runc delete, unmount: the
        # StopContainer just before, for the kubelet), which writes nothing more to an
        # ended container without a restart policy: the durable write need not wait
        # for it; the removal itself takes the lock after it.
        if cur.state != "removing":
            mark(rec.id, "remove")
            ctx.store.update(rec.id, state="removing", name=removing_name(cur))
        ctx.changed(rec.id)
        _spawn_removal(ctx, cur.namespace, rec.id, volumes)
        return
    async with ctx.lock(rec.id):
        cur = ctx.store.get(rec.id)
        if cur is None:
            return
        if cur.state in ACTIVE:  # the exit was not seen (no watcher): finish here
            await finish(ctx, cur)
            cur = ctx.store.get(rec.id)
            if cur is None:
                return
        if cur.state != "removing":
            mark(rec.id, "remove")
            ctx.store.update(rec.id, state="removing", name=removing_name(cur))
        if ctx.restarts is not None:
            ctx.restarts.cancel(rec.id)
    ctx.changed(rec.id)
    _spawn_removal(ctx, cur.namespace, rec.id, volumes)


def _spawn_removal(ctx: ContainerContext, ns: str, cid: str, volumes: bool) -> None:
    async def removal() -> None:
        try:
            await remove(ctx, ns, cid, force=True, volumes=volumes)
        except NotFound:
            pass  # removed meanwhile by another caller

    task = ctx.spawn(removal())
    ctx.exiting.add(task)  # a graceful shutdown lets it finish
    task.add_done_callback(ctx.exiting.discard)


async def _kill_for_removal(ctx: ContainerContext, rec: Record) -> None:
    """``rm -f`` of an active container: no restart, SIGKILL, and wait for the exit."""
    if ctx.restarts is not None:
        ctx.restarts.cancel(rec.id)
    ctx.store.update(rec.id, manually_stopped=True)
    if rec.state == "restarting":  # nothing runs between two attempts
        async with ctx.lock(rec.id):
            cur = ctx.store.get(rec.id)
            if cur is not None and cur.state == "restarting":
                ctx.store.update(rec.id, state="exited")
        return
    if rec.state == "paused":
        await resume_quietly(ctx, rec)
    try:
        await send_signal(ctx, rec, signal.SIGKILL, all=True)
    except PodkitError as e:  # ended meanwhile: the wait below returns at once
        log.info("removing %s: SIGKILL: %s", rec.id[:12], e.message)
    await wait_state(ctx, rec.id, 30)


async def _remove_files(ctx: ContainerContext, rec: Record) -> None:
    async def snapshot() -> None:
        for n, m in enumerate(rec.config.get("mounts") or []):
            if m.get("type") == "image":  # its read-only view (subpaths.py)
                try:
                    await asyncio.to_thread(ctx.snapshots.remove, subpaths.image_key(rec.id, n))
                except NotFound:
                    pass  # never started
        try:
            await asyncio.to_thread(ctx.snapshots.remove, snap_key(rec.id))
        except NotFound:
            pass  # never prepared (a crash inside create), or removed by an earlier attempt

    # The snapshot and the logs side by side; the bundle (holding the rootfs mount
    # point) only once the snapshot is gone.
    await asyncio.gather(snapshot(), asyncio.to_thread(_rmtree, ctx.log_path(rec.id).parent))
    await asyncio.to_thread(_rmtree, ctx.bundle(rec.id))


def _rmtree(path: Path) -> None:
    """``rm -rf``: what cannot be removed is logged, and the rest still goes."""

    def failed(
        _func: Callable[..., object],
        p: str,
        exc_info: tuple[type[BaseException], BaseException, TracebackType],
    ) -> None:
        if not isinstance(exc_info[1], FileNotFoundError):
            log.warning("removing %s: %s could not be removed: %r", path, p, exc_info[1])

    shutil.rmtree(path, onerror=failed)


async def _remove_anonymous_volumes(ctx: ContainerContext, ns: str, rec: Record) -> None:
    for m in rec.config.get("mounts") or []:
        if m.get("type") != "volume" or not m.get("source"):
            continue
        try:
            v = ctx.volumes.inspect(ns, m["source"])
            if v["anonymous"]:
                await asyncio.to_thread(ctx.volumes.remove, ns, m["source"])
        except PodkitError as e:  # gone already, or in use by another container
            log.info("removing %s: keeping volume %s: %s", rec.id[:12], m["source"], e.message)


async def prune(ctx: ContainerContext, ns: str, filters: PruneFilters | None = None) -> list[str]:
    """Remove the stopped containers (those ``filters`` select: until, labels); the ids
    of those removed."""
    out = []
    f = filters or PruneFilters()
    for r in ctx.store.list(ns):
        if r.state in ("exited", "created", "dead") and f.selects(r.labels, r.created):
            try:
                await remove(ctx, ns, r.id)
                out.append(r.id)
            except PodkitError as e:  # started, or removed, meanwhile
                log.info("prune: keeping %s: %s", r.id[:12], e.message)
    return out
