"""A container's namespaces and network attachment at start, and their release at exit.

``host`` and ``none`` need no attachment; ``container:ID`` joins a running container's
network namespace; ``pod`` (or a ``network`` namespace path from a pod) is the pod's
business. Otherwise the container gets a pinned netns of its own, attached through CNI
to the bridge (or the named network), with its published ports.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from podkit.containers.context import ACTIVE, ContainerContext
from podkit.containers.ns_pins import NamespacePins
from podkit.containers.options import CreateOptions
from podkit.containers.store import Record
from podkit.errors import Conflict, InvalidArgument, NotFound

log = logging.getLogger(__name__)

Namespaces = dict[str, str | None]  # kind -> a path to join, "host", or None: a new one
NetworkUp = tuple[dict[str, Any], Namespaces, Callable[[], Awaitable[None]]]


async def _nothing() -> None:
    return None


async def network_up(
    ctx: ContainerContext, rec: Record, opts: CreateOptions, pins: NamespacePins
) -> NetworkUp:
    """Namespaces to create/join, and the network attachment; with its undo. Another
    container's namespaces are joined through ``pins`` (held until runc create returns)."""
    nss: Namespaces = {"pid": None, "ipc": None, "uts": None, "mount": None, "network": None}
    nss.update(opts.namespaces)
    _joined(ctx, nss, pins)
    _pid_ipc(ctx, opts, nss, pins)
    if opts.uts == "host":
        nss["uts"] = "host"
    if cgroupns_mode(opts.cgroupns, bool(opts.pod_id or opts.namespaces)) == "private":
        nss["cgroup"] = None
    info: dict[str, Any] = {"mode": opts.network}
    mode = opts.network
    if mode == "host":
        nss["network"] = "host"
        nss["uts"] = "host" if not (opts.hostname or opts.domainname) or opts.uts == "host" else None
        return info, nss, _nothing
    if mode == "none" or mode == "pod" or "network" in opts.namespaces:
        return info, nss, _nothing
    if mode.startswith("container:"):
        other = ctx.store.get(mode.split(":", 1)[1])
        if other is None or other.state not in ("running", "paused") or not other.pid:
            raise Conflict(
                f"cannot join the network of container {mode.split(':', 1)[1][:12]}: it is not running"
            )
        nss["network"] = pins.pin(
            ctx.rt.process(other.id, other.pid), "net", f"--network container:{other.name}"
        )
        info["ip"] = (other.network or {}).get("ip")
        return info, nss, _nothing
    networks = ctx.networks
    if networks is None:
        return info, nss, _nothing
    from podkit.network.ports import PortMapping

    net_name = networks.resolve_name(mode if mode != "bridge" else "")
    if not opts.ip and not opts.networks and not opts.mac_address:
        # A pre-warmed sandbox (network/pool.py): no netns to make, no CNI ADD to run
        # but portmap's for published ports. One network, any address: a fixed --ip or
        # --mac-address or more networks attach the usual way. On a user network the take
        # registers the container's names (and aliases) with its DNS server, as attach would.
        sb = await networks.take_sandbox(
            net_name,
            rec.id,
            [*_own_names(rec, opts.hostname), *opts.network_aliases],
            [PortMapping.from_dict(p) for p in opts.ports],
        )
        if sb is not None:
            att = sb.attachment
            nss["network"] = sb.netns
            info.update(
                {
                    "netns": sb.netns,
                    "ip": att.get("ip"),
                    "gateway": att.get("gateway"),
                    "mac": att.get("mac"),
                    "network": att.get("network"),
                    "ports": att.get("ports", []),
                    "attachments": [att],
                    "sandbox": sb.id,
                    "dns_server": att.get("dns_server"),
                }
            )

            async def give_back() -> None:
                await network_down(ctx, rec.id)

            return info, nss, give_back
    netns = await asyncio.to_thread(networks.create_netns, rec.id)
    try:
        ports = [PortMapping.from_dict(p) for p in opts.ports]
        net = mode if mode != "bridge" else ""
        atts: list[dict[str, Any]] = await networks.attach(
            rec.id,
            netns,
            [net, *opts.networks],
            ports=ports,
            namespace=rec.namespace,
            dns_names=_own_names(rec, opts.hostname),
            aliases={net: opts.network_aliases} if opts.network_aliases else None,
            ips={net: opts.ip} if opts.ip else None,
            macs={net: opts.mac_address} if opts.mac_address else None,
            gateway=_gateway(net, opts),
        )
    except BaseException:
        try:
            await asyncio.to_thread(networks.remove_netns, rec.id)
        except Exception as e:  # noqa: BLE001 - undoing: log it, the attach error is the one raised
            log.warning("undoing the network of %s: removing netns %s failed: %r", rec.id[:12], netns, e)
        raise
    nss["network"] = netns
    first = atts[0] if atts else {}
    info.update(
        {
            "netns": netns,
            "ip": first.get("ip"),
            "gateway": first.get("gateway"),
            "mac": first.get("mac"),
            "network": first.get("network"),
            "ports": first.get("ports", []),
            "attachments": atts,
            "dns_server": next((a["dns_server"] for a in atts if a.get("dns_server")), None),
        }
    )

    async def undo() -> None:
        await network_down(ctx, rec.id)

    return info, nss, undo


