"""The network layer's service: networks, attachments of owners to them, recovery.

An *owner* is whatever holds a network namespace: a pod (its sandbox) or a
standalone container. ``attach`` wires the owner's pinned netns into one or more
networks through CNI (loopback first, then eth0, eth1, ... one per network) and
records each attachment in SQLite before running ADD, so that ``detach`` — or
the next start of the daemon after a crash — can always run DEL.

``NetworkManager`` is the layer's public face; each operation lives in its own
module (networks, attach, detach, masquerade, hostports, lifecycle) as a
function of the shared ``NetworkContext``.
"""

from __future__ import annotations

import builtins
import ipaddress
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from podkit.errors import InvalidArgument
from podkit.network import attach as _attach
from podkit.network import detach as _detach
from podkit.network import hostports, lifecycle, networks
from podkit.network import names as _names
from podkit.network.cni import CNI
from podkit.network.config import Network, check_bridge, check_name, parse_subnet
from podkit.network.context import FirewallSetting, NetworkContext, Publish
from podkit.network.netns import NetnsPins
from podkit.network.networks import host_routes
from podkit.network.pool import Sandbox, SandboxPools, as_holders, pool_size
from podkit.network.ports import PortMapping
from podkit.network.store import NetworkStore
from podkit.network.summary import public
from podkit.prune import PruneFilters
from podkit.store import Database

__all__ = [
    "DEFAULT_BRIDGE",
    "DEFAULT_NETWORK",
    "DEFAULT_POOL",
    "DEFAULT_SUBNET",
    "NetworkManager",
    "host_routes",
]

DEFAULT_NETWORK = "podkit"
DEFAULT_BRIDGE = "podkit0"
DEFAULT_SUBNET = "10.89.0.0/24"
# New networks get a /24 from here unless told otherwise; podman owns 10.88/16.
DEFAULT_POOL = "10.89.0.0/16"
LOOPBACK_CONF = _attach.LOOPBACK_CONF


def _context(
    db: Database, root: Path, state: Path, cfg: dict[str, Any], publish: Publish | None
) -> NetworkContext:
    """The shared state of a manager, from the daemon's ``[network]`` config."""
    default_name = str(cfg.get("default_network", DEFAULT_NETWORK))
    try:
        check_name(default_name)
        default_bridge = check_bridge(str(cfg.get("default_bridge", DEFAULT_BRIDGE)))
        default_subnet = str(parse_subnet(cfg.get("default_subnet", DEFAULT_SUBNET)))
        pool = parse_subnet(cfg.get("subnet_pool", DEFAULT_POOL))
    except InvalidArgument as e:
        raise InvalidArgument(f"config [network]: {e.message}") from None
    fw = cfg.get("firewall", "auto")
    if fw not in (True, False, "auto"):
        raise InvalidArgument('config: [network] firewall must be true, false or "auto"')
    setting: FirewallSetting = "auto" if fw == "auto" else bool(fw)
    dirs = cfg.get("cni_plugin_dirs")
    if isinstance(dirs, str):
        dirs = dirs.split(":")
    return NetworkContext(
        store=NetworkStore(db),
        # Under the persistent root: after a reboot the cached configs still let
        # DEL release the (persistent) IPAM leases.
        cni=CNI(dirs, root / "cni"),
        netns=NetnsPins(state),
        root=root,
        state=state,
        ipam_dir=root / "networks" / "ipam",
        default_name=default_name,
        default_bridge=default_bridge,
        default_subnet=default_subnet,
        pool=pool,
        firewall_setting=setting,
        firewall=setting is True,
        publish=publish,
    )


