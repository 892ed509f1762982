"""Wiring an owner's netns into networks: loopback, then one CNI ADD per network.

Each attachment is recorded in SQLite *before* its ADD runs, so that ``detach``
— or the next start of the daemon after a crash — can always run DEL.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from podkit.errors import Conflict, InvalidArgument, NotFound, PodkitError
from podkit.network import names as dns_records
from podkit.network import portfwd
from podkit.network.cni import CNI_VERSION
from podkit.network.config import Network
from podkit.network.context import NetworkContext
from podkit.network.detach import detach
from podkit.network.hostports import close, resolve_ports
from podkit.network.masquerade import drop_attachment, masq_up
from podkit.network.netns import is_netns
from podkit.network.networks import get, resolve_name
from podkit.network.ports import PortMapping
from podkit.network.summary import attached_ip, summary

log = logging.getLogger(__name__)

LOOPBACK_CONF: dict[str, Any] = {
    "cniVersion": CNI_VERSION,
    "name": "podkit-loopback",
    "plugins": [{"type": "loopback"}],
}


async def loopback_up(ctx: NetworkContext, owner_id: str, netns_path: str) -> None:
    """Only bring lo up in a netns (``--network none``): nothing to undo later."""
    if not is_netns(netns_path):
        raise InvalidArgument(f"{netns_path} is not a network namespace")
    await ctx.cni.add(LOOPBACK_CONF, owner_id, netns_path, "lo", cache=False)


async def attach(
    ctx: NetworkContext,
    owner_id: str,
    netns_path: str,
    networks: list[str],
    ports: Iterable[PortMapping] = (),
    ifname_base: str = "eth",
    kind: str = "container",
    namespace: str = "",
    cni_args: str = "",
    ips: dict[str, str] | None = None,
    dns_names: list[str] | None = None,
    aliases: dict[str, list[str]] | None = None,
    macs: dict[str, str] | None = None,
    gateway: str | None = None,
) -> list[dict[str, Any]]:
    """See ``NetworkManager.attach``."""
    if not owner_id:
        raise InvalidArgument("attach needs an owner id")
    if not is_netns(netns_path):
        raise InvalidArgument(f"{netns_path} is not a network namespace")
    names = list(dict.fromkeys(resolve_name(ctx, n) for n in (networks or [""])))
    nets = [get(ctx, n) for n in names]
    if ctx.store.attachments(owner_id):
        raise Conflict(f"{owner_id[:12]} is already attached to networks")
    fixed = fixed_ips(ctx, nets, ips or {})
    resolved, socks = resolve_ports(ctx, ports)
    per_net = {resolve_name(ctx, k): list(v) for k, v in (aliases or {}).items()}
    mac_of = {resolve_name(ctx, k): v for k, v in (macs or {}).items()}
    gw = resolve_name(ctx, gateway) if gateway else ""
    if gw and gw not in names:
        raise InvalidArgument(f"the default route's network {gateway!r} is not one of those attached")
    req = _Request(
        owner_id, netns_path, kind, namespace, cni_args, fixed, list(dns_names or []), per_net, mac_of, gw
    )
    try:
        out = await _attach_all(ctx, req, nets, resolved, ifname_base)
    except BaseException:
        close(socks)
        raise
    ctx.reserved.setdefault(owner_id, []).extend(socks)
    log.debug("attached %s to %s", owner_id[:12], ", ".join(names))
    return out


@dataclass(frozen=True)
class _Request:
    """The parts of one attach call that every one of its networks shares."""

    owner_id: str
    netns: str
    kind: str
    namespace: str
    cni_args: str
    fixed: dict[str, str]  # network name -> requested IP
    dns_names: list[str]  # the names it answers to on every user network
    aliases: dict[str, list[str]]  # network name -> names on that network only
    macs: dict[str, str] = field(default_factory=dict)  # network name -> requested MAC
    gateway: str = ""  # the network giving the default route ("": the first)

    def args_for(self, network: str) -> str:
        if network not in self.fixed and network not in self.macs:
            return self.cni_args
        # host-local takes a requested address from CNI_ARGS IP=, the bridge plugin a MAC from MAC=.
        ip = f"IP={self.fixed[network]}" if network in self.fixed else ""
        mac = f"MAC={self.macs[network]}" if network in self.macs else ""
        return ";".join(x for x in ("IgnoreUnknown=1", ip, mac, self.cni_args) if x)


async def _attach_all(
    ctx: NetworkContext, req: _Request, nets: list[Network], resolved: list[PortMapping], ifname_base: str
) -> list[dict[str, Any]]:
    """Loopback, then each network in order; on any failure DEL what was added."""
    await ctx.cni.add(LOOPBACK_CONF, req.owner_id, req.netns, "lo", cache=False)
    out: list[dict[str, Any]] = []
    try:
        for i, n in enumerate(nets):
            # Published ports go to the first network only.
            out.append(await _attach_one(ctx, req, n, f"{ifname_base}{i}", resolved if i == 0 else []))
    except BaseException as e:
        try:
            await detach(ctx, req.owner_id)
        except Exception as undo:
            log.warning(
                "undo of the attachments of %s after %r failed: %s", req.owner_id[:12], e, _message(undo)
            )
        raise
    return out


async def _attach_one(
    ctx: NetworkContext, req: _Request, n: Network, ifname: str, pm: list[PortMapping]
) -> dict[str, Any]:
    # Published ports are podkit's own rules (portfwd.py) after the ADD, but on a network
    # whose user's CNI file lists portmap: only then is portmap in this attachment's list
    # (which is recorded with it, so DEL runs exactly what ADD ran).
    use_portmap = bool(pm) and n.portmap is not None
    conflist = n.conflist(
        str(ctx.ipam_dir),
        firewall=ctx.firewall,
        portmap=use_portmap,
        plugin_masq=False,
        default_route=(n.name == req.gateway) if req.gateway else not ctx.store.attachments(req.owner_id),
    )
    rc = {"portMappings": [p.to_cni() for p in pm]}
    async with ctx.net_lock(n.id):
        if ctx.store.by_name(n.name) is None:
            raise NotFound(f"network {n.name} was removed")
        ctx.store.add_attachment(
            req.owner_id, ifname, req.kind, req.namespace, n, req.netns, conflist, [p.to_dict() for p in pm]
        )
        try:
            await masq_up(ctx, n)
        except BaseException:
            ctx.store.drop_attachment(req.owner_id, ifname)
            raise
    try:
        result = await ctx.cni.add(conflist, req.owner_id, req.netns, ifname, rc, args=req.args_for(n.name))
    except BaseException:
        # ADD undoes itself with DEL; only if that DEL failed too is a cache
        # entry left, and then the row stays so that detach can retry it.
        if ctx.cni.cached(n.name, req.owner_id, ifname) is None:
            await drop_attachment(ctx, n.id, req.owner_id, ifname)
        raise
    out = summary(n.name, n.id, ifname, req.netns, result, pm)
    if pm and not use_portmap:
        # A failure here is undone by the caller's detach, which removes the rules too.
        await ctx.fwd.add(portfwd.forward(n, req.owner_id, pm, str(out.get("ip") or "")), n.bridge)
    ctx.store.set_result(req.owner_id, ifname, result)
    ctx.event(req.namespace, "connect", n.id, n.name, req.owner_id, req.kind)
    names = [*req.dns_names, *req.aliases.get(n.name, [])]
    if dns_records.add(ctx, n, req.owner_id, str(out.get("ip") or ""), names):
        # The owner's resolv.conf points here: aardvark on the gateway answers its names.
        out["dns_server"] = n.gateway
    return out


async def connect(
    ctx: NetworkContext,
    owner_id: str,
    network: str,
    ip: str | None = None,
    dns_names: list[str] | None = None,
    aliases: list[str] | None = None,
) -> dict[str, Any]:
    """See ``NetworkManager.connect``: one more interface in an attached owner's netns."""
    atts = ctx.store.attachments(owner_id)
    if not atts:
        raise Conflict(
            f"{owner_id[:12]} has no network of its own to add to (network mode none, host or none yet)"
        )
    n = get(ctx, resolve_name(ctx, network))
    if any(a["network_id"] == n.id for a in atts):
        raise Conflict(f"{owner_id[:12]} is already connected to network {n.name}")
    first = atts[0]
    if not is_netns(first["netns"]):
        raise Conflict(f"the network namespace of {owner_id[:12]} is gone: it is not running")
    base = first["ifname"].rstrip("0123456789") or "eth"
    used = {a["ifname"] for a in atts}
    ifname = next(f"{base}{i}" for i in range(len(used) + 1) if f"{base}{i}" not in used)
    fixed = fixed_ips(ctx, [n], {n.name: ip} if ip else {})
    per_net = {n.name: list(aliases)} if aliases else {}
    req = _Request(
        owner_id, first["netns"], first["kind"], first["namespace"], "", fixed, list(dns_names or []), per_net
    )
    out = await _attach_one(ctx, req, n, ifname, [])
    log.debug("connected %s to %s as %s", owner_id[:12], n.name, ifname)
    return out


def fixed_ips(ctx: NetworkContext, nets: list[Network], ips: dict[str, str]) -> dict[str, str]:
    """Check ``--ip`` requests (network name -> address) against the networks joined."""
    by_name = {n.name: n for n in nets}
    out = {}
    for name, ip in ips.items():
        n = by_name.get(resolve_name(ctx, name))
        if n is None:
            raise InvalidArgument(f"--ip for network {name}, which is not one being joined")
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidArgument(f"invalid IP address {ip!r} for network {n.name}") from None
        net = ipaddress.ip_network(n.subnet)
        if addr not in net or addr in (net.network_address, net.broadcast_address) or str(addr) == n.gateway:
            raise InvalidArgument(
                f"IP {ip} is not a free host address of network {n.name} ({n.subnet}, gateway {n.gateway})"
            )
        for a in ctx.store.attachments(network_id=n.id):
            if attached_ip(a) == str(addr):
                raise Conflict(
                    f"IP {ip} is already in use on network {n.name} by {a['kind']} {a['owner_id'][:12]}"
                )
        out[n.name] = str(addr)
    return out


def _message(e: BaseException) -> str:
    return e.message if isinstance(e, PodkitError) else repr(e)