# The OCI namespace kinds and their files under /proc/<pid>/ns.
_NS_FILES = {"network": "net", "pid": "pid", "ipc": "ipc", "uts": "uts", "mount": "mnt", "cgroup": "cgroup"}


def _joined(ctx: ContainerContext, nss: Namespaces, pins: NamespacePins) -> None:
    """``container:<id>`` namespace values (the CRI's pid namespace of the sandbox's
    infra or of a target container): that container's, resolved now and pinned."""
    for kind, where in list(nss.items()):
        if not where or not where.startswith("container:") or kind not in _NS_FILES:
            continue
        ref = where.split(":", 1)[1]
        other = ctx.store.get(ref)
        if other is None or other.state not in ("running", "paused") or not other.pid:
            raise Conflict(f"cannot join the {kind} namespace of container {ref[:12]}: it is not running")
        nss[kind] = pins.pin(
            ctx.rt.process(other.id, other.pid),
            _NS_FILES[kind],
            f"the {kind} namespace of container {other.name}",
        )


def cgroupns_mode(given: str, in_pod: bool) -> str:
    """``--cgroupns``, else docker's default: private on cgroup v2, the host's on v1
    (a pod member stays where the pod is)."""
    if given:
        return given
    from podkit.runtime.spec_host import cgroup_v2

    return "private" if cgroup_v2() and not in_pod else "host"


def _pid_ipc(ctx: ContainerContext, opts: CreateOptions, nss: Namespaces, pins: NamespacePins) -> None:
    """``--pid`` / ``--ipc``: the host's namespace, or a running container's (pinned)."""
    for key, ns_file, flag in (("pid", "pid", "--pid"), ("ipc", "ipc", "--ipc")):
        mode = getattr(opts, key)
        if mode == "host":
            nss[key] = "host"
        elif mode.startswith("container:"):
            ref = mode.split(":", 1)[1]
            other = ctx.store.get(ref)
            if other is None or other.state not in ("running", "paused") or not other.pid:
                raise Conflict(f"{flag} container:{ref[:12]}: that container is not running")
            if key == "ipc" and other.config.get("ipc") != "shareable":
                raise Conflict(
                    f"--ipc container:{other.name}: its IPC namespace is not shareable "
                    "(run it with --ipc shareable)"
                )
            nss[key] = pins.pin(
                ctx.rt.process(other.id, other.pid), ns_file, f"{flag} container:{other.name}"
            )


async def network_down(ctx: ContainerContext, cid: str) -> None:
    """Detach the container from its networks and drop its netns (each failure logged)."""
    networks = ctx.networks
    if networks is None:
        return
    sid = networks.sandbox_held_by(cid)
    if sid is not None:
        try:
            await networks.release_sandbox(sid)
        except Exception as e:  # noqa: BLE001 - releasing: log it, recovery retries it
            log.warning("releasing the network sandbox %s of %s failed: %r", sid[:12], cid[:12], e)
        return
    try:
        await networks.detach(cid)
    except Exception as e:  # noqa: BLE001 - releasing: log it and go on with the netns
        log.warning("releasing the network of %s: detach failed: %r", cid[:12], e)
    # No pin of its own (--network none, host, a pod's, a warm sandbox's; or released
    # already): no worker thread's turn. Made and dropped under the container's lock.
    if not os.path.lexists(networks.netns_path(cid)):
        return
    try:
        await asyncio.to_thread(networks.remove_netns, cid)
    except Exception as e:  # noqa: BLE001 - releasing: log it, recovery retries it
        log.warning("releasing the network of %s: removing its netns failed: %r", cid[:12], e)


