"""The registry client against a hostile or slow server on 127.0.0.1: bodies that come
in pieces are read whole, bodies larger than allowed are cut at the limit."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from podkit.images.registry.client import read_limited


async def _serve(parts: list[bytes], pause: float) -> tuple[web.AppRunner, str]:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i, p in enumerate(parts):
            await resp.write(p)
            if i < len(parts) - 1:
                # Not a synchronisation: a slow sender, so the body arrives in pieces.
                await asyncio.sleep(pause)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/body", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/body"


def _fetch(parts: list[bytes], limit: int, pause: float = 0.05) -> bytes:
    async def go() -> bytes:
        runner, url = await _serve(parts, pause)
        try:
            async with aiohttp.ClientSession() as s, s.get(url) as resp:
                return await read_limited(resp, limit)
        finally:
            await runner.cleanup()

    return asyncio.run(go())


def test_a_body_that_arrives_in_pieces_is_read_whole() -> None:
    # A manifest (or token answer) sent in three pieces by a slow registry: one
    # StreamReader.read(n) call returns only the first piece.
    parts = [b'{"schemaVersion":2,', b'"manifests":[' + b'{"a":1},' * 5000, b'{"a":2}]}']
    assert _fetch(parts, 4 << 20) == b"".join(parts)


def test_a_body_larger_than_the_limit_is_cut_there() -> None:
    parts = [b"x" * 70_000] * 5  # an endless error page or token answer, in effect
    data = _fetch(parts, 100_001, pause=0.0)
    assert len(data) == 100_001
