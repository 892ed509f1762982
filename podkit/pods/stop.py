"""Stopping a pod: its containers, then the infra; the sandbox (and IP) stays unless released."""

from __future__ import annotations

import asyncio
import logging

from podkit.errors import NotFound
from podkit.pods.context import LIVE_STATES, NETNS_KIND, PodContext
from podkit.pods.model import Pod

log = logging.getLogger(__name__)


async def stop(
    ctx: PodContext, ns: str, ref: str, timeout: int | None = None, release_network: bool = False
) -> Pod:
    """See ``PodService.stop``."""
    pod = ctx.get(ns, ref)
    async with ctx.locked(pod.id):
        pod = ctx.get(ns, pod.id)
        await stop_members(ctx, pod, timeout)
        if release_network and pod.netns_path:
            await ctx.networks.detach(pod.id, background=True)  # a warm sandbox's: see remove.py
            ctx.networks.remove_netns(pod.id, NETNS_KIND)
            pod.netns_path, pod.ips, pod.gateway, pod.dns_server, pod.ports = "", [], "", "", []
            ctx.store.update(pod)
    ctx.publish(pod, "stop")
    return pod


async def stop_members(ctx: PodContext, pod: Pod, timeout: int | None) -> None:
    """Stop the workers together (failures logged), then the infra that holds their namespaces."""
    members = ctx.members(pod)
    workers = [r for r in members if not r.infra and r.state in LIVE_STATES]
    res = await asyncio.gather(
        *(ctx.containers.stop(pod.namespace, r.id, timeout=timeout) for r in workers),
        return_exceptions=True,
    )
    for r, e in zip(workers, res, strict=True):
        if isinstance(e, BaseException) and not isinstance(e, NotFound):
            log.warning("pod %s: stopping %s failed: %s", pod.name, r.name, e)
    for r in members:
        if r.infra and r.state in LIVE_STATES:
            await ctx.containers.stop(pod.namespace, r.id, timeout=timeout)
