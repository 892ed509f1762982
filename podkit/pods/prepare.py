"""A pod's kernel pieces: state files, pinned namespaces, /dev/shm, cgroup, network.

``prepare`` makes them — or makes them again after a reboot emptied the state
directory — and is run both by create and before every start of the infra.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from podkit.errors import InvalidArgument, PodkitError
from podkit.network.netns import is_netns
from podkit.network.ports import PortMapping
from podkit.pods import files, sandbox
from podkit.pods.context import NETNS_KIND, PodContext, pod_dir
from podkit.pods.model import DNSConfig, Pod

log = logging.getLogger(__name__)


def networks_of(text: str) -> list[str]:
    """``--network a,b``: the pod's networks, in order (bridge = the default one)."""
    return list(dict.fromkeys(n.strip() for n in (text or "bridge").split(",") if n.strip())) or ["bridge"]


async def prepare(ctx: PodContext, pod: Pod) -> None:
    """Make (or re-make, after a reboot emptied the state dir) the pod's kernel pieces."""
    spec = pod.spec
    d = pod_dir(pod)
    (d / "ns").mkdir(parents=True, exist_ok=True, mode=0o711)
    for name in ("hosts", "resolv.conf", "hostname"):
        (d / name).touch(mode=0o644)
    files.write_in_place(d / "hostname", spec.hostname + "\n")
    files.write_in_place(d / "resolv.conf", files.resolv_conf(_dns(pod)))
    pins: dict[str, Path] = {
        k: d / "ns" / k for k in ("ipc", "uts") if k in spec.share and not sandbox.is_pinned(d / "ns" / k, k)
    }
    await asyncio.to_thread(sandbox.pin_namespaces, pins, spec.hostname)
    if "ipc" in spec.share:
        await asyncio.to_thread(sandbox.mount_shm, d / "shm", spec.shm_size)
    if not pod.cgroup_path or not ctx.cgroups.exists(pod.cgroup_path):
        await cgroup_create(ctx, pod)
    if "net" in spec.share and spec.network != "host":
        await network_up(ctx, pod)
    if spec.sysctls:
        paths = {"net": pod.netns_path, "ipc": str(d / "ns" / "ipc"), "uts": str(d / "ns" / "uts")}
        try:
            await asyncio.to_thread(sandbox.apply_sysctls, spec.sysctls, paths)
        except OSError as e:
            raise InvalidArgument(f"cannot set the pod's sysctls: {e.strerror or e}") from None
    write_hosts(ctx, pod)


async def network_up(ctx: PodContext, pod: Pod) -> None:
    """The pod's netns, pinned at ``netns_path(pod.id, "pod")``, and its attachments.

    On exactly one network (as a container's start) the pod takes a pre-warmed sandbox
    of the network layer's pool (network/pool.py) — already attached: no netns to make,
    no CNI ADD; published ports are podkit's own iptables rules (network/portfwd.py),
    or portmap's ADD on a network from a user's CNI file that lists it — and pins its
    netns as its own, so that everything reading the pod's pin (members joining, the
    CRI, sysctls) finds it; otherwise (several networks, none, the pool empty or off) a
    netns of its own gets the usual CNI ADD."""
    path = ctx.networks.netns_path(pod.id, NETNS_KIND)
    if is_netns(path) and pod.netns_path:
        return
    # Whatever is left of an earlier network — a reboot took the pin (and so the
    # interfaces), or a crash came between the steps below — goes first: CNI forgets
    # the old interfaces, a sandbox still held is given back, a stray pin unmounted.
    try:
        await ctx.networks.detach(pod.id)
    except PodkitError as e:
        log.warning("pod %s: forgetting the network of its lost netns: %s", pod.id[:12], e.message)
    if os.path.lexists(path):
        await asyncio.to_thread(ctx.networks.remove_netns, pod.id, NETNS_KIND)
    # Interfaces eth0, eth1... one per network; published ports go to the first.
    nets = (
        []
        if pod.spec.network == "none"
        else ["" if n == "bridge" else n for n in networks_of(pod.spec.network)]
    )
    res = await _warm(ctx, pod, nets[0]) if len(nets) == 1 else None
    if res is None:
        pod.netns_path = await asyncio.to_thread(ctx.networks.create_netns, pod.id, NETNS_KIND)
        ctx.store.update(pod)
        if nets:
            res = await ctx.networks.attach(
                pod.id,
                pod.netns_path,
                nets,
                pod.spec.ports,
                kind=NETNS_KIND,
                namespace=pod.namespace,
                dns_names=[pod.name],
            )
        else:
            # none: only loopback.
            await ctx.networks.loopback_up(pod.id, pod.netns_path)
            res = []
    pod.dns_server = next((r["dns_server"] for r in res if r.get("dns_server")), "")
    if pod.dns_server:
        files.write_in_place(pod_dir(pod) / "resolv.conf", files.resolv_conf(_dns(pod)))
    pod.ips = [f"{r['ip']}/{r['prefix']}" for r in res if r.get("ip")]
    pod.gateway = next((r["gateway"] for r in res if r.get("gateway")), "")
    pod.ports = [PortMapping.from_dict(p) for r in res for p in r.get("ports", [])]
    ctx.store.update(pod)


