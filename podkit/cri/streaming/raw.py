"""The connection under an HTTP request, taken over after ``101 Switching Protocols``.

aiohttp hands raw bytes to a handler only for the upgrades it knows (WebSocket,
``tcp``); SPDY/3.1 is not one of them, so the streaming server answers 101 itself
and moves the transport onto ``RawConnection``, a protocol of ours, in one step
with nothing awaited in between (the Kubernetes clients send their first frame only
once they have read the 101). aiohttp never sees the connection's bytes again; when
the handler returns it finds the transport closed and lets it go.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger(__name__)

READ_LIMIT = 1 << 20  # buffered bytes before the transport stops reading


class RawConnection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._readable = asyncio.Event()
        self._eof = False
        self._paused_reading = False
        self._can_write = asyncio.Event()
        self._can_write.set()
        self.closed = asyncio.Event()
        # aiohttp's protocol for this connection, told when it ends: aiohttp keeps a
        # table of its connections and would otherwise hold this one forever.
        self._previous: asyncio.BaseProtocol | None = None

    @classmethod
    def take_over(cls, transport: asyncio.Transport, preamble: bytes) -> RawConnection:
        """Write ``preamble`` (the 101 response) and route the transport's bytes to us."""
        conn = cls()
        conn._previous = transport.get_protocol()
        transport.write(preamble)
        transport.set_protocol(conn)
        conn.connection_made(transport)
        try:
            transport.resume_reading()  # aiohttp may have paused it for its own reasons
        except Exception as e:  # the connection then reads nothing; its reader times out
            log.warning("connection %r: resuming reading after the upgrade failed: %s", transport, e)
        return conn

    # ------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buf += data
        self._readable.set()
        if len(self._buf) > READ_LIMIT and self.transport is not None and not self._paused_reading:
            self._paused_reading = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        self._readable.set()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._readable.set()
        self._can_write.set()
        self.closed.set()
        previous, self._previous = self._previous, None
        if previous is not None:
            try:
                previous.connection_lost(exc)
            except Exception as e:  # its bookkeeping only; our side is done
                log.warning("connection %r: aiohttp's protocol failed to close: %s", previous, e)

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # ------------------------------------------------------------ for the session
    async def read(self) -> bytes:
        """Whatever arrived; b"" at end of stream."""
        while not self._buf and not self._eof:
            self._readable.clear()
            await self._readable.wait()
        data = bytes(self._buf)
        self._buf.clear()
        if self._paused_reading and self.transport is not None:
            self._paused_reading = False
            self.transport.resume_reading()
        return data

    async def write(self, data: bytes) -> None:
        t = self.transport
        if t is None or t.is_closing():
            raise ConnectionResetError("connection closed")
        t.write(data)
        await self._can_write.wait()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def response_101(headers: dict[str, str]) -> bytes:
    lines = ["HTTP/1.1 101 Switching Protocols"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
