"""Test-only podkitd with the CRI streaming server and a route that mints its URLs.

Until the CRI gRPC front end wires ``StreamingServer`` into podkitd, the streaming
tests need a daemon that has one: this is podkitd's ``serve`` (same services, same
API socket) plus a ``StreamingServer`` in the same event loop and two routes on the
API socket, test-only and under ``/_test/``:

- ``POST /_test/streaming/url`` ``{"kind": "exec"|"attach"|"portforward", ...}`` →
  ``{"url": ...}`` (what the CRI Exec/Attach/PortForward calls return);
- ``GET /_test/streaming/state`` → live sessions and tokens held (for leak checks).

Run as ``python -m tests.cri_streaming_harness --config ... --root ... --state ...
--socket ...``; ``PODKIT_TEST_TOKEN_TTL`` sets the tokens' lifetime.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

from aiohttp import web

from podkit.cri.streaming import StreamingServer
from podkit.daemon import config as config_mod
from podkit.daemon.main import acquire_lock
from podkit.daemon.server import make_app
from podkit.daemon.services import build
from podkit.errors import PodkitError


async def serve(cfg: config_mod.Config) -> None:
    services = build(cfg)
    await services.start()
    streaming = StreamingServer(services, token_ttl=float(os.environ.get("PODKIT_TEST_TOKEN_TTL", "60")))
    await streaming.start()
    app = make_app(services)

    async def mint(request: web.Request) -> web.Response:
        b: dict[str, Any] = await request.json()
        ns = b.get("namespace", "default")
        flags = {k: bool(b.get(k)) for k in ("tty", "stdin", "stdout", "stderr")}
        try:
            if b["kind"] == "exec":
                url = streaming.exec_url(ns, b["id"], b["cmd"], **flags)
            elif b["kind"] == "attach":
                url = streaming.attach_url(ns, b["id"], **flags)
            else:
                url = streaming.port_forward_url(ns, b["id"], b.get("ports", []))
        except PodkitError as e:
            return web.json_response({"error": e.message}, status=e.status)
        return web.json_response({"url": url})

    async def state(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "sessions": streaming.active_sessions,
                "tokens": len(streaming.tokens),
                "connections": streaming.open_connections,
            }
        )

    app.router.add_post("/_test/streaming/url", mint)
    app.router.add_get("/_test/streaming/state", state)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    with contextlib.suppress(FileNotFoundError):
        cfg.socket.unlink()
    site = web.UnixSite(runner, str(cfg.socket))
    await site.start()
    os.chmod(cfg.socket, 0o660)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await streaming.stop()
    await runner.cleanup()
    await services.close()


def main() -> None:
    p = argparse.ArgumentParser()
    for flag in ("--config", "--root", "--state", "--socket", "--log-level"):
        p.add_argument(flag)
    args = p.parse_args()
    cfg = config_mod.load(args.config, vars(args))
    logging.basicConfig(level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    fd = acquire_lock(cfg.root)
    try:
        asyncio.run(serve(cfg))
    finally:
        os.close(fd)


if __name__ == "__main__":
    main()
