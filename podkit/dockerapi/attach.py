"""Attach: ``POST /containers/{id}/attach`` (hijacked) and ``GET .../attach/ws``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import WSMsgType, web

from podkit.dockerapi.app import Routes
from podkit.dockerapi.common import NAMESPACE, containers, flag
from podkit.dockerapi.containers import _resolve
from podkit.dockerapi.streams import (
    MULTIPLEXED_STREAM,
    RAW_STREAM,
    HijackedResponse,
    detach_sequence,
    frame,
    hijack,
    pump,
    stream_id,
)

log = logging.getLogger(__name__)
routes = Routes()


@routes.post("/containers/{id}/attach")
async def attach(request: web.Request) -> web.StreamResponse:
    rec = _resolve(request)
    svc = containers(request)
    tty = bool(rec.config.get("tty"))
    stdin = flag(request, "stdin") and bool(rec.config.get("open_stdin"))
    keys = detach_sequence(request.query.get("detachKeys"))
    logs = flag(request, "logs")
    stream = flag(request, "stream")
    if logs and not stream:
        # What was written so far, and the end: docker answers this for a stopped
        # container too.
        entries = await svc.logs(NAMESPACE, rec.id)
        session: Any = _Backlog([(2 if e.stream == "stderr" else 1, e.data) async for e in entries])
        ended = None
    else:
        session = await svc.attach(NAMESPACE, rec.id, stdin=stdin, logs=logs)
        ended = svc.wait(NAMESPACE, rec.id, "not-running")
    try:
        conn = hijack(request, RAW_STREAM if tty else MULTIPLEXED_STREAM)
        how = await pump(
            conn,
            session,
            tty=tty,
            stdin=stdin,
            detach_keys=keys,
            stdout=flag(request, "stdout"),
            stderr=flag(request, "stderr"),
            ended=ended,
        )
        log.debug("attach to %s ended: %s", rec.id[:12], how)
        conn.close()
    finally:
        try:
            await session.close()
        except Exception as e:
            log.warning("attach to %s: closing the session failed: %s", rec.id[:12], e)
    return HijackedResponse()


class _Backlog:
    """A session that only replays some output (``logs=1&stream=0``)."""

    def __init__(self, items: list[tuple[int, bytes]]) -> None:
        self.items = items

    async def read(self) -> tuple[int, bytes] | None:
        return self.items.pop(0) if self.items else None

    async def write(self, data: bytes) -> None:
        return None

    async def close_stdin(self) -> None:
        return None

    async def resize(self, h: int, w: int) -> None:
        return None  # no tty to resize: only the backlog is read

    async def close(self) -> None:
        return None


@routes.get("/containers/{id}/attach/ws")
async def attach_ws(request: web.Request) -> web.StreamResponse:
    """docker's WebSocket attach: the output as binary messages of raw bytes (framed
    only when asked with multiplex=1), the client's messages as stdin."""
    rec = _resolve(request)
    svc = containers(request)
    tty = bool(rec.config.get("tty"))
    stdin = flag(request, "stdin") and bool(rec.config.get("open_stdin"))
    session = await svc.attach(NAMESPACE, rec.id, stdin=stdin, logs=flag(request, "logs"))
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)
    want_out, want_err = flag(request, "stdout"), flag(request, "stderr")

    async def outbound() -> None:
        while True:
            item = await session.read()
            if item is None:
                return
            sid, data = stream_id(item[0]), item[1]
            if (sid == 1 and want_out) or (sid == 2 and want_err):
                # docker sends raw bytes over the WebSocket, framed only when multiplexing
                # is asked for; plain bytes are what its clients read.
                await ws.send_bytes(data if tty or not flag(request, "multiplex") else frame(sid, data))

    async def inbound() -> None:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY and stdin:
                await session.write(msg.data)
            elif msg.type == WSMsgType.TEXT and stdin:
                await session.write(msg.data.encode())
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                return

    out_task = asyncio.ensure_future(outbound())
    in_task = asyncio.ensure_future(inbound())
    try:
        await asyncio.wait({out_task, in_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (out_task, in_task):
            t.cancel()
        await asyncio.gather(out_task, in_task, return_exceptions=True)
        try:
            await session.close()
        except Exception as e:
            log.warning("websocket attach: closing session %r failed: %s", session, e)
        await ws.close()
    return ws
