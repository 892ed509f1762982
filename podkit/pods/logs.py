"""A pod's logs: every member's lines tagged with its name, merged in time order or followed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from podkit.errors import NotFound
from podkit.pods.context import PodContext

if TYPE_CHECKING:
    from podkit.containers.logs import Entry
    from podkit.containers.store import Record

log = logging.getLogger(__name__)


def _item(r: Record, e: Entry, timestamps: bool) -> dict[str, Any]:
    data = e.data.decode("utf-8", "replace") if isinstance(e.data, bytes) else str(e.data)
    out: dict[str, Any] = {"container": r.name, "stream": e.stream, "line": data}
    if timestamps:
        out["time"] = e.ts
    return out


async def logs(
    ctx: PodContext,
    ns: str,
    ref: str,
    follow: bool = False,
    tail: int | None = None,
    timestamps: bool = False,
) -> AsyncIterator[dict[str, Any]]:
    """See ``PodService.logs``."""
    pod = ctx.get(ns, ref)
    members = [r for r in ctx.members(pod) if not r.infra]
    if not follow:
        return await _merged(ctx, ns, members, tail, timestamps)
    return _followed(ctx, ns, members, tail, timestamps)


async def _merged(
    ctx: PodContext, ns: str, members: list[Record], tail: int | None, timestamps: bool
) -> AsyncIterator[dict[str, Any]]:
    """Everything is on disk already: one sorted merge, not arrival order."""
    lines: list[tuple[float, int, dict[str, Any]]] = []
    for r in members:
        try:
            async for e in await ctx.containers.logs(ns, r.id, tail=tail):
                lines.append((e.time, len(lines), _item(r, e, timestamps)))
        except NotFound:  # removed while we read
            log.debug("pod logs: container %s is gone", r.id[:12])
    lines.sort(key=lambda x: (x[0], x[1]))

    async def merged() -> AsyncIterator[dict[str, Any]]:
        for _, _, it in lines:
            yield it

    return merged()


async def _followed(
    ctx: PodContext, ns: str, members: list[Record], tail: int | None, timestamps: bool
) -> AsyncIterator[dict[str, Any]]:
    """Each member's lines as they come, one reader task per member."""
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=1024)

    async def pump(r: Record) -> None:
        try:
            it = await ctx.containers.logs(ns, r.id, follow=True, tail=tail)
            async for e in it:
                await queue.put(_item(r, e, timestamps))
        except NotFound:  # removed while we read
            log.debug("pod logs: container %s is gone", r.id[:12])
        finally:
            await queue.put(None)

    tasks = [asyncio.create_task(pump(r)) for r in members]
    left = len(tasks)
    try:
        while left:
            got = await queue.get()
            if got is None:
                left -= 1
                continue
            yield got
    finally:
        for t in tasks:
            t.cancel()