async def _warm(ctx: PodContext, pod: Pod, network: str) -> list[dict[str, Any]] | None:
    """Take a warm sandbox of ``network`` and pin its netns as the pod's; None when the
    pool has none. The sandbox's row names the pod as its holder before the pin exists,
    so a crash anywhere after the take is undone by the pod's tear-down (a pod being
    created) or its next start (the check above), or released by recovery (a pod gone)."""
    sb = await ctx.networks.take_sandbox(network, pod.id, [pod.name], pod.spec.ports, kind=NETNS_KIND)
    if sb is None:
        return None
    try:
        pod.netns_path = await asyncio.to_thread(ctx.networks.pin_netns, pod.id, sb.netns, NETNS_KIND)
    except BaseException:
        await asyncio.shield(ctx.networks.release_sandbox(sb.id))
        raise
    ctx.store.update(pod)
    return [sb.attachment]


def _dns(pod: Pod) -> DNSConfig:
    """The pod's resolvers: its own if given, else aardvark-dns on its user network's
    gateway (the pod resolves its neighbours), else the host's."""
    if pod.dns_server and not pod.spec.dns.servers:
        return dataclasses.replace(pod.spec.dns, servers=[pod.dns_server])
    return pod.spec.dns


def write_hosts(ctx: PodContext, pod: Pod) -> None:
    names = [r.name for r in ctx.members(pod) if not r.infra] if ctx.containers else []
    text = files.hosts_file(pod.spec.hostname, pod.ips, [pod.name, *names], pod.spec.add_hosts)
    if pod.ips:
        try:
            ctx.networks.set_dns_names(pod.id, [pod.name, *names])
        except OSError as e:
            log.warning("pod %s: could not update its DNS names: %s", pod.id[:12], e)
    try:
        files.write_in_place(pod_dir(pod) / "hosts", text)
    except FileNotFoundError:  # the pod is being torn down
        log.debug("pod %s: no hosts file to rewrite", pod.id[:12])


async def cgroup_create(ctx: PodContext, pod: Pod) -> None:
    if not pod.cgroup_path:
        parent = pod.spec.cgroup_parent.strip("/") or ctx.cgroup_root
        # Recorded before it exists: a crash right after mkdir still finds it to remove.
        # (The cgroup tree is host-wide, shared with other daemons: never sweep it by
        # listing, only remove what our own records name.)
        pod.cgroup_path = f"/{parent}/{pod.id}"
        ctx.store.update(pod)
    from podkit.runtime.cgroups import ParentLimits

    limits = ParentLimits(memory=pod.spec.memory or None, cpus=pod.spec.cpus or None)
    await asyncio.to_thread(ctx.cgroups.create_parent, pod.cgroup_path, limits)


async def cgroup_remove(ctx: PodContext, pod: Pod) -> None:
    if not pod.cgroup_path:
        return
    from podkit.runtime.cgroups import REMOVE_SETTLE

    # After the members' removal: what is still inside is theirs, still exiting.
    await asyncio.to_thread(ctx.cgroups.remove, pod.cgroup_path, settle=REMOVE_SETTLE, kill=True)
