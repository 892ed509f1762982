"""Whether the server end of a connected unix socket has accepted the connection.

A connect to a listening unix socket succeeds as soon as the connection is queued; no
event tells the client when the server accept()s it. The kernel's socket diagnostics
(NETLINK_SOCK_DIAG, ``unix_diag``, what ``ss -x`` reads) do: they name the peer of a
socket by its inode, and a connection still waiting in the listener's queue has a peer
without one (0) until accept() gives it a file.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 0x1
_NLMSG_ERROR = 2
_UDIAG_SHOW_PEER = 0x4
_UNIX_DIAG_PEER = 2
_NO_COOKIE = 0xFFFFFFFF
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_REQUEST = struct.Struct("=BBHIIIII")  # unix_diag_req: family, protocol, pad, states, ino, show, cookie[2]
_MESSAGE = struct.Struct("=BBBBIII")  # unix_diag_msg: family, type, state, pad, ino, cookie[2]
_ATTR = struct.Struct("=HH")  # rtattr: len, type


class Unavailable(Exception):
    """The kernel answers no unix socket diagnostics (no unix_diag support)."""


def peer_accepted(sock: socket.socket) -> bool:
    """True once the server end of ``sock`` (a connected AF_UNIX stream or seqpacket
    socket) was accept()ed; False while it waits in the listener's queue.

    Raises ``Unavailable`` where the kernel has no unix_diag, OSError otherwise.
    """
    ino = os.fstat(sock.fileno()).st_ino
    req = _REQUEST.pack(socket.AF_UNIX, 0, 0, 0xFFFFFFFF, ino, _UDIAG_SHOW_PEER, _NO_COOKIE, _NO_COOKIE)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
        nl.send(_HEADER.pack(_HEADER.size + len(req), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0) + req)
        data = nl.recv(8192)
    length, kind, _, _, _ = _HEADER.unpack_from(data)
    if kind == _NLMSG_ERROR:
        code = -struct.unpack_from("=i", data, _HEADER.size)[0]
        if code in (errno.EINVAL, errno.ENOENT, errno.EOPNOTSUPP):
            raise Unavailable(os.strerror(code))
        raise OSError(code, f"unix_diag: {os.strerror(code)}")
    off = _HEADER.size + _MESSAGE.size
    while off + _ATTR.size <= min(length, len(data)):
        alen, atype = _ATTR.unpack_from(data, off)
        if alen < _ATTR.size:
            break
        if atype == _UNIX_DIAG_PEER:
            return bool(struct.unpack_from("=I", data, off + _ATTR.size)[0])
        off += (alen + 3) & ~3
    return False  # no peer (yet): nothing was accepted
