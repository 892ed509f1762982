"""Raw streams for attach, exec and logs: docker's 8-byte multiplexed framing and
the hijacked connection (``101 UPGRADED``, then raw bytes both ways).

After the 101 the connection stops being HTTP: the transport is handed to a small
protocol of our own that queues what the client sends and keeps the connection
half-open when the client closes its writing side (``CloseWrite``: ``docker run -i``
and ``docker exec -i`` with stdin at EOF), so that the output still flows back.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

STDIN, STDOUT, STDERR, SYSTEM = 0, 1, 2, 3
# How long output may trail the end of its process.
DRAIN_TIMEOUT = 2.0
# How long the 101 goes ahead of the first output (see Hijacked.write).
HEAD_ALONE = 0.05
RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"


def frame(stream: int, data: bytes) -> bytes:
    """One frame of docker's multiplexed stream: [stream, 0, 0, 0, size (BE32)] + data."""
    return struct.pack(">BxxxL", stream, len(data)) + data


def stream_id(sid: Any) -> int:
    """The sessions' stream names or numbers as docker's stream ids."""
    return STDERR if sid in (2, "stderr") else STDOUT


class _Pipe(asyncio.Protocol):
    """The transport's protocol once hijacked; hands connection loss on to aiohttp's."""

    def __init__(self, inner: asyncio.BaseProtocol, transport: asyncio.Transport) -> None:
        self.inner = inner
        self.transport = transport
        self.incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.writable = asyncio.Event()
        self.writable.set()
        self.lost = False
        self._paused = False

    def data_received(self, data: bytes) -> None:
        self.incoming.put_nowait(data)
        if self.incoming.qsize() > 64 and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.incoming.put_nowait(None)
        return True  # keep our side open: the output is not finished

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.incoming.put_nowait(None)
        self.writable.set()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def resume_if_drained(self) -> None:
        if self._paused and self.incoming.qsize() < 16 and not self.lost:
            self._paused = False
            self.transport.resume_reading()


class Hijacked:
    """The connection after the switch: read what the client sends, write to it."""

    def __init__(self, pipe: _Pipe) -> None:
        self._pipe = pipe
        self._head_at: float | None = asyncio.get_running_loop().time()

    async def read(self) -> bytes | None:
        """The next bytes from the client; None at its end of input (or disconnect)."""
        data = await self._pipe.incoming.get()
        self._pipe.resume_if_drained()
        if data is None:
            self._pipe.incoming.put_nowait(None)  # stays at EOF for later reads
        return data

    @property
    def closed(self) -> bool:
        return self._pipe.lost or self._pipe.transport.is_closing()

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionResetError("the client went away")
        if self._head_at is not None:
            # Clients that read the status line through a buffered reader and then
            # switch to the raw socket (docker-py) lose bytes that came with it: let
            # the status line travel alone when output is ready at once (a log replay).
            wait = self._head_at + HEAD_ALONE - asyncio.get_running_loop().time()
            self._head_at = None
            if wait > 0:
                await asyncio.sleep(wait)
        self._pipe.transport.write(data)
        await self._pipe.writable.wait()

    def close(self) -> None:
        if not self._pipe.transport.is_closing():
            self._pipe.transport.close()


class HijackedResponse(web.StreamResponse):
    """What a hijacking handler returns: the status line is already sent, so aiohttp
    must write nothing more, and must not reuse the connection."""

    def __init__(self) -> None:
        super().__init__(status=101)
        self.force_close()

    async def prepare(self, request: web.BaseRequest) -> Any:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


def wants_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "tcp"


def hijack(request: web.Request, content_type: str) -> Hijacked:
    """Answer ``101 UPGRADED`` (or, to a client that did not ask to upgrade, a plain
    200) and take the raw connection over."""
    transport = request.transport
    if transport is None or transport.is_closing():
        raise ConnectionResetError("the client went away")
    assert isinstance(transport, asyncio.Transport)
    if wants_upgrade(request):
        head = (
            "HTTP/1.1 101 UPGRADED\r\n"
            f"Content-Type: {content_type}\r\n"
            "Connection: Upgrade\r\n"
            "Upgrade: tcp\r\n\r\n"
        )
    else:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n\r\n"
    pipe = _Pipe(transport.get_protocol(), transport)
    transport.set_protocol(pipe)
    transport.write(head.encode())
    return Hijacked(pipe)


