"""Stop, kill, restart, pause and unpause a running container.

``stop`` sends the stop signal (the options', else the image's, else SIGTERM), waits
for the exit path to record the exit, and SIGKILLs every process of the container after
the timeout. Signals go to the container's init through a pidfd where it has a pid
namespace of its own (no runtime process to spawn), through the runtime otherwise.
"""

from __future__ import annotations

import logging
import os
import signal

from podkit.containers import start as starting
from podkit.containers.context import ContainerContext
from podkit.containers.exit import wait_state
from podkit.containers.options import CreateOptions, parse_signal
from podkit.containers.process_root import open_pidfd
from podkit.containers.store import Record
from podkit.errors import Conflict, Internal, NotFound, PodkitError

log = logging.getLogger(__name__)


async def stop(
    ctx: ContainerContext, ns: str, ref: str, timeout: int | None = None, sig: str | int | None = None
) -> None:
    """``sig`` (``stop -s``) overrides the container's stop signal for this stop only."""
    rec = ctx.resolve(ns, ref)
    given = parse_signal(sig) if sig not in (None, "") else None  # refused before anything changes
    if ctx.restarts is not None:
        ctx.restarts.cancel(rec.id)
    ctx.store.update(rec.id, manually_stopped=True)
    if rec.state == "restarting":
        ctx.store.update(rec.id, state="exited")
        ctx.changed(rec.id)
        return
    if rec.state not in ("running", "paused"):
        raise Conflict(f"container {rec.name} is not running")
    opts = CreateOptions.from_stored(rec.config)
    n = given or opts.stop_signal or image_stop_signal(ctx, rec) or signal.SIGTERM
    t = timeout if timeout is not None else (opts.stop_timeout if opts.stop_timeout is not None else 10)
    if rec.state == "paused":
        await resume_quietly(ctx, rec)
    try:
        await send_signal(ctx, rec, int(n))
    except PodkitError as e:  # it may have ended meanwhile: the wait below tells
        log.info("stopping %s: signal %d: %s", rec.id[:12], n, e.message)
    if t < 0 or not await wait_state(ctx, rec.id, t):
        try:
            await send_signal(ctx, rec, signal.SIGKILL, all=True)
        except PodkitError as e:
            log.info("stopping %s: SIGKILL: %s", rec.id[:12], e.message)
        if not await wait_state(ctx, rec.id, 30):
            raise Internal(f"container {rec.name} did not stop after SIGKILL")
    ctx.publish(ns, "container", "stop", rec.id, name=rec.name)


async def resume_quietly(ctx: ContainerContext, rec: Record) -> None:
    """Thaw a paused container before a signal (a frozen process only dies once thawed)."""
    try:
        await ctx.rt.resume(rec.id)
    except PodkitError as e:  # not paused (any more), or gone: the signal decides
        log.info("resuming %s: %s", rec.id[:12], e.message)


async def send_signal(ctx: ContainerContext, rec: Record, sig: int, all: bool = False) -> None:
    """Signal the container's init directly through a pidfd (no runtime process to
    spawn); the runtime's kill where the pid namespace is shared (all=True must then
    reach every process of the cgroup) or the pid is not known."""
    own_pidns = "pid" not in (rec.config.get("namespaces") or {})
    if rec.pid and own_pidns and ctx.rt.conmon_alive(rec.id):
        try:
            fd = open_pidfd(ctx.rt.process(rec.id, rec.pid))
        except NotFound as e:  # gone (its pid maybe reused): the watcher records the exit
            log.info("signal %d to %s not sent: %s", sig, rec.id[:12], e.message)
            return
        try:
            signal.pidfd_send_signal(fd, sig)
            return
        except ProcessLookupError:
            return
        finally:
            os.close(fd)
    await ctx.rt.kill(rec.id, sig, all=all)


def image_stop_signal(ctx: ContainerContext, rec: Record) -> int | None:
    """The image's StopSignal, if it has one (and is still there)."""
    try:
        s = (ctx.images.get(rec.namespace, rec.image_id).config.get("config") or {}).get("StopSignal")
        return parse_signal(s) if s else None
    except PodkitError as e:  # the image is gone, or its StopSignal is not one
        log.info("container %s: no stop signal from image %s: %s", rec.id[:12], rec.image, e.message)
        return None


async def kill(ctx: ContainerContext, ns: str, ref: str, sig: str | int = "KILL") -> None:
    rec = ctx.resolve(ns, ref)
    n = parse_signal(sig)
    if rec.state not in ("running", "paused"):
        # An attached client sees output from the moment `runc start` returns, a moment
        # before the record says running; a signal sent then must not be refused.
        st = None
        if rec.state == "created":
            try:
                st = await ctx.rt.state(rec.id)
            except PodkitError as e:
                log.debug("kill %s: no runtime state: %s", rec.id[:12], e.message)
        if not st or st.get("status") not in ("running", "paused"):
            raise Conflict(f"container {rec.name} is not running")
        await ctx.rt.kill(rec.id, n, all=n == signal.SIGKILL)
        ctx.publish(ns, "container", "kill", rec.id, name=rec.name, signal=n)
        return
    # Unlike stop, a kill leaves the restart policy in force (as docker does).
    await send_signal(ctx, rec, n, all=n == signal.SIGKILL)
    if rec.state == "paused" and n == signal.SIGKILL:
        await resume_quietly(ctx, rec)
    ctx.publish(ns, "container", "kill", rec.id, name=rec.name, signal=n)


async def restart(
    ctx: ContainerContext, ns: str, ref: str, timeout: int | None = None, sig: str | int | None = None
) -> None:
    rec = ctx.resolve(ns, ref)
    if sig not in (None, ""):
        parse_signal(sig)  # a bad signal is refused even when there is nothing to stop
    if rec.state in ("running", "paused"):
        await stop(ctx, ns, rec.id, timeout, sig)
    await starting.start(ctx, ns, rec.id)
    ctx.publish(ns, "container", "restart", rec.id, name=rec.name)


async def pause(ctx: ContainerContext, ns: str, ref: str) -> None:
    rec = ctx.resolve(ns, ref)
    if rec.state != "running":
        raise Conflict(
            f"container {rec.name} is not running"
            if rec.state != "paused"
            else f"container {rec.name} is already paused"
        )
    await ctx.rt.pause(rec.id)
    ctx.store.update(rec.id, state="paused")
    ctx.changed(rec.id)
    ctx.publish(ns, "container", "pause", rec.id, name=rec.name)


async def unpause(ctx: ContainerContext, ns: str, ref: str) -> None:
    rec = ctx.resolve(ns, ref)
    if rec.state != "paused":
        raise Conflict(f"container {rec.name} is not paused")
    await ctx.rt.resume(rec.id)
    ctx.store.update(rec.id, state="running")
    ctx.changed(rec.id)
    ctx.publish(ns, "container", "unpause", rec.id, name=rec.name)
