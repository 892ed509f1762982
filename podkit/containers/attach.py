"""Attach sessions as the API's stdio pump sees them (stream ids, async calls).

``AttachAdapter`` wraps the runtime's conmon attach session (optionally replaying the
log first); ``PendingAttach`` is an attach to a container that is created but not yet
started: the real session is opened right after conmon reports the container created
and before ``runc start``, so an attached ``run`` loses no output.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

from podkit.containers.logs import LogReader
from podkit.errors import Conflict, InvalidArgument, PodkitError

if TYPE_CHECKING:
    from podkit.containers.context import ContainerContext
    from podkit.runtime.conmon_attach import AttachSession

log = logging.getLogger(__name__)


class StdioSession(Protocol):
    """A process's stdio as the API's pump sees it: (1 stdout | 2 stderr, bytes) chunks."""

    async def read(self) -> tuple[int, bytes] | None: ...

    async def write(self, data: bytes) -> None: ...

    async def close_stdin(self) -> None: ...

    async def resize(self, h: int, w: int) -> None: ...

    async def close(self) -> None: ...


async def attach(
    ctx: ContainerContext, ns: str, ref: str, stdin: bool = False, logs: bool = False
) -> AttachAdapter | PendingAttach:
    rec = ctx.resolve(ns, ref)
    if rec.state not in ("created", "running", "paused"):
        raise Conflict(f"container {rec.name} is not running: start it first")
    if rec.state == "created":
        return PendingAttach(ctx, rec.id, stdin)
    backlog: list[tuple[int, bytes]] = []
    if logs:  # docker attach --logs: what was written so far, then live output
        entries = await asyncio.to_thread(LogReader(ctx.log_file(rec)).read)
        backlog = [(2 if e.stream == "stderr" else 1, e.data) for e in entries]
    sess = await ctx.rt.attach(rec.id)
    ctx.publish(ns, "container", "attach", rec.id, name=rec.name)
    return AttachAdapter(sess, stdin, backlog)


def check_size(h: int, w: int) -> None:
    if not (0 < h < 65536 and 0 < w < 65536):
        raise InvalidArgument(f"invalid terminal size {h}x{w}: rows and columns are 1..65535")


async def resize(ctx: ContainerContext, ns: str, ref: str, h: int, w: int) -> None:
    check_size(h, w)
    rec = ctx.resolve(ns, ref)
    await ctx.rt.resize(rec.id, h, w)


class AttachAdapter:
    """The runtime's attach session seen as the API's stdio session."""

    def __init__(
        self, sess: AttachSession, stdin: bool, backlog: list[tuple[int, bytes]] | None = None
    ) -> None:
        self.sess = sess
        self.stdin = stdin
        self.backlog = list(backlog or [])

    async def read(self) -> tuple[int, bytes] | None:
        if self.backlog:
            return self.backlog.pop(0)
        item = await self.sess.read()
        if item is None:
            return None
        name, data = item
        return (2 if name == "stderr" else 1), data

    async def write(self, data: bytes) -> None:
        if self.stdin:
            await self.sess.write(data)

    async def close_stdin(self) -> None:
        if self.stdin:
            self.sess.close_stdin()

    async def resize(self, h: int, w: int) -> None:
        try:
            await self.sess.resize(h, w)
        except PodkitError as e:  # it ended meanwhile: nothing to resize
            log.debug("attach: resize to %dx%d: %s", h, w, e.message)

    async def close(self) -> None:
        self.sess.close()


class PendingAttach:
    """Attach to a container that is created but not started yet (``run``: attach, then start).

    conmon's attach socket exists from ``create`` on, but podkit launches conmon at
    start; so the real session is opened by the service right after launch, before
    ``runc start``, through the runtime's ``on_created`` hook.
    """

    def __init__(self, ctx: ContainerContext, cid: str, stdin: bool) -> None:
        self.rt = ctx.rt
        self.cid = cid
        self.stdin = stdin
        self.ready: asyncio.Future[AttachAdapter | None] = asyncio.get_running_loop().create_future()
        self.rt.on_created(cid, self._created)

    async def _created(self, cid: str) -> None:
        try:
            sess = await self.rt.attach(cid)
        except Exception as e:
            if not self.ready.done():
                self.ready.set_exception(e)
            return
        # The container starts when this returns: conmon must have taken the
        # connection by then, or a quick container's output can go to no one.
        await sess.accepted()
        if not self.ready.done():
            self.ready.set_result(AttachAdapter(sess, self.stdin))
        else:
            sess.close()

    async def _get(self) -> AttachAdapter | None:
        return await self.ready

    async def read(self) -> tuple[int, bytes] | None:
        a = await self._get()
        return await a.read() if a else None

    async def write(self, data: bytes) -> None:
        a = await self._get()
        if a:
            await a.write(data)

    async def close_stdin(self) -> None:
        a = await self._get()
        if a:
            await a.close_stdin()

    async def resize(self, h: int, w: int) -> None:
        a = await self._get()
        if a:
            await a.resize(h, w)

    async def close(self) -> None:
        self.rt.on_created(self.cid, None)
        if self.ready.done() and not self.ready.cancelled() and self.ready.exception() is None:
            a = self.ready.result()
            if a:
                await a.close()
        elif not self.ready.done():
            self.ready.set_result(None)
