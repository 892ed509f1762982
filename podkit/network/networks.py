"""Networks as host-wide objects: create (with a free subnet), look up, inspect, remove."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import socket
import struct
import time
from pathlib import Path
from typing import Any

from podkit.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from podkit.limits import check_labels
from podkit.network import names as dns_records
from podkit.network.config import (
    Network,
    check_bridge,
    check_name,
    parse_gateway,
    parse_ip_range,
    parse_options,
    parse_subnet,
)
from podkit.network.context import NetworkContext
from podkit.network.masquerade import masq_chain, masq_down
from podkit.network.summary import public
from podkit.prune import PruneFilters

log = logging.getLogger(__name__)


def host_routes() -> list[tuple[ipaddress.IPv4Network, str]]:
    """IPv4 routes of the host (main table) other than the default route."""
    out: list[tuple[ipaddress.IPv4Network, str]] = []
    try:
        with open("/proc/net/route") as f:
            next(f)
            for line in f:
                p = line.split()
                dst = socket.inet_ntoa(struct.pack("<I", int(p[1], 16)))
                mask = socket.inet_ntoa(struct.pack("<I", int(p[7], 16)))
                net = ipaddress.IPv4Network(f"{dst}/{mask}", strict=False)
                if net.prefixlen:
                    out.append((net, p[0]))
    except (OSError, StopIteration, ValueError, IndexError) as e:
        log.debug("cannot read the host's routes: %s", e)
    return out


def overlap(
    ctx: NetworkContext, subnet: ipaddress.IPv4Network, skip_id: str = "", routes: bool = True
) -> str | None:
    """What ``subnet`` overlaps with: another network or a host route, else None."""
    for n in ctx.store.networks():
        if n.id != skip_id and ipaddress.ip_network(n.subnet).overlaps(subnet):
            return f"network {n.name} ({n.subnet})"
    for net, dev in host_routes() if routes else []:
        if net.overlaps(subnet):
            return f"a host route {net} on {dev}"
    return None


def pick_subnet(ctx: NetworkContext) -> ipaddress.IPv4Network:
    size = max(24, ctx.pool.prefixlen)
    for cand in ctx.pool.subnets(new_prefix=size):
        if overlap(ctx, cand) is None:
            return cand
    raise Conflict(f"no free /{size} subnet left in the pool {ctx.pool}: pass --subnet")


def check_create_args(name: str, driver: str, labels: dict[str, str] | None, default: bool) -> None:
    """User input of ``create`` that needs no store: name, driver, labels."""
    if not default:
        check_name(name)
    if driver not in ("bridge", ""):
        raise InvalidArgument(f"unsupported network driver {driver!r}: only 'bridge' is available")
    if labels is not None and (
        not isinstance(labels, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
    ):
        raise InvalidArgument("network labels must map strings to strings")
    if labels:
        check_labels(labels, "network labels")


def choose_subnet(
    ctx: NetworkContext, subnet: str | None, gateway: str | None, ip_range: str | None, default: bool
) -> ipaddress.IPv4Network:
    if not subnet:
        if gateway or ip_range:
            raise InvalidArgument("--gateway and --ip-range need --subnet")
        return pick_subnet(ctx)
    net = parse_subnet(subnet)
    # The configured default network is the admin's choice: a route to it (its
    # own bridge left from before, say) must not stop the daemon.
    clash = overlap(ctx, net, routes=not default)
    if clash:
        raise Conflict(f"subnet {net} overlaps with {clash}")
    return net


async def create(
    ctx: NetworkContext,
    name: str,
    subnet: str | None = None,
    gateway: str | None = None,
    bridge: str | None = None,
    labels: dict[str, str] | None = None,
    ip_range: str | None = None,
    internal: bool = False,
    driver: str = "bridge",
    options: dict[str, Any] | None = None,
    default: bool = False,
) -> Network:
    check_create_args(name, driver, labels, default)
    opts = parse_options(options)
    async with ctx.lock:
        if ctx.store.by_name(name) is not None:
            raise AlreadyExists(f"network {name} already exists")
        net = choose_subnet(ctx, subnet, gateway, ip_range, default)
        gw = parse_gateway(gateway, net) if gateway else str(net[1])
        rng = parse_ip_range(ip_range, net) if ip_range else ""
        nid = secrets.token_hex(32)
        br = check_bridge(bridge) if bridge else f"pkbr-{nid[:10]}"
        for other in ctx.store.networks():
            if other.bridge == br:
                raise Conflict(f"bridge {br} is already used by network {other.name}")
        n = Network(
            name=name,
            id=nid,
            bridge=br,
            subnet=str(net),
            gateway=gw,
            ip_range=rng,
            internal=internal,
            labels=dict(labels or {}),
            created=time.time(),
            default=default,
            options=opts,
        )
        # Leases a crash left from an earlier network of this name would block IPs.
        ctx.drop_ipam(name)
        ctx.store.insert(n)
    log.info("created network %s (%s, bridge %s)", name, n.subnet, n.bridge)
    return n


async def ensure_default(ctx: NetworkContext) -> Network:
    """Create the default network on first start (or re-shape it when unused)."""
    cur = ctx.store.default()
    subnet = parse_subnet(ctx.default_subnet)
    if cur is None:
        existing = ctx.store.by_name(ctx.default_name)
        if existing is not None:
            return existing
        return await create(
            ctx, ctx.default_name, subnet=ctx.default_subnet, bridge=ctx.default_bridge, default=True
        )
    if (cur.bridge, cur.subnet) == (ctx.default_bridge, str(subnet)):
        return cur
    if ctx.store.attachments(network_id=cur.id):
        log.warning(
            "default network %s is in use: keeping bridge %s subnet %s", cur.name, cur.bridge, cur.subnet
        )
        return cur
    clash = overlap(ctx, subnet, skip_id=cur.id, routes=False)
    if clash:
        raise Conflict(f"config [network] default_subnet {subnet} overlaps with {clash}")
    old_bridge = cur.bridge
    cur.bridge, cur.subnet, cur.gateway = ctx.default_bridge, str(subnet), str(subnet[1])
    ctx.store.update_default_shape(cur)
    await drop_bridge(old_bridge)
    ctx.drop_ipam(cur.name)
    return cur


def resolve_name(ctx: NetworkContext, name: str | None) -> str:
    """`bridge`, `default` or nothing mean the default network (as in docker)."""
    if not name or name in ("bridge", "default"):
        d = ctx.store.default()
        return d.name if d else ctx.default_name
    return name


def get(ctx: NetworkContext, name_or_id: str) -> Network:
    key = resolve_name(ctx, name_or_id)
    n = ctx.store.by_name(key)
    if n is not None:
        return n
    if len(key) >= 3:
        matches = ctx.store.by_id_prefix(key.lower())
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(f"network id prefix {key!r} is ambiguous")
    raise NotFound(f"network {name_or_id} not found")


def inspect(ctx: NetworkContext, name_or_id: str) -> dict[str, Any]:
    n = get(ctx, name_or_id)
    d = n.to_dict()
    d["attachments"] = [public(a) for a in ctx.store.attachments(network_id=n.id)]
    d["cni"] = n.conflist(
        str(ctx.ipam_dir), firewall=ctx.firewall, portmap=n.portmap is not None, plugin_masq=False
    )
    d["masquerade_chain"] = masq_chain(n) if n.ipmasq and not n.internal else ""
    return d


async def remove(ctx: NetworkContext, name_or_id: str) -> Network:
    async with ctx.lock:
        n = get(ctx, name_or_id)
        if n.default:
            raise Conflict(f"network {n.name} is the default network and cannot be removed")
        async with ctx.net_lock(n.id):  # no attach slips in between check and delete
            users = ctx.store.attachments(network_id=n.id)
            if users:
                owners = ", ".join(sorted({f"{u['kind']} {u['owner_id'][:12]}" for u in users}))
                raise Conflict(f"network {n.name} is in use by {owners}; remove them first")
            ctx.store.delete(n.id)
    await masq_down(ctx, n)
    await drop_bridge(n.bridge)
    ctx.drop_ipam(n.name)
    dns_records.drop_network(ctx, n.name)
    log.info("removed network %s", n.name)
    return n


async def prune(ctx: NetworkContext, filters: PruneFilters | None = None) -> list[Network]:
    """Remove every network other than the default that nothing is attached to (and
    that ``filters`` select: until, labels)."""
    f = filters or PruneFilters()
    gone = []
    for n in ctx.store.networks():
        if n.default or ctx.store.attachments(network_id=n.id) or not f.selects(n.labels, n.created):
            continue
        try:
            gone.append(await remove(ctx, n.id))
        except (NotFound, Conflict) as e:  # removed, or joined, since the listing
            log.debug("prune skips network %s: %s", n.name, e.message)
    return gone


async def drop_bridge(bridge: str) -> None:
    if not Path(f"/sys/class/net/{bridge}").exists():
        return
    proc = await asyncio.create_subprocess_exec(
        "ip", "link", "del", bridge, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        log.warning("could not delete bridge %s: %s", bridge, err.decode().strip())
