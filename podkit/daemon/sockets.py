"""podkitd's unix sockets: bound root-only, served by an aiohttp app now or at the
first connection.

``LazyApp`` is for a front end most hosts never drive (the Docker Engine API): its
socket is bound and listening from the start, so clients and start-up errors are
as before, but its handler modules (0.7 MB of podkitd's idle RSS, issue 8 item 5)
are imported, and the app served, only once a client has connected. That client
waits in the socket's backlog meanwhile and is then accepted by the real server
from the same listening socket: nothing is relayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)

# Connections a burst of clients opens at once wait here to be accepted (128, aiohttp's
# default, made the 129th client of a burst fail); the kernel caps it at somaxconn.
API_BACKLOG = 1024


def bind_unix(path: Path) -> socket.socket:
    """A listening socket at ``path``, root's and 0660 from birth (never briefly open)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # stale: the daemon's lock says no live daemon owns it
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old_umask = os.umask(0o117)
        try:
            sock.bind(str(path))
        finally:
            os.umask(old_umask)
        os.chown(path, 0, 0)
        os.chmod(path, 0o660)
        sock.listen(API_BACKLOG)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def serve(app: web.Application, sock: socket.socket, idle: float) -> web.AppRunner:
    """``app`` served on the listening ``sock``; returns its runner (cleanup() stops it)."""
    from aiohttp import web

    from podkit.daemon.leaving import WRITE_STALL

    app[WRITE_STALL] = idle  # a stream's client idles as long before it is dropped
    runner = web.AppRunner(app, handle_signals=False, access_log=None, keepalive_timeout=idle)
    await runner.setup()
    await web.SockSite(runner, sock, backlog=API_BACKLOG).start()
    return runner


class LazyApp:
    """A socket bound now whose app is made (``make``) and served at its first connection."""

    def __init__(self, path: Path, make: Callable[[], web.Application], idle: float) -> None:
        self.path = path
        self._make = make
        self._idle = idle
        self._sock: socket.socket | None = None
        self._starting: asyncio.Task[None] | None = None
        self.runner: web.AppRunner | None = None

    def listen(self) -> None:
        self._sock = bind_unix(self.path)
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._first_connection, self._sock)

    def _first_connection(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(sock.fileno())
        self._starting = loop.create_task(self._start(sock))

    async def _start(self, sock: socket.socket) -> None:
        try:
            self.runner = await serve(self._make(), sock, self._idle)
        except Exception:
            # Nothing could serve the clients waiting in the backlog: closing the socket
            # refuses them (and later ones) rather than leaving them hanging.
            log.exception("serving unix://%s failed; its socket is closed", self.path)
            sock.close()
            self._sock = None
        else:
            log.info("unix://%s: serving (started at its first connection)", self.path)

    async def close(self) -> None:
        if self._starting is not None:
            await self._starting
        if self.runner is not None:
            await self.runner.cleanup()  # closes the listening socket too
        elif self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
        self._sock = None
