"""Rename a container, and change its resource limits or restart policy in place."""

from __future__ import annotations

from typing import Any

from podkit.containers.context import ACTIVE, ContainerContext
from podkit.containers.options import CreateOptions, validate_name
from podkit.errors import Conflict, InvalidArgument

# The first four are docker's; the cpu period/quota, cpusets and swap the CRI's.
_LIMITS = (
    *("memory", "cpus", "cpu_shares", "pids_limit"),
    *("memory_swap", "cpu_period", "cpu_quota", "cpuset_cpus", "cpuset_mems"),
)
_UPDATABLE = (*_LIMITS, "restart")


async def rename(ctx: ContainerContext, ns: str, ref: str, new: str) -> None:
    rec = ctx.resolve(ns, ref)
    new = validate_name(new)
    ctx.store.rename(rec.id, ns, new)
    ctx.publish(ns, "container", "rename", rec.id, name=new, oldName=rec.name)


async def set_network(
    ctx: ContainerContext, ns: str, ref: str, network: str, aliases: list[str] | None = None
) -> None:
    """Change the network a container that is not running will start on (the Docker
    API's connect/disconnect before start, as docker-compose does): a user network's
    name, ``bridge`` or ``none``. Running containers keep theirs until they stop."""
    rec = ctx.resolve(ns, ref)
    async with ctx.lock(rec.id):
        rec = ctx.store.get(rec.id) or rec
        if rec.state in ACTIVE:
            raise Conflict(f"container {rec.name} is {rec.state}: its network cannot change now")
        if network not in ("bridge", "none"):
            if ctx.networks is None:
                raise InvalidArgument("networking is not available in this daemon")
            ctx.networks.get(network)  # NotFound with a clear message
        cfg = dict(rec.config)
        cfg["network"] = network
        if aliases is not None or network in ("bridge", "none"):
            # Checked as create checks them (user networks only).
            CreateOptions.parse({"image": rec.image, "network": network, "network_aliases": aliases or []})
            cfg["network_aliases"] = list(aliases or [])
        ctx.store.update(rec.id, config=cfg)


async def update(ctx: ContainerContext, ns: str, ref: str, body: dict[str, Any]) -> None:
    """Change resource limits (live, through ``runc update``) and/or the restart policy."""
    from podkit.runtime import spec as S

    rec = ctx.resolve(ns, ref)
    unknown = sorted(set(body) - set(_UPDATABLE))
    if unknown:
        raise InvalidArgument(f"cannot update {', '.join(unknown)}: only {', '.join(_UPDATABLE)}")
    o = CreateOptions.parse({"image": rec.image, **{k: body[k] for k in _UPDATABLE if k in body}})
    cfg = dict(rec.config)
    changed = {k: getattr(o, k) for k in _LIMITS if getattr(o, k) is not None}
    if "restart" in body:
        if rec.config.get("auto_remove") and o.restart["name"] != "no":
            raise InvalidArgument("a container run with --rm cannot have a restart policy")
        cfg["restart"] = o.restart
    # --cpus and --cpu-quota are two spellings of one limit: the one given replaces the other,
    # else the next start would find both and refuse them.
    if "cpus" in changed:
        cfg.pop("cpu_quota", None)
    if "cpu_quota" in changed:
        cfg.pop("cpus", None)
    cfg.update(changed)
    merged = CreateOptions.parse(
        {"image": rec.image, **{k: cfg[k] for k in _LIMITS if cfg.get(k) is not None}}
    )
    # A group's limits go to the runtime together (a period alone means nothing to the
    # kernel without its quota; swap is checked against the memory limit in force).
    groups = (("memory", "memory_swap"), ("cpus", "cpu_quota", "cpu_period"))
    live = dict(changed)
    for group in groups:
        if any(k in changed for k in group):
            live.update({k: getattr(merged, k) for k in group})
    res = S.Resources(
        memory=live.get("memory"),
        memory_swap=live.get("memory_swap"),
        cpus=live.get("cpus"),
        cpu_shares=live.get("cpu_shares"),
        pids_limit=live.get("pids_limit"),
        cpu_quota=live.get("cpu_quota"),
        cpuset_cpus=live.get("cpuset_cpus"),
        cpuset_mems=live.get("cpuset_mems"),
    )
    if live.get("cpu_period"):
        res.cpu_period = live["cpu_period"]
    oci = res.to_oci()  # checked (swap below memory, cpus with a quota...) even when not running
    if changed and rec.state in ("running", "paused"):
        await ctx.rt.update(rec.id, oci)
    ctx.store.update(rec.id, config=cfg)
    ctx.publish(ns, "container", "update", rec.id, name=rec.name)
