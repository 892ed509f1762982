"""A client that leaves in the middle of a long request, as both HTTP front ends
(podkit's API and the Docker Engine API) notice it.

aiohttp does not cancel a handler whose client left (handler_cancellation is off, so
that no request is cut short half-way), and a handler that streams output only learns
of it at its next write: a build in a RUN that prints nothing, a stalled pull, would go
on for nobody. The transport tells at once: a closed connection is closing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from aiohttp import web

from podkit.errors import Unavailable

_T = TypeVar("_T")
POLL = 0.5  # seconds between looks at the transport (a look is an attribute read)


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
