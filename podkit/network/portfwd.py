"""Published ports, forwarded by podkit's own iptables rules (as docker and netavark do).

The CNI portmap plugin is a Go binary that runs iptables some 35 times for one ADD
(listing the nat table four times, checking and appending rule by rule, each call
taking the xtables lock) and ~20 times again for its DEL: ~40 ms of a container start
with ``-p`` and ~90 ms of its teardown, and more CPU than podman's whole start. podkit's
own networks forward their published ports with the same rules portmap makes, written
in ONE ``iptables-restore --noflush`` per add and one per removal (atomic: all of an
owner's rules are there, or none). A network made from a user's CNI file that lists
portmap keeps running portmap itself (``Network.portmap``, see config.py).

The rules (nat table, IPv4), portmap's with ``snat: true``::

    PREROUTING  -m addrtype --dst-type LOCAL -j PODKIT-HOSTPORT-DNAT      } once per host,
    OUTPUT      -m addrtype --dst-type LOCAL -j PODKIT-HOSTPORT-DNAT      } never removed
    POSTROUTING -j PODKIT-HOSTPORT-MASQ                                   } (shared by every
    PODKIT-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE       }  podkitd's owners)

    PODKIT-HOSTPORT-DNAT -p tcp -m multiport --dports 8080,8081            one jump per protocol
        -m comment --comment "podkit ports net <net16> id <owner>"         (15 ports a jump) into
        -j PODKIT-DN-<net8><owner10>                                       the owner's own chain:
    PODKIT-DN-... -s <subnet> [-d hostIP] -p tcp --dport 8080 -j MARK     hairpin (a container of
                                                                           the network to a host
                                                                           address) and
    PODKIT-DN-... -s 127.0.0.1 [-d hostIP] -p tcp --dport 8080 -j MARK    the host's loopback are
                                                                           masqueraded (mark 0x2000)
    PODKIT-DN-... [-d hostIP] -p tcp --dport 8080 -j DNAT --to-destination <ip>:80

Connecting from the host to 127.0.0.1:<port> also needs ``route_localnet`` on the
network's bridge (a source of 127.0.0.1 may then leave through it: portmap sets the same).
As Kubernetes does since CVE-2020-8558, the filter table's INPUT drops what that would
otherwise let in: packets to 127.0.0.0/8 from elsewhere that arrived on another interface
than lo and are not part of a connection the host made (a container's hand-made packet to
the host's loopback services).

Every rule of an owner is found again by its comment (the network's id names the daemon's
own networks: several podkitd may share the host) and its chain; at start-up
``reconcile`` removes what no attachment names any more and puts back what one names but
the host lost. UDP's conntrack entries of the ports are deleted after each add and
removal (conntrack.py).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import ipaddress
import logging
import os
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from podkit.errors import Internal
from podkit.network import conntrack
from podkit.network.config import Network
from podkit.network.iptables import jump_target, parse_save, restore, restore_sync
from podkit.network.ports import PortMapping
from podkit.network.store import Attachment

log = logging.getLogger(__name__)

DNAT_CHAIN = "PODKIT-HOSTPORT-DNAT"
MASQ_CHAIN = "PODKIT-HOSTPORT-MASQ"
CHAIN_PREFIX = "PODKIT-DN-"
MARK = "0x2000/0x2000"
BASE_COMMENT = "podkit published ports"
LOCALNET_COMMENT = "podkit: no outside packets to host loopback"
MULTIPORT_MAX = 15  # ports one multiport match takes
# A removal's restore that fails (iptables-restore killed, the xtables lock held past
# -w) is tried again this many times, 0.05 s apart and doubling, before it gives up.
REMOVE_RETRIES = 3
# Host-wide: two daemons making the shared chains at once would declare (flush) them twice.
LOCK_PATH = "/run/podkit-portfwd.lock"


@dataclass(frozen=True)
class Forward:
    """The published ports of one owner on one network, and where they go."""

    network_id: str
    owner_id: str
    ports: tuple[PortMapping, ...]
    container_ip: str = ""  # only adding needs it
    subnet: str = ""  # ditto (the hairpin rule's source)

    @property
    def chain(self) -> str:
        h = hashlib.sha256(f"{self.network_id}/{self.owner_id}".encode()).hexdigest()
        return f"{CHAIN_PREFIX}{self.network_id[:8]}{h[:10]}"  # 28 characters: iptables' limit

    @property
    def comment(self) -> str:
        return comment(self.network_id, self.owner_id)


def forward(n: Network, owner_id: str, ports: Iterable[PortMapping], container_ip: str = "") -> Forward:
    return Forward(n.id, owner_id, tuple(ports), container_ip, n.subnet)


def own_rules(a: Attachment) -> bool:
    """Whether an attachment's published ports are podkit's rules (not portmap's: a
    network of a user's CNI file, or an attachment made before podkit had its own)."""
    plugins = (a["conflist"] or {}).get("plugins") or []
    return bool(a["ports"]) and not any(isinstance(p, dict) and p.get("type") == "portmap" for p in plugins)


def of_attachment(a: Attachment, container_ip: str = "", subnet: str = "") -> Forward:
    ports = tuple(PortMapping.from_dict(p) for p in a["ports"])
    return Forward(a["network_id"], a["owner_id"], ports, container_ip, subnet)


def comment(network_id: str, owner_id: str) -> str:
    return f"podkit ports net {network_id[:16]} id {owner_id}"


def _match_proto(proto: str) -> str:
    return f"-p {proto} -m {proto}"


def _jumps(f: Forward) -> list[str]:
    """The owner's rules in the top chain, as iptables-save prints them (-D needs them exact)."""
    out = []
    for proto in dict.fromkeys(p.protocol for p in f.ports):
        ports = list(dict.fromkeys(str(p.host_port) for p in f.ports if p.protocol == proto))
        for i in range(0, len(ports), MULTIPORT_MAX):
            dports = ",".join(ports[i : i + MULTIPORT_MAX])
            match = f'-p {proto} -m multiport --dports {dports} -m comment --comment "{f.comment}"'
            out.append(f"-A {DNAT_CHAIN} {match} -j {f.chain}")
    return out


def add_script(f: Forward) -> str:
    """iptables-restore input for an owner's rules (its chain declared: emptied if left over)."""
    net = str(ipaddress.ip_network(f.subnet, strict=False))
    lines = ["*nat", f":{f.chain} - [0:0]"]
    for p in f.ports:
        dst = f"-d {p.host_ip}/32 " if p.host_ip else ""
        m = f"{_match_proto(p.protocol)} --dport {p.host_port}"
        lines.append(f"-A {f.chain} -s {net} {dst}{m} -j MARK --set-xmark {MARK}")
        lines.append(f"-A {f.chain} -s 127.0.0.1/32 {dst}{m} -j MARK --set-xmark {MARK}")
        lines.append(f"-A {f.chain} {dst}{m} -j DNAT --to-destination {f.container_ip}:{p.container_port}")
    return "\n".join([*lines, *_jumps(f), "COMMIT", ""])


def delete_script(f: Forward) -> str:
    jumps = ["-D" + j[2:] for j in _jumps(f)]
    return "\n".join(["*nat", *jumps, f"-F {f.chain}", f"-X {f.chain}", "COMMIT", ""])


# -- running iptables ----------------------------------------------------------------


def _save_sync(table: str) -> str:
    try:
        r = subprocess.run(["iptables-save", "-t", table], capture_output=True, check=False)
    except FileNotFoundError:
        return ""
    return r.stdout.decode(errors="replace") if r.returncode == 0 else ""


async def _save(table: str = "nat") -> str:
    return await asyncio.to_thread(_save_sync, table)


def ensure_base_sync() -> None:
    """The shared chains and their jumps, made where missing (under a host-wide lock)."""
    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        nat, filt = _save_sync("nat"), _save_sync("filter")
        script = _base_script(nat, filt)
        if script:
            rc, out = restore_sync(script)
            if rc != 0:
                raise Internal(f"iptables-restore failed making podkit's port forwarding chains: {out}")
    finally:
        os.close(fd)


def _base_script(nat: str, filt: str) -> str:
    chains = {line[1:].split()[0] for line in nat.splitlines() if line.startswith(":")}
    rules = {line for line in nat.splitlines() if line.startswith("-A ")}
    masq = f'-A {MASQ_CHAIN} -m comment --comment "{BASE_COMMENT}" -m mark --mark {MARK} -j MASQUERADE'
    want = [
        f"-A PREROUTING -m addrtype --dst-type LOCAL -j {DNAT_CHAIN}",
        f"-A OUTPUT -m addrtype --dst-type LOCAL -j {DNAT_CHAIN}",
        f'-A POSTROUTING -m comment --comment "{BASE_COMMENT}" -j {MASQ_CHAIN}',
        masq,
    ]
    lines = []
    if DNAT_CHAIN not in chains:
        lines.append(f":{DNAT_CHAIN} - [0:0]")  # never declared when present: that would empty it
    if MASQ_CHAIN not in chains:
        lines.append(f":{MASQ_CHAIN} - [0:0]")
    lines += [r for r in want if r not in rules]
    guard = (
        f"-I INPUT 1 -d 127.0.0.0/8 ! -s 127.0.0.0/8 ! -i lo -m comment --comment "
        f'"{LOCALNET_COMMENT}" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP'
    )
    out = []
    if len(lines) > 0:
        out += ["*nat", *lines, "COMMIT"]
    if filt and LOCALNET_COMMENT not in filt:
        out += ["*filter", guard, "COMMIT"]
    return "\n".join([*out, ""]) if out else ""


# -- an owner's rules -----------------------------------------------------------------


def _localnet(bridge: str, ports: Iterable[PortMapping]) -> None:
    """Let 127.0.0.1-sourced (DNAT'd host loopback) packets leave through the bridge."""
    if not any(not p.host_ip or ipaddress.ip_address(p.host_ip).is_loopback for p in ports):
        return
    path = f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet"
    try:
        with open(path, "r+") as fh:
            if fh.read(1) != "1":
                fh.seek(0)
                fh.write("1")
    except OSError as e:
        log.warning("cannot set route_localnet on %s: 127.0.0.1 publishing will not work: %s", bridge, e)


def _udp(f: Forward) -> list[tuple[str, int]]:
    return [(p.host_ip, p.host_port) for p in f.ports if p.protocol == "udp"]


class Forwarder:
    """Adds and removes owners' rules; makes the shared chains once per daemon."""

    def __init__(self) -> None:
        self._base: asyncio.Lock = asyncio.Lock()
        self._ready = False

    async def ensure_base(self) -> None:
        if self._ready:
            return
        async with self._base:
            if not self._ready:
                await asyncio.to_thread(ensure_base_sync)
                self._ready = True

    async def add(self, f: Forward, bridge: str) -> None:
        """The owner's rules, all in one restore; raises Internal when iptables refuses."""
        if not f.ports:
            return
        if not f.container_ip:
            raise Internal(f"cannot publish the ports of {f.owner_id[:12]}: it has no IPv4 address")
        await self.ensure_base()
        _localnet(bridge, f.ports)
        rc, out = await restore(add_script(f))
        if rc != 0 and await self.present(f):
            # It failed after its commit (killed on its way out): the rules are in, and
            # adding them again would double the owner's jumps.
            rc = 0
        if rc != 0:
            # The base chains may have gone since (an iptables flush): make them, once more.
            self._ready = False
            await self.ensure_base()
            rc, out = await restore(add_script(f))
            if rc != 0:
                raise Internal(
                    f"iptables-restore failed adding the published ports of {f.owner_id[:12]}: {out}"
                )
        if _udp(f):
            await asyncio.to_thread(conntrack.delete_udp, _udp(f))

    async def remove(self, f: Forward) -> None:
        """The owner's rules go (nothing to do when they are gone already).

        A removal that fails is tried again (``REMOVE_RETRIES``) before it raises: the
        owner's address is given up next (a teardown goes on even when this fails), and
        a rule left behind would forward its ports to whoever gets the address, until a
        restart's ``reconcile``."""
        rc, out = await restore(delete_script(f))
        if rc != 0:
            # Not as expected (removed before, changed by hand, or the restore died):
            # remove what is there.
            for attempt in range(REMOVE_RETRIES + 1):
                try:
                    removed = await self._remove_found([(f.network_id, f.owner_id)], await _save())
                    break
                except Internal as e:
                    if attempt == REMOVE_RETRIES:
                        raise
                    log.info("removing %s's port rules: %s; trying again", f.owner_id[:12], e.message)
                    await asyncio.sleep(0.05 * 2**attempt)
            log.debug(
                "exact removal of %s's port rules failed (%s); removed %d found",
                f.owner_id[:12],
                out,
                removed,
            )
        if _udp(f):
            await asyncio.to_thread(conntrack.delete_udp, _udp(f))

    async def present(self, f: Forward) -> bool:
        """Whether the owner's jump into its chain is in place."""
        text = await _save()
        return any(
            f'--comment "{f.comment}"' in line and line.startswith(f"-A {DNAT_CHAIN} ")
            for line in text.splitlines()
        )

    async def _remove_found(self, owners: list[tuple[str, str]], text: str) -> int:
        """Remove the jumps (as saved) and chains of (network id, owner) pairs."""
        want = {comment(n, o) for n, o in owners}
        chains = {Forward(n, o, ()).chain for n, o in owners}
        return await self._remove_lines(text, lambda c, ch: c in want or ch in chains)

    async def _remove_lines(self, text: str, doomed: Callable[[str, str], bool]) -> int:
        present = {line[1:].split()[0] for line in text.splitlines() if line.startswith(":")}
        dels: list[str] = []
        gone_chains: set[str] = set()
        for line in text.splitlines():
            if not line.startswith(f"-A {DNAT_CHAIN} "):
                continue
            rule = parse_save(f"*nat\n{line}\n").get("nat", [[]])[0]
            c = _comment_of(rule)
            target = jump_target(rule)
            if doomed(c, target):
                dels.append("-D" + line[2:])
                if target.startswith(CHAIN_PREFIX):
                    gone_chains.add(target)
        for ch in present:
            if ch.startswith(CHAIN_PREFIX) and doomed("", ch):
                gone_chains.add(ch)
        if not dels and not gone_chains:
            return 0
        script = ["*nat", *dels]
        for ch in sorted(gone_chains & present):
            script += [f"-F {ch}", f"-X {ch}"]
        rc, out = await restore("\n".join([*script, "COMMIT", ""]))
        if rc != 0:
            raise Internal(f"iptables-restore failed removing published port rules: {out}")
        return len(dels) + len(gone_chains & present)

    async def reconcile(
        self, network_ids: set[str], keep: dict[tuple[str, str], Forward], bridges: dict[str, str]
    ) -> int:
        """At start-up: rules of this daemon's networks (``network_ids``) that no owner in
        ``keep`` names are removed; the owners in ``keep`` whose jump is missing get their
        rules again. Returns how many rules/chains were removed or added back."""
        text = await _save()
        if not text:
            return 0
        nets16 = {n[:16] for n in network_ids}
        nets8 = {n[:8] for n in network_ids}
        kept_comments = {f.comment for f in keep.values()}
        kept_chains = {f.chain for f in keep.values()}

        def doomed(c: str, chain: str) -> bool:
            if c:
                parts = c.split()
                ours = len(parts) == 6 and parts[:3] == ["podkit", "ports", "net"] and parts[3] in nets16
                return ours and c not in kept_comments
            return chain[len(CHAIN_PREFIX) :][:8] in nets8 and chain not in kept_chains

        n = await self._remove_lines(text, doomed)
        if n:
            log.info("removed %d published-port rules/chains that no attachment names", n)
        for f in keep.values():
            if f.container_ip and f'--comment "{f.comment}"' not in text:
                log.info(
                    "published ports of %s were missing from iptables: adding them again", f.owner_id[:12]
                )
                try:
                    await self.add(f, bridges.get(f.network_id, ""))
                    n += 1
                except Internal as e:
                    log.warning("%s", e.message)
        return n


def _comment_of(rule: list[str]) -> str:
    for i, a in enumerate(rule):
        if a == "--comment" and i + 1 < len(rule):
            return rule[i + 1]
    return ""
