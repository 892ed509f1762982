"""The network layer's service: networks, attachments of owners to them, recovery.

An *owner* is whatever holds a network namespace: a pod (its sandbox) or a
standalone container. ``attach`` wires the owner's pinned netns into one or more
networks through CNI (loopback first, then eth0, eth1, ... one per network) and
records each attachment in SQLite before running ADD, so that ``detach`` — or
the next start of the daemon after a crash — can always run DEL.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import secrets
import shutil
import socket
import struct
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from podkit.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, PodkitError
from podkit.network import iptables
from podkit.network.cni import CNI, CNI_VERSION
from podkit.network.config import (
    Network,
    check_bridge,
    check_name,
    parse_gateway,
    parse_ip_range,
    parse_options,
    parse_subnet,
)
from podkit.network.netns import NetnsPins, is_netns
from podkit.network.ports import PortMapping, free_host_port
from podkit.network.store import NetworkStore
from podkit.store import Database

log = logging.getLogger(__name__)

DEFAULT_NETWORK = "podkit"
DEFAULT_BRIDGE = "podkit0"
DEFAULT_SUBNET = "10.89.0.0/24"
# New networks get a /24 from here unless told otherwise; podman owns 10.88/16.
DEFAULT_POOL = "10.89.0.0/16"
LOOPBACK_CONF: dict[str, Any] = {
    "cniVersion": CNI_VERSION,
    "name": "podkit-loopback",
    "plugins": [{"type": "loopback"}],
}


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
                net = ipaddress.ip_network(f"{dst}/{mask}", strict=False)
                if net.prefixlen:
                    out.append((net, p[0]))
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    return out


class NetworkManager:
    """Networks (host-wide objects) and the attachments of owners to them."""

    def __init__(
        self,
        db: Database,
        root: str | Path,
        state: str | Path,
        config: dict[str, Any] | None = None,
        publish: Callable[..., Any] | None = None,
    ) -> None:
        cfg = config or {}
        # The daemon's event bus publish(ns, type, action, id, **attrs), if any.
        self._publish = publish
        self.root = Path(root)
        self.state = Path(state)
        self.store = NetworkStore(db)
        self.default_name = str(cfg.get("default_network", DEFAULT_NETWORK))
        try:
            check_name(self.default_name)
            self.default_bridge = check_bridge(str(cfg.get("default_bridge", DEFAULT_BRIDGE)))
            self.default_subnet = str(parse_subnet(cfg.get("default_subnet", DEFAULT_SUBNET)))
            self.pool = parse_subnet(cfg.get("subnet_pool", DEFAULT_POOL))
        except InvalidArgument as e:
            raise InvalidArgument(f"config [network]: {e.message}") from None
        # firewall plugin: true, false, or "auto" = only where FORWARD drops by
        # default (a host with docker, say), where forwarded traffic needs ACCEPTs.
        fw = cfg.get("firewall", "auto")
        if fw not in (True, False, "auto"):
            raise InvalidArgument('config: [network] firewall must be true, false or "auto"')
        self._firewall_setting = fw
        self.firewall = fw is True
        dirs = cfg.get("cni_plugin_dirs")
        if isinstance(dirs, str):
            dirs = dirs.split(":")
        self.ipam_dir = self.root / "networks" / "ipam"
        # Under the persistent root: after a reboot the cached configs still let DEL
        # release the (persistent) IPAM leases.
        self.cni = CNI(dirs, self.root / "cni")
        self.netns = NetnsPins(self.state)
        self._lock = asyncio.Lock()
        self._net_locks: dict[str, asyncio.Lock] = {}
        self._masq_on: set[str] = set()
        self._reserved: dict[str, list[socket.socket]] = {}  # owner -> its host port sockets

    # -- networks ----------------------------------------------------------------

    async def ensure_default(self) -> Network:
        """Create the default network on first start (or re-shape it when unused)."""
        cur = self.store.default()
        subnet = parse_subnet(self.default_subnet)
        if cur is None:
            existing = self.store.by_name(self.default_name)
            if existing is not None:
                return existing
            return await self.create(
                self.default_name, subnet=self.default_subnet, bridge=self.default_bridge, _default=True
            )
        if (cur.bridge, cur.subnet) != (self.default_bridge, str(subnet)):
            if self.store.attachments(network_id=cur.id):
                log.warning(
                    "default network %s is in use: keeping bridge %s subnet %s",
                    cur.name,
                    cur.bridge,
                    cur.subnet,
                )
            else:
                clash = self._overlap(subnet, skip_id=cur.id, routes=False)
                if clash:
                    raise Conflict(f"config [network] default_subnet {subnet} overlaps with {clash}")
                old_bridge = cur.bridge
                cur.bridge, cur.subnet, cur.gateway = self.default_bridge, str(subnet), str(subnet[1])
                self.store.update_default_shape(cur)
                await self._drop_bridge(old_bridge)
                shutil.rmtree(self.ipam_dir / cur.name, ignore_errors=True)
        return cur

    def _overlap(self, subnet: ipaddress.IPv4Network, skip_id: str = "", routes: bool = True) -> str | None:
        for n in self.store.networks():
            if n.id != skip_id and ipaddress.ip_network(n.subnet).overlaps(subnet):
                return f"network {n.name} ({n.subnet})"
        for net, dev in host_routes() if routes else []:
            if net.overlaps(subnet):
                return f"a host route {net} on {dev}"
        return None

    def _pick_subnet(self) -> ipaddress.IPv4Network:
        size = max(24, self.pool.prefixlen)
        for cand in self.pool.subnets(new_prefix=size):
            if self._overlap(cand) is None:
                return cand
        raise Conflict(f"no free /{size} subnet left in the pool {self.pool}: pass --subnet")

    async def create(
        self,
        name: str,
        subnet: str | None = None,
        gateway: str | None = None,
        bridge: str | None = None,
        labels: dict[str, str] | None = None,
        ip_range: str | None = None,
        internal: bool = False,
        driver: str = "bridge",
        options: dict[str, Any] | None = None,
        _default: bool = False,
    ) -> Network:
        if not _default:
            check_name(name)
        if driver not in ("bridge", ""):
            raise InvalidArgument(f"unsupported network driver {driver!r}: only 'bridge' is available")
        if labels is not None and (
            not isinstance(labels, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
        ):
            raise InvalidArgument("network labels must map strings to strings")
        opts = parse_options(options)
        async with self._lock:
            if self.store.by_name(name) is not None:
                raise AlreadyExists(f"network {name} already exists")
            if subnet:
                net = parse_subnet(subnet)
                # The configured default network is the admin's choice: a route to it
                # (its own bridge left from before, say) must not stop the daemon.
                clash = self._overlap(net, routes=not _default)
                if clash:
                    raise Conflict(f"subnet {net} overlaps with {clash}")
            else:
                if gateway or ip_range:
                    raise InvalidArgument("--gateway and --ip-range need --subnet")
                net = self._pick_subnet()
            gw = parse_gateway(gateway, net) if gateway else str(net[1])
            rng = parse_ip_range(ip_range, net) if ip_range else ""
            nid = secrets.token_hex(32)
            br = check_bridge(bridge) if bridge else f"pkbr-{nid[:10]}"
            for other in self.store.networks():
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
                default=_default,
                options=opts,
            )
            # Leases a crash left from an earlier network of this name would block IPs.
            shutil.rmtree(self.ipam_dir / name, ignore_errors=True)
            self.store.insert(n)
        log.info("created network %s (%s, bridge %s)", name, n.subnet, n.bridge)
        return n

    def list(self) -> list[Network]:
        return self.store.networks()

    def resolve_name(self, name: str | None) -> str:
        """`bridge`, `default` or nothing mean the default network (as in docker)."""
        if not name or name in ("bridge", "default"):
            d = self.store.default()
            return d.name if d else self.default_name
        return name

    def get(self, name_or_id: str) -> Network:
        key = self.resolve_name(name_or_id)
        n = self.store.by_name(key)
        if n is not None:
            return n
        if len(key) >= 3:
            matches = self.store.by_id_prefix(key.lower())
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise InvalidArgument(f"network id prefix {key!r} is ambiguous")
        raise NotFound(f"network {name_or_id} not found")

    def attachments(self, owner_id: str | None = None, network: str | None = None) -> list[dict[str, Any]]:
        nid = self.get(network).id if network else None
        return [_public(a) for a in self.store.attachments(owner_id, nid)]

    def inspect(self, name_or_id: str) -> dict[str, Any]:
        n = self.get(name_or_id)
        d = n.to_dict()
        d["attachments"] = [_public(a) for a in self.store.attachments(network_id=n.id)]
        d["cni"] = n.conflist(str(self.ipam_dir), firewall=self.firewall, plugin_masq=False)
        d["masquerade_chain"] = _masq_chain(n) if n.ipmasq and not n.internal else ""
        return d

    async def remove(self, name_or_id: str) -> Network:
        async with self._lock:
            n = self.get(name_or_id)
            if n.default:
                raise Conflict(f"network {n.name} is the default network and cannot be removed")
            async with self._net_lock(n.id):  # no attach slips in between check and delete
                users = self.store.attachments(network_id=n.id)
                if users:
                    owners = ", ".join(sorted({f"{u['kind']} {u['owner_id'][:12]}" for u in users}))
                    raise Conflict(f"network {n.name} is in use by {owners}; remove them first")
                self.store.delete(n.id)
        await self._masq_down(n)
        await self._drop_bridge(n.bridge)
        shutil.rmtree(self.ipam_dir / n.name, ignore_errors=True)
        log.info("removed network %s", n.name)
        return n

    async def prune(self) -> list[Network]:
        """Remove every network other than the default that nothing is attached to."""
        gone = []
        for n in self.store.networks():
            if n.default or self.store.attachments(network_id=n.id):
                continue
            with contextlib.suppress(NotFound, Conflict):
                gone.append(await self.remove(n.id))
        return gone

    async def _drop_bridge(self, bridge: str) -> None:
        if not Path(f"/sys/class/net/{bridge}").exists():
            return
        proc = await asyncio.create_subprocess_exec(
            "ip", "link", "del", bridge, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        _, err = await proc.communicate()
        if proc.returncode != 0:
            log.warning("could not delete bridge %s: %s", bridge, err.decode().strip())

    # -- network namespaces ----------------------------------------------------------

    @staticmethod
    def netns_name(owner_id: str, kind: str = "container") -> str:
        return f"{kind}-{owner_id}"

    def create_netns(self, owner_id: str, kind: str = "container") -> str:
        """A new pinned network namespace for an owner: ``<state>/netns/<kind>-<owner_id>``."""
        return self.netns.create(self.netns_name(owner_id, kind))

    def remove_netns(self, owner_id: str, kind: str = "container") -> bool:
        return self.netns.remove(self.netns_name(owner_id, kind))

    def netns_path(self, owner_id: str, kind: str = "container") -> str:
        return str(self.netns.path(self.netns_name(owner_id, kind)))

    # -- attachments -------------------------------------------------------------

    async def loopback_up(self, owner_id: str, netns_path: str) -> None:
        """Only bring lo up in a netns (``--network none``): nothing to undo later."""
        if not is_netns(netns_path):
            raise InvalidArgument(f"{netns_path} is not a network namespace")
        await self.cni.add(LOOPBACK_CONF, owner_id, netns_path, "lo", cache=False)

    async def attach(
        self,
        owner_id: str,
        netns_path: str,
        networks: list[str],
        ports: Iterable[PortMapping] = (),
        ifname_base: str = "eth",
        kind: str = "container",
        namespace: str = "",
        cni_args: str = "",
        ips: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Wire an owner's netns: loopback up, then one interface per network.

        An empty ``networks`` (or "", "bridge") means the default network; for
        loopback only use ``loopback_up``. ``ips`` asks for fixed addresses, by
        network name (``--ip``); ``cni_args`` are extra ``K=V;...`` CNI_ARGS.

        Published ports go to the first network. A host port of 0 gets a free port.
        Returns, per network: network, network_id, interface, ip, prefix,
        gateway, mac, ports (the resolved mappings).
        """
        if not owner_id:
            raise InvalidArgument("attach needs an owner id")
        if not is_netns(netns_path):
            raise InvalidArgument(f"{netns_path} is not a network namespace")
        names = list(dict.fromkeys(self.resolve_name(n) for n in (networks or [""])))
        nets = [self.get(n) for n in names]
        if self.store.attachments(owner_id):
            raise Conflict(f"{owner_id[:12]} is already attached to networks")
        fixed = self._fixed_ips(nets, ips or {})
        resolved, socks = self._resolve_ports(ports)
        try:
            out = await self._attach(
                owner_id, netns_path, nets, resolved, ifname_base, kind, namespace, cni_args, fixed
            )
        except BaseException:
            _close(socks)
            raise
        self._reserved.setdefault(owner_id, []).extend(socks)
        log.debug("attached %s to %s", owner_id[:12], ", ".join(names))
        return out

    async def _attach(
        self,
        owner_id: str,
        netns_path: str,
        nets: list[Network],
        resolved: list[PortMapping],
        ifname_base: str,
        kind: str,
        namespace: str,
        cni_args: str,
        fixed: dict[str, str],
    ) -> list[dict[str, Any]]:
        await self.cni.add(LOOPBACK_CONF, owner_id, netns_path, "lo", cache=False)
        out: list[dict[str, Any]] = []
        try:
            for i, n in enumerate(nets):
                ifname = f"{ifname_base}{i}"
                pm = resolved if i == 0 else []
                # Without mappings portmap has nothing to do, yet its DEL costs ~90 ms of
                # iptables calls: leave it out of this attachment's list (which is
                # recorded with it, so DEL runs exactly what ADD ran).
                conflist = n.conflist(
                    str(self.ipam_dir), firewall=self.firewall, portmap=bool(pm), plugin_masq=False
                )
                rc = {"portMappings": [p.to_cni() for p in pm]}
                async with self._net_lock(n.id):
                    if self.store.by_name(n.name) is None:
                        raise NotFound(f"network {n.name} was removed")
                    self.store.add_attachment(
                        owner_id, ifname, kind, namespace, n, netns_path, conflist, [p.to_dict() for p in pm]
                    )
                    try:
                        await self._masq_up(n)
                    except BaseException:
                        self.store.drop_attachment(owner_id, ifname)
                        raise
                args = cni_args
                if n.name in fixed:
                    # host-local takes a requested address from CNI_ARGS IP=.
                    args = ";".join(x for x in ("IgnoreUnknown=1", f"IP={fixed[n.name]}", cni_args) if x)
                try:
                    result = await self.cni.add(conflist, owner_id, netns_path, ifname, rc, args=args)
                except BaseException:
                    # ADD undoes itself with DEL; only if that DEL failed too is a cache
                    # entry left, and then the row stays so that detach can retry it.
                    if self.cni.cached(n.name, owner_id, ifname) is None:
                        await self._drop_attachment(n.id, owner_id, ifname)
                    raise
                self.store.set_result(owner_id, ifname, result)
                out.append(_summary(n.name, n.id, ifname, netns_path, result, pm))
                self._event(namespace, "connect", n.id, n.name, owner_id, kind)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.detach(owner_id)
            raise
        return out

    # -- masquerade, one rule set per network --------------------------------------
    #
    # The bridge plugin's ipMasq makes a chain and three rules per container and
    # tears them down on DEL: ~60 ms of iptables calls per container, and rules it
    # cannot find again once the netns is gone. podkit instead masquerades a whole
    # network with one chain (PODKIT-<id>) that lives while anything is attached.

    def _net_lock(self, network_id: str) -> asyncio.Lock:
        lock = self._net_locks.get(network_id)
        if lock is None:
            lock = self._net_locks[network_id] = asyncio.Lock()
        return lock

    async def _masq_up(self, n: Network) -> None:
        if not n.ipmasq or n.internal or n.id in self._masq_on:
            return
        await iptables.ensure_masquerade(_masq_chain(n), n.subnet, f"podkit network {n.name}")
        self._masq_on.add(n.id)

    async def _masq_down(self, n: Network) -> None:
        self._masq_on.discard(n.id)
        await iptables.remove_masquerade(_masq_chain(n), n.subnet)

    async def _drop_attachment(self, network_id: str, owner_id: str, ifname: str) -> None:
        """Forget one attachment; the network's masquerade goes with its last one."""
        async with self._net_lock(network_id):
            self.store.drop_attachment(owner_id, ifname)
            if not self.store.attachments(network_id=network_id):
                n = next((x for x in self.store.networks() if x.id == network_id), None)
                if n is not None:
                    await self._masq_down(n)

    async def _reconcile_masquerade(self) -> None:
        """At start: rules for networks in use, none for the others (after a crash)."""
        present = await iptables.nat_chains()
        for n in self.store.networks():
            async with self._net_lock(n.id):
                if self.store.attachments(network_id=n.id):
                    self._masq_on.discard(n.id)
                    await self._masq_up(n)
                elif _masq_chain(n) in present:
                    await self._masq_down(n)

    def _fixed_ips(self, nets: list[Network], ips: dict[str, str]) -> dict[str, str]:
        by_name = {n.name: n for n in nets}
        out = {}
        for name, ip in ips.items():
            n = by_name.get(self.resolve_name(name))
            if n is None:
                raise InvalidArgument(f"--ip for network {name}, which is not one being joined")
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                raise InvalidArgument(f"invalid IP address {ip!r} for network {n.name}") from None
            net = ipaddress.ip_network(n.subnet)
            if (
                addr not in net
                or addr in (net.network_address, net.broadcast_address)
                or str(addr) == n.gateway
            ):
                raise InvalidArgument(
                    f"IP {ip} is not a free host address of network {n.name} "
                    f"({n.subnet}, gateway {n.gateway})"
                )
            for a in self.store.attachments(network_id=n.id):
                if _summary(n.name, n.id, a["ifname"], "", a["result"] or {}, [])["ip"] == str(addr):
                    raise Conflict(
                        f"IP {ip} is already in use on network {n.name} by {a['kind']} {a['owner_id'][:12]}"
                    )
            out[n.name] = str(addr)
        return out

    def published_ports(self) -> dict[tuple[int, str], list[tuple[str, str]]]:
        """Host ports published by attachments: (port, proto) -> [(host_ip, owner)]."""
        used: dict[tuple[int, str], list[tuple[str, str]]] = {}
        for a in self.store.attachments():
            for p in a["ports"]:
                m = PortMapping.from_dict(p)
                used.setdefault((m.host_port, m.protocol), []).append((m.host_ip, a["owner_id"]))
        return used

    def _resolve_ports(self, ports: Iterable[PortMapping]) -> tuple[list[PortMapping], list[socket.socket]]:
        """Validate mappings, refuse host ports taken, pick free ones for host port 0,
        and reserve each: the returned sockets hold the ports while published.

        A DNAT rule takes the port silently, without binding it, so podkit checks
        against ports it already publishes and binds (and listens on) each port
        itself, as podman's conmon does: a host service that bound it before is
        reported, and one that tries after gets EADDRINUSE instead of silently
        never seeing its connections.
        """
        used = self.published_ports()
        out: list[PortMapping] = []
        socks: list[socket.socket] = []
        try:
            self._resolve_into(ports, used, out, socks)
        except BaseException:
            _close(socks)
            raise
        return out, socks

    def _resolve_into(
        self,
        ports: Iterable[PortMapping],
        used: dict[tuple[int, str], list[tuple[str, str]]],
        out: list[PortMapping],
        socks: list[socket.socket],
    ) -> None:

        def clash(m: PortMapping) -> str | None:
            for ip, owner in used.get((m.host_port, m.protocol), []):
                if not ip or not m.host_ip or ip == m.host_ip:
                    return owner
            return None

        for p in ports:
            if isinstance(p, dict):
                p = PortMapping.from_dict(p)
            p = p.validated()
            if ":" in p.host_ip:
                raise InvalidArgument(f"cannot publish {p}: podkit networks are IPv4 only")
            if p.host_port == 0:
                for _ in range(64):
                    cand = PortMapping(
                        p.host_ip, free_host_port(p.protocol, p.host_ip), p.container_port, p.protocol
                    )
                    if clash(cand) is None:
                        try:
                            sock = _reserve(cand)
                        except Conflict:  # taken since the kernel offered it
                            continue
                        break
                else:
                    raise Conflict(f"no free host port found for {p}")
                p = cand
            else:
                owner = clash(p)
                if owner is not None:
                    raise Conflict(
                        f"host port {p.host_port}/{p.protocol} is already published by {owner[:12]}"
                    )
                sock = _reserve(p)
            if sock is not None:
                socks.append(sock)
            used.setdefault((p.host_port, p.protocol), []).append((p.host_ip, "this request"))
            out.append(p)

    async def detach(self, owner_id: str, force: bool = False) -> int:
        """DEL every attachment of an owner; return how many were removed.

        If the netns is gone already, DEL runs without it (the IPAM lease is still
        released) and podkit removes the masquerade rules the bridge plugin can
        then no longer find. With ``force`` (the owner is known to be gone) a
        failing DEL does not keep the attachment: podkit removes the owner's
        rules, lease and cache entry itself and forgets it, logging the failure.
        """
        atts = self.store.attachments(owner_id)
        first: BaseException | None = None
        scrub = False
        for a in reversed(atts):
            netns = a["netns"] if is_netns(a["netns"]) else ""
            scrub = scrub or not netns
            try:
                await self.cni.delete(
                    a["conflist"],
                    owner_id,
                    netns,
                    a["ifname"],
                    {"portMappings": [PortMapping.from_dict(p).to_cni() for p in a["ports"]]},
                    network=a["network"],
                )
            except PodkitError as e:
                scrub = True
                if not force:
                    first = first or e
                    continue
                log.warning(
                    "forgetting the attachment of %s to %s after a failed DEL: %s",
                    owner_id[:12],
                    a["network"],
                    e.message,
                )
                self._release_leases(a["network"], owner_id, a["ifname"])
                self.cni.forget(a["network"], owner_id, a["ifname"])
            await self._drop_attachment(a["network_id"], owner_id, a["ifname"])
            if a["status"] == "ready":
                self._event(a["namespace"], "disconnect", a["network_id"], a["network"], owner_id, a["kind"])
        if scrub:
            await iptables.scrub_owner(owner_id)
        if not self.store.attachments(owner_id):
            _close(self._reserved.pop(owner_id, []))
        if first is not None:
            raise first
        if atts:
            log.debug("detached %s from %d networks", owner_id[:12], len(atts))
        return len(atts)

    def _release_leases(self, network: str, owner_id: str, ifname: str) -> None:
        """Remove host-local's lease files of an owner (each holds "<id>\r\n<ifname>")."""
        d = self.ipam_dir / network
        if not d.is_dir():
            return
        for f in d.iterdir():
            if f.name == "lock" or f.name.startswith("last_reserved_ip"):
                continue
            with contextlib.suppress(OSError):
                lines = f.read_text().split()
                if lines and lines[0] == owner_id and (len(lines) < 2 or lines[1] == ifname):
                    f.unlink()

    def _event(
        self, namespace: str, action: str, network_id: str, network: str, owner_id: str, kind: str
    ) -> None:
        if self._publish is not None:
            with contextlib.suppress(Exception):
                self._publish(
                    namespace or "default", "network", action, network_id, name=network, **{kind: owner_id}
                )

    async def check(self, owner_id: str) -> list[dict[str, Any]]:
        """CHECK every attachment of an owner: [{network, interface, ok, error}]."""
        out = []
        for a in self.store.attachments(owner_id):
            item = {"network": a["network"], "interface": a["ifname"], "ok": True, "error": ""}
            try:
                if a["status"] != "ready":
                    raise Conflict("attachment was never completed")
                # portmap 1.1's CHECK looks for ip6tables rules even for an IPv4-only
                # container and fails (containernetworking/plugins#819): podkit checks
                # the published ports' DNAT rule itself instead.
                await self.cni.check(
                    a["conflist"], owner_id, a["netns"], a["ifname"], skip=frozenset({"portmap"})
                )
                if a["ports"] and not await iptables.has_dnat(a["network"], owner_id):
                    raise Conflict("the DNAT rules of its published ports are missing")
            except PodkitError as e:
                item["ok"], item["error"] = False, e.message
            out.append(item)
        return out

    async def cleanup_stale(
        self, live_owner_ids: Iterable[str] | None = None, kind: str | None = None
    ) -> list[str]:
        """Undo what dead owners left behind; return their ids.

        With ``live_owner_ids``: attachments (of ``kind``, or all) whose owner is not
        live are DEL'd and their netns pins (``<kind>-<owner>``) removed, and pins of
        that kind with no live owner go too. Without it: only attachments whose
        netns no longer exists (nothing can be using them) are DEL'd.
        """
        live = set(live_owner_ids) if live_owner_ids is not None else None
        stale: list[str] = []
        for a in self.store.attachments():
            if kind and a["kind"] != kind:
                continue
            dead = (a["owner_id"] not in live) if live is not None else not is_netns(a["netns"])
            if dead and a["owner_id"] not in stale:
                stale.append(a["owner_id"])
        for owner in stale:
            try:
                await self.detach(owner, force=live is not None)
            except PodkitError as e:
                log.warning("cleanup of network attachments of %s failed: %s", owner[:12], e.message)
        self.netns.sweep()
        if live is not None:
            for pin in self.netns.list():
                k, _, owner = pin.partition("-")
                if (kind is None or k == kind) and owner and owner not in live:
                    with contextlib.suppress(PodkitError):
                        self.netns.remove(pin)
                    if owner not in stale:
                        stale.append(owner)
        if stale:
            log.info("cleaned up network state of %d gone owners", len(stale))
        return stale

    # -- daemon hooks ------------------------------------------------------------

    def missing_plugins(self) -> list[str]:
        need = ["loopback", "bridge", "host-local", "portmap"] + (["firewall"] if self.firewall else [])
        missing = []
        for t in need:
            try:
                self.cni.find_plugin(t)
            except PodkitError:
                missing.append(t)
        return missing

    def ready(self) -> tuple[bool, str]:
        """Whether pods can get a network now (the CRI's NetworkReady condition)."""
        missing = self.missing_plugins()
        if missing:
            return False, f"CNI plugins missing: {', '.join(missing)}"
        if self.store.default() is None:
            return False, "the default network does not exist yet"
        return True, ""

    async def startup(self) -> None:
        missing = self.missing_plugins()
        if missing:
            # Not fatal: host and none networking still work; attach will say the same.
            log.error(
                "CNI plugins %s not found in %s: bridge networking will fail",
                ", ".join(missing),
                ":".join(self.cni.plugin_dirs),
            )
        if self._firewall_setting == "auto":
            self.firewall = await iptables.forward_policy() == "DROP"
        await self.ensure_default()
        await self.cleanup_stale()
        await self._reconcile_masquerade()
        self._reserve_published()

    def _reserve_published(self) -> None:
        """Hold the host ports of attachments that survived a restart again."""
        for a in self.store.attachments():
            if a["owner_id"] in self._reserved:
                continue
            for d in a["ports"]:
                p = PortMapping.from_dict(d)
                try:
                    sock = _reserve(p)
                except PodkitError as e:
                    log.warning(
                        "cannot reserve published port %s of %s again: %s", p, a["owner_id"][:12], e.message
                    )
                    continue
                if sock is not None:
                    self._reserved.setdefault(a["owner_id"], []).append(sock)

    async def shutdown(self) -> None:
        # Running containers keep their networks while the daemon is down (the port
        # reservations end with the process; the next start takes them again); only
        # let go of the pin directory's own mount when it is empty.
        for socks in self._reserved.values():
            _close(socks)
        self._reserved.clear()
        self.netns.release_dir()

    def info(self, namespace: str | None = None) -> dict[str, Any]:
        d = self.store.default()
        return {
            "default_network": d.name if d else self.default_name,
            "default_bridge": d.bridge if d else self.default_bridge,
            "default_subnet": d.subnet if d else self.default_subnet,
            "networks": len(self.store.networks()),
            "attachments": len(self.store.attachments()),
            "cni_plugin_dirs": self.cni.plugin_dirs,
            "cni_version": CNI_VERSION,
            "firewall_plugin": self.firewall,
            "missing_plugins": self.missing_plugins(),
            "netns_dir": str(self.netns.dir),
        }


