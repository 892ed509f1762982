"""A client that leaves in the middle of a long request, as both HTTP front ends
(podkit's API and the Docker Engine API) notice it.

aiohttp does not cancel a handler whose client left (handler_cancellation is off, so
that no request is cut short half-way), and a handler that streams output only learns
of it at its next write: a build in a RUN that prints nothing, a stalled pull, would go
on for nobody. The transport tells at once: a closed connection is closing.

A client that stays connected but stops reading is the other way to leave: a stream's
writes then wait for it forever, and whatever the stream holds with them (an export:
the container's root, a mount, a thread). ``stream_out`` gives such a client as long
to take a write as a connection may idle (``[api] idle_timeout``), then drops it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Awaitable
from typing import TypeVar

from aiohttp import web

from podkit.errors import Unavailable

_T = TypeVar("_T")
POLL = 0.5  # seconds between looks at the transport (a look is an attribute read)
# How long a client may leave a stream's write untaken (sockets.serve sets it to the
# connections' idle timeout); 60 s without it.
WRITE_STALL = web.AppKey("write_stall", float)
DEFAULT_WRITE_STALL = 60.0
log = logging.getLogger(__name__)


async def client_gone(request: web.BaseRequest, every: float = POLL) -> None:
    """Return once the client has closed its connection."""
    while True:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(every)


async def unless_client_leaves(request: web.BaseRequest, work: Awaitable[_T], what: str) -> _T:
    """``await work``, cancelled as soon as the client leaves (Unavailable then).

    Only for work that is safe to cancel at any await (a pull is: its lease and partial
    blobs are dropped; a build is: its step container, views and snapshots are removed
    in shielded ``finally`` blocks), never for one that makes objects half-way.
    """
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(client_gone(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise Unavailable(f"{what}: the client left; cancelled")
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()


async def stream_out(
    request: web.Request, resp: web.StreamResponse, chunks: AsyncIterable[bytes], what: str
) -> bool:
    """Write ``chunks`` to the prepared ``resp``; True once all are written, False when
    the client left or took no write for the stall time (its connection is then
    aborted: a close would wait to flush to a client that does not read). The caller
    closes ``chunks`` either way."""
    stall = request.app.get(WRITE_STALL, DEFAULT_WRITE_STALL)
    loop = asyncio.get_running_loop()
    # one deadline moved on after each write: a write that waits on the client is
    # bounded, a producer that takes its time is not (no client is blamed for it)
    deadline = asyncio.timeout(None)
    try:
        async with deadline:
            async for chunk in chunks:
                deadline.reschedule(loop.time() + stall)
                await resp.write(chunk)
                deadline.reschedule(None)
        await resp.write_eof()
        return True
    except TimeoutError:
        if not deadline.expired():
            raise  # the producer's own (ETIMEDOUT reading a file)
        log.info("%s: the client took nothing for %.0f s; dropped", what, stall)
        if request.transport is not None:
            request.transport.abort()
        return False
    except ConnectionError:
        log.info("%s: the client left", what)
        return False
