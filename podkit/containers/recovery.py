"""Reconciling container records with reality when the daemon starts.

conmon keeps containers running (and logging) while podkitd is down, and leaves an
exit file when one ends. At start-up every record whose state says it was active is
checked against its conmon: alive - watched again; gone - finished with the code
(and OOM flag) conmon left, its resources released, its restart policy applied.
Half-done operations (a crash inside remove, or inside start) are completed or
undone, so nothing stale is left: no mounted rootfs of a stopped container, no runc
state, no network attachment (nor one of a container that no longer exists).
"""

from __future__ import annotations

import logging
from typing import Any

from podkit.containers import subpaths
from podkit.containers.context import ContainerContext
from podkit.containers.exit import after_exit, finish, release, watch
from podkit.containers.remove import remove
from podkit.containers.rootfs import unmount
from podkit.containers.store import Record
from podkit.errors import NotFound, PodkitError

log = logging.getLogger(__name__)


async def recover(ctx: ContainerContext) -> dict[str, int]:
    counts = {"running": 0, "exited": 0, "removed": 0, "restarted": 0}
    _release_cp_mounts(ctx)
    subpaths.release_all(ctx.state_dir)
    for rec in ctx.store.list():
        outcome: str | None
        try:
            if rec.state in ("running", "paused"):
                outcome = await _recover_active(ctx, rec)
            elif rec.state == "removing":
                # an auto_remove container's removal (begun at its exit) takes its
                # anonymous volumes along, as it would have without the crash
                await remove(
                    ctx, rec.namespace, rec.id, force=True, volumes=bool(rec.config.get("auto_remove"))
                )
                outcome = "removed"
            elif rec.state == "restarting":
                outcome = await _recover_restarting(ctx, rec)
            else:
                outcome = await _recover_stopped(ctx, rec)
            if outcome:
                counts[outcome] += 1
        except Exception:
            log.exception("recovering container %s failed", rec.id[:12])
    if ctx.networks is not None:
        # Attachments and netns pins whose container no longer exists (its record lost
        # or never written): nothing above would release them (the network layer's own
        # start-up only drops those whose netns is gone). Owners of other kinds (pods)
        # are their layers' business.
        live = [r.id for r in ctx.store.list()]
        try:
            counts["networks"] = len(await ctx.networks.cleanup_stale(live, kind="container"))
        except Exception:
            log.exception("cleaning up the network state of gone containers failed")
        # Pre-warmed sandboxes: those of running containers stay theirs; the rest are
        # kept for the next starts if they still fit their network, or released.
        running = [r.id for r in ctx.store.list() if r.state in ("running", "paused")]
        try:
            counts["sandboxes"] = await ctx.networks.recover_sandboxes(running)
        except Exception:
            log.exception("recovering the network sandbox pool failed")
    if any(counts.values()):
        log.info("containers recovered: %s", ", ".join(f"{v} {k}" for k, v in counts.items() if v))
    return counts


async def _runtime_state(ctx: ContainerContext, rec: Record) -> dict[str, Any] | None:
    try:
        return await ctx.rt.state(rec.id)
    except PodkitError as e:  # runc has no state of it: what conmon left decides
        log.info("recovery: no runtime state of %s: %s", rec.id[:12], e.message)
        return None


def _schedule(ctx: ContainerContext, cid: str) -> None:
    if ctx.restarts is not None:
        ctx.restarts.schedule(cid, 0)


def _release_cp_mounts(ctx: ContainerContext) -> None:
    """`cp` on a stopped container mounts its snapshot under <state>/cp for a moment; a
    crash can leave such a mount behind."""
    cp_dir = ctx.state_dir / "cp"
    if not cp_dir.is_dir():
        return
    for d in cp_dir.iterdir():
        try:
            unmount(d)
            d.rmdir()
        except Exception as e:  # noqa: BLE001 - log it, and recover the containers still
            log.warning("recovery: releasing the cp mount point %s failed: %r", d, e)


async def _recover_active(ctx: ContainerContext, rec: Record) -> str:
    """Running or paused on record: watched again if its conmon lives, else finished."""
    if ctx.rt.conmon_alive(rec.id):
        st = await _runtime_state(ctx, rec)
        status = (st or {}).get("status")
        if status == "paused" and rec.state != "paused":
            ctx.store.update(rec.id, state="paused")
        elif status == "running" and rec.state != "running":
            ctx.store.update(rec.id, state="running")
        watch(ctx, rec.id)
        if ctx.health is not None:  # checks resume where they were (health.json)
            ctx.health.watch(rec.namespace, rec.id, fresh=False)
        ctx.log_rotation.watch(rec.id)
        return "running"
    async with ctx.lock(rec.id):
        await finish(ctx, rec)
    await after_exit(ctx, rec.id)
    return "exited"


async def _recover_restarting(ctx: ContainerContext, rec: Record) -> str | None:
    """Between two runs of its restart policy: scheduled again unless the user stopped it."""
    if ctx.rt.conmon_alive(rec.id):  # the crash came between start and the record update
        ctx.store.update(rec.id, state="running")
        watch(ctx, rec.id)
        return None
    await release(ctx, rec.id)
    if rec.manually_stopped:
        ctx.store.update(rec.id, state="exited")
        return None
    _schedule(ctx, rec.id)
    return "restarted"


async def _recover_stopped(ctx: ContainerContext, rec: Record) -> str | None:
    """Created or exited: nothing of a run may remain (but a start a crash cut short)."""
    if ctx.rt.conmon_alive(rec.id):
        # A crash inside start, after conmon's launch: keep it if it runs; one
        # never started (runc "created") is undone, as the start failed.
        st = await _runtime_state(ctx, rec)
        if st and st.get("status") in ("running", "paused"):
            ctx.store.update(
                rec.id,
                state=st["status"],
                pid=int(st.get("pid") or 0),
                started_at=rec.started_at or rec.created,
            )
            watch(ctx, rec.id)
            return "running"
    await release(ctx, rec.id)
    if rec.config.get("auto_remove"):
        # A `run --rm` the crash cut short: between create and start, or between the
        # exit's record and the removal. Removed now, as docker removes AutoRemove
        # containers that are not running at restore.
        try:
            await remove(ctx, rec.namespace, rec.id, force=True, volumes=True)
        except NotFound:
            pass  # removed meanwhile
        return "removed"
    policy = (rec.config.get("restart") or {}).get("name", "no")
    if rec.state == "exited" and policy in ("always", "unless-stopped") and not rec.manually_stopped:
        ctx.store.update(rec.id, state="restarting")
        _schedule(ctx, rec.id)
        return "restarted"
    return None
