"""Interactive stdio over a WebSocket, shared by attach and exec.

Frames: binary, first byte the stream (0 stdin from the client; 1 stdout, 2 stderr
to it); text frames are JSON control messages: ``{"resize": [h, w]}`` and
``{"close_stdin": true}`` from the client, ``{"exit": code}`` or
``{"error": {...}}`` from the daemon at the end. Detach keys are the client's
business: it simply closes the socket, and the process keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import WSMsgType, web

from podkit.errors import PodkitError

log = logging.getLogger(__name__)


class StdioSession(Protocol):
    """A container's or exec's stdio as the containers layer hands it out (attach, exec)."""

    async def read(self) -> tuple[int, bytes] | None:
        """The next (stream, data): 1 stdout, 2 stderr; None at the end of output."""
        ...

    async def write(self, data: bytes) -> None: ...

    async def close_stdin(self) -> None: ...

    async def resize(self, h: int, w: int) -> None: ...

    async def close(self) -> None: ...


async def serve_stdio(
    request: web.Request,
    session: StdioSession,
    wait_exit: Callable[[], Awaitable[int]],
    before: Callable[[], Awaitable[None]] | None = None,
) -> web.WebSocketResponse:
    """Pump ``session`` (read/write/close_stdin/resize/close) through a WebSocket.

    ``before`` runs once the socket is up and the session attached (e.g. starting
    the container), so that no early output is lost.

    Long on purpose: the two pumps and the exit wait share the socket and each other's
    tasks; apart, that state would have to travel between them.
    """
    ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
    await ws.prepare(request)

    async def outbound() -> None:
        while True:
            item = await session.read()
            if item is None:
                return
            sid, data = item
            await ws.send_bytes(bytes([sid]) + data)

    async def inbound() -> None:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                if msg.data[:1] == b"\x00" and len(msg.data) > 1:
                    await session.write(msg.data[1:])
            elif msg.type == WSMsgType.TEXT:
                try:
                    ctl = json.loads(msg.data)
                except ValueError:
                    continue
                if not isinstance(ctl, dict):
                    continue
                if "resize" in ctl:
                    try:
                        h, w = (int(x) for x in ctl["resize"])
                    except (TypeError, ValueError):
                        continue
                    if 0 < h < 65536 and 0 < w < 65536:
                        await session.resize(h, w)
                if ctl.get("close_stdin"):
                    await session.close_stdin()
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                return

    out_task = asyncio.ensure_future(outbound())
    in_task = asyncio.ensure_future(inbound())
    try:
        if before is not None:
            try:
                await before()
            except PodkitError as e:
                await ws.send_str(json.dumps(e.to_dict()))
                return ws
        exit_task = asyncio.ensure_future(wait_exit())
        pending = {exit_task, in_task, out_task}
        while True:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if out_task not in done or exit_task in done or in_task in done:
                break
            pending.discard(out_task)
            failure = out_task.exception()
            if failure is not None:
                # The stream to the process broke (e.g. the attach socket went away):
                # say so, rather than leave the client with a silently closed socket.
                exit_task.cancel()
                err = (
                    failure
                    if isinstance(failure, PodkitError)
                    else PodkitError(f"lost the container's output stream: {failure}")
                )
                await ws.send_str(json.dumps(err.to_dict()))
                return ws
        if exit_task in done:
            # Output still in flight must reach the client before the exit code.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(out_task), 5)
            try:
                code = exit_task.result()
                await ws.send_str(json.dumps({"exit": code}))
            except PodkitError as e:
                await ws.send_str(json.dumps(e.to_dict()))
        else:
            exit_task.cancel()  # client went away (detached): the process lives on
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        for t in (out_task, in_task):
            t.cancel()
        # Their cancellation lands before the session's socket is closed: asyncio drops
        # a reader of a socket only when the cancelled receive's callback runs, and a
        # socket closed before that leaves its number registered, so a new socket given
        # the same number would never be polled (an attach that hangs, output unread).
        await asyncio.gather(out_task, in_task, return_exceptions=True)
        try:
            await session.close()
        except Exception as e:  # the stream ends either way; the session's leftovers are logged
            log.warning("closing the stdio session %s: %s", session, e)
        try:
            await ws.close()
        except Exception as e:
            log.warning("closing the WebSocket of %s: %s", request.path, e)
    return ws
