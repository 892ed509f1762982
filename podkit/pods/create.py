"""Creating a pod: the record first, then the sandbox and its infra container.

Each step is recorded before it is made, so that a failed create is undone here
and one a crash interrupted is undone by recovery (state ``creating``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

from podkit.errors import InvalidArgument
from podkit.pods import infra
from podkit.pods.context import POD_LABEL, POD_NAME_LABEL, PodContext, pod_dir
from podkit.pods.members import options
from podkit.pods.model import STATE_CREATING, STATE_READY, STATE_REMOVING, Pod, PodSpec
from podkit.pods.prepare import networks_of, prepare
from podkit.pods.remove import teardown

if TYPE_CHECKING:
    from podkit.containers.store import Record

log = logging.getLogger(__name__)


def parse_spec(body: dict[str, Any]) -> PodSpec:
    """A pod create body (sizes as text, cpus, share as "a,b") as a ``PodSpec``."""
    body = dict(body)
    from podkit.containers.options import parse_size

    for key, what in (("memory", "pod memory limit"), ("shm_size", "shm size")):
        if isinstance(body.get(key), str):
            body[key] = parse_size(body[key], what)
    if body.get("memory") is None:
        body.pop("memory", None)
    if body.get("cpus") is None:
        body.pop("cpus", None)
    else:
        try:
            body["cpus"] = float(body["cpus"])
        except (TypeError, ValueError):
            raise InvalidArgument(f"invalid cpus {body['cpus']!r}: want a number") from None
    if isinstance(body.get("share"), str):
        body["share"] = body["share"].split(",")
    return PodSpec.from_dict(body)


def _complete(ctx: PodContext, spec: PodSpec, pod_id: str) -> None:
    """Defaults and the checks that need the network layer, before anything is made."""
    spec.validate()
    if not spec.name:
        spec.name = f"pod-{pod_id[:10]}"
    if not spec.hostname:
        spec.hostname = spec.name[:63].replace("_", "-").strip(".-") or "pod"
    if spec.network not in ("bridge", "host", "none", ""):
        for name in networks_of(spec.network):
            if name != "bridge":
                ctx.networks.get(name)  # NotFound now, before anything is made
    if "net" not in spec.share and spec.network not in ("bridge", ""):
        raise InvalidArgument("--network needs the pod to share its network namespace")


async def create(ctx: PodContext, ns: str, spec: PodSpec) -> Pod:
    pod_id = secrets.token_hex(32)
    _complete(ctx, spec, pod_id)
    pod = Pod(
        id=pod_id,
        namespace=ns,
        spec=spec,
        created=time.time(),
        state=STATE_CREATING,
        state_dir=str(ctx.state / "pods" / pod_id),
    )
    ctx.db.ensure_namespace(ns)
    ctx.store.insert(pod)  # AlreadyExists for a taken name, before anything else
    try:
        await _build(ctx, pod)
    except BaseException as e:
        log.info("pod %s: create failed (%s), undoing", pod.id[:12], e)
        try:
            await asyncio.shield(teardown(ctx, pod))
        except Exception as te:
            # Keep the record, marked: the next start of podkitd finishes the job.
            log.warning("pod %s: undoing a failed create: %s", pod.id[:12], te)
            pod.state = STATE_REMOVING
            ctx.store.update(pod)
        else:
            ctx.store.delete(ns, pod.id)
        raise
    pod.state = STATE_READY
    ctx.store.update(pod)
    ctx.publish(pod, "create")
    return pod


async def _build(ctx: PodContext, pod: Pod) -> None:
    d = pod_dir(pod)
    (d / "ns").mkdir(parents=True, exist_ok=True, mode=0o711)
    await prepare(ctx, pod)
    await make_infra(ctx, pod)


async def make_infra(ctx: PodContext, pod: Pod) -> None:
    """Create the pod's infra container (building the infra image the first time)."""
    async with ctx.infra_lock:  # two first pods at once build one image, not two
        ref = await asyncio.to_thread(infra.ensure_image, ctx.images, ctx.content, pod.namespace)
    pod.spec.infra_image = pod.spec.infra_image or ref
    body: dict[str, Any] = {
        "image": pod.spec.infra_image,
        "name": f"{pod.name}-infra",
        "labels": {POD_LABEL: pod.id, POD_NAME_LABEL: pod.name},
    }
    if pod.spec.infra_seccomp:
        body["seccomp"] = pod.spec.infra_seccomp
    opts = options(ctx, pod, body, infra_container=True)
    rec = await ctx.containers.create(pod.namespace, opts)
    pod.infra_id = id_of(rec)
    ctx.store.update(pod)


def id_of(rec: Record | str | dict[str, Any]) -> str:
    """A container's id from what the containers layer returned for it."""
    if isinstance(rec, str):
        return rec
    if isinstance(rec, dict):
        return str(rec["id"])
    return rec.id
