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

import contextlib
import logging
from typing import Any

from podkit.errors import NotFound, PodkitError

log = logging.getLogger(__name__)


async def recover(svc: Any) -> dict[str, int]:
    counts = {"running": 0, "exited": 0, "removed": 0, "restarted": 0}
    # `cp` on a stopped container mounts its snapshot here for a moment; a crash can
    # leave such a mount behind.
    cp_dir = svc.state_dir / "cp"
    if cp_dir.is_dir():
        for d in cp_dir.iterdir():
            with contextlib.suppress(Exception):
                svc._unmount(d)
                d.rmdir()
    for rec in svc.store.list():
        try:
            if rec.state in ("running", "paused"):
                if svc.rt.conmon_alive(rec.id):
                    st = None
                    with contextlib.suppress(PodkitError):
                        st = await svc.rt.state(rec.id)
                    status = (st or {}).get("status")
                    if status == "paused" and rec.state != "paused":
                        svc.store.update(rec.id, state="paused")
                    elif status == "running" and rec.state != "running":
                        svc.store.update(rec.id, state="running")
                    svc._watch(rec.id)
                    counts["running"] += 1
                    continue
                async with svc._lock(rec.id):
                    await svc._finish(rec)
                counts["exited"] += 1
                await svc._after_exit(rec.id)
            elif rec.state == "removing":
                await svc.remove(rec.namespace, rec.id, force=True)
                counts["removed"] += 1
            elif rec.state == "restarting":
                if svc.rt.conmon_alive(rec.id):  # the crash came between start and the record update
                    svc.store.update(rec.id, state="running")
                    svc._watch(rec.id)
                    continue
                await svc._release(rec.id)
                if not rec.manually_stopped:
                    svc.restarts.schedule(rec.id, 0)
                    counts["restarted"] += 1
                else:
                    svc.store.update(rec.id, state="exited")
            else:
                # created / exited: nothing of a run may remain.
                if svc.rt.conmon_alive(rec.id):
                    # A crash inside start, after conmon's launch: keep it if it runs; one
                    # never started (runc "created") is undone, as the start failed.
                    st = None
                    with contextlib.suppress(PodkitError):
                        st = await svc.rt.state(rec.id)
                    if st and st.get("status") in ("running", "paused"):
                        svc.store.update(
                            rec.id,
                            state=st["status"],
                            pid=int(st.get("pid") or 0),
                            started_at=rec.started_at or rec.created,
                        )
                        svc._watch(rec.id)
                        counts["running"] += 1
                        continue
                await svc._release(rec.id)
                if rec.config.get("auto_remove"):
                    # A `run --rm` the crash cut short: between create and start, or
                    # between the exit's record and the removal. Removed now, as docker
                    # removes AutoRemove containers that are not running at restore.
                    with contextlib.suppress(NotFound):
                        await svc.remove(rec.namespace, rec.id, force=True, volumes=True)
                    counts["removed"] += 1
                    continue
                policy = (rec.config.get("restart") or {}).get("name", "no")
                if (
                    rec.state == "exited"
                    and policy in ("always", "unless-stopped")
                    and not rec.manually_stopped
                ):
                    svc.store.update(rec.id, state="restarting")
                    svc.restarts.schedule(rec.id, 0)
                    counts["restarted"] += 1
        except Exception:
            log.exception("recovering container %s failed", rec.id[:12])
    if svc.networks is not None:
        # Attachments and netns pins whose container no longer exists (its record lost
        # or never written): nothing above would release them (the network layer's own
        # start-up only drops those whose netns is gone). Owners of other kinds (pods)
        # are their layers' business.
        live = [r.id for r in svc.store.list()]
        try:
            counts["networks"] = len(await svc.networks.cleanup_stale(live, kind="container"))
        except Exception:
            log.exception("cleaning up the network state of gone containers failed")
    if any(counts.values()):
        log.info("containers recovered: %s", ", ".join(f"{v} {k}" for k, v in counts.items() if v))
    return counts
