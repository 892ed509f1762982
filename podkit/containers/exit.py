"""The exit path: watch a running container, record its exit, release what it held.

The daemon watches conmon through a pidfd: when conmon exits, the container has ended;
the exit file gives its code, the ``oom`` file in conmon's persist dir whether the kernel
OOM-killed it. The exit is recorded first, then the start is undone in reverse (runc
delete, network, unmount); then the restart policy or ``--rm`` decides what follows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from podkit.containers.context import ACTIVE, ContainerContext, removing_name
from podkit.containers.networking import network_down
from podkit.containers.rootfs import is_mounted, unmount
from podkit.containers.store import Record
from podkit.containers.trace import mark
from podkit.errors import InvalidArgument, NotFound, is_no_space

log = logging.getLogger(__name__)


def watch(ctx: ContainerContext, cid: str) -> None:
    """Watch the container's conmon (once: a watcher already running is kept)."""
    old = ctx.watchers.get(cid)
    if old is not None and not old.done():
        return
    ctx.watchers[cid] = asyncio.ensure_future(_watch_task(ctx, cid))


async def _watch_task(ctx: ContainerContext, cid: str) -> None:
    try:
        await ctx.rt.wait_exit(cid)
    except asyncio.CancelledError:
        return
    except Exception:
        log.exception("watching container %s failed", cid[:12])
    mark(cid, "exit-seen")
    # This run is over: a restart from here on needs (and gets) a watcher of its own.
    me = asyncio.current_task()
    if ctx.watchers.get(cid) is me:
        del ctx.watchers[cid]
    if me is not None:
        ctx.exiting.add(me)
    try:
        await _handle_exit_retrying(ctx, cid)
    finally:
        if me is not None:
            ctx.exiting.discard(me)


async def _handle_exit_retrying(ctx: ContainerContext, cid: str) -> None:
    """Record the exit; on a full disk, again until space is freed (or the daemon stops).

    A process that is gone must never stay "Up": the record is retried rather than
    dropped, with a backoff so a full disk is not hammered. (A removal, which frees
    space, takes the same lock in between.) Other failures are logged once.
    """
    delay = 0.5
    while True:
        try:
            await _handle_exit(ctx, cid)
            return
        except asyncio.CancelledError:
            raise
        except Exception as e:
            if not is_no_space(e):
                log.exception("handling the exit of container %s failed", cid[:12])
                return
            log.warning(
                "recording the exit of container %s: disk full, retrying in %.1fs: %s", cid[:12], delay, e
            )
        await asyncio.sleep(delay)  # a backoff between retries, not a synchronisation
        delay = min(delay * 2, 5.0)


async def _handle_exit(ctx: ContainerContext, cid: str) -> None:
    async with ctx.lock(cid):
        rec = ctx.store.get(cid)
        if rec is None or rec.state not in ACTIVE:
            return
        await finish(ctx, rec)
    await after_exit(ctx, cid)


async def finish(ctx: ContainerContext, rec: Record) -> None:
    """Record an ended container's exit and release what it held while running."""
    code, finished, oom = await ctx.rt.exit_status(rec.id)
    if code is None:
        code, finished = 255, time.time()
        log.warning("container %s ended without an exit code", rec.id[:12])
    # conmon's exit file may predate started_at (recorded once runc start returned,
    # after a quick command had already ended): an exit is never before its start.
    finished = max(finished or time.time(), rec.started_at or 0.0)
    # The exit is on record before anything is released: a crash in between leaves an
    # exited container whose leftovers recovery releases, never a lost exit code.
    fields: dict[str, Any] = {"state": "exited"}
    if rec.config.get("auto_remove"):
        # Its removal begins with the same write (recovery resumes a "removing"
        # container), so a waiter may go on at once while the teardown runs in the
        # background; the name is given up now, for a new container to take.
        fields = {"state": "removing", "name": removing_name(rec)}
    ctx.store.update(
        rec.id, exit_code=code, finished_at=finished or time.time(), oom_killed=oom, pid=0, **fields
    )
    ctx.last_exit[rec.id] = code
    # Waiters (stop, wait) may go on now; whatever comes next for this container
    # (start, remove) takes the lock and so comes after the release below.
    ctx.changed(rec.id)
    mark(rec.id, "release")
    await release(ctx, rec.id)
    mark(rec.id, "released")
    if oom:
        ctx.publish(rec.namespace, "container", "oom", rec.id, name=rec.name)
    ctx.publish(rec.namespace, "container", "die", rec.id, name=rec.name, exitCode=code, image=rec.image)
    ctx.changed(rec.id)


