"""What callers see of an attachment: the interface in the netns, its IP, its ports."""

from __future__ import annotations

import ipaddress
from typing import Any

from podkit.network.ports import PortMapping
from podkit.network.store import Attachment


def summary(
    name: str, nid: str, ifname: str, netns: str, result: dict[str, Any], ports: list[PortMapping]
) -> dict[str, Any]:
    """The interesting part of a CNI result: the interface in the netns and its IP."""
    ifaces = result.get("interfaces") or []
    idx = next((i for i, f in enumerate(ifaces) if f.get("name") == ifname and f.get("sandbox")), None)
    ip = gateway = ""
    prefix: int | str = ""
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


def public(a: Attachment) -> dict[str, Any]:
    """An attachment row as the API shows it: its summary plus owner and state."""
    s = summary(
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


def attached_ip(a: Attachment) -> str:
    """The IP an attachment got ("" before its ADD finished)."""
    return str(summary(a["network"], a["network_id"], a["ifname"], "", a["result"] or {}, [])["ip"])