def _masq_chain(n: Network) -> str:
    return f"PODKIT-{n.id[:16]}"


def _reserve(p: PortMapping) -> socket.socket | None:
    """Bind (and for TCP listen on) a published host port; None for sctp."""
    if p.protocol == "sctp":
        return None
    kind = socket.SOCK_DGRAM if p.protocol == "udp" else socket.SOCK_STREAM
    s = socket.socket(socket.AF_INET, kind)  # non-inheritable: conmon and runc never get it
    try:
        # Only a socket bound there now counts, not a connection in TIME_WAIT.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((p.host_ip or "0.0.0.0", p.host_port))
        if kind == socket.SOCK_STREAM:
            s.listen(1)
    except OSError as e:
        s.close()
        if e.errno == errno.EADDRINUSE:
            raise Conflict(f"host port {p.host_port}/{p.protocol} is already in use on the host") from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise InvalidArgument(f"host IP {p.host_ip} is not an address of this host") from None
        raise InvalidArgument(f"cannot publish {p}: {e.strerror}") from None
    return s


def _close(socks: Iterable[socket.socket]) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.close()


def _summary(
    name: str, nid: str, ifname: str, netns: str, result: dict[str, Any], ports: list[PortMapping]
) -> dict[str, Any]:
    """The interesting part of a CNI result: the interface in the netns and its IP."""
    ifaces = result.get("interfaces") or []
    idx = next((i for i, f in enumerate(ifaces) if f.get("name") == ifname and f.get("sandbox")), None)
    ip = prefix = gateway = ""
    for entry in result.get("ips") or []:
        if idx is None or entry.get("interface") == idx:
            addr = ipaddress.ip_interface(entry["address"])
            if addr.version == 4 or not ip:
                ip, prefix, gateway = str(addr.ip), addr.network.prefixlen, entry.get("gateway", "")
            if addr.version == 4:
                break
    return {
        "network": name,
        "network_id": nid,
        "interface": ifname,
        "ip": ip,
        "prefix": prefix,
        "gateway": gateway,
        "mac": ifaces[idx].get("mac", "") if idx is not None else "",
        "ports": [p.to_dict() for p in ports],
    }


def _public(a: dict[str, Any]) -> dict[str, Any]:
    s = _summary(
        a["network"],
        a["network_id"],
        a["ifname"],
        a["netns"],
        a["result"] or {},
        [PortMapping.from_dict(p) for p in a["ports"]],
    )
    s.update(
        owner_id=a["owner_id"],
        kind=a["kind"],
        namespace=a["namespace"],
        netns=a["netns"],
        status=a["status"],
        created=a["created"],
    )
    return s
