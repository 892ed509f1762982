"""A pod's kernel pieces: state files, pinned namespaces, /dev/shm, cgroup, network.

``prepare`` makes them — or makes them again after a reboot emptied the state
directory — and is run both by create and before every start of the infra.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

from podkit.errors import InvalidArgument, PodkitError
from podkit.network.netns import is_netns
from podkit.network.ports import PortMapping
from podkit.pods import files, sandbox
from podkit.pods.context import NETNS_KIND, PodContext, pod_dir
from podkit.pods.model import Pod

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
    files.write_in_place(d / "resolv.conf", files.resolv_conf(spec.dns))
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
    path = ctx.networks.netns_path(pod.id, NETNS_KIND)
    if is_netns(path) and pod.netns_path:
        return
    if not is_netns(path):
        # A reboot took the pin (and so the interfaces) away: let CNI forget the old ones.
        try:
            await ctx.networks.detach(pod.id)
        except PodkitError as e:
            log.warning("pod %s: forgetting the network of its lost netns: %s", pod.id[:12], e.message)
        path = ctx.networks.create_netns(pod.id, NETNS_KIND)
    pod.netns_path = path
    ctx.store.update(pod)
    # Interfaces eth0, eth1... one per network; published ports go to the first.
    nets = (
        []
        if pod.spec.network == "none"
        else ["" if n == "bridge" else n for n in networks_of(pod.spec.network)]
    )
    if nets:
        res = await ctx.networks.attach(
            pod.id, path, nets, pod.spec.ports, kind=NETNS_KIND, namespace=pod.namespace, dns_names=[pod.name]
        )
        server = next((r["dns_server"] for r in res if r.get("dns_server")), "")
        if server and not pod.spec.dns.servers:
            # aardvark-dns on the user network's gateway: the pod resolves its neighbours.
            dns = dataclasses.replace(pod.spec.dns, servers=[server])
            files.write_in_place(pod_dir(pod) / "resolv.conf", files.resolv_conf(dns))
        pod.ips = [f"{r['ip']}/{r['prefix']}" for r in res if r.get("ip")]
        pod.gateway = next((r["gateway"] for r in res if r.get("gateway")), "")
        pod.ports = [PortMapping.from_dict(p) for r in res for p in r.get("ports", [])]
    else:
        # none: only loopback.
        await ctx.networks.loopback_up(pod.id, path)
    ctx.store.update(pod)


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
    await asyncio.to_thread(ctx.cgroups.remove, pod.cgroup_path)
