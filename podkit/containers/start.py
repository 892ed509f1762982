"""Start: mount the rootfs, wire the network, write the OCI spec, launch conmon and runc.

The spec is built at each start from the image config and the options (so pod namespace
paths and networks are current). Each step is undone if a later one fails, so a failed
start leaves nothing behind; the failure is put on the record (``error``, and the exit
code docker gives: 127 command not found, 126 cannot execute, 128 otherwise).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podkit.containers import exit as exits
from podkit.containers import logrotate, subpaths
from podkit.containers.context import LABEL_IMAGE, LABEL_NAMESPACE, ContainerContext, snap_key
from podkit.containers.links import refresh_linkers
from podkit.containers.networking import network_up
from podkit.containers.ns_pins import NamespacePins
from podkit.containers.options import CreateOptions
from podkit.containers.rootfs import is_mounted, mount_all, unmount
from podkit.containers.spec import build
from podkit.containers.store import Record
from podkit.containers.trace import mark
from podkit.errors import CannotExecute, CommandNotFound, Conflict, Internal, NotFound, PodkitError

if TYPE_CHECKING:
    from podkit.images.service import Image

log = logging.getLogger(__name__)

Undo = Callable[[], Awaitable[None] | None]
Steps = list[tuple[str, Undo]]  # what was done, and how it is undone


async def start(ctx: ContainerContext, ns: str, ref: str) -> None:
    rec = ctx.resolve(ns, ref)
    await ctx.hooks.before_start(ns, rec)  # e.g. a pod member's sandbox comes up first
    async with ctx.lock(rec.id):
        rec = ctx.store.get(rec.id) or rec
        if rec.state in ("running", "restarting"):
            return
        if rec.state == "paused":
            raise Conflict(f"container {rec.name} is paused: unpause it instead")
        if rec.state == "removing":
            raise Conflict(f"container {rec.name} is being removed")
        if rec.manually_stopped:  # a write less on the path when it is not set
            ctx.store.update(rec.id, manually_stopped=False)
        await run(ctx, rec)


async def run(ctx: ContainerContext, rec: Record) -> None:
    """Start a created or exited container (the caller holds its lock)."""
    opts = CreateOptions.from_stored(rec.config)
    image = _image(ctx, rec)
    cfg = image.config.get("config") or {}
    bundle = ctx.bundle(rec.id)
    undo: Steps = []
    marks = [time.perf_counter()]
    mark(rec.id, "mount")
    pins = NamespacePins()
    try:
        await _rootfs(ctx, rec, image.id, image.chain_id, undo)
        if opts.ipc == "shareable":
            await _shareable_shm(bundle / "shm", opts, undo)
        marks.append(time.perf_counter())
        mark(rec.id, "network")
        netinfo, nss, undo_net = await network_up(ctx, rec, opts, pins)
        marks.append(time.perf_counter())
        mark(rec.id, "spec")
        undo.append(("network", undo_net))
        spec = await build(ctx, rec, opts, cfg, bundle / "rootfs", nss, netinfo)
        (bundle / "config.json").write_text(json.dumps(spec))
        marks.append(time.perf_counter())
        mark(rec.id, "runtime-create")
        pid = await _launch(ctx, rec, opts, bundle, spec, undo, marks)
    except BaseException as e:
        await _undo_start(ctx, rec, undo, e)
        raise
    finally:
        pins.close()  # runc has joined what they pin (or will not)
        if any(subpaths.of(m.options) is not None or m.type == "image" for m in opts.mounts):
            # runc has bound them into the container (or will not): its mounts are its own
            await asyncio.to_thread(subpaths.release, ctx.state_dir, rec.id)
    marks.append(time.perf_counter())
    log.debug(
        "started %s in %.1f ms (rootfs %.1f, network %.1f, spec %.1f, create %.1f, start %.1f)",
        rec.id[:12],
        (marks[-1] - marks[0]) * 1000,
        *((b - a) * 1000 for a, b in zip(marks, marks[1:], strict=False)),
    )
    ctx.store.update(
        rec.id,
        state="running",
        pid=pid,
        started_at=time.time(),
        finished_at=None,
        exit_code=None,
        oom_killed=False,
        error="",
        network=netinfo,
    )
    ctx.changed(rec.id)
    exits.watch(ctx, rec.id)
    if netinfo.get("ip"):
        refresh_linkers(ctx, rec.id, str(netinfo["ip"]))
    mark(rec.id, "started")
    ctx.publish(rec.namespace, "container", "start", rec.id, name=rec.name, image=rec.image)
    if ctx.health is not None:
        ctx.health.watch(rec.namespace, rec.id, fresh=True, rec=rec)
    ctx.log_rotation.watch(rec.id, rec)


def _image(ctx: ContainerContext, rec: Record) -> Image:
    """The image the container was made from (by id), else what its name is now.

    The name is looked up first, by its key: an id is found by going through every
    image record of the namespace, which only a re-tagged name needs."""
    by_name: Image | None = None
    try:
        by_name = ctx.images.get(rec.namespace, rec.image)
    except NotFound:
        pass
    if by_name is not None and (not rec.image_id or by_name.id == rec.image_id):
        return by_name
    if rec.image_id:
        try:
            return ctx.images.get(rec.namespace, rec.image_id)
        except NotFound:
            pass  # re-tagged or re-pulled since: the name's
    if by_name is None:
        raise NotFound(f"No such image: {rec.image}")
    return by_name


async def _rootfs(
    ctx: ContainerContext, rec: Record, image_id: str, chain_id: str | None, undo: Steps
) -> None:
    """The bundle directory, and the container's snapshot mounted on its ``rootfs``."""
    bundle = ctx.bundle(rec.id)
    rootfs = bundle / "rootfs"
    bundle.mkdir(parents=True, exist_ok=True, mode=0o700)
    rootfs.mkdir(exist_ok=True)
    if is_mounted(rootfs):
        return
    key = snap_key(rec.id)
    if not ctx.snapshots.exists(key):  # a crash inside create left no snapshot
        labels = {LABEL_IMAGE: image_id, LABEL_NAMESPACE: rec.namespace, "podkit/container": rec.id}
        await asyncio.to_thread(ctx.snapshots.prepare, key, chain_id, labels)
    mounts = ctx.snapshots.mounts(key)
    await asyncio.to_thread(mount_all, mounts, rootfs)
    undo.append((f"mount of {rootfs}", lambda: unmount(rootfs)))


