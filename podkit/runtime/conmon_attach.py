"""Attaching to a container's stdio through its conmon: the ``attach`` socket
(SOCK_SEQPACKET; a packet read starts with a byte naming its stream, 2 stdout,
3 stderr; what is written goes to stdin) and the ``ctl`` fifo (``1 <h> <w>`` resizes
the terminal, ``2 0 0`` reopens the log)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
from pathlib import Path

from podkit.errors import Conflict, Internal, NotFound

STDIN, STDOUT, STDERR = 1, 2, 3
_STREAM_NAMES = {STDOUT: "stdout", STDERR: "stderr", STDIN: "stdin"}


class AttachSession:
    """A connection to a container's conmon attach socket."""

    def __init__(self, sock: socket.socket, ctl_path: Path, cid: str) -> None:
        self._sock = sock
        self._ctl_path = ctl_path
        self.cid = cid
        self._closed = False

    @classmethod
    async def connect(cls, attach_path: Path, ctl_path: Path, cid: str) -> AttachSession:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        path_fd = None
        target = str(attach_path)
        try:
            if len(os.fsencode(target)) >= 100:
                # Longer than sun_path allows: connect through an O_PATH descriptor.
                path_fd = os.open(target, os.O_PATH | os.O_CLOEXEC)
                target = f"/proc/self/fd/{path_fd}"
            await loop.sock_connect(sock, target)
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise Conflict(f"container {cid} is not running (no attach socket)") from None
        except OSError as e:
            sock.close()
            if e.errno == errno.ENAMETOOLONG:
                raise Internal(f"attach socket path too long: {attach_path}") from None
            raise
        finally:
            if path_fd is not None:
                os.close(path_fd)
        return cls(sock, ctl_path, cid)

    async def read(self) -> tuple[str, bytes] | None:
        """The next chunk of output as ``(stream name, data)``; None at end."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await loop.sock_recv(self._sock, 8193)
            except (ConnectionResetError, OSError):
                return None
            if not data:
                return None
            kind = data[0]
            if kind in (STDOUT, STDERR):
                return _STREAM_NAMES[kind], data[1:]
            # other frame kinds (none in API v1) are skipped

    async def write(self, data: bytes) -> None:
        if not data:
            return
        loop = asyncio.get_running_loop()
        # conmon reads the socket in chunks of up to 8192 bytes.
        for i in range(0, len(data), 8192):
            await loop.sock_sendall(self._sock, data[i : i + 8192])

    def close_stdin(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)

    async def resize(self, height: int, width: int) -> None:
        await asyncio.to_thread(write_ctl, self._ctl_path, f"1 {int(height)} {int(width)}\n")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._sock.close()

    async def __aenter__(self) -> AttachSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


def write_ctl(ctl_path: Path, line: str) -> None:
    try:
        fd = os.open(ctl_path, os.O_WRONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise NotFound(f"no control fifo at {ctl_path}: container not running under conmon") from None
    except OSError as e:
        if e.errno == errno.ENXIO:  # nobody reading: conmon is gone
            raise Conflict("container is not running") from None
        raise
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
