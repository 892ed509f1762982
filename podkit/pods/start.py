"""Starting a pod: the sandbox and infra first, then every member that is not running."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

from podkit.containers.process_root import ProcessRoot, open_in_process
from podkit.errors import Conflict, NotFound, PodkitError
from podkit.pods import sandbox
from podkit.pods.context import PodContext, pod_dir
from podkit.pods.create import make_infra
from podkit.pods.model import STATE_READY, Pod
from podkit.pods.prepare import prepare

log = logging.getLogger(__name__)


async def start_infra(ctx: PodContext, pod: Pod) -> None:
    """Bring the sandbox up (again) and the infra container running; re-pin its pid ns."""
    await prepare(ctx, pod)
    infra_rec = ctx.containers.store.get(pod.infra_id) if pod.infra_id else None
    if infra_rec is None:
        # Gone (removed behind podkit's back, or a crash before it was recorded):
        # the sandbox's namespaces are pinned, so a new infra can simply hold them.
        log.warning("pod %s has no infra container: making a new one", pod.name)
        await make_infra(ctx, pod)
        infra_rec = ctx.containers.store.get(pod.infra_id)
        if infra_rec is None:
            raise NotFound(f"the new infra container of pod {pod.name} is gone already")
    if infra_rec.state != "running":
        await ctx.containers.start(pod.namespace, pod.infra_id)
        infra_rec = ctx.containers.store.get(pod.infra_id)
        # The pod starts with its infra, also when `run --pod` brings it up (not
        # only `pod start`): inspect's "started" said 0 for such a running pod.
        pod.started = time.time()
        ctx.store.update(pod)
    pid_pin = pod_dir(pod) / "ns" / "pid"
    if "pid" in pod.spec.share and infra_rec is not None and infra_rec.pid:
        # The infra's namespace, through its checked process: its pid may have been
        # reused by another process since (containers/process_root.py).
        infra = ctx.containers.rt.process(infra_rec.id, infra_rec.pid)
        try:
            await asyncio.to_thread(_pin_infra_pid, pid_pin, infra)
        except NotFound as e:
            raise Conflict(f"pod {pod.name}: its infra container's {e.message}") from None


def _pin_infra_pid(pin: Path, infra: ProcessRoot) -> None:
    """Point the pod's pid pin at the infra's pid namespace unless it names it already."""
    fd = open_in_process(infra, "ns/pid", os.O_RDONLY, f"process (pid {infra.pid}) is gone")
    try:
        if sandbox.is_pinned(pin, "pid") and _same_ns(pin, fd):
            return
        sandbox.pin_pid(pin, fd)
    finally:
        os.close(fd)


async def ensure_running(ctx: PodContext, ns: str, pod_id: str) -> None:
    """Before a member container starts: the pod's sandbox and infra must be up."""
    async with ctx.locked(pod_id):
        pod = ctx.get(ns, pod_id)  # again, under the lock: a removal may have won
        if pod.state != STATE_READY:
            raise Conflict(f"pod {pod.name} is {pod.state}")
        await start_infra(ctx, pod)


async def start(ctx: PodContext, ns: str, ref: str) -> Pod:
    pod = ctx.get(ns, ref)
    async with ctx.locked(pod.id):
        pod = ctx.get(ns, pod.id)
        if pod.state != STATE_READY:
            raise Conflict(f"pod {pod.name} is {pod.state}")
        await start_infra(ctx, pod)
        members = [r for r in ctx.members(pod) if not r.infra and r.state in ("created", "exited", "dead")]
        results = await asyncio.gather(
            *(ctx.containers.start(ns, r.id) for r in members), return_exceptions=True
        )
        pod.started = time.time()
        ctx.store.update(pod)
    errs = [(r, e) for r, e in zip(members, results, strict=True) if isinstance(e, BaseException)]
    ctx.publish(pod, "start")
    if errs:
        r, e = errs[0]
        msg = e.message if isinstance(e, PodkitError) else str(e)
        raise Conflict(f"pod {pod.name}: container {r.name} failed to start: {msg}")
    return pod


def _same_ns(pin: Path, ns_fd: int) -> bool:
    try:
        return os.stat(pin).st_ino == os.fstat(ns_fd).st_ino
    except OSError:
        return False
