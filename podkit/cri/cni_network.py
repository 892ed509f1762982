"""The network CRI pods join: the node's CNI configuration when podkit can honour it.

As containerd, the first file by name in ``[cri] cni_conf_dir`` is the pod network.
podkit runs CNI plugins itself, with its own IPAM under its root and its own
bookkeeping for DEL after crashes, so it takes from that file what a podkit network
is made of: a ``bridge`` plugin (its bridge name) with ``host-local`` IPAM (subnet,
gateway). That becomes podkit network ``cri-<name>``, made once; a ``portmap`` entry of
the file is kept with it and run as written for the pods' published ports (podkit's own
networks forward them with rules of its own, network/portfwd.py). Any other
configuration (overlay plugins, other IPAM) is logged and the pods join podkit's
default network instead.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from podkit.cri.config import cni_conflist
from podkit.cri.context import CRI
from podkit.errors import NotFound, PodkitError

log = logging.getLogger(__name__)

DEFAULT = "bridge"  # podkit's default network


def bridge_settings(conf: dict[str, Any]) -> tuple[str, str, str, str] | None:
    """(name, bridge, subnet, gateway) of a bridge + host-local conflist, else None."""
    plugins = conf.get("plugins") if "plugins" in conf else [conf]
    if not isinstance(plugins, list) or not plugins or not isinstance(plugins[0], dict):
        return None
    first = plugins[0]
    raw_ipam = first.get("ipam")
    ipam: dict[str, Any] = raw_ipam if isinstance(raw_ipam, dict) else {}
    if first.get("type") != "bridge" or ipam.get("type") != "host-local":
        return None
    subnet, gateway = ipam.get("subnet"), ipam.get("gateway")
    ranges = ipam.get("ranges")
    if not subnet and isinstance(ranges, list) and ranges and isinstance(ranges[0], list) and ranges[0]:
        r0 = ranges[0][0] if isinstance(ranges[0][0], dict) else {}
        subnet, gateway = r0.get("subnet"), r0.get("gateway", gateway)
    if not isinstance(subnet, str) or not subnet:
        return None
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", str(conf.get("name") or "net"))[:50].strip("-._") or "net"
    bridge = str(first.get("bridge") or "cni0")
    return name, bridge, subnet, str(gateway or "")


async def pod_network(cri: CRI) -> str:
    """The podkit network name for a new sandbox (decided once per daemon)."""
    if cri.pod_network:
        return cri.pod_network
    path = cni_conflist(cri.config.cni_conf_dir)
    cri.pod_network = await _from_file(cri, path) if path is not None else DEFAULT
    return cri.pod_network


async def _from_file(cri: CRI, path: Path) -> str:
    try:
        conf = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        log.warning("CNI config %s unreadable (%s): CRI pods join podkit's default network", path, e)
        return DEFAULT
    settings = bridge_settings(conf) if isinstance(conf, dict) else None
    if settings is None:
        log.warning(
            "CNI config %s is not a bridge with host-local IPAM, which is what podkit runs itself: "
            "CRI pods join podkit's default network",
            path,
        )
        return DEFAULT
    name, bridge, subnet, gateway = settings
    plugins = conf.get("plugins") if isinstance(conf.get("plugins"), list) else [conf]
    portmap = next((p for p in plugins if isinstance(p, dict) and p.get("type") == "portmap"), None)
    net_name = f"cri-{name}"
    networks = cri.services.networks
    try:
        networks.get(net_name)
        return net_name
    except NotFound:
        pass
    try:
        await networks.create(
            net_name,
            subnet=subnet,
            gateway=gateway or None,
            bridge=bridge,
            labels={"io.podkit.cri.cni": str(path)},
            options={"portmap": portmap} if portmap else None,
        )
    except PodkitError as e:
        log.warning(
            "CNI config %s: cannot make network %s (%s): CRI pods join the default network",
            path,
            net_name,
            e.message,
        )
        return DEFAULT
    log.info("CRI pods join network %s (bridge %s, %s) from %s", net_name, bridge, subnet, path)
    return net_name
