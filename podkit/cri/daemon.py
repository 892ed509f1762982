"""The CRI's place in podkitd: the gRPC server and the streaming server, started after
the HTTP API and stopped before the services close."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from podkit.cri.config import CRIConfig
from podkit.cri.context import CRI
from podkit.cri.server import CRIServer

if TYPE_CHECKING:
    from podkit.daemon.config import Config
    from podkit.daemon.services import Services

log = logging.getLogger(__name__)


class RunningCRI:
    def __init__(self, server: CRIServer, streaming: object | None) -> None:
        self.server = server
        self.streaming = streaming

    async def stop(self) -> None:
        await self.server.stop()
        stop = getattr(self.streaming, "stop", None)
        if stop is not None:
            try:
                await stop()
            except Exception as e:
                log.warning("CRI streaming server: stopping it failed: %s", e)


async def start_cri(services: Services, cfg: Config) -> RunningCRI:
    config = CRIConfig.from_section(cfg.section("cri"))
    streaming = None
    try:
        from podkit.cri.streaming import StreamingServer
    except ImportError:
        log.warning("CRI streaming server not available: Exec/Attach/PortForward will fail")
    else:
        streaming = StreamingServer(
            services,
            address=config.stream_address,
            port=config.stream_port,
            token_ttl=config.stream_token_ttl,
        )
        await streaming.start()
    cri = CRI(services, config, streaming)
    server = CRIServer(cri, cfg.cri_socket)
    await server.start()
    return RunningCRI(server, streaming)
