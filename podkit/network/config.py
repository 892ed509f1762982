"""Networks as objects, their validation, and their rendering as CNI plugin lists."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from podkit.errors import InvalidArgument

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
# `--network host|none|bridge` mean something else than a network of that name.
RESERVED_NAMES = {"host", "none", "bridge", "default", "container"}


@dataclass
class Network:
    name: str
    id: str
    bridge: str
    subnet: str
    gateway: str
    driver: str = "bridge"
    ip_range: str = ""
    ipmasq: bool = True
    internal: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    created: float = 0.0
    default: bool = False
    options: dict[str, Any] = field(default_factory=dict)  # driver options: mtu

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def portmap(self) -> dict[str, Any] | None:
        """The CNI portmap plugin entry a user's CNI config asked for (CRI's cni_conf_dir),
        run for this network's published ports; None: podkit's own rules (portfwd.py)."""
        entry = self.options.get("portmap")
        return entry if isinstance(entry, dict) else None

    def conflist(
        self,
        ipam_dir: str,
        firewall: bool = False,
        portmap: bool = True,
        plugin_masq: bool = True,
        default_route: bool = True,
    ) -> dict[str, Any]:
        """The CNI plugin list for this network.

        bridge (gateway on the host side, hairpin so a pod reaches itself through a
        published port, masquerade out unless internal) with host-local IPAM whose
        leases live under podkit's root; portmap for published ports where asked
        (``portmap=True``: the user's own entry, ``Network.portmap``, else one with SNAT
        so 127.0.0.1 and hairpinned connections work); firewall only where asked for.
        ``plugin_masq=False`` when the caller masquerades the subnet itself;
        ``default_route=False`` for all but one of an owner's interfaces (one default
        route per netns: the first network's, or the one attach is told: GwPriority).
        """
        rng: dict[str, Any] = {"subnet": self.subnet, "gateway": self.gateway}
        if self.ip_range:
            r = ipaddress.ip_network(self.ip_range)
            hosts = list(_ends(r))
            rng["rangeStart"], rng["rangeEnd"] = str(hosts[0]), str(hosts[1])
        bridge: dict[str, Any] = {}
        if self.options.get("mtu"):
            bridge["mtu"] = int(self.options["mtu"])
        plugins: list[dict[str, Any]] = [
            {
                **bridge,
                "type": "bridge",
                "bridge": self.bridge,
                "isGateway": not self.internal,
                "ipMasq": plugin_masq and self.ipmasq and not self.internal,
                "hairpinMode": True,
                "promiscMode": False,
                "ipam": {
                    "type": "host-local",
                    "dataDir": ipam_dir,
                    "ranges": [[rng]],
                    "routes": [] if self.internal or not default_route else [{"dst": "0.0.0.0/0"}],
                },
            }
        ]
        if portmap:
            entry = self.portmap or {"type": "portmap", "snat": True}
            plugins.append({**entry, "capabilities": {**entry.get("capabilities", {}), "portMappings": True}})
        if firewall:
            plugins.append({"type": "firewall", "backend": "iptables"})
        return {"cniVersion": "1.0.0", "name": self.name, "plugins": plugins}


def _ends(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[Any, Any]:
    """First and last usable host of a range (the range may be a /32)."""
    if net.num_addresses <= 2:
        return net[0], net[-1]
    return net[1], net[-2]


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidArgument(
            f"invalid network name {name!r}: use letters, digits, '_', '.' or '-' "
            "(up to 63 characters, starting with a letter or digit)"
        )
    if name in RESERVED_NAMES:
        raise InvalidArgument(f"network name {name!r} is reserved")
    return name


def check_bridge(name: str) -> str:
    if not IFNAME_RE.fullmatch(name or ""):
        raise InvalidArgument(
            f"invalid bridge name {name!r}: 1-15 characters of letters, digits, '_', '.' or '-'"
        )
    return name


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(str(text), strict=True)
    except ValueError as e:
        raise InvalidArgument(f"invalid subnet {text!r}: {e}") from None
    if net.version != 4:
        raise InvalidArgument(f"invalid subnet {text!r}: only IPv4 subnets are supported")
    if net.prefixlen > 30:
        raise InvalidArgument(f"invalid subnet {text!r}: too small, use a /30 or larger")
    if net.is_loopback or net.is_multicast or net.is_link_local or net.is_unspecified:
        raise InvalidArgument(f"invalid subnet {text!r}: not a unicast range for containers")
    return net


def parse_gateway(text: str, subnet: ipaddress.IPv4Network) -> str:
    try:
        gw = ipaddress.ip_address(str(text))
    except ValueError:
        raise InvalidArgument(f"invalid gateway {text!r}: not an IP address") from None
    if gw not in subnet or gw in (subnet.network_address, subnet.broadcast_address):
        raise InvalidArgument(f"invalid gateway {text}: not a host address in subnet {subnet}")
    return str(gw)


def parse_ip_range(text: str, subnet: ipaddress.IPv4Network) -> str:
    try:
        r = ipaddress.ip_network(str(text), strict=True)
    except ValueError as e:
        raise InvalidArgument(f"invalid ip range {text!r}: {e}") from None
    if r.version != 4 or not r.subnet_of(subnet):
        raise InvalidArgument(f"invalid ip range {text}: not inside subnet {subnet}")
    return str(r)


def parse_options(opts: dict[str, Any] | None) -> dict[str, Any]:
    """Driver options (``network create -o K=V``): ``mtu`` (68-65535)."""
    out: dict[str, Any] = {}
    for k, v in (opts or {}).items():
        key = k.rsplit(".", 1)[-1] if k.startswith("com.docker.network.driver.") else k
        if key == "mtu":
            try:
                mtu = int(v)
            except (TypeError, ValueError):
                raise InvalidArgument(f"invalid mtu {v!r}: not a number") from None
            if not 68 <= mtu <= 65535:
                raise InvalidArgument(f"invalid mtu {mtu}: must be 68-65535")
            out["mtu"] = mtu
        elif key == "portmap":
            # a user's CNI file (the CRI's) listed the portmap plugin: it runs as written
            if not isinstance(v, dict) or v.get("type") != "portmap":
                raise InvalidArgument("network option portmap must be a CNI portmap plugin entry (an object)")
            out["portmap"] = dict(v)
        else:
            raise InvalidArgument(f"unknown network option {k!r}: the bridge driver knows mtu")
    return out
