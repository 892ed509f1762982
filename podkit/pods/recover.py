"""Recovery at daemon start: finish what a crash interrupted, and clean what has no pod."""

from __future__ import annotations

import asyncio
import logging

from podkit.errors import PodkitError
from podkit.pods import sandbox
from podkit.pods.context import NETNS_KIND, PodContext
from podkit.pods.model import STATE_CREATING, STATE_REMOVING
from podkit.pods.remove import remove_tree, teardown

log = logging.getLogger(__name__)


async def recover(ctx: PodContext) -> None:
    for pod in ctx.store.list():
        if pod.state in (STATE_CREATING, STATE_REMOVING):
            log.info(
                "pod %s (%s) was being %s when podkitd stopped: removing it",
                pod.name,
                pod.id[:12],
                "created" if pod.state == STATE_CREATING else "removed",
            )
            try:
                await teardown(ctx, pod)
            except PodkitError as e:
                log.warning("recovery of pod %s: %s", pod.id[:12], e.message)
            ctx.store.delete(pod.namespace, pod.id)
    live = {p.id for p in ctx.store.list()}
    # Containers that claim a pod that no longer exists (crash between steps).
    for r in ctx.containers.store.list():
        if r.pod_id and r.pod_id not in live:
            try:
                await ctx.containers.remove(r.namespace, r.id, force=True)
            except Exception as e:  # keep recovering the rest
                log.warning("recovery: removing container %s of gone pod %s: %s", r.id[:12], r.pod_id[:12], e)
    await ctx.networks.cleanup_stale(live, kind=NETNS_KIND)
    # Warm sandboxes held by pods that are gone (a crash between a take and the pod's
    # record, or within a removal): the containers' recovery left them to this one.
    await ctx.networks.release_gone_sandboxes(live, NETNS_KIND)
    pods_dir = ctx.state / "pods"
    if pods_dir.is_dir():
        for d in pods_dir.iterdir():
            if d.name not in live:
                await asyncio.to_thread(sandbox.release, d)
                await asyncio.to_thread(remove_tree, d, f"gone pod {d.name[:12]}")