async def release(ctx: ContainerContext, cid: str) -> None:
    """The runtime's state, the network, the rootfs mount: what a run holds."""

    # Three independent releases, side by side: each mostly waits (on runc delete, on
    # CNI plugins, on the kernel syncing the overlay at unmount), and an exit
    # (`run --rm` above all) is only over once all three are done.
    async def runtime() -> None:
        if ctx.rt.has_state(cid):
            await runtime_cleanup(ctx, cid)

    async def rootfs() -> None:
        # the rootfs, and the /dev/shm of an --ipc shareable container (start.py)
        for root in (ctx.bundle(cid) / "rootfs", ctx.bundle(cid) / "shm"):
            if is_mounted(root):
                try:
                    await asyncio.to_thread(unmount, root)
                except Exception as e:  # noqa: BLE001 - releasing: log it, recovery retries it
                    log.warning("releasing container %s: unmounting %s failed: %r", cid[:12], root, e)

    await asyncio.gather(runtime(), network_down(ctx, cid), rootfs())


async def runtime_cleanup(ctx: ContainerContext, cid: str) -> None:
    """``runc delete --force`` and forget the runtime's state of the container."""
    try:
        await ctx.rt.delete(cid, force=True)
    except Exception as e:  # noqa: BLE001 - releasing: log it and still forget the state
        log.warning("releasing container %s: runtime delete failed: %r", cid[:12], e)
    try:
        ctx.rt.forget(cid)
    except Exception as e:  # noqa: BLE001 - releasing: log it, recovery retries it
        log.warning("releasing container %s: forgetting its runtime state failed: %r", cid[:12], e)


async def after_exit(ctx: ContainerContext, cid: str) -> None:
    """What follows an exit: a restart by the policy, or the removal ``--rm`` asked for."""
    rec = ctx.store.get(cid)
    if rec is None:
        return
    if ctx.restarts is not None and await ctx.restarts.on_exit(rec):
        return
    if rec.config.get("auto_remove"):
        # (remove.py imports this module: the import is here to keep the cycle out)
        from podkit.containers.remove import remove

        try:
            await remove(ctx, rec.namespace, cid, force=True, volumes=True)
        except NotFound:
            pass  # removed meanwhile by the user


async def wait(ctx: ContainerContext, ns: str, ref: str, condition: str = "not-running") -> int:
    """Wait for the container's exit (or removal); its exit code."""
    rec = ctx.resolve(ns, ref)
    cid = rec.id
    if condition not in ("not-running", "next-exit", "removed"):
        raise InvalidArgument(f"invalid wait condition {condition!r}: use not-running, next-exit or removed")
    if condition == "next-exit":
        last = rec.finished_at
        while True:
            r = ctx.store.get(cid)
            if r is None:
                return ctx.last_exit.get(cid, -1)
            if r.finished_at != last and r.state not in ACTIVE:
                return r.exit_code if r.exit_code is not None else -1
            await ctx.next_change(cid)
    while True:
        r = ctx.store.get(cid)
        if r is None:
            return ctx.last_exit.get(cid, rec.exit_code if rec.exit_code is not None else 0)
        if condition == "not-running" and r.state not in ACTIVE and r.state != "created":
            return r.exit_code if r.exit_code is not None else 0
        if condition == "not-running" and r.state == "created" and r.error:
            return r.exit_code if r.exit_code is not None else 125
        await ctx.next_change(cid)


async def wait_state(
    ctx: ContainerContext, cid: str, timeout: float, states: tuple[str, ...] = ACTIVE
) -> bool:
    """Wait until the container's state is no longer one of ``states``; False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        rec = ctx.store.get(cid)
        if rec is None or rec.state not in states:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        await ctx.next_change(cid, left)