def _own_names(rec: Record, hostname: str | None) -> list[str]:
    """The names a container answers to on each of its user networks: its name and, as
    docker's (DNSNames), its --hostname (the short id the network layer adds)."""
    return [rec.name, hostname] if hostname and hostname != rec.name else [rec.name]


def _gateway(first: str, opts: CreateOptions) -> str | None:
    """The network whose gateway is the default route: the highest GwPriority, the first
    network's on a tie (None: the first's, as always)."""
    if not opts.gw_priority or not opts.networks:
        return None
    order = [opts.network, *opts.networks]
    best = max(range(len(order)), key=lambda i: (opts.gw_priority.get(order[i], 0), -i))
    return None if best == 0 else order[best]


async def connect(
    ctx: ContainerContext, ns: str, ref: str, network: str, aliases: list[str], ip: str | None
) -> None:
    """``network connect``: a running container gets the next interface now; any container
    keeps the network in its options, so that it is attached at every start."""
    networks = ctx.networks
    if networks is None:
        raise InvalidArgument("networking is not available in this daemon")
    rec = ctx.resolve(ns, ref)
    async with ctx.lock(rec.id):
        rec = ctx.store.get(rec.id) or rec
        n = networks.get(network)
        mode = str(rec.config.get("network") or "bridge")
        if mode in ("host", "none", "pod") or mode.startswith("container:"):
            raise Conflict(f"container {rec.name} has network mode {mode}: it cannot join other networks")
        current = [mode, *(rec.config.get("networks") or [])]
        names = {networks.resolve_name("" if m == "bridge" else m) for m in current}
        if n.name in names:
            raise Conflict(f"container {rec.name} is already connected to network {n.name}")
        if rec.state in ACTIVE:
            att = await networks.connect(
                rec.id, n.name, ip, _own_names(rec, str(rec.config.get("hostname") or "")), aliases
            )
            net = dict(rec.network or {})
            net["attachments"] = [*(net.get("attachments") or []), att]
            ctx.store.update(rec.id, network=net)
        elif ip:
            raise InvalidArgument("a fixed --ip on connect needs a running container")
        cfg = dict(rec.config)
        cfg["networks"] = [*(cfg.get("networks") or []), n.name]
        ctx.store.update(rec.id, config=cfg)
    ctx.publish(ns, "container", "connect", rec.id, network=n.name)


async def disconnect(ctx: ContainerContext, ns: str, ref: str, network: str) -> None:
    """``network disconnect``: CNI DEL of that interface if running; forgotten for later starts."""
    networks = ctx.networks
    if networks is None:
        raise InvalidArgument("networking is not available in this daemon")
    rec = ctx.resolve(ns, ref)
    async with ctx.lock(rec.id):
        rec = ctx.store.get(rec.id) or rec
        n = networks.get(network)
        extra = [networks.resolve_name(m) for m in rec.config.get("networks") or []]
        mode = str(rec.config.get("network") or "bridge")
        primary = mode not in ("host", "none", "pod") and not mode.startswith("container:")
        is_primary = primary and networks.resolve_name("" if mode == "bridge" else mode) == n.name
        if n.name not in extra and not is_primary:
            raise NotFound(f"container {rec.name} is not connected to network {n.name}")
        if rec.state in ACTIVE:
            await networks.disconnect(rec.id, n.name)
            net = dict(rec.network or {})
            net["attachments"] = [a for a in net.get("attachments") or [] if a.get("network") != n.name]
            if is_primary:
                for k in ("ip", "gateway", "mac", "network"):
                    net[k] = None
            ctx.store.update(rec.id, network=net)
        cfg = dict(rec.config)
        cfg["networks"] = [m for m in extra if m != n.name]
        if is_primary:
            # The first remaining network becomes the primary one at the next start.
            rest = cfg["networks"]
            cfg["network"] = rest.pop(0) if rest else "none"
            cfg["network_aliases"] = []
        ctx.store.update(rec.id, config=cfg)
    ctx.publish(ns, "container", "disconnect", rec.id, network=n.name)