async def _shareable_shm(path: Path, opts: CreateOptions, undo: Steps) -> None:
    """``--ipc shareable``: /dev/shm is a tmpfs on the host, in the bundle, so that a
    container joining this IPC namespace (``--ipc container:``) binds the same one (a
    mount inside another mount namespace cannot be bound)."""
    from podkit.snapshots.mount import Mount

    path.mkdir(exist_ok=True, mode=0o755)
    if is_mounted(path):
        return
    size = opts.shm_size or 64 * 1024 * 1024
    shm = Mount("tmpfs", "shm", ["nosuid", "nodev", "noexec", "mode=1777", f"size={size}"])
    await asyncio.to_thread(mount_all, [shm], path)
    undo.append((f"mount of {path}", lambda: unmount(path)))


async def _launch(
    ctx: ContainerContext,
    rec: Record,
    opts: CreateOptions,
    bundle: Path,
    spec: dict[str, Any],
    undo: Steps,
    marks: list[float],
) -> int:
    """conmon and ``runc create``, then ``runc start``; the container's pid."""
    log_size, keep = logrotate.limits(ctx, rec.config)
    if keep > 1 and not rec.config.get("log_path"):
        log_size = 0  # the daemon rotates (logrotate.py): conmon's limit would throw the file away
    try:
        pid = await ctx.rt.create(
            rec.id,
            rec.name,
            bundle,
            log_path=str(ctx.log_file(rec)),
            log_size_max=log_size,
            terminal=opts.tty,
            stdin=opts.open_stdin,
            leave_stdin_open=opts.tty if opts.stdin_once is None else not opts.stdin_once,
            spec=spec,
        )
    except PodkitError:
        raise
    except Exception as e:  # RuntimeCreateError and friends
        raise classify(getattr(e, "message", str(e))) from None

    def delete() -> None:
        ctx.spawn(ctx.rt.delete(rec.id, force=True))

    undo.append(("runtime state", delete))
    marks.append(time.perf_counter())
    mark(rec.id, "start")
    try:
        await ctx.rt.start(rec.id)
    except PodkitError as e:
        if isinstance(e, CommandNotFound | CannotExecute):
            raise
        raise classify(e.message) from None
    return pid


async def _undo_start(ctx: ContainerContext, rec: Record, undo: Steps, e: BaseException) -> None:
    """Undo the steps done, in reverse; put a start failure on the record."""
    for what, u in reversed(undo):
        try:
            r = u()
            if r is not None:
                await r
        except Exception as err:  # noqa: BLE001 - undoing: log it and go on with the rest
            log.warning("undoing the start of %s: releasing its %s failed: %r", rec.id[:12], what, err)
    await exits.runtime_cleanup(ctx, rec.id)
    if isinstance(e, PodkitError):
        code = e.exit_code if isinstance(e, CommandNotFound | CannotExecute) else 128
        ctx.store.update(
            rec.id,
            state="exited" if rec.state != "created" else "created",
            error=e.message,
            exit_code=code if rec.state != "created" else None,
        )
        ctx.changed(rec.id)  # waiters (wait not-running, an attach) learn of it


def classify(message: str) -> PodkitError:
    """A runtime's failure to start a process, as docker reports it."""
    m = message.lower()
    if "executable file not found" in m or ("no such file or directory" in m and "exec" in m):
        return CommandNotFound(message)
    if "permission denied" in m or "exec format error" in m or "is a directory" in m:
        return CannotExecute(message)
    return Internal(message)
