"""Host ports of published mappings: checked against each other, picked, and held.

A DNAT rule takes a port silently, without binding it, so podkit checks against
ports it already publishes and binds (and listens on) each port itself, as
podman's conmon does: a host service that bound it before is reported, and one
that tries after gets EADDRINUSE instead of silently never seeing its
connections.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Iterable

from podkit.errors import Conflict, InvalidArgument, PodkitError
from podkit.network.context import NetworkContext
from podkit.network.ports import PortMapping, free_host_port

log = logging.getLogger(__name__)

# (host port, protocol) -> [(host IP or "" for all, owner id)]
Published = dict[tuple[int, str], list[tuple[str, str]]]


def reserve(p: PortMapping) -> socket.socket | None:
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


def close(socks: Iterable[socket.socket]) -> None:
    for s in socks:
        try:
            s.close()
        except OSError as e:
            log.warning("could not close the reservation of host port %s: %s", s, e)


def published_ports(ctx: NetworkContext) -> Published:
    """Host ports published by attachments: (port, proto) -> [(host_ip, owner)]."""
    used: Published = {}
    # a warm sandbox's ports are its holder's (the container a clash names)
    holders = {sid: holder for sid, _, holder in ctx.store.all_sandboxes() if holder}
    for a in ctx.store.attachments():
        for p in a["ports"]:
            m = PortMapping.from_dict(p)
            owner = holders.get(a["owner_id"], a["owner_id"])
            used.setdefault((m.host_port, m.protocol), []).append((m.host_ip, owner))
    return used


def resolve_ports(
    ctx: NetworkContext, ports: Iterable[PortMapping]
) -> tuple[list[PortMapping], list[socket.socket]]:
    """Validate mappings, refuse host ports taken, pick free ones for host port 0,
    and reserve each: the returned sockets hold the ports while published."""
    used = published_ports(ctx)
    out: list[PortMapping] = []
    socks: list[socket.socket] = []
    try:
        for p in ports:
            m, sock = _resolve_one(p, used)
            if sock is not None:
                socks.append(sock)
            used.setdefault((m.host_port, m.protocol), []).append((m.host_ip, "this request"))
            out.append(m)
    except BaseException:
        close(socks)
        raise
    return out, socks


def _clash(used: Published, m: PortMapping) -> str | None:
    for ip, owner in used.get((m.host_port, m.protocol), []):
        if not ip or not m.host_ip or ip == m.host_ip:
            return owner
    return None


def _resolve_one(
    p: PortMapping | dict[str, object], used: Published
) -> tuple[PortMapping, socket.socket | None]:
    if isinstance(p, dict):  # the SDK and the API hand mappings over as objects
        p = PortMapping.from_dict(p)
    p = p.validated()
    if ":" in p.host_ip:
        raise InvalidArgument(f"cannot publish {p}: podkit networks are IPv4 only")
    if p.host_port != 0:
        owner = _clash(used, p)
        if owner is not None:
            raise Conflict(f"host port {p.host_port}/{p.protocol} is already published by {owner[:12]}")
        return p, reserve(p)
    for _ in range(64):
        cand = PortMapping(p.host_ip, free_host_port(p.protocol, p.host_ip), p.container_port, p.protocol)
        if _clash(used, cand) is None:
            try:
                return cand, reserve(cand)
            except Conflict:  # taken since the kernel offered it
                continue
    raise Conflict(f"no free host port found for {p}")


def reserve_published(ctx: NetworkContext) -> None:
    """Hold the host ports of attachments that survived a restart again."""
    for a in ctx.store.attachments():
        if a["owner_id"] in ctx.reserved:
            continue
        for d in a["ports"]:
            p = PortMapping.from_dict(d)
            try:
                sock = reserve(p)
            except PodkitError as e:
                log.warning(
                    "cannot reserve published port %s of %s again: %s", p, a["owner_id"][:12], e.message
                )
                continue
            if sock is not None:
                ctx.reserved.setdefault(a["owner_id"], []).append(sock)