class NetworkManager:
    """Networks (host-wide objects) and the attachments of owners to them."""

    def __init__(
        self,
        db: Database,
        root: str | Path,
        state: str | Path,
        config: dict[str, Any] | None = None,
        publish: Publish | None = None,
    ) -> None:
        # publish: the daemon's event bus publish(ns, type, action, id, **attrs), if any.
        self._ctx = _context(db, Path(root), Path(state), config or {}, publish)
        try:
            size = pool_size(config or {})
        except InvalidArgument as e:
            raise InvalidArgument(e.message) from None
        self._pools = SandboxPools(self._ctx, size)

    # The parts of the context callers (and tests) read.

    @property
    def root(self) -> Path:
        return self._ctx.root

    @property
    def state(self) -> Path:
        return self._ctx.state

    @property
    def store(self) -> NetworkStore:
        return self._ctx.store

    @property
    def cni(self) -> CNI:
        return self._ctx.cni

    @property
    def netns(self) -> NetnsPins:
        return self._ctx.netns

    @property
    def ipam_dir(self) -> Path:
        return self._ctx.ipam_dir

    @property
    def default_name(self) -> str:
        return self._ctx.default_name

    @property
    def default_bridge(self) -> str:
        return self._ctx.default_bridge

    @property
    def default_subnet(self) -> str:
        return self._ctx.default_subnet

    @property
    def pool(self) -> ipaddress.IPv4Network:
        return self._ctx.pool

    @property
    def firewall(self) -> bool:
        """Whether attachments get the CNI firewall plugin (decided at startup for "auto")."""
        return self._ctx.firewall

    @firewall.setter
    def firewall(self, on: bool) -> None:
        self._ctx.firewall = on

    # -- networks (networks.py) ----------------------------------------------------

    async def ensure_default(self) -> Network:
        """Create the default network on first start (or re-shape it when unused)."""
        return await networks.ensure_default(self._ctx)

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
        return await networks.create(
            self._ctx, name, subnet, gateway, bridge, labels, ip_range, internal, driver, options, _default
        )

    def list(self) -> builtins.list[Network]:
        return self._ctx.store.networks()

    def resolve_name(self, name: str | None) -> str:
        """`bridge`, `default` or nothing mean the default network (as in docker)."""
        return networks.resolve_name(self._ctx, name)

    def get(self, name_or_id: str) -> Network:
        return networks.get(self._ctx, name_or_id)

    def attachments(
        self, owner_id: str | None = None, network: str | None = None
    ) -> builtins.list[dict[str, Any]]:
        nid = self.get(network).id if network else None
        if owner_id is not None and (sid := self._pools.held_by(owner_id)) is not None:
            owner_id = sid  # a container on a warm sandbox: the sandbox's attachment
        return as_holders(self._ctx, [public(a) for a in self._ctx.store.attachments(owner_id, nid)])

    def inspect(self, name_or_id: str) -> dict[str, Any]:
        d = networks.inspect(self._ctx, name_or_id)
        d["attachments"] = as_holders(self._ctx, d["attachments"])
        return d

    async def remove(self, name_or_id: str) -> Network:
        await self._pools.drain(self.get(name_or_id).id)  # its warm sandboxes are no user's
        return await networks.remove(self._ctx, name_or_id)

    async def prune(self, filters: PruneFilters | None = None) -> builtins.list[Network]:
        """Remove every network other than the default that nothing is attached to (and
        that ``filters`` select: until, labels)."""
        f = filters or PruneFilters()
        for n in self._ctx.store.networks():
            if not n.default and f.selects(n.labels, n.created):
                await self._pools.drain(n.id)
        return await networks.prune(self._ctx, f)

    # -- pre-warmed sandboxes (pool.py) ----------------------------------------------

    @property
    def pool_size(self) -> int:
        return self._pools.size

    async def take_sandbox(
        self,
        network: str,
        holder: str,
        dns_names: builtins.list[str] | None = None,
        ports: Iterable[PortMapping] = (),
        kind: str = "container",
    ) -> Sandbox | None:
        """A netns already attached to ``network``, or None; ``dns_names``: what the
        holder answers to on a user network (names.py); ``ports``: published on top
        (their forwarding rules alone, portfwd.py); ``kind``: the holder's (container,
        pod), whose layer's recovery vouches for it after a restart."""
        return await self._pools.take(self.resolve_name(network), holder, dns_names, ports, kind)

    def sandbox_held_by(self, holder: str) -> str | None:
        return self._pools.held_by(holder)

    async def release_sandbox(self, sid: str) -> None:
        await self._pools.release(sid)

    async def recover_sandboxes(self, live_holders: Iterable[str]) -> int:
        """At start-up: keep the free sandboxes that fit, release the rest and those of
        gone containers; then refill. Other kinds' are ``release_gone_sandboxes``'."""
        return await self._pools.recover(set(live_holders))

    async def release_gone_sandboxes(self, live_holders: Iterable[str], kind: str) -> int:
        """At start-up, once a layer knows its live holders of ``kind`` (the pods): the
        sandboxes of the others are released."""
        return await self._pools.release_gone(set(live_holders), kind)

    # -- network namespaces (netns.py) ---------------------------------------------

    @staticmethod
    def netns_name(owner_id: str, kind: str = "container") -> str:
        return f"{kind}-{owner_id}"

    def create_netns(self, owner_id: str, kind: str = "container") -> str:
        """A new pinned network namespace for an owner: ``<state>/netns/<kind>-<owner_id>``."""
        return self._ctx.netns.create(self.netns_name(owner_id, kind))

    def pin_netns(self, owner_id: str, source: str, kind: str = "container") -> str:
        """Pin the netns at ``source`` (a taken sandbox's) as the owner's own too, at
        ``netns_path(owner_id, kind)``; ``remove_netns`` drops only this pin."""
        return self._ctx.netns.bind(self.netns_name(owner_id, kind), source)

    def remove_netns(self, owner_id: str, kind: str = "container") -> bool:
        return self._ctx.netns.remove(self.netns_name(owner_id, kind))

    def netns_path(self, owner_id: str, kind: str = "container") -> str:
        return str(self._ctx.netns.path(self.netns_name(owner_id, kind)))

    # -- attachments (attach.py, detach.py, hostports.py) ----------------------------

    async def loopback_up(self, owner_id: str, netns_path: str) -> None:
        """Only bring lo up in a netns (``--network none``): nothing to undo later."""
        await _attach.loopback_up(self._ctx, owner_id, netns_path)

    async def attach(
        self,
        owner_id: str,
        netns_path: str,
        networks: builtins.list[str],
        ports: Iterable[PortMapping] = (),
        ifname_base: str = "eth",
        kind: str = "container",
        namespace: str = "",
        cni_args: str = "",
        ips: dict[str, str] | None = None,
        dns_names: builtins.list[str] | None = None,
        aliases: dict[str, builtins.list[str]] | None = None,
        macs: dict[str, str] | None = None,
        gateway: str | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """Wire an owner's netns: loopback up, then one interface per network.

        An empty ``networks`` (or "", "bridge") means the default network; for
        loopback only use ``loopback_up``. ``ips`` asks for fixed addresses, by
        network name (``--ip``), ``macs`` fixed MAC addresses (``--mac-address``);
        ``cni_args`` are extra ``K=V;...`` CNI_ARGS. The default route is the first
        network's, or ``gateway``'s (a network of the list: docker's GwPriority).

        Published ports go to the first network. A host port of 0 gets a free port.
        Returns, per network: network, network_id, interface, ip, prefix,
        gateway, mac, ports (the resolved mappings), and ``dns_server`` where the
        network resolves names: ``dns_names`` on every user network and ``aliases``
        (network name -> names) on one, served by aardvark-dns (names.py).
        """
        ports = list(ports)
        await self._pools.releases_done(ports)  # a given-back sandbox's host ports
        return await _attach.attach(
            self._ctx,
            owner_id,
            netns_path,
            networks,
            ports,
            ifname_base,
            kind,
            namespace,
            cni_args,
            ips,
            dns_names,
            aliases,
            macs,
            gateway,
        )

    async def connect(
        self,
        owner_id: str,
        network: str,
        ip: str | None = None,
        dns_names: builtins.list[str] | None = None,
        aliases: builtins.list[str] | None = None,
    ) -> dict[str, Any]:
        """Add one network to an attached (running) owner: CNI ADD of the next
        interface (eth1, eth2...) into its netns, without a default route or
        published ports; returns the attachment as ``attach`` does. A container on a
        warm sandbox connects that sandbox (its owner in CNI terms), so the sandbox's
        release at the end takes the new interface along."""
        sid = self._pools.held_by(owner_id)
        if sid is None:
            return await _attach.connect(self._ctx, owner_id, network, ip, dns_names, aliases)
        names = [*(dns_names or []), owner_id[:12]]  # its short id, as attach would add
        return await _attach.connect(self._ctx, sid, network, ip, names, aliases)

    async def disconnect(self, owner_id: str, network: str) -> None:
        """CNI DEL of an owner's interface on one network (NotFound if not on it)."""
        n = self.get(network)
        owner = self._pools.held_by(owner_id) or owner_id  # a warm sandbox's holder: see connect
        await _detach.disconnect(self._ctx, owner, n.id, n.name)

    def set_dns_names(self, owner_id: str, names: builtins.list[str]) -> None:
        """Replace the names an owner answers to on its user networks (a pod's members
        changed); a warm sandbox's holder renames the sandbox's entry, short id its own."""
        sid = self._pools.held_by(owner_id)
        _names.rename(self._ctx, sid or owner_id, names, owner_id[:12])

    def published_ports(self) -> dict[tuple[int, str], builtins.list[tuple[str, str]]]:
        """Host ports published by attachments: (port, proto) -> [(host_ip, owner)]."""
        return hostports.published_ports(self._ctx)

    async def detach(self, owner_id: str, force: bool = False, background: bool = False) -> int:
        """DEL every attachment of an owner; return how many were removed.

        With ``force`` (the owner is known to be gone) a failing DEL does not keep
        the attachment: see ``detach.detach``. An owner holding a warm sandbox gives it
        back (its DEL, its pin and row go; the owner's own pin of it is the caller's);
        with ``background`` (a pod's removal or stop) that release only starts: it is on
        record as the sandbox's once this returns and finishes in the background, or
        at the next start after a crash (``SandboxPools.release_later``).
        """
        n = 0
        sid = self._pools.held_by(owner_id)
        if sid is not None:
            n = len(self._ctx.store.attachments(sid))
            if background:
                await self._pools.release_later(sid)
            else:
                await self._pools.release(sid)
        return n + await _detach.detach(self._ctx, owner_id, force)

    async def check(self, owner_id: str) -> builtins.list[dict[str, Any]]:
        """CHECK every attachment of an owner: [{network, interface, ok, error}] (a
        container on a warm sandbox: the sandbox's, its ports' DNAT rules included)."""
        return await _detach.check(self._ctx, self._pools.held_by(owner_id) or owner_id)

    async def cleanup_stale(
        self, live_owner_ids: Iterable[str] | None = None, kind: str | None = None
    ) -> builtins.list[str]:
        """Undo what dead owners left behind; return their ids (see ``detach.cleanup_stale``)."""
        return await _detach.cleanup_stale(self._ctx, live_owner_ids, kind)

    # -- daemon hooks (lifecycle.py) -------------------------------------------------

    def missing_plugins(self) -> builtins.list[str]:
        return lifecycle.missing_plugins(self._ctx)

    def ready(self) -> tuple[bool, str]:
        """Whether pods can get a network now (the CRI's NetworkReady condition)."""
        return lifecycle.ready(self._ctx)

    async def startup(self) -> None:
        await lifecycle.startup(self._ctx)

    async def shutdown(self) -> None:
        await self._pools.close()
        await lifecycle.shutdown(self._ctx)

    def info(self, namespace: str | None = None) -> dict[str, Any]:
        return {**lifecycle.info(self._ctx), "sandbox_pool": self._pools.info()}
