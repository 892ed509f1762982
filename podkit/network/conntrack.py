"""Deleting conntrack entries of published UDP ports, over ctnetlink (no ``conntrack`` exec).

A UDP flow has no end the kernel sees: while its packets keep coming, its conntrack
entry lives on and keeps the NAT decision of its first packet. Packets sent to a host
port before its DNAT rule existed stay with the host (nobody listening); a flow that was
DNAT'd to a container keeps going to that address after the container is gone (and to
whoever gets the address next). So, as the CNI portmap plugin does after its ADD,
podkit deletes the UDP entries of a published host port once its rules are in place —
and again once they are removed.

One dump of the host's IPv4 table, filtered here, and one DELETE per entry found, each
naming the entry's original tuple as the dump gave it.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
from collections.abc import Iterable, Iterator

log = logging.getLogger(__name__)

NETLINK_NETFILTER = 12
NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_GET = 1
IPCTNL_MSG_CT_DELETE = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLA_F_NESTED = 0x8000
CTA_TUPLE_ORIG, CTA_ZONE = 1, 18
CTA_TUPLE_IP, CTA_TUPLE_PROTO = 1, 2
CTA_IP_V4_DST = 2
CTA_PROTO_NUM, CTA_PROTO_DST_PORT = 1, 3
IPPROTO_UDP = 17

_NLMSG = struct.Struct("=IHHII")
_NFGEN = struct.Struct("=BBH")
_NLA = struct.Struct("=HH")


def _attrs(buf: bytes) -> Iterator[tuple[int, bytes, bytes]]:
    """(type without flags, payload, the whole attribute) of a run of netlink attributes."""
    off = 0
    while off + 4 <= len(buf):
        ln, typ = _NLA.unpack_from(buf, off)
        if ln < 4:
            return
        yield typ & ~NLA_F_NESTED & 0x7FFF, buf[off + 4 : off + ln], buf[off : off + ln]
        off += (ln + 3) & ~3


def _orig(payload: bytes) -> tuple[bytes, bytes, tuple[int, str, int] | None]:
    """An entry's original tuple (raw), its zone attribute (raw, or b""), and (proto, dst, dport)."""
    raw = zone = b""
    key: tuple[int, str, int] | None = None
    for typ, val, whole in _attrs(payload):
        if typ == CTA_ZONE:
            zone = whole
        elif typ == CTA_TUPLE_ORIG:
            raw = whole
            proto, dst, dport = -1, "", -1
            for t2, v2, _ in _attrs(val):
                if t2 == CTA_TUPLE_IP:
                    for t3, v3, _ in _attrs(v2):
                        if t3 == CTA_IP_V4_DST and len(v3) == 4:
                            dst = socket.inet_ntoa(v3)
                elif t2 == CTA_TUPLE_PROTO:
                    for t3, v3, _ in _attrs(v2):
                        if t3 == CTA_PROTO_NUM and v3:
                            proto = v3[0]
                        elif t3 == CTA_PROTO_DST_PORT and len(v3) >= 2:
                            dport = struct.unpack(">H", v3[:2])[0]
            key = (proto, dst, dport)
    return raw, zone, key


def _request(sock: socket.socket, msg_type: int, flags: int, seq: int, body: bytes) -> None:
    hdr = _NLMSG.pack(_NLMSG.size + len(body), (NFNL_SUBSYS_CTNETLINK << 8) | msg_type, flags, seq, 0)
    sock.send(hdr + body)


def _messages(sock: socket.socket) -> Iterator[tuple[int, bytes]]:
    """(type, payload after nfgenmsg) of replies until DONE; raises OSError on an error reply."""
    while True:
        data = sock.recv(1 << 16)
        off = 0
        while off + _NLMSG.size <= len(data):
            ln, typ, _flags, _seq, _pid = _NLMSG.unpack_from(data, off)
            if ln < _NLMSG.size:
                return
            body = data[off + _NLMSG.size : off + ln]
            off += (ln + 3) & ~3
            if typ == NLMSG_DONE:
                return
            if typ == NLMSG_ERROR:
                code = struct.unpack_from("=i", body)[0] if len(body) >= 4 else 0
                if code:
                    raise OSError(-code, os.strerror(-code))
                return  # an ACK
            yield typ, body[_NFGEN.size :]


def delete_udp(ports: Iterable[tuple[str, int]]) -> int:
    """Delete the host's UDP conntrack entries to these (host IP or "" for any, port)s.

    Returns how many went. Failures are logged (a stale entry is a nuisance, not a
    reason to fail a start or a removal)."""
    want = list(ports)
    if not want:
        return 0
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
    except OSError as e:
        log.warning("cannot open ctnetlink to delete UDP conntrack entries: %s", e)
        return 0
    gone = 0
    with sock:
        try:
            sock.bind((0, 0))
            _request(
                sock, IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, 1, _NFGEN.pack(socket.AF_INET, 0, 0)
            )
            doomed = []
            for _typ, payload in _messages(sock):
                raw, zone, key = _orig(payload)
                if key is None or key[0] != IPPROTO_UDP:
                    continue
                if any(port == key[2] and (not ip or ip == key[1]) for ip, port in want):
                    doomed.append(raw + zone)
            for seq, attrs in enumerate(doomed, start=2):
                _request(
                    sock, IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, seq,
                    _NFGEN.pack(socket.AF_INET, 0, 0) + attrs,
                )  # fmt: skip
                try:
                    for _ in _messages(sock):
                        pass
                    gone += 1
                except OSError as e:
                    if e.errno != errno.ENOENT:  # timed out meanwhile: fine
                        raise
        except OSError as e:
            log.warning("deleting UDP conntrack entries of ports %s failed: %s", want, e)
    return gone