def detach_sequence(spec: str | None) -> bytes:
    """docker's --detach-keys (``ctrl-p,ctrl-q`` by default) as the bytes to watch for."""
    from podkit.errors import InvalidArgument

    if spec is None:
        spec = "ctrl-p,ctrl-q"
    if spec == "":
        return b""
    out = bytearray()
    for key in spec.split(","):
        k = key.strip().lower()
        if len(k) == 1:
            out.append(ord(k))
        elif k.startswith("ctrl-") and len(k) == 6:
            c = k[5]
            if "a" <= c <= "z":
                out.append(ord(c) - ord("a") + 1)
            elif c in "@[\\]^_":
                out.append({"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}[c])
            else:
                raise InvalidArgument(f"invalid detach keys {spec!r}: unknown key {key!r}")
        else:
            raise InvalidArgument(f"invalid detach keys {spec!r}: unknown key {key!r}")
    return bytes(out)


class DetachWatcher:
    """Spots the detach sequence in stdin; what precedes it is passed on."""

    def __init__(self, seq: bytes) -> None:
        self.seq = seq
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to forward, detach seen)."""
        if not self.seq:
            return data, False
        out = bytearray()
        for b in data:
            cand = self.held + bytes([b])
            if self.seq.startswith(cand):
                self.held = cand
                if cand == self.seq:
                    return bytes(out), True
            else:
                out += cand
                self.held = b""
        return bytes(out), False


async def pump(
    conn: Hijacked,
    session: Any,
    *,
    tty: bool,
    stdin: bool,
    detach_keys: bytes = b"",
    stdout: bool = True,
    stderr: bool = True,
    ended: Awaitable[object] | None = None,
) -> str:
    """Copy the session's output to the client (framed unless tty) and the client's
    input to the session until the output ends, the client detaches or goes away.

    Returns ``"ended"``, ``"detached"`` or ``"gone"``.
    """
    watcher = DetachWatcher(detach_keys)

    async def outbound() -> None:
        while True:
            item = await session.read()
            if item is None:
                return
            sid, data = stream_id(item[0]), item[1]
            if (sid == STDOUT and not stdout) or (sid == STDERR and not stderr):
                continue
            await conn.write(data if tty else frame(sid, data))

    async def inbound() -> str:
        while True:
            data = await conn.read()
            if data is None:
                if conn.closed:
                    return "gone"
                if stdin:
                    await session.close_stdin()
                # Half-closed: wait for the output to end (outbound finishes first).
                await asyncio.Event().wait()
                continue
            if not stdin:
                continue
            data, detached = watcher.feed(data)
            if data:
                await session.write(data)
            if detached:
                return "detached"

    out_task = asyncio.ensure_future(outbound())
    in_task = asyncio.ensure_future(inbound())
    # The process's end, when the caller can tell it: the output of a process that
    # never started (a failed start) or whose stream stays open (a background child
    # holding it) must not keep the connection forever.
    end_task = asyncio.ensure_future(ended) if ended is not None else None
    waiting = {out_task, in_task} | ({end_task} if end_task is not None else set())
    try:
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if end_task in done and out_task not in done:
            # What the process wrote last may still be on its way.
            await asyncio.wait(
                {out_task, in_task}, timeout=DRAIN_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
            if in_task.done() and not out_task.done():
                return in_task.result()
            return "ended"
        if out_task in done:
            exc = out_task.exception()
            if isinstance(exc, ConnectionResetError):
                return "gone"
            if exc is not None:
                log.warning("docker API stream: output of the session failed: %s", exc)
            return "ended"
        return in_task.result()
    finally:
        tasks = [t for t in (out_task, in_task, end_task) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
