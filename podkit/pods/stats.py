"""A pod's usage: stats samples from the cgroups of the pod and its members, and top."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from podkit.errors import Conflict, NotFound, PodkitError
from podkit.pods import usage
from podkit.pods.context import PodContext
from podkit.pods.model import Pod


async def stats(ctx: PodContext, ns: str, ref: str, stream: bool = True) -> AsyncIterator[dict[str, Any]]:
    """Samples of the pod's usage (one, or one a second); NotFound before the first."""
    pod = ctx.get(ns, ref)

    async def gen() -> AsyncIterator[dict[str, Any]]:
        prev: dict[str, tuple[float, float]] = {}
        while True:
            yield await asyncio.to_thread(sample, ctx, pod, prev)
            if not stream:
                return
            await asyncio.sleep(1.0)
            try:
                ctx.store.get(ns, pod.id)
            except NotFound:
                return  # removed meanwhile: the stream ends

    return gen()


def _flat(ctx: PodContext, path: str) -> dict[str, Any]:
    """The figures of one cgroup; {} for none, or one gone while read."""
    # A container may end (its cgroup go, its pid be reused) while we read.
    if not path.strip("/"):
        return {}
    try:
        if not ctx.cgroups.exists(path):
            return {}
        st = ctx.cgroups.stats(path)
    except (OSError, PodkitError):
        return {}
    return {
        "memory_usage": st["memory"]["usage"],
        "memory_limit": st["memory"]["limit"],
        "cpu_usage_ns": st["cpu"]["usage_ns"],
        "pids": st["pids"]["current"],
    }


def sample(ctx: PodContext, pod: Pod, prev: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """One sample; ``prev`` carries CPU figures from one sample to the next."""
    now = time.monotonic()
    pod_stats = _flat(ctx, pod.cgroup_path)
    out: dict[str, Any] = {"id": pod.id, "name": pod.name, "time": time.time(), **pod_stats}
    out["cpu_percent"] = usage.cpu_percent(prev, pod.id, now, pod_stats.get("cpu_usage_ns"))
    conts = []
    for r in ctx.members(pod):
        st = _flat(ctx, usage.container_cgroup(ctx.containers.rt, r)) if r.state == "running" else {}
        conts.append(
            {
                "container": r.name,
                "id": r.id,
                "infra": r.infra,
                "state": r.state,
                **st,
                "cpu_percent": usage.cpu_percent(prev, r.id, now, st.get("cpu_usage_ns")),
            }
        )
    out["containers"] = conts
    return out


async def top(ctx: PodContext, ns: str, ref: str, ps_args: str = "") -> dict[str, Any]:
    pod = ctx.get(ns, ref)
    members = [r for r in ctx.members(pod) if r.state == "running"]
    if not members:
        raise Conflict(f"pod {pod.name} is not running")
    return await usage.top(ctx.containers.rt, pod.cgroup_path, members, ps_args)
