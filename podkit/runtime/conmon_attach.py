"""Attaching to a container's stdio through its conmon: the ``attach`` socket
(SOCK_SEQPACKET; a packet read starts with a byte naming its stream, 2 stdout,
3 stderr; what is written goes to stdin) and the ``ctl`` fifo (``1 <h> <w>`` resizes
the terminal, ``2 0 0`` reopens the log)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import select
import socket
from pathlib import Path

from podkit.errors import Conflict, Internal, NotFound
from podkit.runtime import unix_diag

log = logging.getLogger(__name__)

STDIN, STDOUT, STDERR = 1, 2, 3
_diag_missing_logged = False  # the warning that attached runs start unchecked, once
_STREAM_NAMES = {STDOUT: "stdout", STDERR: "stderr", STDIN: "stdin"}


class AttachSession:
    """A connection to a container's conmon attach socket."""

    def __init__(self, sock: socket.socket, ctl_path: Path, cid: str) -> None:
        self._sock = sock
        self._ctl_path = ctl_path
        self.cid = cid
        self._closed = False
        self._stdin_gone = False

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

    async def accepted(self, timeout: float = 10.0) -> None:
        """Return once conmon has accept()ed this connection (or cannot any more).

        conmon accepts in its main loop, and writes output only to the connections it
        has accepted. One of its loop iterations that polled before this connect and
        is held up (a loaded host) can reap a container started meanwhile and leave the
        loop: conmon then drains the output to no one and resets this connection. So a
        ``run`` starts its container only once this returns. No event marks the accept:
        the kernel's socket diagnostics are asked, with a short backoff.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.001  # conmon accepts once its setup after the create is done: ~1-2 ms
        while True:
            try:
                if unix_diag.peer_accepted(self._sock):
                    return
            except unix_diag.Unavailable as e:
                global _diag_missing_logged
                if not _diag_missing_logged:
                    _diag_missing_logged = True
                    log.warning("no unix socket diagnostics (%s): attached runs start unchecked", e)
                return
            if self._hung_up():
                return  # conmon is gone: reading will say so
            if loop.time() >= deadline:
                log.warning(
                    "conmon of %s did not accept the attach connection in %.0fs", self.cid[:12], timeout
                )
                return
            await asyncio.sleep(delay)  # backoff between checks of a condition
            delay = min(delay * 2, 0.01)

    def _hung_up(self) -> bool:
        p = select.poll()
        p.register(self._sock.fileno(), select.POLLIN)
        return any(ev & (select.POLLHUP | select.POLLERR) for _, ev in p.poll(0))

    async def read(self) -> tuple[str, bytes] | None:
        """The next chunk of output as ``(stream name, data)``; None at end."""
        loop = asyncio.get_running_loop()
        resets = 0
        while True:
            try:
                data = await loop.sock_recv(self._sock, 8193)
            except ConnectionResetError:
                # conmon went with input of ours unread (stdin the container never
                # read): Linux reports the reset before the output still queued here,
                # and only once. Read on for that output.
                resets += 1
                if resets > 1:
                    return None
                continue
            except OSError:
                return None
            if not data:
                return None
            kind = data[0]
            if kind in (STDOUT, STDERR):
                return _STREAM_NAMES[kind], data[1:]
            # other frame kinds (none in API v1) are skipped

    async def write(self, data: bytes) -> None:
        if not data or self._stdin_gone:
            return
        loop = asyncio.get_running_loop()
        try:
            # conmon reads the socket in chunks of up to 8192 bytes.
            for i in range(0, len(data), 8192):
                await loop.sock_sendall(self._sock, data[i : i + 8192])
        except (BrokenPipeError, ConnectionResetError) as e:
            # The container ended (or conmon closed its stdin) with input still coming,
            # as `docker run -i` of a command that reads none: the input is dropped and
            # the session goes on to the output's end and the exit code.
            self._stdin_gone = True
            log.debug("attach %s: stdin no longer taken (%s); the rest is dropped", self.cid[:12], e)

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
