"""The CRI started at its first connection.

grpc and the generated CRI messages cost podkitd about 18 MB of RSS and 0.3 s of
start-up (measured: issue 8, item 5), which a host nobody drives through the CRI
need not pay. So podkitd listens on the CRI socket itself (stdlib asyncio, same
path and mode as the gRPC server would use) and, when a client first connects,
imports and starts the real server (podkit.cri.daemon), which binds the same path
anew. The connections that reached the placeholder before that are relayed byte
for byte to the real server; later clients connect to it directly. A bad [cri]
section still fails podkitd's start: it is parsed here, eagerly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import TYPE_CHECKING

from podkit.cri.config import CRIConfig

if TYPE_CHECKING:
    from podkit.cri.daemon import RunningCRI
    from podkit.daemon.config import Config
    from podkit.daemon.services import Services

log = logging.getLogger(__name__)

_RELAY_CHUNK = 64 << 10


class LazyCRI:
    def __init__(self, services: Services, cfg: Config) -> None:
        CRIConfig.from_section(cfg.section("cri"))  # refused now, not at the first call
        self._services = services
        self._cfg = cfg
        self._path = cfg.cri_socket
        self._placeholder: asyncio.Server | None = None
        self._starting: asyncio.Future[RunningCRI] | None = None
        self._relays: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()  # stale: the daemon's lock says no other owns it
        old = os.umask(0o117)  # born 0660, never briefly world-open
        try:
            self._placeholder = await asyncio.start_unix_server(self._accept, str(self._path))
        finally:
            os.umask(old)
        os.chown(self._path, 0, 0)
        os.chmod(self._path, 0o660)
        log.info("CRI socket unix://%s (the gRPC server starts at the first connection)", self._path)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._relays.add(task)
        try:
            await self.running()
            up_reader, up_writer = await asyncio.open_unix_connection(str(self._path))
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        except Exception as e:
            log.warning("CRI: serving an early connection failed: %s", e)
        finally:
            writer.close()
            if task is not None:
                self._relays.discard(task)

    async def running(self) -> RunningCRI:
        """The real CRI server, started on the first call."""
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start_real())
        return await asyncio.shield(self._starting)

    async def _start_real(self) -> RunningCRI:
        from podkit.cri.daemon import start_cri

        # start_cri unlinks our path and binds its own socket there: new clients reach
        # it; the placeholder keeps only the connections it already has.
        return await start_cri(self._services, self._cfg)

    async def stop(self) -> None:
        if self._placeholder is not None:
            self._placeholder.close()
        for t in list(self._relays):
            t.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)
        if self._starting is not None:
            try:
                cri = await self._starting
            except Exception as e:
                log.warning("CRI: the server had failed to start: %s", e)
            else:
                await cri.stop()
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(_RELAY_CHUNK):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()  # the other way may still have answers to send
    except (ConnectionError, OSError) as e:
        log.debug("CRI relay: %s", e)
        dst.close()
