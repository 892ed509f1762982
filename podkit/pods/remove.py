"""Removing pods: tear-down in reverse order of creation, each step tolerating its piece gone.

``background=True`` (the CRI's RemovePodSandbox) answers once the removal is durable:
one write makes the pod ``removing`` and gives its name up (``removing_name``), and
the members' stop, the tear-down and the record's deletion go on in a task of the
pods layer (``PodContext.teardowns``: awaited a while by a graceful shutdown, and
redone by recovery, which tears down every ``removing`` pod, after a crash)."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from podkit.errors import Conflict, NotFound, PodkitError
from podkit.pods import sandbox
from podkit.pods.context import LIVE_STATES, NETNS_KIND, PodContext, pod_dir
from podkit.pods.model import STATE_READY, STATE_REMOVING, Pod
from podkit.pods.prepare import cgroup_remove
from podkit.pods.stop import stop_members

if TYPE_CHECKING:
    from podkit.containers.store import Record

log = logging.getLogger(__name__)


# Shutdown waits this long for background removals; the rest is left to recovery.
SHUTDOWN_TEARDOWN_WAIT = 10.0


def removing_name(pod: Pod) -> str:
    """The name a pod being removed in the background holds, its own free for a new pod."""
    return pod.name if "~" in pod.name else f"{pod.name}~removing-{pod.id[:12]}"


async def remove(
    ctx: PodContext,
    ns: str,
    ref: str,
    force: bool = False,
    timeout: int | None = None,
    background: bool = False,
) -> str:
    pod = ctx.get(ns, ref)
    async with ctx.locked(pod.id):
        pod = ctx.get(ns, pod.id)
        if background and pod.state == STATE_REMOVING:
            return pod.id  # under way already
        running = [r.name for r in ctx.members(pod) if not r.infra and r.state in LIVE_STATES]
        if running and not force:
            raise Conflict(
                f"pod {pod.name} has running containers ({', '.join(running)}): stop it first "
                "or remove it with -f"
            )
        pod.state = STATE_REMOVING
        name = pod.name
        if background:
            pod.spec.name = removing_name(pod)
        ctx.store.update(pod)
        if not background:
            await _finish(ctx, pod, timeout)
    if background:
        # Spawned outside the lock (and its HELD mark), which the task takes anew.
        task = asyncio.ensure_future(_finish_locked(ctx, pod, timeout, name))
        ctx.teardowns.add(task)
        task.add_done_callback(ctx.teardowns.discard)
        task.add_done_callback(_logged)
        return pod.id
    ctx.locks.pop(pod.id, None)
    ctx.publish(pod, "remove")
    return pod.id


async def _finish(ctx: PodContext, pod: Pod, timeout: int | None) -> None:
    # -f is docker rm -f: SIGKILL at once unless a timeout is given.
    await stop_members(ctx, pod, timeout if timeout is not None else 0)
    await teardown(ctx, pod)
    ctx.store.delete(pod.namespace, pod.id)


async def _finish_locked(ctx: PodContext, pod: Pod, timeout: int | None, name: str) -> None:
    async with ctx.locked(pod.id):
        await _finish(ctx, pod, timeout)
    ctx.locks.pop(pod.id, None)
    pod.spec.name = name
    ctx.publish(pod, "remove")


def _logged(t: asyncio.Task[None]) -> None:
    if not t.cancelled() and t.exception() is not None:
        # The record stays removing: the next start's recovery tears down what is left.
        log.warning("removing a pod in the background failed: %s", t.exception())


async def finish_teardowns(ctx: PodContext) -> None:
    """At shutdown: let background removals finish; one stuck is left to recovery."""
    if not ctx.teardowns:
        return
    _, stuck = await asyncio.wait(set(ctx.teardowns), timeout=SHUTDOWN_TEARDOWN_WAIT)
    if stuck:
        log.warning("%d pod removals left to the next start's recovery", len(stuck))


async def teardown(ctx: PodContext, pod: Pod) -> None:
    """Undo every piece of a pod; each step copes with its piece being gone already.

    Every step is tried; the failures are logged together and raised as one error.
    """
    errors: list[str] = []
    members = ctx.members(pod)

    async def rm(group: list[Record]) -> None:
        res = await asyncio.gather(
            *(ctx.containers.remove(pod.namespace, r.id, force=True) for r in group),
            return_exceptions=True,
        )
        for r, e in zip(group, res, strict=True):
            if isinstance(e, BaseException) and not isinstance(e, NotFound):
                errors.append(f"container {r.name}: {e}")  # keep tearing down the rest

    # Workers together, then the infra that holds their namespaces.
    await rm([r for r in members if not r.infra])
    await rm([r for r in members if r.infra])
    try:
        # A warm sandbox is given back in the background, durable once this returns.
        await ctx.networks.detach(pod.id, background=True)
    except Exception as e:
        errors.append(f"network: {e}")
    try:
        ctx.networks.remove_netns(pod.id, NETNS_KIND)
    except Exception as e:
        errors.append(f"netns: {e}")
    d = pod_dir(pod)
    await asyncio.to_thread(sandbox.release, d)
    try:
        await cgroup_remove(ctx, pod)
    except Exception as e:
        errors.append(f"cgroup: {e}")
    await asyncio.to_thread(remove_tree, d, f"pod {pod.id[:12]}")
    vol = ctx.root / "pods" / pod.id
    if vol.exists():
        await asyncio.to_thread(remove_tree, vol, f"pod {pod.id[:12]}")
    if errors:
        log.warning("pod %s: tear-down incomplete: %s", pod.id[:12], "; ".join(errors))
        raise PodkitError(f"pod {pod.name}: could not remove everything: {'; '.join(errors)}")


def remove_tree(path: Path, owner: str) -> None:
    """``rm -rf`` that logs what it cannot remove instead of hiding it."""
    if not path.exists():
        return

    def failed(_fn: object, p: str, exc: tuple[object, BaseException, object]) -> None:
        log.warning("%s: could not remove %s: %s", owner, p, exc[1])

    shutil.rmtree(path, onerror=failed)


async def prune(ctx: PodContext, ns: str) -> list[str]:
    """Remove every ready pod none of whose containers is running."""
    out = []
    for pod in ctx.store.list(ns):
        if pod.state != STATE_READY:
            continue
        if any(r.state in LIVE_STATES for r in ctx.members(pod)):
            continue
        try:
            out.append(await remove(ctx, ns, pod.id))
        except (NotFound, Conflict) as e:  # removed, or started, since the listing
            log.debug("prune skips pod %s: %s", pod.name, e)
    return out
