"""What the network layer's operations share: one ``NetworkContext`` per manager.

``NetworkManager`` is the public face; the per-operation modules (networks,
attach, detach, masquerade, hostports, lifecycle) are functions of this context,
so that each of them can be read, and tested, on its own.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from podkit.network.cni import CNI
from podkit.network.netns import NetnsPins
from podkit.network.portfwd import Forwarder
from podkit.network.store import NetworkStore

log = logging.getLogger(__name__)

FirewallSetting = bool | Literal["auto"]


class Publish(Protocol):
    """The daemon event bus's ``publish(namespace, type, action, id, **attributes)``."""

    def __call__(self, namespace: str, type: str, action: str, id: str, /, **attributes: str) -> object: ...


@dataclass
class NetworkContext:
    store: NetworkStore
    cni: CNI
    netns: NetnsPins
    root: Path
    state: Path
    ipam_dir: Path
    default_name: str
    default_bridge: str
    default_subnet: str
    pool: ipaddress.IPv4Network
    # firewall plugin: true, false, or "auto" = only where FORWARD drops by
    # default (a host with docker, say), where forwarded traffic needs ACCEPTs.
    firewall_setting: FirewallSetting
    firewall: bool
    publish: Publish | None = None
    # Serialises network create/remove (name and subnet checks against the store).
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Per network: no attach slips in between remove's check and its delete.
    net_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    masq_on: set[str] = field(default_factory=set)
    reserved: dict[str, list[socket.socket]] = field(default_factory=dict)  # owner -> its host port sockets
    # Published ports on podkit's own networks: podkit's iptables rules (portfwd.py).
    fwd: Forwarder = field(default_factory=Forwarder)

    def net_lock(self, network_id: str) -> asyncio.Lock:
        lock = self.net_locks.get(network_id)
        if lock is None:
            lock = self.net_locks[network_id] = asyncio.Lock()
        return lock

    def event(
        self, namespace: str, action: str, network_id: str, network: str, owner_id: str, kind: str
    ) -> None:
        if self.publish is None:
            return
        try:
            self.publish(
                namespace or "default", "network", action, network_id, name=network, **{kind: owner_id}
            )
        except Exception as e:  # a subscriber's failure must not undo the network operation
            log.warning(
                "could not publish network %s event of %s for %s: %s", action, network, owner_id[:12], e
            )

    def drop_ipam(self, network: str) -> None:
        """Remove a network's host-local lease directory, logging what cannot go."""
        d = self.ipam_dir / network
        if not d.exists():
            return

        def failed(_fn: object, path: str, exc: tuple[object, BaseException, object]) -> None:
            log.warning("could not remove IPAM state %s of network %s: %s", path, network, exc[1])

        shutil.rmtree(d, onerror=failed)
