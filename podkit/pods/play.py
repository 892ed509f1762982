"""``play kube``: run the pods of a Kubernetes YAML plan, all or nothing; ``--down`` removes them."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from podkit.errors import Conflict, NotFound
from podkit.pods import kube
from podkit.pods.context import KUBE_LABEL, PodContext
from podkit.pods.create import create
from podkit.pods.members import add_container
from podkit.pods.model import Pod
from podkit.pods.remove import remove
from podkit.pods.start import start
from podkit.pods.views import to_dict

log = logging.getLogger(__name__)


async def play_kube(ctx: PodContext, ns: str, text: str, start: bool = True) -> dict[str, Any]:
    plans = await asyncio.to_thread(kube.parse, text)
    for p in plans:  # all-or-nothing on names: fail before creating anything
        try:
            ctx.get(ns, p.spec.name)
        except NotFound:
            continue
        raise Conflict(f"pod {p.spec.name!r} already exists: remove it first (podkit play kube --down FILE)")
    out: list[dict[str, Any]] = []
    warnings: list[str] = []
    made: list[str] = []
    try:
        for plan in plans:
            warnings.extend(plan.warnings)
            out.append(await _play_one(ctx, ns, plan, start, made))
    except BaseException as e:
        for pid in made:
            try:
                await asyncio.shield(remove(ctx, ns, pid, force=True, timeout=0))
            except Exception as undo:
                log.warning("play kube: removing pod %s after %r failed: %s", pid[:12], e, undo)
        raise
    return {"pods": out, "warnings": warnings}


async def _play_one(
    ctx: PodContext, ns: str, plan: kube.KubePod, start_it: bool, made: list[str]
) -> dict[str, Any]:
    spec = plan.spec
    spec.labels = {**spec.labels, KUBE_LABEL: plan.kind.lower()}
    pod = await create(ctx, ns, spec)
    made.append(pod.id)
    vol_dir = ctx.root / "pods" / pod.id / "volumes"
    for name in plan.empty_dirs:
        (vol_dir / name).mkdir(parents=True, exist_ok=True, mode=0o777)
        os.chmod(vol_dir / name, 0o777)  # any runAsUser may write, as in Kubernetes
        pod.volumes[name] = str(vol_dir / name)
    ctx.store.update(pod)
    for kc in plan.containers:
        await add_container(ctx, ns, pod.id, container_body(pod, kc))
    if start_it:
        await start(ctx, ns, pod.id)
    return to_dict(ctx, ctx.get(ns, pod.id))


def container_body(pod: Pod, kc: kube.KubeContainer) -> dict[str, Any]:
    """The container create body of one container of a plan (bind sources made here)."""
    body: dict[str, Any] = {
        "image": kc.image,
        "name": f"{pod.name}-{kc.name}",
        "env": kc.env,
        "labels": {"io.podkit.kube.container": kc.name},
        "read_only": kc.read_only,
        "privileged": kc.privileged,
        "cap_add": kc.cap_add,
        "cap_drop": kc.cap_drop,
        "tty": kc.tty,
        "open_stdin": kc.stdin,
        "mounts": [],
    }
    if kc.entrypoint is not None:
        body["entrypoint"] = kc.entrypoint
        body["cmd"] = kc.cmd or []
    elif kc.cmd is not None:
        body["cmd"] = kc.cmd
    optional = {
        "workdir": kc.workdir,
        "user": kc.user,
        "memory": kc.memory,
        "cpus": kc.cpus,
    }
    body.update({k: v for k, v in optional.items() if v})
    if kc.no_new_privileges is not None:
        body["no_new_privileges"] = kc.no_new_privileges
    for m in kc.mounts:
        src = pod.volumes[m.volume] if m.empty_dir else m.source
        if m.create == "dir":
            os.makedirs(src, exist_ok=True)
        elif m.create == "file" and not os.path.exists(src):
            os.makedirs(os.path.dirname(src), exist_ok=True)
            with open(src, "a"):
                pass
        body["mounts"].append({"type": "bind", "source": src, "target": m.target, "readonly": m.readonly})
    return body


async def down_kube(ctx: PodContext, ns: str, text: str) -> dict[str, Any]:
    plans = await asyncio.to_thread(kube.parse, text)
    removed, missing = [], []
    for plan in plans:
        try:
            pod = ctx.get(ns, plan.spec.name)
        except NotFound:
            missing.append(plan.spec.name)
            continue
        await remove(ctx, ns, pod.id, force=True, timeout=0)
        removed.append(pod.name)
    return {"removed": removed, "missing": missing}
